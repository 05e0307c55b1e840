//! Record locators: the six characters a traveller reads out on the phone.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Uppercase letters and digits without the ones people confuse (0/O, 1/I). 32 symbols, so a random byte maps to
/// one without bias, and six of them give about a billion locators.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub const LEN: usize = 6;

/// A booking's record locator, such as `K7QF2M`. Unique among bookings; not a secret (the lookup also asks for a
/// traveller's last name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "K7QF2M")]
pub struct Locator(String);

impl Locator {
    /// A fresh random locator.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails: nothing sensible can be done without it.
    pub fn generate() -> Locator {
        let mut bytes = [0u8; LEN];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
        Locator(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
                .collect(),
        )
    }

    /// Reads a locator as a person typed it: any case, surrounding spaces ignored.
    pub fn parse(text: &str) -> Option<Locator> {
        let upper = text.trim().to_ascii_uppercase();
        (upper.len() == LEN && upper.bytes().all(|b| ALPHABET.contains(&b))).then_some(Locator(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_locators_use_only_unambiguous_symbols() {
        for _ in 0..1_000 {
            let locator = Locator::generate();
            assert_eq!(locator.as_str().len(), LEN);
            assert!(!locator.as_str().contains(['0', 'O', '1', 'I']), "{locator}");
            assert_eq!(Locator::parse(locator.as_str()), Some(locator));
        }
    }

    #[test]
    fn parsing_accepts_any_case_and_refuses_ambiguous_or_wrong_lengths() {
        let cases = [
            ("k7qf2m", Some("K7QF2M")),
            (" K7QF2M ", Some("K7QF2M")),
            ("K7QF2", None),
            ("K7QF2MM", None),
            ("K7QF0M", None),
            ("K7QFIM", None),
            ("K7QF-M", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Locator::parse(text).as_ref().map(Locator::as_str), expected, "{text:?}");
        }
    }
}
