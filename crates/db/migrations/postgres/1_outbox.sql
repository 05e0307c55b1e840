-- The transactional outbox: a service writes each event here in the same transaction as the change it describes.
CREATE TABLE outbox (
    seq            BIGSERIAL   PRIMARY KEY,
    id             UUID        NOT NULL UNIQUE,
    source         TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    subject        TEXT        NOT NULL,
    data           JSONB       NOT NULL,
    correlation_id TEXT,
    traceparent    TEXT,
    occurred_at    TIMESTAMPTZ NOT NULL,
    published_at   TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
