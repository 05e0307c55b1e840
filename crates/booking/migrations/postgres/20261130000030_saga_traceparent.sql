-- The W3C trace context of the request that asked for the pending saga: the saga runs its steps in that trace, so
-- the events of a whole booking can be followed from the request that made it.
ALTER TABLE bookings ADD COLUMN saga_traceparent TEXT;
