//! Pricing rules, table by table.

use super::*;

/// Segment fares, travellers, and the expected outcome.
type Case<'a, T> = (&'a [i64], &'a [(TravellerType, u32)], T);

fn cur(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

/// A fee line; a fixed amount is in EUR.
fn fee(code: &str, kind: FeeKind, applies_to: Applies) -> FeeLine {
    FeeLine {
        code: code.into(),
        name: code.to_uppercase(),
        currency: kind.fixed_minor().map(|_| cur("EUR")),
        kind,
        applies_to,
    }
}

/// No exchange rate at all: only fees in the product's currency can be priced.
fn no_rate(_: Currency) -> Option<Decimal> {
    None
}

/// A stay in EUR, where EUR fees need no rate.
fn stay(nightly: &[i64], rooms: u32, guests: u32, fees: &[FeeLine]) -> Result<PriceBreakdown, PricingError> {
    stay_total(nightly, rooms, guests, fees, cur("EUR"), no_rate)
}

/// An itinerary in EUR, where EUR fees need no rate.
fn itinerary(
    fares: &[i64],
    travellers: &[(TravellerType, u32)],
    pricing: &TravellerPricing,
    fees: &[FeeLine],
) -> Result<PriceBreakdown, PricingError> {
    itinerary_total(fares, travellers, pricing, fees, cur("EUR"), no_rate)
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
        let breakdown = stay(nightly, rooms, rooms, &[]).unwrap();
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
    let breakdown = stay(&[10_000, 12_000, 9_500], 2, 3, &fees).unwrap();
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
        let breakdown = stay(&[base_minor], 1, 1, &fees).unwrap();
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
        let breakdown = itinerary(fares, travellers, &pricing, &[]).unwrap();
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
    let breakdown = itinerary(&[10_000, 10_000], &travellers, &TravellerPricing::default(), &fees).unwrap();
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
        assert_eq!(stay(nightly, rooms, guests, &[]), Err(expected));
    }
    assert!(stay(&[100; MAX_NIGHTS], MAX_ROOMS, MAX_GUESTS, &[]).is_ok());
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
        assert_eq!(itinerary(fares, travellers, &pricing, &[]), Err(expected));
    }
    assert!(itinerary(&[100; MAX_SEGMENTS], &[(Adult, 5), (Infant, 4)], &pricing, &[]).is_ok());
}

