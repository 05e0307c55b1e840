-- Every attempt to send a delivery, for support's "why did this not arrive": when, what came of it, the response
-- code and the error. Numbered by the delivery's replay round and the attempt within it (a replay starts again at
-- 1). Written in the statement that records the attempt on the delivery; deliveries are never deleted.
CREATE TABLE delivery_attempts (
    delivery_id   UUID        NOT NULL,
    replay        INTEGER     NOT NULL,
    attempt       INTEGER     NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    outcome       TEXT        NOT NULL CHECK (outcome IN ('delivered', 'logged', 'failed')),
    response_code INTEGER,
    error         TEXT,
    PRIMARY KEY (delivery_id, replay, attempt)
);
