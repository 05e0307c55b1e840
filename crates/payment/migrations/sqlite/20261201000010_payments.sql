-- Payments. No card number is ever stored, nor the provider's payment token: the provider keeps the card.
-- The CHECKs are the money invariants themselves: never captured above authorized, never refunded above captured.
CREATE TABLE payments (
    id                 BLOB    PRIMARY KEY,
    owner_id           BLOB    NOT NULL,
    organization_id    BLOB,
    amount_minor       INTEGER NOT NULL CHECK (amount_minor > 0),
    currency           TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'authorized', 'captured', 'partially_refunded',
                                                          'refunded', 'voided', 'failed')),
    captured_minor     INTEGER NOT NULL CHECK (captured_minor >= 0 AND captured_minor <= amount_minor),
    refunded_minor     INTEGER NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor),
    provider           TEXT    NOT NULL,
    provider_reference TEXT,
    reference          TEXT,
    failure_code       TEXT,
    decline_code       TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX payments_owner ON payments (owner_id, created_at);
CREATE INDEX payments_reference ON payments (reference);

-- Every operation on a payment, in order: its history, and under the caller's idempotency key the record that
-- makes a retry safe. Written pending (with a claim) before the provider is called; its first final answer is
-- stored and replayed.
CREATE TABLE payment_operations (
    id              BLOB    PRIMARY KEY,
    payment_id      BLOB    NOT NULL REFERENCES payments (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('authorize', 'capture', 'refund', 'void')),
    amount_minor    INTEGER NOT NULL CHECK (amount_minor >= 0),
    reason          TEXT,
    actor_id        BLOB    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    BLOB    NOT NULL,
    outcome         TEXT    NOT NULL CHECK (outcome IN ('pending', 'succeeded', 'declined', 'rejected', 'failed')),
    code            TEXT,
    answer          TEXT,
    claimed_by      BLOB,
    claimed_until   INTEGER,
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    UNIQUE (actor_id, idempotency_key)
);
CREATE INDEX payment_operations_payment ON payment_operations (payment_id, created_at);
