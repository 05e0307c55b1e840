-- The transactional outbox: a service writes each event here in the same transaction as the change it describes.
CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB    NOT NULL UNIQUE,
    source         TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    correlation_id TEXT,
    traceparent    TEXT,
    occurred_at    INTEGER NOT NULL,
    published_at   INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
