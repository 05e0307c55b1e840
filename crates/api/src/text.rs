//! Text people read beside other people's: names of persons, organizations, travellers, endpoints. Such text is
//! refused when it holds Unicode's invisible format characters, which change what it shows without being seen.

use std::ops::RangeInclusive;

/// Unicode's format characters (general category Cf, Unicode 15.1). Invisible, yet they change what text shows:
/// a right-to-left override (U+202E) makes `evil\u{202e}gnp.exe` read as `evilexe.png`, a zero-width space makes
/// two names that look alike differ. The zero-width non-joiner and joiner (U+200C, U+200D) are left out: Persian and
/// Indic names are written with them.
const FORMAT_CHARACTERS: &[RangeInclusive<char>] = &[
    '\u{00AD}'..='\u{00AD}',
    '\u{0600}'..='\u{0605}',
    '\u{061C}'..='\u{061C}',
    '\u{06DD}'..='\u{06DD}',
    '\u{070F}'..='\u{070F}',
    '\u{0890}'..='\u{0891}',
    '\u{08E2}'..='\u{08E2}',
    '\u{180E}'..='\u{180E}',
    '\u{200B}'..='\u{200B}',
    '\u{200E}'..='\u{200F}',
    '\u{202A}'..='\u{202E}',
    '\u{2060}'..='\u{2064}',
    '\u{2066}'..='\u{206F}',
    '\u{FEFF}'..='\u{FEFF}',
    '\u{FFF9}'..='\u{FFFB}',
    '\u{110BD}'..='\u{110BD}',
    '\u{110CD}'..='\u{110CD}',
    '\u{13430}'..='\u{1343F}',
    '\u{1BCA0}'..='\u{1BCA3}',
    '\u{1D173}'..='\u{1D17A}',
    '\u{E0001}'..='\u{E0001}',
    '\u{E0020}'..='\u{E007F}',
];

/// Whether `c` is one of [`FORMAT_CHARACTERS`].
pub fn is_invisible_format(c: char) -> bool {
    FORMAT_CHARACTERS.iter().any(|range| range.contains(&c))
}

/// Whether `text` holds any of [`FORMAT_CHARACTERS`].
pub fn has_invisible_format(text: &str) -> bool {
    text.chars().any(is_invisible_format)
}

/// What to tell a client whose text holds one.
pub const INVISIBLE_FORMAT: &str =
    "must not contain invisible format characters (bidirectional overrides, zero-width spaces)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_zero_width_characters_are_found_joiners_are_not() {
        for bad in [
            "\u{202e}evil",
            "Ann\u{200b}Lee",
            "\u{2066}Ann\u{2069}",
            "Ann\u{feff}",
            "Ann\u{e0041}",
        ] {
            assert!(has_invisible_format(bad), "{bad:?}");
        }
        for good in ["Zoë Ødegård", "李小龍", "محمد", "علی\u{200c}رضا", "क्\u{200d}ष"] {
            assert!(!has_invisible_format(good), "{good:?}");
        }
    }
}
