//! Pricing rules: traveller-type fares, dynamic (load-based) pricing, fees, and the totals of stays and itineraries.
//!
//! Pure functions over integer minor units of the product's currency, so that a price is reproducible from its
//! inputs and every rule can be tested table-driven. No floats: every proportional amount is computed exactly in
//! 128-bit integers and rounded once, half up. Every input is bounded and every overflow is a [`PricingError`], never
//! a panic or a wrapped value.
//!
//! A fixed fee is an amount in its own currency (city tax 2.50 EUR a night), not in the product's: a product priced
//! in another currency converts it with the exchange rate its caller looks up, once per unit (per night, traveller
//! or booking) and before counting the units, with [`crate::money::convert`]'s one rounding (half away from zero).
//! So a night's city tax is the same amount in a stay of one night or ten, and the breakdown reads as whole units.
//! Without a rate the product has no correct price: [`PricingError::NoRate`], which the caller must not sell.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError, convert};

/// Most nights in one stay.
pub const MAX_NIGHTS: usize = 30;
/// Most rooms in one stay booking.
pub const MAX_ROOMS: u32 = 9;
/// Most guests in one stay booking: four per room at the room limit.
pub const MAX_GUESTS: u32 = 36;
/// Most travellers (infants included) in one itinerary.
pub const MAX_TRAVELLERS: u32 = 9;
/// Most flight segments in one itinerary.
pub const MAX_SEGMENTS: usize = 8;
/// Most fee lines priced at once.
pub const MAX_FEE_LINES: usize = 32;
/// Most steps in a [`DynamicPricing`] table.
pub const MAX_STEPS: usize = 16;
/// Largest dynamic increase: +1000 %, an eleven-fold price.
pub const MAX_INCREASE_BP: u32 = 100_000;
/// Largest percentage fee: 100 % of the base.
pub const MAX_PERCENT_FEE_BP: u32 = 10_000;
/// Largest traveller-type share of the adult fare: nobody pays more than the adult fare.
pub const MAX_FARE_BP: u32 = 10_000;

