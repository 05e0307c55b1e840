-- One row per saga: where it is, what it has learned, and who is driving it. A saga is driven by whichever
-- instance holds its lease; a lease that runs out (its owner died) lets any instance resume it.
CREATE TABLE sagas (
    id            BLOB        PRIMARY KEY,
    kind          TEXT        NOT NULL CHECK (kind IN ('booking', 'cancellation')),
    booking_id    BLOB        NOT NULL,
    state         TEXT        NOT NULL CHECK (state IN ('running', 'compensating', 'completed', 'compensated')),
    -- Forward steps done, and (when compensating) undo steps done.
    step          INTEGER     NOT NULL DEFAULT 0,
    undo_step     INTEGER     NOT NULL DEFAULT 0,
    -- Attempts of the step about to run.
    attempts      INTEGER     NOT NULL DEFAULT 0,
    data          TEXT        NOT NULL,
    last_error    TEXT,
    -- Before the pivot, a saga still running at this time compensates (its hold is about to expire).
    deadline_at   INTEGER,
    -- The durable timer: when the saga should run next.
    next_run_at   INTEGER NOT NULL,
    lease_owner   BLOB,
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (booking_id, kind)
);
CREATE INDEX sagas_due ON sagas (next_run_at) WHERE state IN ('running', 'compensating');

-- Every attempt of every step, for support and for tests that prove a saga replayed or unwound.
CREATE TABLE saga_steps (
    saga_id   BLOB        NOT NULL,
    seq       INTEGER     NOT NULL,
    step      TEXT        NOT NULL,
    direction TEXT        NOT NULL CHECK (direction IN ('do', 'undo')),
    attempt   INTEGER     NOT NULL,
    outcome   TEXT        NOT NULL CHECK (outcome IN ('ok', 'retry', 'failed')),
    error     TEXT,
    at        INTEGER NOT NULL,
    PRIMARY KEY (saga_id, seq)
);
