//! Money: ISO 4217 currencies, amounts in minor units, and currency conversion.
//!
//! Every price in Phoenix is an integer count of a currency's minor unit (cents, yen, fils) tagged with its
//! currency, so sums are exact and two currencies are never added by accident. Conversion is the one place where a
//! fractional number (the exchange rate) meets an amount, and it rounds exactly once, with a documented rule.
//! Pure code: no I/O, no clock, no floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest code echoed back in an [`Error::UnknownCurrency`], so a hostile input cannot bloat errors and logs.
const MAX_ECHOED_CODE_CHARS: usize = 8;

/// Errors from parsing currencies and rates and from money arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency code {code:?}")]
    UnknownCurrency { code: String },
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount overflows the range of minor units")]
    Overflow,
    #[error("invalid exchange rate: {reason}")]
    InvalidRate { reason: &'static str },
}

/// A validated ISO 4217 currency from the embedded table.
///
/// Holds the three ASCII code bytes and the minor-unit exponent, so it is `Copy` and needs no lookup after parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Parses an exact, uppercase ISO 4217 code (`"EUR"`, not `"eur"` or `" EUR"`) listed in the table.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        // The table is sorted by code (its test says so).
        let currencies = phoenix_api::currency::CURRENCIES;
        currencies
            .binary_search_by(|(known, _)| (*known).cmp(code))
            .ok()
            .map(|at| &currencies[at])
            .map(|(known, exponent)| {
                let b = known.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *exponent,
                }
            })
            .ok_or_else(|| MoneyError::UnknownCurrency {
                code: code.chars().take(MAX_ECHOED_CODE_CHARS).collect(),
            })
    }

    /// The three-letter ISO 4217 code.
    pub fn code(&self) -> &str {
        // Only `parse` builds a `Currency`, and it copies the bytes of an ASCII table entry.
        std::str::from_utf8(&self.code).expect("currency codes come from the ascii table")
    }

    /// Number of decimal digits of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for KWD (fils).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;

        impl serde::de::Visitor<'_> for CodeVisitor {
            type Value = Currency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 4217 currency code such as \"EUR\"")
            }

            fn visit_str<E: serde::de::Error>(self, code: &str) -> Result<Currency, E> {
                Currency::parse(code).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(CodeVisitor)
    }
}

/// An amount of money: an integer number of minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Money {
        Money { amount_minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money {
            amount_minor: 0,
            currency,
        }
    }

    /// Adds two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        let amount_minor = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount_minor,
            currency: self.currency,
        })
    }

    /// Multiplies by an integer factor (nights, rooms, travellers).
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let amount_minor = self.amount_minor.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money {
            amount_minor,
            currency: self.currency,
        })
    }
}

/// Formats as `"-12.34 EUR"`, `"1500 JPY"`: the amount in major units with exactly `exponent` decimals.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs_minor = self.amount_minor.unsigned_abs();
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return write!(f, "{sign}{abs_minor} {}", self.currency);
        }
        let scale = 10u64.pow(exponent);
        let width = exponent as usize;
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs_minor / scale,
            abs_minor % scale,
            self.currency
        )
    }
}

/// An exchange rate: how many units of the target currency one unit of the source currency buys.
///
/// Always strictly positive, at most [`Rate::MAX_DECIMAL_PLACES`] decimal places and at most [`Rate::MAX`]; these
/// bounds are what let [`convert`] compute exactly in 128-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rate(Decimal);

