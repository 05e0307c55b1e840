-- The simulated card provider's own books: what a card network would know, kept apart from Phoenix's payments so
-- a test can read what the provider did even after the process that called it died.
CREATE TABLE simulator_payments (
    reference        TEXT    PRIMARY KEY,
    our_reference    TEXT    NOT NULL,
    card             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('authorized', 'captured', 'voided')),
    currency         TEXT    NOT NULL,
    authorized_minor INTEGER NOT NULL CHECK (authorized_minor > 0),
    captured_minor   INTEGER NOT NULL CHECK (captured_minor >= 0 AND captured_minor <= authorized_minor),
    refunded_minor   INTEGER NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX simulator_payments_ours ON simulator_payments (our_reference);

-- Every idempotency key the provider was sent, with how often and its final answer (replayed to repeats).
CREATE TABLE simulator_requests (
    idempotency_key TEXT    PRIMARY KEY,
    operation       TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    answer          TEXT,
    created_at      INTEGER NOT NULL
);

-- Money movements, append only.
CREATE TABLE simulator_ledger (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    reference       TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('authorization', 'capture', 'refund', 'void')),
    amount_minor    INTEGER NOT NULL CHECK (amount_minor >= 0),
    idempotency_key TEXT    NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX simulator_ledger_reference ON simulator_ledger (reference);