/// Basis points in a whole: 10 000 bp = 100 %.
const BP_PER_WHOLE: i128 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("a stay must have 1 to {max_nights} nights, got {n_nights}")]
    NightsOutOfRange { n_nights: usize, max_nights: usize },
    #[error("a stay must have 1 to {max_rooms} rooms, got {n_rooms}")]
    RoomsOutOfRange { n_rooms: u32, max_rooms: u32 },
    #[error("a stay must have 1 to {max_guests} guests, got {n_guests}")]
    GuestsOutOfRange { n_guests: u32, max_guests: u32 },
    #[error("an itinerary must have 1 to {max_travellers} travellers, got {n_travellers}")]
    TravellersOutOfRange { n_travellers: u64, max_travellers: u32 },
    #[error("an itinerary must have 1 to {max_segments} segments, got {n_segments}")]
    SegmentsOutOfRange { n_segments: usize, max_segments: usize },
    #[error("at most {max_fee_lines} fee lines can be priced, got {n_fee_lines}")]
    TooManyFeeLines { n_fee_lines: usize, max_fee_lines: usize },
    #[error("a dynamic pricing table has at most {max_steps} steps, got {n_steps}")]
    TooManySteps { n_steps: usize, max_steps: usize },
    #[error("dynamic pricing step {step_idx} is invalid: {reason}")]
    InvalidStep { step_idx: usize, reason: &'static str },
    #[error("fee {code:?} is invalid: {reason}")]
    InvalidFee { code: String, reason: &'static str },
    #[error("traveller pricing is invalid: {reason}")]
    InvalidTravellerPricing { reason: &'static str },
    #[error("{what} must not be negative, got {amount_minor}")]
    NegativeAmount { what: &'static str, amount_minor: i64 },
    #[error("price overflows the range of minor units")]
    Overflow,
    /// A fixed fee that applies is in a currency with no exchange rate into the product's: an expected gap in the
    /// catalog's rates, not a bug, but the product cannot be priced (nor sold) until a rate is set.
    #[error("no exchange rate from {from} to {to} for fee {code:?}")]
    NoRate { code: String, from: Currency, to: Currency },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TravellerType {
    Adult,
    Child,
    Infant,
}

/// What each traveller type pays, in basis points of the adult fare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TravellerPricing {
    pub adult_bp: u32,
    pub child_bp: u32,
    pub infant_bp: u32,
}

impl Default for TravellerPricing {
    /// Adults pay the fare, children 75 %, infants (on a lap, no seat) 10 %.
    fn default() -> Self {
        TravellerPricing {
            adult_bp: 10_000,
            child_bp: 7_500,
            infant_bp: 1_000,
        }
    }
}

impl TravellerPricing {
    /// Each share must be at most [`MAX_FARE_BP`].
    pub fn validate(&self) -> Result<(), PricingError> {
        if [self.adult_bp, self.child_bp, self.infant_bp]
            .iter()
            .any(|bp| *bp > MAX_FARE_BP)
        {
            return Err(PricingError::InvalidTravellerPricing {
                reason: "a share exceeds 10000 bp of the adult fare",
            });
        }
        Ok(())
    }

    pub fn bp_for(&self, traveller: TravellerType) -> u32 {
        match traveller {
            TravellerType::Adult => self.adult_bp,
            TravellerType::Child => self.child_bp,
            TravellerType::Infant => self.infant_bp,
        }
    }

    /// The fare a `traveller` pays when an adult pays `base_minor`, rounded half up to a minor unit.
    pub fn fare_for(&self, base_minor: i64, traveller: TravellerType) -> Result<i64, PricingError> {
        self.validate()?;
        non_negative("fare", base_minor)?;
        share_half_up(base_minor, i128::from(self.bp_for(traveller)))
    }
}

/// One step of a dynamic pricing table: from `load_factor_bp` sold (inclusive), prices rise by `increase_bp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Share of capacity committed, `0..=10000`.
    pub load_factor_bp: u32,
    /// Increase over the base price, at most [`MAX_INCREASE_BP`].
    pub increase_bp: u32,
}

/// Load-based pricing: the fuller a departure or a night, the higher the price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicPricing {
    /// Strictly increasing thresholds; see [`DynamicPricing::validate`].
    pub steps: Vec<Step>,
}

impl Default for DynamicPricing {
    /// +10 % from half full, +25 % from three quarters, +50 % from 90 %.
    fn default() -> Self {
        DynamicPricing {
            steps: vec![
                Step {
                    load_factor_bp: 5_000,
                    increase_bp: 1_000,
                },
                Step {
                    load_factor_bp: 7_500,
                    increase_bp: 2_500,
                },
                Step {
                    load_factor_bp: 9_000,
                    increase_bp: 5_000,
                },
            ],
        }
    }
}

impl DynamicPricing {
    /// A table with no steps: the base price at any load.
    pub fn flat() -> Self {
        DynamicPricing { steps: Vec::new() }
    }

    /// At most [`MAX_STEPS`] steps, thresholds strictly increasing within `0..=10000`, increases at most
    /// [`MAX_INCREASE_BP`].
    pub fn validate(&self) -> Result<(), PricingError> {
        if self.steps.len() > MAX_STEPS {
            return Err(PricingError::TooManySteps {
                n_steps: self.steps.len(),
                max_steps: MAX_STEPS,
            });
        }
        for (step_idx, step) in self.steps.iter().enumerate() {
            let invalid = |reason| PricingError::InvalidStep { step_idx, reason };
            if step.load_factor_bp > 10_000 {
                return Err(invalid("load factor exceeds 10000 bp"));
            }
            if step.increase_bp > MAX_INCREASE_BP {
                return Err(invalid("increase exceeds 100000 bp"));
            }
            if step_idx > 0 && self.steps[step_idx - 1].load_factor_bp >= step.load_factor_bp {
                return Err(invalid("load factor thresholds must be strictly increasing"));
            }
        }
        Ok(())
    }

    /// The increase of the step with the highest threshold at or below the load factor `committed / capacity`,
    /// or 0 below the first step.
    ///
    /// The comparison is exact (`committed * 10000 >= threshold * capacity`), so 4999 of 10000 sold is below a
    /// 50 % step and 1 of 2 is on it. A capacity of zero or less counts as full. A negative `committed` is a bug
    /// upstream and counts as nothing sold.
    pub fn increase_bp(&self, committed: i64, capacity: i64) -> Result<u32, PricingError> {
        self.validate()?;
        debug_assert!(committed >= 0, "negative committed count {committed}");
        let committed = i128::from(committed.max(0));
        let reached = |step: &Step| {
            capacity <= 0 || committed * BP_PER_WHOLE >= i128::from(step.load_factor_bp) * i128::from(capacity)
        };
        Ok(self
            .steps
            .iter()
            .rev()
            .find(|step| reached(step))
            .map_or(0, |step| step.increase_bp))
    }

    /// `base_minor` raised by [`DynamicPricing::increase_bp`], rounded half up to a minor unit.
    pub fn apply(&self, base_minor: i64, committed: i64, capacity: i64) -> Result<i64, PricingError> {
        non_negative("base price", base_minor)?;
        let increase_bp = self.increase_bp(committed, capacity)?;
        share_half_up(base_minor, BP_PER_WHOLE + i128::from(increase_bp))
    }
}

/// Which products a fee is charged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    Hotel,
    Flight,
    Both,
}

