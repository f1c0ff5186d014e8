-- Third-party apps: registration token descriptions, the logout outbox's last
-- error, and indexes for revoking every grant of a user or of a client.
-- Portable SQL, as 0001.

-- +goose Up

ALTER TABLE registration_tokens ADD COLUMN description TEXT NOT NULL DEFAULT '';

ALTER TABLE logout_notifications ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
-- Claims take the earliest due first, ties broken by ID.
DROP INDEX logout_notifications_next_attempt_at;
CREATE INDEX logout_notifications_due ON logout_notifications (next_attempt_at, id);

CREATE INDEX requests_subject ON requests (subject);
CREATE INDEX requests_client_id ON requests (client_id);
