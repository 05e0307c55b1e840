//! Reference data only admins change: airports, airlines and exchange rates (which anyone may list, as search
//! shows anyone amounts converted with them).

use phoenix_db::Timestamp;
use rust_decimal::Decimal;

use super::*;
use crate::snapshot::FxEntry;
use crate::store::FxRateRow;

impl Catalog {
    pub async fn put_airport(&self, actor: &Principal, code: &str, input: AirportInput) -> Result<(), Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            check.fail("code", "must be three uppercase letters");
        }
        check.text("name", &input.name, 1, 200);
        check.text("city", &input.city, 1, 100);
        check.country("country", &input.country);
        if crate::geo::time_zone(&input.time_zone).is_none() {
            check.fail("time_zone", "must be an IANA time zone");
        }
        check.point(input.latitude, input.longitude);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        if let Some(existing) = self.snapshot().airports.get(code)
            && existing.time_zone != input.time_zone
            && self
                .snapshot()
                .schedules
                .values()
                .any(|s| s.origin == code || s.destination == code)
        {
            return Err(Error::Conflict(
                "airport_in_use",
                "flights are scheduled at this airport: its time zone cannot change".into(),
            ));
        }
        let row = AirportRow {
            code: code.to_owned(),
            name: input.name,
            city: input.city,
            country: input.country,
            time_zone: input.time_zone,
            latitude: input.latitude,
            longitude: input.longitude,
            active: input.active,
        };
        let event = self.event(
            actor,
            "catalog.airport_changed.v1",
            code,
            serde_json::json!({ "code": code }),
        )?;
        self.inner.store.save_airport(&row, &event).await?;
        self.replace(|s| s.put_airport(row));
        Ok(())
    }

    pub async fn create_airline(&self, actor: &Principal, input: AirlineInput) -> Result<AirlineInput, Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        if input.code.len() != 2 || !input.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            check.fail("code", "must be two uppercase letters or digits");
        }
        check.text("name", &input.name, 1, 200);
        check.finish()?;
        self.require_kind(
            actor,
            input.organization_id,
            phoenix_identity::OrganizationKind::Airline,
            "an airline",
        )
        .await?;
        let airline = Airline {
            code: input.code,
            name: input.name,
            organization_id: input.organization_id,
        };
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            actor,
            "catalog.airline_created.v1",
            airline.code.clone(),
            serde_json::json!({ "code": airline.code, "organization_id": airline.organization_id }),
        )?;
        if !self.inner.store.insert_airline(&airline, &event).await? {
            return Err(Error::Conflict(
                "airline_exists",
                format!("airline {} exists", airline.code),
            ));
        }
        let view = AirlineInput::from(&airline);
        self.replace(|s| {
            s.airlines.insert(airline.code.clone(), airline);
        });
        Ok(view)
    }

    /// Every exchange rate the catalog converts with now, by base then quote. Who set each is shown to admins only.
    pub fn fx_rates(&self, viewer: Option<&Principal>) -> Vec<FxRateView> {
        let admin = viewer.is_some_and(|p| p.has(Role::Admin));
        let snapshot = self.snapshot();
        let mut rates: Vec<FxRateView> = snapshot
            .fx
            .iter()
            .map(|((base, quote), entry)| FxRateView {
                base: base.code().to_owned(),
                quote: quote.code().to_owned(),
                rate: entry.rate.get().to_string(),
                updated_at: Some(entry.updated_at),
                updated_by: entry.updated_by.filter(|_| admin),
                replaced_opposite: None,
            })
            .collect();
        rates.sort_by(|a, b| (&a.base, &a.quote).cmp(&(&b.base, &b.quote)));
        rates
    }

    /// Sets the rate from `base` to `quote`: units of quote per unit of base. A pair of currencies has one rate: the
    /// opposite pair's, if set, is removed in the same transaction and this one's inverse serves that way from now
    /// on; the answer and the event give the rate it replaced. A rate whose inverse would be out of a rate's bounds
    /// is refused, since it could only convert one way.
    pub async fn set_fx_rate(
        &self,
        actor: &Principal,
        base: &str,
        quote: &str,
        rate: &str,
    ) -> Result<FxRateView, Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        let pair = fx_pair(&mut check, base, quote);
        let rate = match Rate::parse(rate) {
            Ok(rate) if rate.inverse().is_err() => {
                check.fail("rate", inverse_out_of_range());
                None
            }
            Ok(rate) => Some(rate),
            Err(e) => {
                check.fail("rate", e.to_string());
                None
            }
        };
        check.finish()?;
        let (Some((base, quote)), Some(rate)) = (pair, rate) else {
            return Err(Error::invalid("rate", "invalid"));
        };
        let text = rate.get().to_string();
        let row = FxRateRow {
            base: base.code().to_owned(),
            quote: quote.code().to_owned(),
            rate: text.clone(),
            updated_at: Timestamp::now(),
            updated_by: Some(actor.user_id).filter(|id| !id.is_nil()),
        };
        let _writing = self.inner.writing.lock().await;
        let set = || {
            self.inner.store.set_fx_rate(&row, |replaced| {
                self.event(
                    actor,
                    "catalog.fx_rate_changed.v1",
                    format!("{}/{}", row.base, row.quote),
                    serde_json::json!({
                        "base": row.base, "quote": row.quote, "rate": row.rate, "replaced_opposite": replaced,
                    }),
                )
            })
        };
        // Another catalog process may set the opposite pair between our delete and insert (the unique index on the
        // pair refuses ours, and theirs was written): go again, now deleting theirs. The last one set wins, as in one
        // process; each refusal means another process's write went through, so a few attempts suffice.
        let mut attempts = 1;
        let replaced = loop {
            match set().await {
                Err(Error::Db(error)) if error.is_unique_violation() && attempts < 5 => attempts += 1,
                other => break other?,
            }
        };
        let entry = FxEntry {
            rate,
            updated_at: row.updated_at.into(),
            updated_by: row.updated_by,
        };
        self.replace(|s| s.set_fx(base, quote, entry));
        Ok(FxRateView {
            base: row.base,
            quote: row.quote,
            rate: text,
            updated_at: Some(entry.updated_at),
            updated_by: entry.updated_by,
            replaced_opposite: replaced,
        })
    }

    /// Deletes the rate from `base` to `quote`, named as it was set and is listed (404 when that pair has none, even
    /// if the opposite pair has one). Search and quotes stop converting with it at once: what needs it (a display
    /// currency, a fixed fee in another currency) then has no rate, as if it had never been set.
    pub async fn delete_fx_rate(&self, actor: &Principal, base: &str, quote: &str) -> Result<(), Error> {
        if !actor.has(Role::Admin) {
            return Err(Error::Forbidden);
        }
        let mut check = Check::default();
        let pair = fx_pair(&mut check, base, quote);
        check.finish()?;
        let Some((base, quote)) = pair else {
            return Err(Error::invalid("quote", "invalid"));
        };
        let subject = format!("{}/{}", base.code(), quote.code());
        let _writing = self.inner.writing.lock().await;
        let deleted = self
            .inner
            .store
            .delete_fx_rate(base.code(), quote.code(), |rate| {
                self.event(
                    actor,
                    "catalog.fx_rate_deleted.v1",
                    subject,
                    serde_json::json!({ "base": base.code(), "quote": quote.code(), "rate": rate }),
                )
            })
            .await?;
        if deleted.is_none() {
            return Err(Error::NotFound("exchange rate"));
        }
        self.replace(|s| {
            s.fx.remove(&(base, quote));
        });
        Ok(())
    }
}

/// The two currencies a rate's path names: known ISO 4217 codes, and not the same one.
fn fx_pair(check: &mut Check, base: &str, quote: &str) -> Option<(Currency, Currency)> {
    let base = check_currency(check, "base", base);
    let quote = check_currency(check, "quote", quote);
    if base.is_some() && base == quote {
        check.fail("quote", "must differ from base");
        return None;
    }
    base.zip(quote)
}

/// Why a rate below `1 / Rate::MAX` is refused: the other way round it would be above the maximum, so no conversion
/// that way could use it.
fn inverse_out_of_range() -> String {
    let min = Decimal::ONE / Rate::MAX;
    format!(
        "its inverse, which converts the other way, would exceed the maximum rate of {}: a rate must be at least {min}",
        Rate::MAX
    )
}

fn check_currency(check: &mut Check, field: &str, code: &str) -> Option<Currency> {
    Currency::parse(code).map_err(|e| check.fail(field, e.to_string())).ok()
}
