-- The SQLite twin of the PostgreSQL migration (see its comments). Timestamps are integer microseconds since the
-- Unix epoch; UUIDs are 16-byte blobs.
-- The audit log: one append-only entry per event, hash-chained (see docs/audit-analytics.md).
--
-- `payload` is TEXT, not JSON/JSONB: it holds the exact bytes that were hashed (JSONB would reorder keys).
-- Hashes are lowercase hex SHA-256; the first entry's `prev_hash` is 64 zeros.
CREATE TABLE audit_entries (
    position       INTEGER     PRIMARY KEY CHECK (position > 0),
    event_id       BLOB        NOT NULL UNIQUE,
    actor          TEXT        NOT NULL,
    action         TEXT        NOT NULL,
    subject        TEXT        NOT NULL,
    source         TEXT        NOT NULL,
    occurred_at    INTEGER     NOT NULL,
    recorded_at    INTEGER     NOT NULL,
    correlation_id TEXT,
    payload        TEXT        NOT NULL,
    prev_hash      TEXT        NOT NULL,
    hash           TEXT        NOT NULL
);
CREATE INDEX audit_entries_actor ON audit_entries (actor, position);
CREATE INDEX audit_entries_action ON audit_entries (action, position);
CREATE INDEX audit_entries_subject ON audit_entries (subject, position);
CREATE INDEX audit_entries_occurred ON audit_entries (occurred_at);

-- The chain's head: the last position and its hash. Appends lock and move it in their transaction, so they
-- serialize, and a deleted tail no longer matches it.
CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     TEXT    NOT NULL
);
INSERT INTO audit_head (id, position, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Money per UTC day (of the event's time) and currency: confirmed bookings, cancellations and payment refunds.
CREATE TABLE money_daily (
    day                      TEXT   NOT NULL,
    currency                 TEXT   NOT NULL,
    n_confirmed              INTEGER NOT NULL DEFAULT 0,
    confirmed_minor          INTEGER NOT NULL DEFAULT 0,
    n_cancelled              INTEGER NOT NULL DEFAULT 0,
    cancelled_refunded_minor INTEGER NOT NULL DEFAULT 0,
    n_refunds                INTEGER NOT NULL DEFAULT 0,
    refunds_minor            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);

-- The refunded total seen per payment, so a reconciliation event without its operation adds only what is new.
CREATE TABLE payment_refunds (
    payment_id     TEXT   PRIMARY KEY,
    refunded_minor INTEGER NOT NULL
);

-- Searches and bookings per UTC day, for search-to-booking conversion.
CREATE TABLE conversion_daily (
    day             TEXT   PRIMARY KEY,
    hotel_searches  INTEGER NOT NULL DEFAULT 0,
    flight_searches INTEGER NOT NULL DEFAULT 0,
    n_created       INTEGER NOT NULL DEFAULT 0,
    n_confirmed     INTEGER NOT NULL DEFAULT 0
);

-- Seat and room-night buckets: capacity (latest by event time) and units sold. `unit` is the departure id
-- (seats) or the room type id in simple form (rooms); `day` the departure's date or the night.
CREATE TABLE inventory_items (
    item_id     TEXT        PRIMARY KEY,
    kind        TEXT        NOT NULL CHECK (kind IN ('seat', 'room')),
    unit        TEXT        NOT NULL,
    day         TEXT,
    capacity    INTEGER,
    capacity_at INTEGER,
    sold        INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX inventory_items_unit ON inventory_items (kind, unit);
CREATE INDEX inventory_items_day ON inventory_items (kind, day);

-- Which hotel a room type belongs to (room type id in simple form, as in room-night item ids).
CREATE TABLE room_types (
    room_type_id TEXT PRIMARY KEY,
    hotel_id     TEXT NOT NULL
);
CREATE INDEX room_types_hotel ON room_types (hotel_id);
