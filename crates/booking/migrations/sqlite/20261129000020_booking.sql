-- One row per booking. Items, travellers, contact and cancellation are JSON documents: booking reads and writes
-- them whole, and only the columns below are ever searched.
CREATE TABLE bookings (
    id                BLOB    PRIMARY KEY,
    locator           TEXT    NOT NULL UNIQUE,
    customer_id       BLOB    NOT NULL,
    organization_id   BLOB,
    created_by        BLOB    NOT NULL,
    -- The booker's principal (roles, organization), which the sagas act for.
    actor             TEXT    NOT NULL,
    status            TEXT    NOT NULL
        CHECK (status IN ('pending', 'confirmed', 'failed', 'cancelling', 'cancelled', 'completed')),
    currency          TEXT    NOT NULL,
    total_minor       INTEGER NOT NULL CHECK (total_minor >= 0),
    refunded_minor    INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= total_minor),
    items             TEXT    NOT NULL,
    travellers        TEXT    NOT NULL,
    contact           TEXT    NOT NULL,
    -- Lowercased, trimmed: support finds bookings by it.
    lead_last_name    TEXT    NOT NULL,
    -- When the last item ends: the completion sweep's clock.
    ends_at           INTEGER NOT NULL,
    hold_id           BLOB,
    payment_id        BLOB,
    failure_code      TEXT,
    failure_detail    TEXT,
    cancellation      TEXT,
    -- A saga the saga service has not taken yet, and since when.
    saga_request      TEXT    CHECK (saga_request IN ('booking', 'cancellation')),
    saga_requested_at INTEGER,
    -- The provider's token for the booking saga; cleared once the saga has it. Never logged, never in an event.
    payment_token     TEXT,
    idempotency_scope TEXT    NOT NULL,
    idempotency_key   TEXT    NOT NULL,
    request_hash      BLOB    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX bookings_idempotency ON bookings (idempotency_scope, idempotency_key);
CREATE INDEX bookings_saga_requests ON bookings (saga_requested_at, id) WHERE saga_request IS NOT NULL;
CREATE INDEX bookings_due ON bookings (ends_at) WHERE status = 'confirmed';
CREATE INDEX bookings_customer ON bookings (customer_id, id);
CREATE INDEX bookings_created_by ON bookings (created_by, id);
CREATE INDEX bookings_organization ON bookings (organization_id, id) WHERE organization_id IS NOT NULL;
CREATE INDEX bookings_lead_last_name ON bookings (lead_last_name);

CREATE TABLE booking_status_history (
    booking_id BLOB    NOT NULL REFERENCES bookings (id),
    seq        INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    actor_id   BLOB,
    reason     TEXT,
    at         INTEGER NOT NULL,
    PRIMARY KEY (booking_id, seq)
);
