-- "Forgot my password": at most one reset token per user (a new request replaces the one before, which stops
-- working), stored as its SHA-256 digest only. A confirmation marks it used in the transaction that sets the
-- password; the row stays until the user's next request replaces it.
CREATE TABLE password_resets (
    user_id    BLOB    PRIMARY KEY REFERENCES users (id),
    token_hash BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
