// Package storage defines Gatehouse's records and the roles that hold them.
//
// Records come in two lifetimes. Durable records (users, clients, consents,
// signing keys, dynamic registration initial access tokens and the
// back-channel logout outbox) live in SQL. Short-lived records (browser sessions,
// authorization codes and token records, PKCE/OIDC/PAR requests, the
// assertion replay cache, login throttling counters) live in Redis when it is
// configured and otherwise in the same SQL database.
//
// This package knows nothing of fosite, HTTP or JOSE: the protocol meaning of a
// request record is written once, in server/oauth. Every backend is checked by
// one conformance suite, storage/storagetest.
package storage
