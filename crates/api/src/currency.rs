//! The currencies the platform accepts, one table for every service: the catalog prices in them, payment takes
//! them, notifications format amounts in them. Adding one is a reviewed change, not client input.

/// Currencies Phoenix accepts, with their ISO 4217 minor-unit exponents (`2` means 100 minor units per unit).
///
/// Deliberately a short list of common currencies.
pub const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("USD", 2),
    ("ZAR", 2),
];

/// The minor-unit exponent of `code` (2 for EUR, 0 for JPY, 3 for KWD), when the platform accepts it.
pub fn exponent(code: &str) -> Option<u32> {
    CURRENCIES
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, exponent)| u32::from(*exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_three_upper_case_letters_listed_once_in_order() {
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (code, exponent) in CURRENCIES {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code}"
            );
            assert!(*exponent <= 3, "{code}");
        }
        assert_eq!(
            (exponent("EUR"), exponent("JPY"), exponent("KWD")),
            (Some(2), Some(0), Some(3))
        );
        assert_eq!((exponent("ZZZ"), exponent("eur")), (None, None));
    }
}