impl Applies {
    fn covers(self, product: Product) -> bool {
        matches!(
            (self, product),
            (Applies::Both, _) | (Applies::Hotel, Product::Stay) | (Applies::Flight, Product::Itinerary)
        )
    }
}

/// How a fee is computed. Fixed amounts are minor units of the fee line's [`FeeLine::currency`], converted into the
/// product's currency once per unit (see the module documentation).
///
/// Serialized externally tagged: `{"percent_bp": 1000}`, `{"per_night": 250}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    /// A share of the base price (never of other fees), at most [`MAX_PERCENT_FEE_BP`], rounded half up.
    PercentBp(u32),
    /// Once per guest of a stay, or once per traveller (infants included) of an itinerary, whatever its segments.
    PerTraveller(i64),
    /// Once per room per night; stays only.
    PerNight(i64),
    /// Once per booking.
    PerBooking(i64),
}

impl FeeKind {
    /// The amount of a fixed kind, per unit; `None` for a percentage.
    fn fixed_minor(self) -> Option<i64> {
        match self {
            FeeKind::PercentBp(_) => None,
            FeeKind::PerTraveller(amount_minor)
            | FeeKind::PerNight(amount_minor)
            | FeeKind::PerBooking(amount_minor) => Some(amount_minor),
        }
    }
}

/// A tax or fee as configured in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeLine {
    pub code: String,
    pub name: String,
    pub kind: FeeKind,
    /// The currency of a fixed amount, which every fixed kind requires; a percentage takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    pub applies_to: Applies,
}

/// One fee as charged on a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeAmount {
    pub code: String,
    pub name: String,
    pub amount_minor: i64,
}

/// A priced booking: `total_minor` is `base_minor` plus every fee amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBreakdown {
    pub base_minor: i64,
    /// The fees that apply, in the order they were configured.
    pub fees: Vec<FeeAmount>,
    pub total_minor: i64,
}

/// Prices a hotel stay in `currency`: `nightly_minor` holds the price of one room for each night (already
/// dynamically priced).
///
/// The base is the sum of the nightly prices times `rooms`. Fees for hotels are then added: percentages of the base,
/// per-night amounts for every room and night, per-traveller amounts for every guest, per-booking amounts once.
/// `rate(c)` is how many units of `currency` one unit of `c` buys, for fixed fees in another currency `c`.
pub fn stay_total(
    nightly_minor: &[i64],
    rooms: u32,
    guests: u32,
    fees: &[FeeLine],
    currency: Currency,
    rate: impl Fn(Currency) -> Option<Decimal>,
) -> Result<PriceBreakdown, PricingError> {
    let n_nights = nightly_minor.len();
    if !(1..=MAX_NIGHTS).contains(&n_nights) {
        return Err(PricingError::NightsOutOfRange {
            n_nights,
            max_nights: MAX_NIGHTS,
        });
    }
    if !(1..=MAX_ROOMS).contains(&rooms) {
        return Err(PricingError::RoomsOutOfRange {
            n_rooms: rooms,
            max_rooms: MAX_ROOMS,
        });
    }
    if !(1..=MAX_GUESTS).contains(&guests) {
        return Err(PricingError::GuestsOutOfRange {
            n_guests: guests,
            max_guests: MAX_GUESTS,
        });
    }
    let mut one_room_minor: i64 = 0;
    for &night_minor in nightly_minor {
        non_negative("nightly price", night_minor)?;
        one_room_minor = one_room_minor.checked_add(night_minor).ok_or(PricingError::Overflow)?;
    }
    let base_minor = one_room_minor
        .checked_mul(i64::from(rooms))
        .ok_or(PricingError::Overflow)?;
    // Both factors are bounded (30 nights, 9 rooms), so this product cannot overflow.
    let room_nights = n_nights as i64 * i64::from(rooms);
    let basis = FeeBasis {
        base_minor,
        n_travellers: i64::from(guests),
        n_room_nights: Some(room_nights),
    };
    with_fees(basis, Product::Stay, fees, currency, &rate)
}

