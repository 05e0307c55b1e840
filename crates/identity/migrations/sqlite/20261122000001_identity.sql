CREATE TABLE organizations (
    id         BLOB    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('airline', 'hotel_chain', 'agency')),
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id              BLOB    PRIMARY KEY,
    email           TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    roles           TEXT    NOT NULL,
    organization_id BLOB    REFERENCES organizations (id),
    totp_secret     TEXT,
    totp_enabled    INTEGER NOT NULL DEFAULT 0,
    totp_last_step  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE refresh_tokens (
    id         BLOB    PRIMARY KEY,
    family_id  BLOB    NOT NULL,
    user_id    BLOB    NOT NULL REFERENCES users (id),
    token_hash BLOB    NOT NULL UNIQUE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE recovery_codes (
    user_id   BLOB    NOT NULL REFERENCES users (id),
    code_hash BLOB    NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE api_keys (
    id           BLOB    PRIMARY KEY,
    user_id      BLOB    NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE signing_keys (
    kid           TEXT    PRIMARY KEY,
    private_pkcs8 BLOB    NOT NULL,
    public_key    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER
);