impl Rate {
    pub const MAX_DECIMAL_PLACES: u32 = 12;
    /// Far above any real rate between the listed currencies (1 KWD is about 50 000 IDR).
    pub const MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);
    /// Longest accepted input: 10 integer digits, a point and the decimal places.
    const MAX_INPUT_CHARS: usize = 10 + 1 + Self::MAX_DECIMAL_PLACES as usize;

    /// Parses a plain decimal string such as `"1.0825"` or `"150"`.
    ///
    /// Only ASCII digits with at most one `.` between digits: no sign, exponent, underscores or whitespace.
    pub fn parse(s: &str) -> Result<Rate, MoneyError> {
        let invalid = |reason| MoneyError::InvalidRate { reason };
        if s.len() > Self::MAX_INPUT_CHARS {
            return Err(invalid("too long"));
        }
        let (int_part, frac_part) = match s.split_once('.') {
            Some((int_part, frac_part)) => (int_part, Some(frac_part)),
            None => (s, None),
        };
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
            return Err(invalid("not a plain decimal number"));
        }
        let rate = Decimal::from_str_exact(s).map_err(|_| invalid("not a plain decimal number"))?;
        Rate::new(rate)
    }

    /// Checks the bounds of a rate computed elsewhere; trailing zeros do not count as decimal places.
    pub fn new(rate: Decimal) -> Result<Rate, MoneyError> {
        let invalid = |reason| MoneyError::InvalidRate { reason };
        if rate.is_sign_negative() || rate.is_zero() {
            return Err(invalid("must be greater than zero"));
        }
        if rate > Self::MAX {
            return Err(invalid("exceeds the maximum of 1000000000"));
        }
        let rate = rate.normalize();
        if rate.scale() > Self::MAX_DECIMAL_PLACES {
            return Err(invalid("more than 12 decimal places"));
        }
        Ok(Rate(rate))
    }

    pub fn get(self) -> Decimal {
        self.0
    }

    /// The rate the other way round, `1 / rate` rounded to [`Rate::MAX_DECIMAL_PLACES`] (half to even), within the
    /// same bounds: an error for a rate below `1 / Rate::MAX`, whose inverse would exceed [`Rate::MAX`].
    pub fn inverse(self) -> Result<Rate, MoneyError> {
        let inverse = Decimal::ONE.checked_div(self.0).ok_or(MoneyError::InvalidRate {
            reason: "has no inverse",
        })?;
        Rate::new(inverse.round_dp(Self::MAX_DECIMAL_PLACES))
    }
}

impl From<Rate> for Decimal {
    fn from(rate: Rate) -> Decimal {
        rate.0
    }
}

/// Converts `amount` into `to` at `rate` units of `to` per one unit of `amount.currency`.
///
/// The rate must satisfy [`Rate::new`]. The result is computed exactly and rounded once to `to`'s minor unit,
/// half away from zero: 0.5 minor units becomes 1 and -0.5 becomes -1, so a refund converts to the negation of
/// the charge it reverses. Differences in exponent are handled (100 JPY at 0.0065 is 0.65 USD = 65 cents).
/// A result outside `i64` minor units is [`MoneyError::Overflow`].
pub fn convert(amount: Money, to: Currency, rate: Decimal) -> Result<Money, MoneyError> {
    let rate = Rate::new(rate)?;
    // amount_minor / 10^from_exp units * mantissa / 10^scale = result_minor / 10^to_exp, so
    // result_minor = amount_minor * mantissa * 10^to_exp / 10^(from_exp + scale).
    let mut numerator = i128::from(amount.amount_minor)
        .checked_mul(rate.0.mantissa())
        .ok_or(MoneyError::Overflow)?;
    let mut denominator_exp = amount.currency.exponent() + rate.0.scale();
    let to_exp = to.exponent();
    let cancelled_exp = denominator_exp.min(to_exp);
    denominator_exp -= cancelled_exp;
    numerator = numerator
        .checked_mul(10i128.pow(to_exp - cancelled_exp))
        .ok_or(MoneyError::Overflow)?;
    // With at most 12 decimal places an overflowing i128 means a result far beyond i64, so no false overflows.
    let amount_minor = div_round_half_away(numerator, 10i128.pow(denominator_exp));
    let amount_minor = i64::try_from(amount_minor).map_err(|_| MoneyError::Overflow)?;
    Ok(Money {
        amount_minor,
        currency: to,
    })
}

