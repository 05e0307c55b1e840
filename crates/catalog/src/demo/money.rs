//! The demo's money: each country's currency, rough units per US dollar (fixed, so prices do not drift), dollar
//! amounts turned into round local prices, and the exchange rates the catalog needs to charge the configured fixed
//! fees in every currency the demo prices in.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use crate::model::FxRateView;
use crate::money::{Currency, Rate};

/// Local currency by ISO 3166-1 country; countries not listed use USD.
const COUNTRY_CURRENCIES: &[(&str, &str)] = &[
    ("AT", "EUR"),
    ("BE", "EUR"),
    ("DE", "EUR"),
    ("ES", "EUR"),
    ("FI", "EUR"),
    ("FR", "EUR"),
    ("GR", "EUR"),
    ("IE", "EUR"),
    ("IT", "EUR"),
    ("NL", "EUR"),
    ("PT", "EUR"),
    ("GB", "GBP"),
    ("CH", "CHF"),
    ("CZ", "CZK"),
    ("DK", "DKK"),
    ("NO", "NOK"),
    ("SE", "SEK"),
    ("TR", "TRY"),
    ("US", "USD"),
    ("CA", "CAD"),
    ("MX", "MXN"),
    ("BR", "BRL"),
    ("AR", "ARS"),
    ("CL", "CLP"),
    ("AE", "AED"),
    ("QA", "QAR"),
    ("EG", "EGP"),
    ("KE", "KES"),
    ("ZA", "ZAR"),
    ("IN", "INR"),
    ("SG", "SGD"),
    ("TH", "THB"),
    ("HK", "HKD"),
    ("CN", "CNY"),
    ("KR", "KRW"),
    ("JP", "JPY"),
    ("AU", "AUD"),
];

/// Rough units of each currency per US dollar, fixed so prices do not drift.
pub(super) const UNITS_PER_USD: &[(&str, f64)] = &[
    ("EUR", 0.92),
    ("GBP", 0.79),
    ("CHF", 0.88),
    ("CZK", 23.0),
    ("DKK", 6.9),
    ("NOK", 10.7),
    ("SEK", 10.5),
    ("TRY", 32.0),
    ("USD", 1.0),
    ("CAD", 1.36),
    ("MXN", 17.0),
    ("BRL", 5.0),
    ("ARS", 900.0),
    ("CLP", 950.0),
    ("AED", 3.67),
    ("QAR", 3.64),
    ("EGP", 48.0),
    ("KES", 130.0),
    ("ZAR", 18.5),
    ("INR", 83.0),
    ("SGD", 1.35),
    ("THB", 36.0),
    ("HKD", 7.8),
    ("CNY", 7.2),
    ("KRW", 1350.0),
    ("JPY", 150.0),
    ("AUD", 1.5),
];

/// Airlines price in USD when a dollar is worth more minor units than this, so long-haul fares stay far from the
/// fare limit of 10^9 minor units.
const MAX_AIRLINE_MINOR_PER_USD: f64 = 20_000.0;

pub(super) fn local_currency(country: &str) -> &'static str {
    COUNTRY_CURRENCIES
        .iter()
        .find(|(c, _)| *c == country)
        .map_or("USD", |(_, currency)| currency)
}

pub(super) fn airline_currency(country: &str) -> &'static str {
    let local = local_currency(country);
    if Pricing::new(local).minor_per_usd() > MAX_AIRLINE_MINOR_PER_USD {
        "USD"
    } else {
        local
    }
}

/// Turns US dollar amounts into round amounts of minor units of one currency.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pricing {
    pub(super) currency: &'static str,
    units_per_usd: f64,
    exponent: u32,
    /// Prices are multiples of this: one unit, or ten or a hundred of a currency worth much less than a dollar.
    step_minor: i64,
}

impl Pricing {
    pub(super) fn new(currency: &'static str) -> Pricing {
        let units_per_usd = UNITS_PER_USD
            .iter()
            .find(|(c, _)| *c == currency)
            .map_or(1.0, |(_, rate)| *rate);
        let exponent = Currency::parse(currency).map_or(2, |c| c.exponent());
        let mut step_units = 1;
        while f64::from(step_units * 10) <= units_per_usd {
            step_units *= 10;
        }
        Pricing {
            currency,
            units_per_usd,
            exponent,
            step_minor: i64::from(step_units) * 10_i64.pow(exponent),
        }
    }

    fn minor_per_usd(&self) -> f64 {
        self.units_per_usd * 10_f64.powi(self.exponent as i32)
    }

    /// `usd` in this currency, rounded to the step, at least one step.
    pub(super) fn minor(&self, usd: f64) -> i64 {
        let steps = (usd * self.minor_per_usd() / self.step_minor as f64).round() as i64;
        steps.max(1) * self.step_minor
    }
}

/// Decimal places of the rates [`fx_rates`] derives: far more than the rough table they come from deserves.
const RATE_DECIMAL_PLACES: u32 = 8;

/// The exchange rates the demo's products need under `options`: from the currency of each fixed fee to every other
/// currency the demo prices hotels or flights in, derived from its table of rough units per US dollar (a Tokyo hotel
/// then charges the configured city tax in yen). Set them with [`crate::Catalog::set_fx_rate`] before or after
/// loading the demo. A fee currency the table does not list gets no rates: products in other currencies then cannot
/// be priced and are not sold. With fixed fees in two currencies the pair between them comes both ways; set in
/// order, the second replaces the first (a pair has one rate), which is the same rate give or take rounding.
pub fn fx_rates(options: &crate::Options) -> Vec<FxRateView> {
    let bases: BTreeSet<Currency> = options
        .fees
        .iter()
        .filter(|fee| !matches!(fee.kind, crate::pricing::FeeKind::PercentBp(_)))
        .filter_map(|fee| fee.currency)
        .collect();
    let units = |code: &str| {
        let (_, per_usd) = UNITS_PER_USD.iter().find(|(c, _)| *c == code)?;
        // The shortest decimal that reads back as the table's float: 0.92, not 0.92000000000000003996.
        Decimal::from_str_exact(&per_usd.to_string()).ok()
    };
    let mut rates = Vec::new();
    for base in bases {
        let Some(base_units) = units(base.code()) else {
            continue;
        };
        for (quote, _) in UNITS_PER_USD.iter().filter(|(quote, _)| *quote != base.code()) {
            let rate = units(quote)
                .and_then(|quote_units| quote_units.checked_div(base_units))
                .and_then(|rate| Rate::new(rate.round_dp(RATE_DECIMAL_PLACES)).ok());
            if let Some(rate) = rate {
                rates.push(FxRateView {
                    base: base.code().to_owned(),
                    quote: (*quote).to_owned(),
                    rate: rate.get().to_string(),
                    updated_at: None,
                    updated_by: None,
                    replaced_opposite: None,
                });
            }
        }
    }
    rates
}
