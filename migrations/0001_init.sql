-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are BIGINT unix microseconds UTC; NULL means "zero time" (never / unset).
-- JSON documents are TEXT. BYTEA is a blob in SQLite (NUMERIC affinity keeps blobs as is).

-- +goose Up

-- Durable records ------------------------------------------------------------

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    -- Lower-cased copy of claims.email, computed by the application so SQLite
    -- (ASCII-only lower()) and PostgreSQL fold case the same way.
    email_lower   TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL,
    claims        TEXT    NOT NULL,
    created_at    BIGINT,
    updated_at    BIGINT
);
CREATE UNIQUE INDEX users_email_lower ON users (email_lower) WHERE email_lower <> '';

-- A client is its JSON document, so new metadata needs no migration.
CREATE TABLE clients (
    id         TEXT NOT NULL PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at BIGINT,
    updated_at BIGINT
);

CREATE TABLE consents (
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scopes     TEXT   NOT NULL,
    granted_at BIGINT,
    expires_at BIGINT,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX consents_expires_at ON consents (expires_at);

CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    ordinal     INTEGER NOT NULL,
    algorithm   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    private_key BYTEA,
    public_jwk  BYTEA,
    created_at  BIGINT,
    activate_at BIGINT,
    retired_at  BIGINT,
    delete_at   BIGINT
);

-- One row; ReplaceKeySet is a compare-and-swap on version.
CREATE TABLE key_set (
    id      INTEGER NOT NULL PRIMARY KEY,
    version BIGINT  NOT NULL
);
INSERT INTO key_set (id, version) VALUES (1, 0);

-- Short-lived records --------------------------------------------------------

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL,
    auth_time  BIGINT,
    acr        TEXT    NOT NULL,
    amr        TEXT    NOT NULL,
    remember   BOOLEAN NOT NULL,
    client_ids TEXT    NOT NULL,
    created_at BIGINT,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE requests (
    kind         TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    active       BOOLEAN NOT NULL,
    requested_at BIGINT,
    expires_at   BIGINT  NOT NULL,
    payload      BYTEA,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX requests_request_id ON requests (request_id);
CREATE INDEX requests_expires_at ON requests (expires_at);

CREATE TABLE replay_cache (
    id         TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_cache_expires_at ON replay_cache (expires_at);

CREATE TABLE throttle (
    throttle_key TEXT   NOT NULL PRIMARY KEY,
    hits         BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX throttle_expires_at ON throttle (expires_at);

-- For the next features ------------------------------------------------------

-- Outbox of back-channel logout notifications (OpenID Connect Back-Channel
-- Logout 1.0 §2.5), kept durable so a restart does not lose them.
CREATE TABLE logout_notifications (
    id              TEXT    NOT NULL PRIMARY KEY,
    client_id       TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX logout_notifications_next_attempt_at ON logout_notifications (next_attempt_at);

-- Initial access tokens for dynamic client registration (RFC 7591 §3), by hash.
CREATE TABLE registration_tokens (
    hash       TEXT    NOT NULL PRIMARY KEY,
    expires_at BIGINT,
    uses_left  INTEGER,
    created_at BIGINT  NOT NULL
);
CREATE INDEX registration_tokens_expires_at ON registration_tokens (expires_at);
