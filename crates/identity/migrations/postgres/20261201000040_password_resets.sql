-- "Forgot my password": at most one reset token per user (a new request replaces the one before, which stops
-- working), stored as its SHA-256 digest only. A confirmation marks it used in the transaction that sets the
-- password; the row stays until the user's next request replaces it.
CREATE TABLE password_resets (
    user_id    UUID        PRIMARY KEY REFERENCES users (id),
    token_hash BYTEA       NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
