-- What a service needs to consume other services' events and to relay its own (see the PostgreSQL migration).
-- Timestamps are integer microseconds since the Unix epoch; UUIDs are 16-byte blobs.
CREATE TABLE inbox (
    consumer   TEXT    NOT NULL,
    event_id   BLOB    NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE INDEX inbox_applied_at ON inbox (applied_at);

CREATE TABLE dead_letters (
    id          BLOB    PRIMARY KEY,
    consumer    TEXT    NOT NULL,
    event_id    BLOB    NOT NULL,
    event_type  TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL,
    replayed_at INTEGER
);
CREATE INDEX dead_letters_open ON dead_letters (consumer, failed_at) WHERE replayed_at IS NULL;

CREATE TABLE relay_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
