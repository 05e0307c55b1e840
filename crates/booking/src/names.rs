//! How "manage my booking" compares the last name a traveller types with the names on a booking: ignoring case,
//! accents, spaces and punctuation, and taking a German umlaut or a Nordic letter spelled out as the letter, each
//! letter on its own ("Mueller-Odegard" finds "Müller-Ødegård", as do "Muller-Oedegaard" and "Müller-Ødegård").

use std::collections::HashSet;

/// Names with more letters that have two spellings than this are compared in two forms only: every such letter
/// plain, or every one spelled out (2^8 = 256 spellings of a name at most).
const MAX_CHOICES: usize = 8;

/// Whether `typed` is `traveller`'s name: some spelling of one is a spelling of the other. A name of no letters
/// matches nothing.
pub(crate) fn same_name(typed: &str, traveller: &str) -> bool {
    let theirs = spellings(traveller);
    spellings(typed)
        .iter()
        .any(|spelling| !spelling.is_empty() && theirs.contains(spelling))
}

/// One letter of a name as compared: its plain form (`u` for `ü`), and where passports may spell it out, that
/// spelling too (`ue`).
struct Letter {
    plain: &'static str,
    spelled: Option<&'static str>,
    /// A letter or digit kept as it is (lower case).
    other: Option<char>,
}

/// The letters of `name`: letters and digits only, lower case, accents dropped, with the spelled-out form of
/// umlauts (`ä ö ü`), `å` and `ø`.
fn letters(name: &str) -> Vec<Letter> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;

    let mut letters: Vec<Letter> = Vec::new();
    for c in name.nfkd() {
        if is_combining_mark(c) {
            if let Some(last) = letters.last_mut()
                && last.spelled.is_none()
            {
                last.spelled = match (c, last.plain) {
                    ('\u{308}', "a") => Some("ae"),
                    ('\u{308}', "o") => Some("oe"),
                    ('\u{308}', "u") => Some("ue"),
                    ('\u{30a}', "a") => Some("aa"),
                    _ => None,
                };
            }
            continue;
        }
        for lower in c.to_lowercase() {
            let (plain, spelled) = match lower {
                'a' => ("a", None),
                'o' => ("o", None),
                'u' => ("u", None),
                'ß' => ("ss", None),
                'æ' => ("ae", None),
                'œ' => ("oe", None),
                'ø' => ("o", Some("oe")),
                'ł' => ("l", None),
                'đ' | 'ð' => ("d", None),
                'þ' => ("th", None),
                'ı' => ("i", None),
                other if other.is_alphanumeric() => {
                    letters.push(Letter {
                        plain: "",
                        spelled: None,
                        other: Some(other),
                    });
                    continue;
                }
                _ => continue,
            };
            letters.push(Letter {
                plain,
                spelled,
                other: None,
            });
        }
    }
    letters
}

/// Every spelling of `name`: each letter with two spellings taken either way.
fn spellings(name: &str) -> HashSet<String> {
    let letters = letters(name);
    let choices: Vec<usize> = letters
        .iter()
        .enumerate()
        .filter_map(|(i, letter)| letter.spelled.map(|_| i))
        .collect();
    let spell = |spelled_out: &dyn Fn(usize) -> bool| -> String {
        let mut text = String::new();
        for (i, letter) in letters.iter().enumerate() {
            match (letter.other, letter.spelled) {
                (Some(c), _) => text.push(c),
                (None, Some(spelled)) if spelled_out(i) => text.push_str(spelled),
                (None, _) => text.push_str(letter.plain),
            }
        }
        text
    };
    if choices.len() > MAX_CHOICES {
        return HashSet::from([spell(&|_| false), spell(&|_| true)]);
    }
    (0..1usize << choices.len())
        .map(|mask| {
            spell(&|i| {
                choices
                    .iter()
                    .position(|&c| c == i)
                    .is_some_and(|bit| mask & (1 << bit) != 0)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn lookups_ignore_case_accents_spaces_and_punctuation() {
        for (typed, traveller) in [
            ("lee", "Lee"),
            ("  LEE ", "Lee"),
            ("obrien", "O'Brien"),
            ("Garcia Marquez", "García-Márquez"),
            ("MULLER", "Müller"),
            ("Mueller", "Müller"),
            ("Müller", "Mueller"),
            ("Soerensen", "Sørensen"),
            ("Sorensen", "Sørensen"),
            ("Aangstroem", "Ångström"),
            ("Strasse", "Straße"),
            ("Lodz", "Łódź"),
            ("Nguyen", "Nguyễn"),
            ("李", "李"),
        ] {
            assert!(same_name(typed, traveller), "{typed:?} should find {traveller:?}");
        }
    }

    #[test]
    fn each_letter_may_be_spelled_out_or_not_on_its_own() {
        for typed in [
            "Mueller-Odegard",
            "Muller-Oedegaard",
            "Mueller-Oedegard",
            "MUELLEROEDEGAARD",
            "muller odegard",
            "Müller-Ødegård",
            "Mu\u{308}ller-Ødega\u{30a}rd",
        ] {
            assert!(same_name(typed, "Müller-Ødegård"), "{typed:?}");
        }
        // Both sides may have two spellings: the typed umlaut meets the spelled-out name.
        assert!(same_name("Müller-Ødegård", "Mueller-Oedegaard"));
        assert!(
            !same_name("Mueller-Odegard", "Muller-Oedegaard"),
            "a letter written plainly is plain"
        );
    }

    #[test]
    fn other_names_and_empty_ones_do_not_match() {
        for (typed, traveller) in [
            ("Smith", "Lee"),
            ("Le", "Lee"),
            ("Muller", "Mueller"),
            ("", "Lee"),
            ("'-' ", "Lee"),
            ("", ""),
            ("Lee", "Lee-Smith"),
            ("Muellerr", "Müller"),
        ] {
            assert!(!same_name(typed, traveller), "{typed:?} should not find {traveller:?}");
        }
    }

    #[test]
    fn a_name_with_many_such_letters_still_matches_in_its_two_whole_forms() {
        let traveller = "Üüüüüüüüüü";
        assert!(same_name("uuuuuuuuuu", traveller));
        assert!(same_name("ueueueueueueueueueue", traveller));
        assert!(!same_name("Smith", traveller));
    }
}
