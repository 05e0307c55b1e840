//! Pricing rules: traveller-type fares, dynamic (load-based) pricing, fees, and the totals of stays and itineraries.
//!
//! Pure functions over integer minor units of a single currency (the caller holds the [`crate::money::Currency`]),
//! so that a price is reproducible from its inputs and every rule can be tested table-driven. No floats: every
//! proportional amount is computed exactly in 128-bit integers and rounded once, half up. Every input is bounded and
//! every overflow is a [`PricingError`], never a panic or a wrapped value.

use serde::{Deserialize, Serialize};

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

/// How a fee is computed. Fixed amounts are minor units of the booking's currency.
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

/// A tax or fee as configured in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeLine {
    pub code: String,
    pub name: String,
    pub kind: FeeKind,
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

/// Prices a hotel stay: `nightly_minor` holds the price of one room for each night (already dynamically priced).
///
/// The base is the sum of the nightly prices times `rooms`. Fees for hotels are then added: percentages of the base,
/// per-night amounts for every room and night, per-traveller amounts for every guest, per-booking amounts once.
pub fn stay_total(
    nightly_minor: &[i64],
    rooms: u32,
    guests: u32,
    fees: &[FeeLine],
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
    with_fees(basis, Product::Stay, fees)
}

/// Prices a flight itinerary: `segment_fares_minor` holds the adult fare of each segment, `travellers` how many of
/// each type fly (a type may appear more than once; counts add up).
///
/// The base is, for every segment and traveller type, the type's share of the segment fare (rounded half up per
/// segment) times the count. Fees for flights are then added: percentages of the base, per-traveller amounts once
/// per traveller for the whole itinerary (not per segment; infants count as travellers), per-booking amounts once.
/// A per-night fee applying to flights is a configuration error.
pub fn itinerary_total(
    segment_fares_minor: &[i64],
    travellers: &[(TravellerType, u32)],
    traveller_pricing: &TravellerPricing,
    fees: &[FeeLine],
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
    with_fees(basis, Product::Itinerary, fees)
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

fn with_fees(basis: FeeBasis, product: Product, fees: &[FeeLine]) -> Result<PriceBreakdown, PricingError> {
    if fees.len() > MAX_FEE_LINES {
        return Err(PricingError::TooManyFeeLines {
            n_fee_lines: fees.len(),
            max_fee_lines: MAX_FEE_LINES,
        });
    }
    let mut total_minor = basis.base_minor;
    let mut amounts = Vec::new();
    for fee in fees {
        // Validate every line, not only those that apply, so a bad configuration shows up on the first price.
        validate_fee(fee)?;
        if !fee.applies_to.covers(product) {
            continue;
        }
        let amount_minor = fee_amount(fee, &basis)?;
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
        _ => Ok(()),
    }
}

fn fee_amount(fee: &FeeLine, basis: &FeeBasis) -> Result<i64, PricingError> {
    match fee.kind {
        FeeKind::PercentBp(bp) => share_half_up(basis.base_minor, i128::from(bp)),
        FeeKind::PerTraveller(amount_minor) => amount_minor
            .checked_mul(basis.n_travellers)
            .ok_or(PricingError::Overflow),
        FeeKind::PerNight(amount_minor) => {
            let n_room_nights = basis.n_room_nights.ok_or_else(|| PricingError::InvalidFee {
                code: fee.code.clone(),
                reason: "a per-night fee cannot apply to a flight",
            })?;
            amount_minor.checked_mul(n_room_nights).ok_or(PricingError::Overflow)
        }
        FeeKind::PerBooking(amount_minor) => Ok(amount_minor),
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
mod tests {
    use super::*;

    /// Segment fares, travellers, and the expected outcome.
    type Case<'a, T> = (&'a [i64], &'a [(TravellerType, u32)], T);

    fn fee(code: &str, kind: FeeKind, applies_to: Applies) -> FeeLine {
        FeeLine {
            code: code.into(),
            name: code.to_uppercase(),
            kind,
            applies_to,
        }
    }

    fn fee_amounts(breakdown: &PriceBreakdown) -> Vec<(&str, i64)> {
        breakdown
            .fees
            .iter()
            .map(|f| (f.code.as_str(), f.amount_minor))
            .collect()
    }

    #[test]
    fn stay_base_is_the_sum_of_nightly_prices_times_rooms() {
        let cases: [(&[i64], u32, i64); 5] = [
            (&[10_000], 1, 10_000),
            (&[10_000, 12_000, 9_500], 1, 31_500),
            (&[10_000, 12_000, 9_500], 3, 94_500),
            (&[0, 0], 9, 0),
            (&[1; 30], 9, 270),
        ];
        for (nightly, rooms, expected) in cases {
            let breakdown = stay_total(nightly, rooms, rooms, &[]).unwrap();
            assert_eq!(breakdown.base_minor, expected, "{nightly:?} x {rooms}");
            assert_eq!(breakdown.total_minor, expected);
            assert!(breakdown.fees.is_empty());
        }
    }

    #[test]
    fn stay_fees_follow_their_kind() {
        let fees = [
            fee("vat", FeeKind::PercentBp(1_000), Applies::Hotel),
            fee("city_tax", FeeKind::PerTraveller(250), Applies::Hotel),
            fee("resort", FeeKind::PerNight(1_500), Applies::Both),
            fee("service", FeeKind::PerBooking(999), Applies::Both),
            fee("airport_tax", FeeKind::PerTraveller(4_000), Applies::Flight),
        ];
        // 3 nights, 2 rooms, 3 guests.
        let breakdown = stay_total(&[10_000, 12_000, 9_500], 2, 3, &fees).unwrap();
        assert_eq!(breakdown.base_minor, 63_000);
        let expected = vec![("vat", 6_300), ("city_tax", 750), ("resort", 9_000), ("service", 999)];
        assert_eq!(fee_amounts(&breakdown), expected);
        assert_eq!(breakdown.total_minor, 63_000 + 6_300 + 750 + 9_000 + 999);
    }

    #[test]
    fn percent_fees_round_half_up() {
        let cases = [
            // (base, fee bp, expected fee)
            (1_050, 1_000, 105),
            (4, 1_000, 0),
            (5, 1_000, 1),
            (15, 1_000, 2),
            (25, 1_000, 3),
            (1, 4_999, 0),
            (1, 5_000, 1),
            (19_999, 1, 2),
            (15_000, 1, 2),
            (14_999, 1, 1),
            (12_345, 0, 0),
            (12_345, 10_000, 12_345),
        ];
        for (base_minor, bp, expected) in cases {
            let fees = [fee("tax", FeeKind::PercentBp(bp), Applies::Both)];
            let breakdown = stay_total(&[base_minor], 1, 1, &fees).unwrap();
            assert_eq!(
                fee_amounts(&breakdown),
                vec![("tax", expected)],
                "{bp} bp of {base_minor}"
            );
            assert_eq!(breakdown.total_minor, base_minor + expected);
        }
    }

    #[test]
    fn traveller_fares_are_shares_of_the_adult_fare_rounded_half_up() {
        let pricing = TravellerPricing::default();
        let cases = [
            (10_000, TravellerType::Adult, 10_000),
            (10_000, TravellerType::Child, 7_500),
            (10_000, TravellerType::Infant, 1_000),
            (10_001, TravellerType::Child, 7_501),
            (10_002, TravellerType::Child, 7_502),
            (10_004, TravellerType::Infant, 1_000),
            (10_005, TravellerType::Infant, 1_001),
            (2, TravellerType::Child, 2),
            (1, TravellerType::Infant, 0),
            (0, TravellerType::Adult, 0),
        ];
        for (base_minor, traveller, expected) in cases {
            assert_eq!(
                pricing.fare_for(base_minor, traveller),
                Ok(expected),
                "{traveller:?} at {base_minor}"
            );
        }
    }

    #[test]
    fn itinerary_base_sums_segments_and_traveller_types() {
        let pricing = TravellerPricing::default();
        let cases: [Case<'_, i64>; 5] = [
            (&[20_000], &[(TravellerType::Adult, 1)], 20_000),
            (&[20_000, 15_000], &[(TravellerType::Adult, 2)], 70_000),
            // Adult 20000 + child 15000 + infant 2000 on the first segment; 10001 -> 10001 + 7501 + 1000.
            (
                &[20_000, 10_001],
                &[
                    (TravellerType::Adult, 1),
                    (TravellerType::Child, 1),
                    (TravellerType::Infant, 1),
                ],
                37_000 + 18_502,
            ),
            // Repeated types add up.
            (
                &[10_000],
                &[
                    (TravellerType::Adult, 1),
                    (TravellerType::Adult, 2),
                    (TravellerType::Child, 0),
                ],
                30_000,
            ),
            (&[1; 8], &[(TravellerType::Child, 9)], 72),
        ];
        for (fares, travellers, expected) in cases {
            let breakdown = itinerary_total(fares, travellers, &pricing, &[]).unwrap();
            assert_eq!(breakdown.base_minor, expected, "{fares:?} {travellers:?}");
            assert_eq!(breakdown.total_minor, expected);
        }
    }

    #[test]
    fn itinerary_fees_count_travellers_once_and_infants_too() {
        let fees = [
            fee("vat", FeeKind::PercentBp(500), Applies::Flight),
            fee("security", FeeKind::PerTraveller(1_200), Applies::Flight),
            fee("service", FeeKind::PerBooking(999), Applies::Both),
            fee("city_tax", FeeKind::PerTraveller(250), Applies::Hotel),
        ];
        let travellers = [(TravellerType::Adult, 2), (TravellerType::Infant, 1)];
        // Two segments, three travellers: the per-traveller fee is charged three times, not six.
        let breakdown = itinerary_total(&[10_000, 10_000], &travellers, &TravellerPricing::default(), &fees).unwrap();
        assert_eq!(breakdown.base_minor, 42_000);
        assert_eq!(
            fee_amounts(&breakdown),
            vec![("vat", 2_100), ("security", 3_600), ("service", 999)]
        );
        assert_eq!(breakdown.total_minor, 42_000 + 2_100 + 3_600 + 999);
    }

    #[test]
    fn dynamic_steps_apply_exactly_at_thresholds() {
        let pricing = DynamicPricing::default();
        let cases = [
            // (committed, capacity, expected price for a base of 10000)
            (0, 100, 10_000),
            (4_999, 10_000, 10_000),
            (5_000, 10_000, 11_000),
            (1, 2, 11_000),
            (2, 3, 11_000),
            (7_499, 10_000, 11_000),
            (3, 4, 12_500),
            (8_999, 10_000, 12_500),
            (9, 10, 15_000),
            (10, 10, 15_000),
            (11, 10, 15_000),
            (0, 0, 15_000),
            (5, -1, 15_000),
        ];
        for (committed, capacity, expected) in cases {
            assert_eq!(
                pricing.apply(10_000, committed, capacity),
                Ok(expected),
                "{committed}/{capacity}"
            );
        }
        assert_eq!(DynamicPricing::flat().apply(10_000, 10, 10), Ok(10_000));
    }

    #[test]
    fn shares_round_half_up_and_stay_within_the_whole() {
        let cases = [
            (10_000, 2_000, Ok(2_000)),
            (12_345, 2_000, Ok(2_469)),
            (5, 1_000, Ok(1)),
            (4, 1_000, Ok(0)),
            (0, 2_000, Ok(0)),
            (999, 10_000, Ok(999)),
            (999, 0, Ok(0)),
            (i64::MAX, 10_000, Ok(i64::MAX)),
        ];
        for (amount_minor, bp, expected) in cases {
            assert_eq!(share_bp(amount_minor, bp), expected, "{bp} bp of {amount_minor}");
        }
        assert!(share_bp(100, 10_001).is_err());
        assert!(share_bp(-1, 100).is_err());
    }

    #[test]
    fn dynamic_increase_rounds_half_up() {
        let pricing = DynamicPricing {
            steps: vec![Step {
                load_factor_bp: 0,
                increase_bp: 1_000,
            }],
        };
        let cases = [(5, 6), (15, 17), (4, 4), (1, 1), (0, 0), (12_345, 13_580)];
        for (base_minor, expected) in cases {
            assert_eq!(pricing.apply(base_minor, 0, 10), Ok(expected), "{base_minor}");
        }
    }

    #[test]
    fn dynamic_pricing_validation() {
        let step = |load_factor_bp, increase_bp| Step {
            load_factor_bp,
            increase_bp,
        };
        let cases = [
            (vec![], None),
            (vec![step(0, 0), step(10_000, MAX_INCREASE_BP)], None),
            (vec![step(10_001, 0)], Some(0)),
            (vec![step(5_000, MAX_INCREASE_BP + 1)], Some(0)),
            (vec![step(5_000, 0), step(5_000, 100)], Some(1)),
            (vec![step(5_000, 0), step(7_500, 100), step(6_000, 200)], Some(2)),
        ];
        for (steps, bad_step_idx) in cases {
            let pricing = DynamicPricing { steps: steps.clone() };
            match bad_step_idx {
                None => assert_eq!(pricing.validate(), Ok(()), "{steps:?}"),
                Some(idx) => {
                    assert!(
                        matches!(pricing.validate(), Err(PricingError::InvalidStep { step_idx, .. }) if step_idx == idx),
                        "{steps:?}"
                    );
                    assert!(pricing.apply(100, 1, 1).is_err(), "apply must refuse an invalid table");
                }
            }
        }
        let too_many = DynamicPricing {
            steps: (0..=MAX_STEPS as u32).map(|i| step(i, 0)).collect(),
        };
        assert_eq!(
            too_many.validate(),
            Err(PricingError::TooManySteps {
                n_steps: MAX_STEPS + 1,
                max_steps: MAX_STEPS
            })
        );
        assert_eq!(DynamicPricing::default().validate(), Ok(()));
    }

    #[test]
    fn stay_limits_are_enforced() {
        let thirty_one = [100; MAX_NIGHTS + 1];
        let cases: [(&[i64], u32, u32, PricingError); 6] = [
            (
                &[],
                1,
                1,
                PricingError::NightsOutOfRange {
                    n_nights: 0,
                    max_nights: 30,
                },
            ),
            (
                &thirty_one,
                1,
                1,
                PricingError::NightsOutOfRange {
                    n_nights: 31,
                    max_nights: 30,
                },
            ),
            (
                &[100],
                0,
                1,
                PricingError::RoomsOutOfRange {
                    n_rooms: 0,
                    max_rooms: 9,
                },
            ),
            (
                &[100],
                10,
                10,
                PricingError::RoomsOutOfRange {
                    n_rooms: 10,
                    max_rooms: 9,
                },
            ),
            (
                &[100],
                1,
                0,
                PricingError::GuestsOutOfRange {
                    n_guests: 0,
                    max_guests: 36,
                },
            ),
            (
                &[100],
                9,
                37,
                PricingError::GuestsOutOfRange {
                    n_guests: 37,
                    max_guests: 36,
                },
            ),
        ];
        for (nightly, rooms, guests, expected) in cases {
            assert_eq!(stay_total(nightly, rooms, guests, &[]), Err(expected));
        }
        assert!(stay_total(&[100; MAX_NIGHTS], MAX_ROOMS, MAX_GUESTS, &[]).is_ok());
    }

    #[test]
    fn itinerary_limits_are_enforced() {
        use TravellerType::{Adult, Child, Infant};
        let pricing = TravellerPricing::default();
        let nine_segments = [100; MAX_SEGMENTS + 1];
        let cases: [Case<'_, PricingError>; 6] = [
            (
                &[],
                &[(Adult, 1)],
                PricingError::SegmentsOutOfRange {
                    n_segments: 0,
                    max_segments: 8,
                },
            ),
            (
                &nine_segments,
                &[(Adult, 1)],
                PricingError::SegmentsOutOfRange {
                    n_segments: 9,
                    max_segments: 8,
                },
            ),
            (
                &[100],
                &[],
                PricingError::TravellersOutOfRange {
                    n_travellers: 0,
                    max_travellers: 9,
                },
            ),
            (
                &[100],
                &[(Adult, 0)],
                PricingError::TravellersOutOfRange {
                    n_travellers: 0,
                    max_travellers: 9,
                },
            ),
            (
                &[100],
                &[(Adult, 4), (Child, 4), (Infant, 2)],
                PricingError::TravellersOutOfRange {
                    n_travellers: 10,
                    max_travellers: 9,
                },
            ),
            (
                &[100],
                &[(Adult, u32::MAX), (Adult, u32::MAX)],
                PricingError::TravellersOutOfRange {
                    n_travellers: 2 * u64::from(u32::MAX),
                    max_travellers: 9,
                },
            ),
        ];
        for (fares, travellers, expected) in cases {
            assert_eq!(itinerary_total(fares, travellers, &pricing, &[]), Err(expected));
        }
        assert!(itinerary_total(&[100; MAX_SEGMENTS], &[(Adult, 5), (Infant, 4)], &pricing, &[]).is_ok());
    }

    #[test]
    fn fee_limits_and_validation_are_enforced() {
        let too_many: Vec<FeeLine> = (0..=MAX_FEE_LINES)
            .map(|i| fee(&format!("f{i}"), FeeKind::PerBooking(1), Applies::Both))
            .collect();
        assert_eq!(
            stay_total(&[100], 1, 1, &too_many),
            Err(PricingError::TooManyFeeLines {
                n_fee_lines: 33,
                max_fee_lines: 32
            })
        );
        let cases = [
            (
                FeeKind::PercentBp(MAX_PERCENT_FEE_BP + 1),
                Applies::Hotel,
                "percentage exceeds 10000 bp",
            ),
            (FeeKind::PerBooking(-1), Applies::Hotel, "amount is negative"),
            (FeeKind::PerTraveller(-1), Applies::Hotel, "amount is negative"),
            (FeeKind::PerNight(-1), Applies::Hotel, "amount is negative"),
            // Invalid even though it does not apply to the stay being priced.
            (
                FeeKind::PerNight(100),
                Applies::Flight,
                "a per-night fee applies to hotels only",
            ),
        ];
        for (kind, applies_to, reason) in cases {
            let fees = [fee("bad", kind, applies_to)];
            assert_eq!(
                stay_total(&[100], 1, 1, &fees),
                Err(PricingError::InvalidFee {
                    code: "bad".into(),
                    reason
                }),
                "{kind:?}"
            );
        }
        // A per-night fee for both products prices stays but cannot price a flight.
        let both = [fee("resort", FeeKind::PerNight(100), Applies::Both)];
        assert!(stay_total(&[100], 1, 1, &both).is_ok());
        assert!(matches!(
            itinerary_total(
                &[100],
                &[(TravellerType::Adult, 1)],
                &TravellerPricing::default(),
                &both
            ),
            Err(PricingError::InvalidFee { .. })
        ));
    }

    #[test]
    fn negative_prices_are_rejected() {
        assert_eq!(
            stay_total(&[100, -1], 1, 1, &[]),
            Err(PricingError::NegativeAmount {
                what: "nightly price",
                amount_minor: -1
            })
        );
        assert_eq!(
            itinerary_total(&[-5], &[(TravellerType::Adult, 1)], &TravellerPricing::default(), &[]),
            Err(PricingError::NegativeAmount {
                what: "fare",
                amount_minor: -5
            })
        );
        assert!(DynamicPricing::default().apply(-1, 0, 10).is_err());
    }

    #[test]
    fn invalid_traveller_pricing_is_rejected() {
        let pricing = TravellerPricing {
            adult_bp: 10_000,
            child_bp: 10_001,
            infant_bp: 0,
        };
        assert!(matches!(
            itinerary_total(&[100], &[(TravellerType::Adult, 1)], &pricing, &[]),
            Err(PricingError::InvalidTravellerPricing { .. })
        ));
        assert!(pricing.fare_for(100, TravellerType::Adult).is_err());
    }

    #[test]
    fn overflow_is_an_error() {
        let half = i64::MAX / 2 + 1;
        let adults = [(TravellerType::Adult, 2)];
        let pricing = TravellerPricing::default();
        let per_booking = |amount_minor| [fee("f", FeeKind::PerBooking(amount_minor), Applies::Both)];
        let cases = [
            stay_total(&[half, half], 1, 1, &[]),
            stay_total(&[half], 2, 1, &[]),
            stay_total(&[i64::MAX], 1, 1, &per_booking(1)),
            stay_total(&[1], 1, 2, &[fee("f", FeeKind::PerTraveller(half), Applies::Both)]),
            stay_total(&[1], 2, 1, &[fee("f", FeeKind::PerNight(half), Applies::Both)]),
            stay_total(&[i64::MAX], 1, 1, &[fee("f", FeeKind::PercentBp(1), Applies::Both)]),
            itinerary_total(&[half], &adults, &pricing, &[]),
            itinerary_total(&[half, half], &[(TravellerType::Adult, 1)], &pricing, &[]),
            itinerary_total(
                &[1],
                &adults,
                &pricing,
                &[fee("f", FeeKind::PerTraveller(half), Applies::Both)],
            ),
        ];
        for (case_idx, result) in cases.into_iter().enumerate() {
            assert_eq!(result, Err(PricingError::Overflow), "case {case_idx}");
        }
        let steep = DynamicPricing {
            steps: vec![Step {
                load_factor_bp: 0,
                increase_bp: MAX_INCREASE_BP,
            }],
        };
        assert_eq!(steep.apply(i64::MAX / 11 + 1, 0, 1), Err(PricingError::Overflow));
        assert_eq!(steep.apply(i64::MAX / 11, 0, 1), Ok(i64::MAX / 11 * 11));
    }

    #[test]
    fn fee_line_serde_shape() {
        let line = fee("vat", FeeKind::PercentBp(2_000), Applies::Hotel);
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "vat", "name": "VAT", "kind": {"percent_bp": 2000}, "applies_to": "hotel"})
        );
        assert_eq!(serde_json::from_value::<FeeLine>(json).unwrap(), line);
        let kinds = [
            (FeeKind::PerTraveller(1), serde_json::json!({"per_traveller": 1})),
            (FeeKind::PerNight(2), serde_json::json!({"per_night": 2})),
            (FeeKind::PerBooking(3), serde_json::json!({"per_booking": 3})),
        ];
        for (kind, expected) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), expected);
        }
        assert_eq!(
            serde_json::to_value(TravellerType::Infant).unwrap(),
            serde_json::json!("infant")
        );
        assert_eq!(serde_json::to_value(Applies::Both).unwrap(), serde_json::json!("both"));
    }
}
