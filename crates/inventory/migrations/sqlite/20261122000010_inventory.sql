-- One bucket per bookable unit. The CHECK is the invariant itself: the database refuses any write that breaks it.
CREATE TABLE buckets (
    item_id           TEXT    PRIMARY KEY,
    organization_id   BLOB,
    capacity          INTEGER NOT NULL CHECK (capacity >= 0),
    overbooking_limit INTEGER NOT NULL DEFAULT 0 CHECK (overbooking_limit >= 0),
    held              INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold              INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at        INTEGER NOT NULL,
    CHECK (held + sold <= capacity + overbooking_limit)
);

CREATE TABLE holds (
    id              BLOB    PRIMARY KEY,
    holder_id       BLOB    NOT NULL,
    organization_id BLOB,
    reference       TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('held', 'confirmed', 'released', 'expired')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    closed_at       INTEGER
);
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'held';

-- Lines repeat their hold's expiry and whether it is still held, so "units of this item held past their expiry"
-- is an index range, not a scan of every line the item ever had. No foreign keys: the writer inserts a hold and its
-- lines together after finding every bucket under lock, and on a hot bucket each foreign-key check would walk the
-- bucket row's chain of recent versions (measured: the largest cost of a batch on PostgreSQL).
CREATE TABLE hold_lines (
    hold_id    BLOB    NOT NULL,
    item_id    TEXT    NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    active     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (hold_id, item_id)
);
CREATE INDEX hold_lines_due ON hold_lines (item_id, expires_at) WHERE active = TRUE;

-- Holds each holder has open, bounded so nobody can hoard a flight.
CREATE TABLE holders (
    holder_id    BLOB    PRIMARY KEY,
    active_holds INTEGER NOT NULL CHECK (active_holds >= 0)
);
