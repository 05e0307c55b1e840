//! Card numbers (primary account numbers), which Phoenix never takes: a client that sends one where a token, a
//! name or a note belongs has made a mistake the platform must not write down, log or pass on. Every service refuses
//! such text at its edge with the same test.

/// Whether `text` is, or contains, what looks like a card number. Payment never stores one: a client that sends a
/// card number where a token or a note belongs has made a mistake we must not write down.
///
/// The whole text counts when it is 13 to 19 digits once spaces and dashes are removed. Inside longer text, a run
/// of 13 to 19 digits (grouped by single spaces, dashes, dots, slashes or underscores) counts when it stands on its
/// own (not glued to letters or further digits, as in a UUID or `ORD-20261122-000123`) and passes the Luhn check
/// every card number passes.
pub fn looks_like_card_number(text: &str) -> bool {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ' && *b != b'-').collect();
    if (13..=19).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        return true;
    }
    digit_runs(text.as_bytes())
        .into_iter()
        .any(|digits| (13..=19).contains(&digits.len()) && luhn(&digits))
}

/// Runs of digits separated by single spaces, dashes, dots, slashes or underscores that stand on their own in `text`.
fn digit_runs(text: &[u8]) -> Vec<Vec<u8>> {
    let glued = |i: Option<usize>| i.is_some_and(|i: usize| text[i].is_ascii_alphanumeric());
    let mut runs = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = Vec::new();
        let mut end = i;
        while i < text.len() {
            if text[i].is_ascii_digit() {
                digits.push(text[i]);
                end = i;
                i += 1;
            } else if matches!(text[i], b' ' | b'-' | b'.' | b'/' | b'_')
                && text.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        // A neighbour glues the run to a word when it is alphanumeric, or a dash joined to one (`ORD-2026...`).
        let before = start.checked_sub(1);
        let before_glued = glued(before) || (before.is_some_and(|b| text[b] == b'-') && glued(start.checked_sub(2)));
        let after = (end + 1 < text.len()).then_some(end + 1);
        let after_glued = glued(after)
            || (after.is_some_and(|a| text[a] == b'-') && glued(Some(end + 2).filter(|a| *a < text.len())));
        if !before_glued && !after_glued {
            runs.push(digits);
        }
        i = end + 1;
    }
    runs
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_recognised_however_they_are_written() {
        for text in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "378282246310005",
            "6011111111111117",
            "refund for card 4242 4242 4242 4242, charged twice",
            "card: 5555-5555-5555-4444.",
            "4242.4242.4242.4242",
            "paid with 4242/4242/4242/4242",
            "ref 4242_4242_4242_4242",
            // The whole field is a number of card length: refused even without a valid check digit.
            "1234567890123",
            "4242424242424242424",
            // Dressed as a token, it is still a card number.
            "tok_4242424242424242",
        ] {
            assert!(looks_like_card_number(text), "{text}");
        }
    }

    #[test]
    fn ordinary_tokens_references_and_reasons_pass() {
        for text in [
            "tok_visa",
            "pm_1PqR2sT3uV4wX5yZ",
            "booking 123",
            "0190f8a2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
            "abcdef01-2345-6789-0123-456789abcdef",
            "01234567-8901-2345-6789-0123456789ab",
            "ORD-20261122-000123",
            "customer cancelled 3 days before arrival",
            "call +44 20 7946 0958",
            "123456789012",
            "version 1.2.3, due 2026/12/01, ip 192.168.100.200",
            // A dotted run of card length that fails the Luhn check.
            "4242.4242.4242.4241",
            "12345678901234567890",
            "424242424242",
            "",
        ] {
            assert!(!looks_like_card_number(text), "{text}");
        }
    }

    #[test]
    fn luhn_accepts_test_cards_and_refuses_a_wrong_check_digit() {
        assert!(luhn(b"4242424242424242"));
        assert!(!luhn(b"4242424242424241"));
    }
}
