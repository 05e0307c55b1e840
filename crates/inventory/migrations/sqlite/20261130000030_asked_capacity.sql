-- The capacity a bucket's manager asked for when more than that was already held and sold (a hotel closing out a
-- night it had sold rooms of): the bucket keeps those units, sells no more, and its capacity follows them down to
-- what was asked as they are released. NULL when the capacity is what was asked.
ALTER TABLE buckets ADD COLUMN asked_capacity BIGINT CHECK (asked_capacity >= 0);
