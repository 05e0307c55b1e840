-- Every attempt to send a delivery (see the PostgreSQL migration).
CREATE TABLE delivery_attempts (
    delivery_id   BLOB    NOT NULL,
    replay        INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('delivered', 'logged', 'failed')),
    response_code INTEGER,
    error         TEXT,
    PRIMARY KEY (delivery_id, replay, attempt)
);