/// Prices a flight itinerary in `currency`: `segment_fares_minor` holds the adult fare of each segment, `travellers`
/// how many of each type fly (a type may appear more than once; counts add up).
///
/// The base is, for every segment and traveller type, the type's share of the segment fare (rounded half up per
/// segment) times the count. Fees for flights are then added: percentages of the base, per-traveller amounts once
/// per traveller for the whole itinerary (not per segment; infants count as travellers), per-booking amounts once.
/// A per-night fee applying to flights is a configuration error. `rate` converts fixed fees as in [`stay_total`].
pub fn itinerary_total(
    segment_fares_minor: &[i64],
    travellers: &[(TravellerType, u32)],
    traveller_pricing: &TravellerPricing,
    fees: &[FeeLine],
    currency: Currency,
    rate: impl Fn(Currency) -> Option<Decimal>,
) -> Result<PriceBreakdown, PricingError> {
    let n_segments = segment_fares_minor.len();
    if !(1..=MAX_SEGMENTS).contains(&n_segments) {
        return Err(PricingError::SegmentsOutOfRange {
            n_segments,
            max_segments: MAX_SEGMENTS,
        });
    }
    let mut counts = [
        (TravellerType::Adult, 0u64),
        (TravellerType::Child, 0),
        (TravellerType::Infant, 0),
    ];
    for &(traveller, count) in travellers {
        let slot = counts.iter_mut().find(|(t, _)| *t == traveller).map(|(_, n)| n);
        if let Some(n) = slot {
            *n = n.saturating_add(u64::from(count));
        }
    }
    let n_travellers = counts.iter().fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
    if !(1..=u64::from(MAX_TRAVELLERS)).contains(&n_travellers) {
        return Err(PricingError::TravellersOutOfRange {
            n_travellers,
            max_travellers: MAX_TRAVELLERS,
        });
    }
    traveller_pricing.validate()?;
    let mut base_minor: i64 = 0;
    for &fare_minor in segment_fares_minor {
        for &(traveller, count) in &counts {
            // count <= MAX_TRAVELLERS, so the conversion is lossless.
            let per_type_minor = traveller_pricing
                .fare_for(fare_minor, traveller)?
                .checked_mul(count as i64)
                .ok_or(PricingError::Overflow)?;
            base_minor = base_minor.checked_add(per_type_minor).ok_or(PricingError::Overflow)?;
        }
    }
    let basis = FeeBasis {
        base_minor,
        n_travellers: n_travellers as i64,
        n_room_nights: None,
    };
    with_fees(basis, Product::Itinerary, fees, currency, &rate)
}

/// `bp` basis points of `amount_minor` (at most the whole of it), rounded half up: a cancellation fee, say.
pub fn share_bp(amount_minor: i64, bp: u32) -> Result<i64, PricingError> {
    non_negative("amount", amount_minor)?;
    if bp > MAX_PERCENT_FEE_BP {
        return Err(PricingError::InvalidFee {
            code: "share".into(),
            reason: "percentage exceeds 10000 bp",
        });
    }
    share_half_up(amount_minor, i128::from(bp))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Stay,
    Itinerary,
}

/// What fees are computed from.
struct FeeBasis {
    base_minor: i64,
    n_travellers: i64,
    /// Rooms times nights; `None` for products without nights.
    n_room_nights: Option<i64>,
}

/// Checks a fee configuration: at most [`MAX_FEE_LINES`] lines, percentages within the whole, fixed amounts not
/// negative and each in a currency, percentages without one, per-night fees on hotels only.
pub fn validate_fees(fees: &[FeeLine]) -> Result<(), PricingError> {
    if fees.len() > MAX_FEE_LINES {
        return Err(PricingError::TooManyFeeLines {
            n_fee_lines: fees.len(),
            max_fee_lines: MAX_FEE_LINES,
        });
    }
    fees.iter().try_for_each(validate_fee)
}

fn with_fees(
    basis: FeeBasis,
    product: Product,
    fees: &[FeeLine],
    currency: Currency,
    rate: &dyn Fn(Currency) -> Option<Decimal>,
) -> Result<PriceBreakdown, PricingError> {
    // Validate every line, not only those that apply, so a bad configuration shows up on the first price.
    validate_fees(fees)?;
    let mut total_minor = basis.base_minor;
    let mut amounts = Vec::new();
    for fee in fees {
        if !fee.applies_to.covers(product) {
            continue;
        }
        let amount_minor = fee_amount(fee, &basis, currency, rate)?;
        total_minor = total_minor.checked_add(amount_minor).ok_or(PricingError::Overflow)?;
        amounts.push(FeeAmount {
            code: fee.code.clone(),
            name: fee.name.clone(),
            amount_minor,
        });
    }
    Ok(PriceBreakdown {
        base_minor: basis.base_minor,
        fees: amounts,
        total_minor,
    })
}

