-- Support's queue of dead deliveries, newest first (GET /api/v1/notifications/dead-deliveries): only dead rows are
-- indexed, so the index costs nothing on the path of a delivery that succeeds.
CREATE INDEX deliveries_dead ON deliveries (id) WHERE status = 'dead';
