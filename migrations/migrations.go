// Package migrations embeds the forward-only, numbered SQL migrations
// (NNNN_description.sql). Each file is written to run unchanged on SQLite and
// PostgreSQL.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