fn validate_fee(fee: &FeeLine) -> Result<(), PricingError> {
    let invalid = |reason| PricingError::InvalidFee {
        code: fee.code.clone(),
        reason,
    };
    match fee.kind {
        FeeKind::PercentBp(bp) if bp > MAX_PERCENT_FEE_BP => Err(invalid("percentage exceeds 10000 bp")),
        FeeKind::PerTraveller(amount_minor) | FeeKind::PerNight(amount_minor) | FeeKind::PerBooking(amount_minor)
            if amount_minor < 0 =>
        {
            Err(invalid("amount is negative"))
        }
        FeeKind::PerNight(_) if fee.applies_to == Applies::Flight => {
            Err(invalid("a per-night fee applies to hotels only"))
        }
        FeeKind::PercentBp(_) if fee.currency.is_some() => Err(invalid("a percentage takes no currency")),
        FeeKind::PerTraveller(_) | FeeKind::PerNight(_) | FeeKind::PerBooking(_) if fee.currency.is_none() => {
            Err(invalid("a fixed amount needs a currency"))
        }
        _ => Ok(()),
    }
}

fn fee_amount(
    fee: &FeeLine,
    basis: &FeeBasis,
    currency: Currency,
    rate: &dyn Fn(Currency) -> Option<Decimal>,
) -> Result<i64, PricingError> {
    let n_units = match fee.kind {
        FeeKind::PercentBp(bp) => return share_half_up(basis.base_minor, i128::from(bp)),
        FeeKind::PerTraveller(_) => basis.n_travellers,
        FeeKind::PerNight(_) => basis.n_room_nights.ok_or_else(|| PricingError::InvalidFee {
            code: fee.code.clone(),
            reason: "a per-night fee cannot apply to a flight",
        })?,
        FeeKind::PerBooking(_) => 1,
    };
    unit_minor(fee, currency, rate)?
        .checked_mul(n_units)
        .ok_or(PricingError::Overflow)
}

/// One unit of a fixed fee in `currency`: as configured when the fee is in it (no rate needed), else converted at
/// `rate` with [`convert`]'s single rounding, half away from zero (the amount is never negative, so half up).
fn unit_minor(
    fee: &FeeLine,
    currency: Currency,
    rate: &dyn Fn(Currency) -> Option<Decimal>,
) -> Result<i64, PricingError> {
    let (Some(amount_minor), Some(from)) = (fee.kind.fixed_minor(), fee.currency) else {
        // validate_fee refuses a fixed kind without a currency, and percentages never come here.
        return Err(PricingError::InvalidFee {
            code: fee.code.clone(),
            reason: "a fixed amount needs a currency",
        });
    };
    if from == currency {
        return Ok(amount_minor);
    }
    let no_rate = || PricingError::NoRate {
        code: fee.code.clone(),
        from,
        to: currency,
    };
    let rate = rate(from).ok_or_else(no_rate)?;
    match convert(Money::new(amount_minor, from), currency, rate) {
        Ok(converted) => Ok(converted.amount_minor),
        // A rate out of bounds (the inverse of a tiny one, say) converts nothing: there is no usable rate.
        Err(MoneyError::InvalidRate { .. }) => Err(no_rate()),
        Err(_) => Err(PricingError::Overflow),
    }
}

fn non_negative(what: &'static str, amount_minor: i64) -> Result<(), PricingError> {
    if amount_minor < 0 {
        return Err(PricingError::NegativeAmount { what, amount_minor });
    }
    Ok(())
}

/// `amount_minor * bp / 10000` rounded half up (x.5 goes to x + 1), exact in 128 bits.
fn share_half_up(amount_minor: i64, bp: i128) -> Result<i64, PricingError> {
    // |amount| < 2^63 and bp < 2^33, so the product fits comfortably in i128.
    let scaled = i128::from(amount_minor) * bp;
    let rounded = (scaled + BP_PER_WHOLE / 2).div_euclid(BP_PER_WHOLE);
    i64::try_from(rounded).map_err(|_| PricingError::Overflow)
}

#[cfg(test)]
mod tests;
