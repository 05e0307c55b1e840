CREATE TABLE organizations (
    id         UUID        PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    kind       TEXT        NOT NULL CHECK (kind IN ('airline', 'hotel_chain', 'agency')),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id              UUID        PRIMARY KEY,
    email           TEXT        NOT NULL UNIQUE,
    name            TEXT        NOT NULL,
    password_hash   TEXT        NOT NULL,
    roles           TEXT        NOT NULL,
    organization_id UUID        REFERENCES organizations (id),
    totp_secret     TEXT,
    totp_enabled    BOOLEAN     NOT NULL DEFAULT FALSE,
    totp_last_step  BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE refresh_tokens (
    id         UUID        PRIMARY KEY,
    family_id  UUID        NOT NULL,
    user_id    UUID        NOT NULL REFERENCES users (id),
    token_hash BYTEA       NOT NULL UNIQUE,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE recovery_codes (
    user_id   UUID        NOT NULL REFERENCES users (id),
    code_hash BYTEA       NOT NULL,
    used_at   TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE api_keys (
    id           UUID        PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id),
    name         TEXT        NOT NULL,
    prefix       TEXT        NOT NULL,
    secret_hash  BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE signing_keys (
    kid           TEXT        PRIMARY KEY,
    private_pkcs8 BYTEA       NOT NULL,
    public_key    BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    retired_at    TIMESTAMPTZ
);
