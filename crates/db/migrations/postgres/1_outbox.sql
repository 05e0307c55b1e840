-- The transactional outbox: a service writes each event here in the same transaction as the change it describes.
-- `data` is JSON, not JSONB: it is only ever read back whole, and JSON is stored as sent, without JSONB's parse.
CREATE TABLE outbox (
    seq            BIGSERIAL   PRIMARY KEY,
    id             UUID        NOT NULL UNIQUE,
    source         TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    subject        TEXT        NOT NULL,
    data           JSON        NOT NULL,
    correlation_id TEXT,
    traceparent    TEXT,
    occurred_at    TIMESTAMPTZ NOT NULL,
    published_at   TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
