-- Who last set each exchange rate: the admin's user id, null for the platform (seeding).
ALTER TABLE fx_rates ADD COLUMN updated_by UUID;

-- One rate per pair of currencies, whichever way round it was set (the other way converts with its inverse). Of a
-- pair stored both ways, the rate set last stays, as setting a rate now does; a tie keeps the alphabetically first
-- base.
DELETE FROM fx_rates WHERE EXISTS (
    SELECT 1 FROM fx_rates opposite
    WHERE opposite.base = fx_rates.quote AND opposite.quote = fx_rates.base
      AND (opposite.updated_at > fx_rates.updated_at
           OR (opposite.updated_at = fx_rates.updated_at AND opposite.base < fx_rates.base))
);
CREATE UNIQUE INDEX fx_rates_pair ON fx_rates ((LEAST(base, quote)), (GREATEST(base, quote)));
