//! Browsing: hotel recommendations near a point, airport autocomplete and a hotel's public page.

use super::*;

impl Catalog {
    /// Active hotels near a point, nearest, best rated or cheapest first (cheapest by their lowest nightly price
    /// over the next 30 nights).
    pub fn recommend_hotels(&self, query: &Recommendations) -> Result<Vec<Recommendation>, Error> {
        let mut check = Check::default();
        let (lat, lon) = match (query.latitude, query.longitude) {
            (Some(lat), Some(lon)) => (lat, lon),
            (lat, _) => {
                check.fail(if lat.is_none() { "latitude" } else { "longitude" }, "required");
                (0.0, 0.0)
            }
        };
        check.point(lat, lon);
        let radius = radius(&mut check, query.radius_km, 25.0);
        let limit = query.limit.unwrap_or(10);
        check.range("limit", limit, 1, MAX_PAGE);
        check.finish()?;
        let today = OffsetDateTime::now_utc().date();
        let horizon = today + Duration::days(30);
        let snapshot = self.snapshot();
        // Rate plans may be priced in different currencies: the lowest price is the lowest as money, compared in
        // `catalog.sort_currency`, and so is the order of the cheapest first.
        let mut order = PriceOrder::new(&snapshot, self.options().sort_currency);
        let mut found: Vec<(Option<SortPrice>, Recommendation)> = snapshot
            .hotels
            .values()
            .filter(|e| e.hotel.active)
            .filter_map(|e| {
                let d = crate::geo::distance_km(lat, lon, e.hotel.latitude, e.hotel.longitude);
                if d > radius {
                    return None;
                }
                let from = e
                    .rate_plans
                    .iter()
                    .filter(|p| p.active)
                    .filter_map(|p| {
                        let lowest = p.prices.range(today..horizon).map(|(_, a)| *a).min()?;
                        let currency = Currency::parse(&p.currency).ok()?;
                        let money = Money::new(lowest, currency);
                        Some((order.key(money), lowest, &p.currency))
                    })
                    .min();
                let recommendation = Recommendation {
                    hotel: HotelSummary::from(&e.hotel),
                    distance_km: (d * 100.0).round() / 100.0,
                    from_price_minor: from.map(|f| f.1),
                    currency: from.map(|f| f.2.clone()),
                };
                Some((from.map(|f| f.0), recommendation))
            })
            .collect();
        match query.sort.unwrap_or_default() {
            RecommendationSort::Distance => found.sort_by(|(_, a), (_, b)| a.distance_km.total_cmp(&b.distance_km)),
            RecommendationSort::Rating => found.sort_by(|(_, a), (_, b)| {
                b.hotel
                    .stars
                    .cmp(&a.hotel.stars)
                    .then_with(|| a.distance_km.total_cmp(&b.distance_km))
            }),
            RecommendationSort::Price => found.sort_by_key(|(price, r)| (price.is_none(), *price, r.hotel.id)),
        }
        found.truncate(limit as usize);
        Ok(found.into_iter().map(|(_, r)| r).collect())
    }
    /// Airports matching a code, city or name, best first.
    pub fn airports(&self, query: &AirportQuery) -> Result<Vec<AirportView>, Error> {
        let mut check = Check::default();
        let q = query.q.as_deref().unwrap_or("").trim().to_lowercase();
        if q.is_empty() || q.chars().count() > 50 {
            check.fail("q", "1 to 50 characters");
        }
        let limit = query.limit.unwrap_or(10);
        check.range("limit", limit, 1, 20);
        check.finish()?;
        let snapshot = self.snapshot();
        let order: HashMap<&str, usize> = crate::geo::airports()
            .iter()
            .enumerate()
            .map(|(i, a)| (a.code, i))
            .collect();
        let mut found: Vec<_> = snapshot
            .airports
            .values()
            .filter(|a| a.active)
            .filter_map(|a| {
                crate::geo::match_rank(&a.code, &a.city, &a.name, &q)
                    .map(|rank| (rank, order.get(a.code.as_str()).copied().unwrap_or(usize::MAX), a))
            })
            .collect();
        found.sort_by(|x, y| (x.0, x.1, &x.2.code).cmp(&(y.0, y.1, &y.2.code)));
        Ok(found
            .into_iter()
            .take(limit as usize)
            .map(|(_, _, a)| a.clone())
            .collect())
    }
    /// A hotel as travellers see it (404 when it is off sale).
    pub fn hotel_details(&self, id: Uuid) -> Result<crate::model::HotelDetails, Error> {
        let snapshot = self.snapshot();
        let entry = snapshot
            .hotels
            .get(&id)
            .filter(|e| e.hotel.active)
            .ok_or(Error::NotFound("hotel"))?;
        let mut details = crate::service::details(entry);
        details.room_types.retain(|r| r.active);
        details.rate_plans.retain(|p| p.active);
        Ok(details)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationSort {
    #[default]
    Distance,
    Rating,
    Price,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Recommendations {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// 0.1 to 100 km (default 25).
    #[param(minimum = 0.1, maximum = 100)]
    pub radius_km: Option<f64>,
    /// Result order (default: the first listed).
    #[param(inline)]
    pub sort: Option<RecommendationSort>,
    /// 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub hotel: HotelSummary,
    pub distance_km: f64,
    /// Lowest nightly price of the next 30 nights, in `currency`.
    pub from_price_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AirportQuery {
    /// Code, city or name (prefix or part), 1 to 50 characters.
    #[param(min_length = 1, max_length = 50)]
    pub q: Option<String>,
    /// 1 to 20 (default 10).
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<u32>,
}
