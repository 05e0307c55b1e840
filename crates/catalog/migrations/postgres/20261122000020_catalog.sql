CREATE TABLE hotels (
    id              UUID    PRIMARY KEY,
    organization_id UUID    NOT NULL,
    name            TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    address         TEXT    NOT NULL,
    city            TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    latitude        DOUBLE PRECISION    NOT NULL,
    longitude       DOUBLE PRECISION    NOT NULL,
    stars           INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    amenities       TEXT    NOT NULL,
    time_zone       TEXT    NOT NULL,
    active          BOOLEAN NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX hotels_city ON hotels (city);

CREATE TABLE room_types (
    id            UUID    PRIMARY KEY,
    hotel_id      UUID    NOT NULL REFERENCES hotels (id),
    name          TEXT    NOT NULL,
    max_occupancy INTEGER NOT NULL,
    beds          TEXT    NOT NULL,
    rooms         BIGINT  NOT NULL,
    active        BOOLEAN NOT NULL
);
CREATE INDEX room_types_hotel ON room_types (hotel_id);

CREATE TABLE rate_plans (
    id                      UUID    PRIMARY KEY,
    hotel_id                UUID    NOT NULL REFERENCES hotels (id),
    room_type_id            UUID    NOT NULL REFERENCES room_types (id),
    name                    TEXT    NOT NULL,
    meal_plan               TEXT    NOT NULL,
    refundable              BOOLEAN NOT NULL,
    free_cancellation_hours INTEGER,
    currency                TEXT    NOT NULL,
    active                  BOOLEAN NOT NULL
);
CREATE INDEX rate_plans_hotel ON rate_plans (hotel_id);

-- Dates are ISO 8601 text (`2026-12-24`): fixed width, so text order is date order on both engines.
CREATE TABLE rate_prices (
    rate_plan_id UUID    NOT NULL REFERENCES rate_plans (id),
    night        TEXT    NOT NULL,
    amount_minor BIGINT  NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (rate_plan_id, night)
);

CREATE TABLE airports (
    code      TEXT    PRIMARY KEY,
    name      TEXT    NOT NULL,
    city      TEXT    NOT NULL,
    country   TEXT    NOT NULL,
    time_zone TEXT    NOT NULL,
    latitude  DOUBLE PRECISION    NOT NULL,
    longitude DOUBLE PRECISION    NOT NULL,
    active    BOOLEAN NOT NULL
);

CREATE TABLE airlines (
    code            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    organization_id UUID NOT NULL
);

CREATE TABLE schedules (
    id               UUID    PRIMARY KEY,
    airline          TEXT    NOT NULL REFERENCES airlines (code),
    flight_number    TEXT    NOT NULL,
    origin           TEXT    NOT NULL,
    destination      TEXT    NOT NULL,
    departure_time   TEXT    NOT NULL,
    duration_minutes INTEGER NOT NULL,
    days             TEXT    NOT NULL,
    effective_from   TEXT    NOT NULL,
    effective_to     TEXT    NOT NULL,
    currency         TEXT    NOT NULL,
    cabins           TEXT    NOT NULL,
    active           BOOLEAN NOT NULL
);

CREATE TABLE departures (
    id            TEXT    PRIMARY KEY,
    schedule_id   UUID    NOT NULL REFERENCES schedules (id),
    flight_number TEXT    NOT NULL,
    airline       TEXT    NOT NULL,
    origin        TEXT    NOT NULL,
    destination   TEXT    NOT NULL,
    local_date    TEXT    NOT NULL,
    departs_at    TIMESTAMPTZ NOT NULL,
    arrives_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX departures_schedule ON departures (schedule_id);

CREATE TABLE fx_rates (
    base       TEXT    NOT NULL,
    quote      TEXT    NOT NULL,
    rate       TEXT    NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (base, quote)
);