/// `numerator / denominator` rounded half away from zero; `denominator` is positive.
fn div_round_half_away(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // |remainder| < denominator <= 10^15, so doubling cannot overflow.
    if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn currency_parse_accepts_listed_codes_with_iso_exponents() {
        let cases = [
            ("USD", 2),
            ("EUR", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("CLP", 0),
            ("ISK", 0),
            ("KWD", 3),
            ("BHD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("HUF", 2),
            ("IDR", 2),
            ("COP", 2),
        ];
        for (code, exponent) in cases {
            let currency = cur(code);
            assert_eq!(currency.code(), code);
            assert_eq!(currency.exponent(), exponent, "{code}");
        }
    }

    #[test]
    fn currency_parse_rejects_anything_not_exact() {
        for code in ["", "usd", "Usd", " USD", "USD ", "US", "USDD", "XXX", "ÉUR", "€"] {
            assert!(
                matches!(Currency::parse(code), Err(MoneyError::UnknownCurrency { .. })),
                "{code:?} should be rejected"
            );
        }
    }

    #[test]
    fn unknown_currency_error_echoes_a_bounded_prefix() {
        let long = "A".repeat(10_000);
        let err = Currency::parse(&long).unwrap_err();
        assert_eq!(err.to_string(), "unknown currency code \"AAAAAAAA\"");
    }

    #[test]
    fn currency_serde_is_the_code_and_deserialize_validates() {
        assert_eq!(serde_json::to_string(&cur("GBP")).unwrap(), "\"GBP\"");
        assert_eq!(serde_json::from_str::<Currency>("\"KWD\"").unwrap(), cur("KWD"));
        for bad in ["\"gbp\"", "\"ZZZ\"", "42", "null", "[\"USD\"]"] {
            assert!(serde_json::from_str::<Currency>(bad).is_err(), "{bad}");
        }
        // Through an owned `Value` too, not only borrowed strings.
        let value = serde_json::json!("JPY");
        assert_eq!(serde_json::from_value::<Currency>(value).unwrap(), cur("JPY"));
    }

    #[test]
    fn money_serde_shape() {
        let money = Money::new(1234, cur("EUR"));
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(json, serde_json::json!({"amount_minor": 1234, "currency": "EUR"}));
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        let bad = serde_json::json!({"amount_minor": 1, "currency": "eur"});
        assert!(serde_json::from_value::<Money>(bad).is_err());
    }

    #[test]
    fn checked_add_table() {
        let usd = cur("USD");
        let eur = cur("EUR");
        let cases = [
            (Money::new(100, usd), Money::new(250, usd), Ok(Money::new(350, usd))),
            (Money::new(-100, usd), Money::new(100, usd), Ok(Money::new(0, usd))),
            (
                Money::new(100, usd),
                Money::new(1, eur),
                Err(MoneyError::CurrencyMismatch { left: usd, right: eur }),
            ),
            (Money::new(i64::MAX, usd), Money::new(1, usd), Err(MoneyError::Overflow)),
            (
                Money::new(i64::MIN, usd),
                Money::new(-1, usd),
                Err(MoneyError::Overflow),
            ),
        ];
        for (left, right, expected) in cases {
            assert_eq!(left.checked_add(right), expected, "{left} + {right}");
        }
    }

    #[test]
    fn checked_mul_table() {
        let jpy = cur("JPY");
        let cases = [
            (Money::new(15_000, jpy), 3, Ok(Money::new(45_000, jpy))),
            (Money::new(15_000, jpy), 0, Ok(Money::zero(jpy))),
            (Money::new(15_000, jpy), -1, Ok(Money::new(-15_000, jpy))),
            (Money::new(i64::MAX / 2 + 1, jpy), 2, Err(MoneyError::Overflow)),
            (Money::new(i64::MIN, jpy), -1, Err(MoneyError::Overflow)),
        ];
        for (money, factor, expected) in cases {
            assert_eq!(money.checked_mul(factor), expected, "{money} * {factor}");
        }
    }

    #[test]
    fn money_display_uses_the_exponent() {
        let cases = [
            (Money::new(1234, cur("EUR")), "12.34 EUR"),
            (Money::new(5, cur("EUR")), "0.05 EUR"),
            (Money::new(-5, cur("EUR")), "-0.05 EUR"),
            (Money::new(1500, cur("JPY")), "1500 JPY"),
            (Money::new(1, cur("KWD")), "0.001 KWD"),
            (Money::new(i64::MIN, cur("USD")), "-92233720368547758.08 USD"),
        ];
        for (money, expected) in cases {
            assert_eq!(money.to_string(), expected);
        }
    }

    #[test]
    fn convert_table() {
        let cases = [
            // (amount, from, to, rate, expected amount_minor)
            (1000, "USD", "EUR", "0.92", 920),
            (1000, "EUR", "EUR", "1", 1000),
            // JPY has no minor unit: 100 yen at 0.0065 is 0.65 USD.
            (100, "JPY", "USD", "0.0065", 65),
            // 1.00 USD at 151.237 JPY: 151.237 rounds to 151.
            (100, "USD", "JPY", "151.237", 151),
            // USD -> KWD gains a digit: 10.00 USD at 0.3071 is 3.071 KWD.
            (1000, "USD", "KWD", "0.3071", 3071),
            // KWD -> JPY loses three digits: 1.234 KWD at 490.5 is 605.277 JPY.
            (1234, "KWD", "JPY", "490.5", 605),
            // Exactly half a minor unit rounds away from zero, both signs.
            (1, "EUR", "USD", "0.5", 1),
            (-1, "EUR", "USD", "0.5", -1),
            (3, "EUR", "USD", "0.5", 2),
            (-3, "EUR", "USD", "0.5", -2),
            // Just under half rounds toward zero.
            (1, "EUR", "USD", "0.499999999999", 0),
            (-1, "EUR", "USD", "0.499999999999", 0),
            (0, "EUR", "USD", "1.5", 0),
            // The smallest and the largest allowed rates.
            (1_000_000_000_000, "USD", "EUR", "0.000000000001", 1),
            (1, "USD", "EUR", "1000000000", 1_000_000_000),
            // Large but in range.
            (i64::MAX, "USD", "EUR", "1", i64::MAX),
            // i64::MAX cents at 0.01 is 922337203685477.5807 yen.
            (i64::MAX, "EUR", "JPY", "0.01", 922_337_203_685_478),
        ];
        for (amount_minor, from, to, rate, expected) in cases {
            let converted = convert(Money::new(amount_minor, cur(from)), cur(to), dec(rate));
            assert_eq!(
                converted,
                Ok(Money::new(expected, cur(to))),
                "{amount_minor} {from} -> {to} at {rate}"
            );
        }
    }

    #[test]
    fn convert_overflow_is_an_error() {
        let cases = [
            (i64::MAX, "USD", "EUR", "1.000000000001"),
            (i64::MAX, "JPY", "KWD", "1000000000"),
            (i64::MIN, "USD", "EUR", "2"),
            (i64::MAX / 1000 + 1, "JPY", "KWD", "1"),
        ];
        for (amount_minor, from, to, rate) in cases {
            let converted = convert(Money::new(amount_minor, cur(from)), cur(to), dec(rate));
            assert_eq!(
                converted,
                Err(MoneyError::Overflow),
                "{amount_minor} {from} -> {to} at {rate}"
            );
        }
    }

    #[test]
    fn rate_inverse_table() {
        let cases = [
            ("2", Some("0.5")),
            ("3.2", Some("0.3125")),
            // Rounded to 12 decimal places.
            ("3", Some("0.333333333333")),
            ("1.08345", Some("0.922977525497")),
            // The bounds meet: 1 / MAX is the smallest rate with an inverse, and MAX the largest.
            ("0.000000001", Some("1000000000")),
            ("1000000000", Some("0.000000001")),
            ("0.000000000999", None),
            ("0.0000000001", None),
            ("0.000000000001", None),
        ];
        for (rate, expected) in cases {
            let inverse = Rate::parse(rate).unwrap().inverse();
            match expected {
                Some(value) => assert_eq!(inverse.map(Rate::get), Ok(dec(value)), "{rate}"),
                None => assert!(
                    matches!(inverse, Err(MoneyError::InvalidRate { .. })),
                    "{rate}: {inverse:?}"
                ),
            }
        }
    }

    #[test]
    fn convert_rejects_invalid_rates() {
        let usd = Money::new(100, cur("USD"));
        for rate in [
            "0",
            "-1",
            "0.0000000000001",
            "1000000000.1",
            "0.3333333333333333333333333333",
        ] {
            assert!(
                matches!(convert(usd, cur("EUR"), dec(rate)), Err(MoneyError::InvalidRate { .. })),
                "{rate} should be rejected"
            );
        }
        // Trailing zeros are not decimal places.
        assert_eq!(
            convert(usd, cur("EUR"), dec("2.00000000000000000000")),
            Ok(Money::new(200, cur("EUR")))
        );
    }

    #[test]
    fn rate_parse_table() {
        let cases = [
            ("1", Some("1")),
            ("0.92", Some("0.92")),
            ("151.237", Some("151.237")),
            ("0.000000000001", Some("0.000000000001")),
            ("1000000000", Some("1000000000")),
            ("007.50", Some("7.5")),
            ("0", None),
            ("0.000", None),
            ("0.0000000000001", None),
            ("1000000000.000000000001", None),
            ("1000000001", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("1_000", None),
            (" 1", None),
            ("1 ", None),
            (".5", None),
            ("5.", None),
            ("1.2.3", None),
            ("", None),
            ("NaN", None),
            ("١", None),
        ];
        for (input, expected) in cases {
            let parsed = Rate::parse(input);
            match expected {
                Some(value) => assert_eq!(parsed.map(Rate::get), Ok(dec(value)), "{input:?}"),
                None => assert!(
                    matches!(parsed, Err(MoneyError::InvalidRate { .. })),
                    "{input:?}: {parsed:?}"
                ),
            }
        }
        assert!(Rate::parse(&"1".repeat(100_000)).is_err());
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errors = [
            MoneyError::UnknownCurrency { code: "XYZ".into() },
            MoneyError::CurrencyMismatch {
                left: cur("USD"),
                right: cur("EUR"),
            },
            MoneyError::Overflow,
            MoneyError::InvalidRate {
                reason: "must be greater than zero",
            },
        ];
        for err in errors {
            let message = err.to_string();
            assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
