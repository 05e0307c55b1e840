-- SQLite: UUIDs are 16-byte blobs, times integer microseconds, JSON as text (see the PostgreSQL migration).
-- What the notification service knows of each booking, from booking's events: enough to address a refund notice
-- (payment events name the booking only by id) and to decide who may read a booking's delivery log.
CREATE TABLE bookings (
    booking_id      BLOB        PRIMARY KEY,
    locator         TEXT        NOT NULL,
    customer_id     BLOB        NOT NULL,
    organization_id BLOB,
    contact_email   TEXT        NOT NULL,
    contact_phone   TEXT,
    summary         TEXT        NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One row per message to send: an email, an SMS or a webhook call. Written by the event handler in the event's
-- transaction; sent by the delivery worker, which claims a row with a lease (`claimed_until`) so two replicas never
-- send the same one at once.
CREATE TABLE deliveries (
    id               BLOB        PRIMARY KEY,
    event_id         BLOB        NOT NULL,
    event_type       TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    channel          TEXT        NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    -- An email address, a phone number or a webhook URL.
    recipient        TEXT        NOT NULL,
    endpoint_id      BLOB,
    booking_id       BLOB,
    customer_id      BLOB,
    organization_id  BLOB,
    locale           TEXT        NOT NULL,
    -- What the templates render (email, SMS) or the CloudEvent sent as it is (webhook).
    payload          TEXT        NOT NULL,
    status           TEXT        NOT NULL
        CHECK (status IN ('pending', 'delivered', 'logged', 'dead', 'cancelled', 'skipped')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    replays          INTEGER     NOT NULL DEFAULT 0,
    last_error       TEXT,
    response_code    INTEGER,
    -- Retries stop once this has passed (the first due time plus the retry window).
    give_up_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    claimed_by       BLOB,
    claimed_until    INTEGER,
    last_attempt_at  INTEGER,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (event_id, kind, channel, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_booking ON deliveries (booking_id, created_at);

-- Admins' edits of the built-in templates, per kind, channel and locale.
CREATE TABLE templates (
    kind       TEXT        NOT NULL,
    channel    TEXT        NOT NULL,
    locale     TEXT        NOT NULL,
    subject    TEXT,
    text_body  TEXT        NOT NULL,
    html_body  TEXT,
    updated_by BLOB        NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, channel, locale)
);

-- Per user: locale and opt-outs (a JSON list of {kind, channel}; only non-transactional kinds).
CREATE TABLE preferences (
    user_id    BLOB        PRIMARY KEY,
    locale     TEXT        NOT NULL,
    opt_outs   TEXT        NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Webhook endpoints of organizations. The secret is kept as issued: signing needs it (see ARCHITECTURE.md).
CREATE TABLE webhook_endpoints (
    id              BLOB        PRIMARY KEY,
    organization_id BLOB        NOT NULL,
    url             TEXT        NOT NULL,
    event_types     TEXT        NOT NULL,
    description     TEXT,
    secret          TEXT        NOT NULL,
    created_by      BLOB        NOT NULL,
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    disabled_reason TEXT
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (organization_id) WHERE disabled_at IS NULL;
