//! Reference data only admins change: airports, airlines and display exchange rates.

use super::*;

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
        let base = check_currency(&mut check, "base", base);
        let quote = check_currency(&mut check, "quote", quote);
        let rate = Rate::parse(rate).map_err(|e| check.fail("rate", e.to_string())).ok();
        if base.is_some() && base == quote {
            check.fail("quote", "must differ from base");
        }
        check.finish()?;
        let (Some(base), Some(quote), Some(rate)) = (base, quote, rate) else {
            return Err(Error::invalid("rate", "invalid"));
        };
        let text = rate.get().to_string();
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            actor,
            "catalog.fx_rate_changed.v1",
            format!("{}/{}", base.code(), quote.code()),
            serde_json::json!({ "base": base.code(), "quote": quote.code(), "rate": text }),
        )?;
        self.inner
            .store
            .set_fx_rate(base.code(), quote.code(), &text, &event)
            .await?;
        self.replace(|s| {
            s.fx.insert((base, quote), rate.get());
        });
        Ok(FxRateView {
            base: base.code().to_owned(),
            quote: quote.code().to_owned(),
            rate: text,
        })
    }
}

fn check_currency(check: &mut Check, field: &str, code: &str) -> Option<Currency> {
    Currency::parse(code).map_err(|e| check.fail(field, e.to_string())).ok()
}
