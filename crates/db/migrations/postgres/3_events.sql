-- What a service needs to consume other services' events and to relay its own.
--
-- `inbox`: the ids of the events each of this database's consumers has applied, written in the same transaction as
-- the effect, so a redelivered event is recognised and skipped (at-least-once delivery, effectively-once effect).
CREATE TABLE inbox (
    consumer   TEXT        NOT NULL,
    event_id   UUID        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_applied_at ON inbox (applied_at);

-- Events a consumer could not apply after its bounded retries: kept whole, shown to admins, replayable.
CREATE TABLE dead_letters (
    id          UUID        PRIMARY KEY,
    consumer    TEXT        NOT NULL,
    event_id    UUID        NOT NULL,
    event_type  TEXT        NOT NULL,
    event       JSON        NOT NULL,
    error       TEXT        NOT NULL,
    attempts    INTEGER     NOT NULL,
    failed_at   TIMESTAMPTZ NOT NULL,
    replayed_at TIMESTAMPTZ
);
CREATE INDEX dead_letters_open ON dead_letters (consumer, failed_at) WHERE replayed_at IS NULL;

-- One relay publishes a database's outbox at a time (order per subject needs a single publisher): whoever holds an
-- unexpired lease.
CREATE TABLE relay_lease (
    id         INTEGER     PRIMARY KEY CHECK (id = 1),
    holder     UUID        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
