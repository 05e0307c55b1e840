//! Calendar dates on the wire: `YYYY-MM-DD` and nothing else. ISO 8601 has other ways of writing a date (week dates
//! `2027-W11-6`, ordinal dates `2027-079`, the basic form `20270320`, signed and expanded years `+002027-03-20`)
//! that a general parser takes; the API documents one form, so it takes only that one.

use time::Date;

/// `2026-12-24`: a four-digit year, two-digit month and day, dashes between. None for anything else, or a date
/// that does not exist (`2027-02-29`).
pub fn parse_day(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_form_is_a_date() {
        let day = parse_day("2027-03-20").unwrap();
        assert_eq!((day.year(), u8::from(day.month()), day.day()), (2027, 3, 20));
        assert!(parse_day("2028-02-29").is_some());
        for other in [
            "2027-W11-6",
            "2027-079",
            "20270320",
            "+2027-03-20",
            "+002027-03-20",
            "-2027-03-20",
            "-002027-03-20",
            "2027-03-20T00:00",
            "2027-3-20",
            "2027/03/20",
            " 2027-03-20",
            "2027-02-29",
            "2027-13-01",
            "٢٠٢٧-٠٣-٢٠",
            "",
        ] {
            assert_eq!(parse_day(other), None, "{other:?}");
        }
    }
}