#[test]
fn fee_limits_and_validation_are_enforced() {
    let too_many: Vec<FeeLine> = (0..=MAX_FEE_LINES)
        .map(|i| fee(&format!("f{i}"), FeeKind::PerBooking(1), Applies::Both))
        .collect();
    assert_eq!(
        stay(&[100], 1, 1, &too_many),
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
            stay(&[100], 1, 1, &fees),
            Err(PricingError::InvalidFee {
                code: "bad".into(),
                reason
            }),
            "{kind:?}"
        );
    }
    // A per-night fee for both products prices stays but cannot price a flight.
    let both = [fee("resort", FeeKind::PerNight(100), Applies::Both)];
    assert!(stay(&[100], 1, 1, &both).is_ok());
    assert!(matches!(
        itinerary(
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
        stay(&[100, -1], 1, 1, &[]),
        Err(PricingError::NegativeAmount {
            what: "nightly price",
            amount_minor: -1
        })
    );
    assert_eq!(
        itinerary(&[-5], &[(TravellerType::Adult, 1)], &TravellerPricing::default(), &[]),
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
        itinerary(&[100], &[(TravellerType::Adult, 1)], &pricing, &[]),
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
        stay(&[half, half], 1, 1, &[]),
        stay(&[half], 2, 1, &[]),
        stay(&[i64::MAX], 1, 1, &per_booking(1)),
        stay(&[1], 1, 2, &[fee("f", FeeKind::PerTraveller(half), Applies::Both)]),
        stay(&[1], 2, 1, &[fee("f", FeeKind::PerNight(half), Applies::Both)]),
        stay(&[i64::MAX], 1, 1, &[fee("f", FeeKind::PercentBp(1), Applies::Both)]),
        itinerary(&[half], &adults, &pricing, &[]),
        itinerary(&[half, half], &[(TravellerType::Adult, 1)], &pricing, &[]),
        itinerary(
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

/// Three nights, two rooms (six room-nights), three guests, priced in `to` with the fee in EUR at `rate`.
fn converted_fee(kind: FeeKind, to: &str, rate: &str) -> Result<i64, PricingError> {
    let fees = [fee("fee", kind, Applies::Hotel)];
    let eur_rate = |from: Currency| (from == cur("EUR")).then(|| dec(rate));
    let breakdown = stay_total(&[10_000; 3], 2, 3, &fees, cur(to), eur_rate)?;
    assert_eq!(
        breakdown.total_minor,
        breakdown.base_minor + breakdown.fees[0].amount_minor
    );
    Ok(breakdown.fees[0].amount_minor)
}

#[test]
fn fixed_fees_convert_once_per_unit_before_counting() {
    let cases = [
        // (kind, product currency, EUR rate, expected fee; what converting the total instead would give)
        // 2.50 EUR at 163.1 is 407.75 yen, 408 a room-night, 2448 for six (not 2446.5 -> 2447).
        (FeeKind::PerNight(250), "JPY", "163.1", 2_448),
        // 2.50 EUR at 0.3333 is 0.83325 KWD, 833 fils a room-night, 4998 for six (not 4999.5 -> 5000).
        (FeeKind::PerNight(250), "KWD", "0.3333", 4_998),
        // 1.20 EUR at 163.1 is 195.72 yen, 196 a guest, 588 for three.
        (FeeKind::PerTraveller(120), "JPY", "163.1", 588),
        // 9.99 EUR at 0.3333 is 3.329667 KWD: 3330 fils, once.
        (FeeKind::PerBooking(999), "KWD", "0.3333", 3_330),
        // 2.50 EUR at 1.08345 is 2.708625 USD, 271 cents a room-night.
        (FeeKind::PerNight(250), "USD", "1.08345", 1_626),
        // Exactly half a yen rounds up; just under rounds down, even though six of them would make three yen.
        (FeeKind::PerNight(1), "JPY", "50", 6),
        (FeeKind::PerNight(1), "JPY", "49.999", 0),
        // In the fee's own currency nothing is converted, whatever the rate says.
        (FeeKind::PerNight(250), "EUR", "2", 1_500),
    ];
    for (kind, to, rate, expected) in cases {
        assert_eq!(
            converted_fee(kind, to, rate),
            Ok(expected),
            "{kind:?} in {to} at {rate}"
        );
    }
}

#[test]
fn fees_in_the_products_currency_are_priced_as_configured_without_a_rate() {
    let fees = [
        fee("vat", FeeKind::PercentBp(1_000), Applies::Hotel),
        fee("city_tax", FeeKind::PerNight(250), Applies::Hotel),
    ];
    let breakdown = stay_total(&[10_000, 12_000], 1, 2, &fees, cur("EUR"), |_| {
        panic!("no rate is looked up for fees in the product's currency")
    })
    .unwrap();
    assert_eq!(fee_amounts(&breakdown), vec![("vat", 2_200), ("city_tax", 500)]);
    assert_eq!(breakdown.total_minor, 22_000 + 2_200 + 500);
}

#[test]
fn a_fixed_fee_without_a_rate_cannot_be_priced() {
    let vat = fee("vat", FeeKind::PercentBp(1_000), Applies::Both);
    let city_tax = fee("city_tax", FeeKind::PerNight(250), Applies::Hotel);
    let airport = fee("airport", FeeKind::PerTraveller(1_500), Applies::Flight);
    let no_rate_for = |code: &str, to: &str| PricingError::NoRate {
        code: code.into(),
        from: cur("EUR"),
        to: cur(to),
    };
    let fees = [vat.clone(), city_tax, airport.clone()];
    assert_eq!(
        stay_total(&[10_000], 1, 1, &fees, cur("JPY"), no_rate),
        Err(no_rate_for("city_tax", "JPY"))
    );
    // A percentage needs no rate, and neither does a fixed fee that does not apply (airport charges on a stay).
    let priced = stay_total(&[10_000], 1, 1, &[vat.clone(), airport.clone()], cur("JPY"), no_rate).unwrap();
    assert_eq!(fee_amounts(&priced), vec![("vat", 1_000)]);
    let adult = [(TravellerType::Adult, 1)];
    let pricing = TravellerPricing::default();
    assert_eq!(
        itinerary_total(
            &[100_000],
            &adult,
            &pricing,
            &[vat, airport.clone()],
            cur("KRW"),
            no_rate
        ),
        Err(no_rate_for("airport", "KRW"))
    );
    // A rate that cannot convert (beyond the bounds of a rate, as the inverse of a tiny one may be) is no rate.
    let unusable = |_: Currency| Some(dec("2000000000"));
    assert_eq!(
        itinerary_total(&[100_000], &adult, &pricing, &[airport], cur("KRW"), unusable),
        Err(no_rate_for("airport", "KRW"))
    );
}

#[test]
fn converted_fees_that_overflow_are_an_error() {
    // One euro cent at 1000 is 10 dinars: 10 000 fils.
    let rate = |_: Currency| Some(dec("1000"));
    let cases = [
        // The unit itself overflows once converted.
        (FeeKind::PerBooking(i64::MAX / 1_000), 1),
        // The unit fits (about half of i64::MAX), three guests of it do not.
        (FeeKind::PerTraveller(i64::MAX / 10_000 / 2), 3),
    ];
    for (kind, guests) in cases {
        let fees = [fee("f", kind, Applies::Hotel)];
        assert_eq!(
            stay_total(&[1], 1, guests, &fees, cur("KWD"), rate),
            Err(PricingError::Overflow),
            "{kind:?}"
        );
    }
    let fits = [fee("f", FeeKind::PerTraveller(i64::MAX / 10_000 / 2), Applies::Hotel)];
    assert!(stay_total(&[1], 1, 1, &fits, cur("KWD"), rate).is_ok());
}

#[test]
fn fixed_fees_need_a_currency_and_percentages_take_none() {
    let with_currency = |kind, currency: Option<&str>| FeeLine {
        code: "city_tax".into(),
        name: "City tax".into(),
        kind,
        currency: currency.map(cur),
        applies_to: Applies::Hotel,
    };
    let invalid = |reason| {
        Err(PricingError::InvalidFee {
            code: "city_tax".into(),
            reason,
        })
    };
    let cases = [
        (FeeKind::PerNight(250), None, invalid("a fixed amount needs a currency")),
        (
            FeeKind::PerTraveller(250),
            None,
            invalid("a fixed amount needs a currency"),
        ),
        (
            FeeKind::PerBooking(250),
            None,
            invalid("a fixed amount needs a currency"),
        ),
        (
            FeeKind::PercentBp(500),
            Some("EUR"),
            invalid("a percentage takes no currency"),
        ),
        (FeeKind::PerNight(250), Some("JPY"), Ok(())),
        (FeeKind::PercentBp(500), None, Ok(())),
    ];
    for (kind, currency, expected) in cases {
        let line = with_currency(kind, currency);
        assert_eq!(validate_fees(std::slice::from_ref(&line)), expected, "{line:?}");
        if expected.is_err() {
            // Pricing refuses it too, even in the fee's own currency.
            assert_eq!(stay(&[100], 1, 1, &[line]).map(|_| ()), expected);
        }
    }
}

#[test]
fn fee_line_currency_serde_shape() {
    let line = fee("city_tax", FeeKind::PerNight(250), Applies::Hotel);
    let json = serde_json::to_value(&line).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"code": "city_tax", "name": "CITY_TAX", "kind": {"per_night": 250}, "currency": "EUR",
                           "applies_to": "hotel"})
    );
    assert_eq!(serde_json::from_value::<FeeLine>(json).unwrap(), line);
    // Absent, it is none (and validation then refuses the fixed fee); an unknown code does not parse.
    let without = serde_json::json!({"code": "c", "name": "C", "kind": {"per_night": 1}, "applies_to": "hotel"});
    assert_eq!(serde_json::from_value::<FeeLine>(without).unwrap().currency, None);
    for bad in ["eur", "XXX", ""] {
        let line = serde_json::json!({"code": "c", "name": "C", "kind": {"per_night": 1}, "currency": bad,
                                      "applies_to": "hotel"});
        assert!(serde_json::from_value::<FeeLine>(line).is_err(), "{bad:?}");
    }
}
