package sql_test

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func BenchmarkSQLite(b *testing.B) {
	s := sqltest.NewSQLite(b)
	b.Run("Durable", func(b *testing.B) { storagetest.BenchDurable(b, s) })
	b.Run("Ephemeral", func(b *testing.B) { storagetest.BenchEphemeral(b, s) })
}

func BenchmarkPostgres(b *testing.B) {
	s := sqltest.NewPostgres(b)
	b.Run("Durable", func(b *testing.B) { storagetest.BenchDurable(b, s) })
	b.Run("Ephemeral", func(b *testing.B) { storagetest.BenchEphemeral(b, s) })
}
