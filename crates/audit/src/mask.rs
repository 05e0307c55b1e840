//! Masking personal data before it enters the audit log.
//!
//! The audit log keeps its entries for good and cannot edit them (an edit breaks the chain), so personal data must
//! be masked on the way in: emails, phone numbers and personal names, found by the key they sit under anywhere in
//! the payload, and any word that looks like an email wherever it is. What remains is enough for support to
//! recognise a person (`j***@example.com`, `+44*******89`, `J***`) without the log holding who they are. A
//! credential under its key (a password-reset token, sealed as it is in its event) is dropped altogether.

use serde_json::Value;

/// What kind of personal data a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Name,
    /// A credential, even a sealed one (a password-reset token): never kept, whatever it looks like.
    Secret,
}

/// The kind of personal data stored under `key`, matched case-insensitively: `email`, `*_email`, `phone`,
/// `*_phone`, `phone_number`, `mobile`, `name`, `first_name`, `last_name`, `full_name`, `given_name`,
/// `family_name`, `middle_name`, `display_name`; and credentials: `token`, `*_token`, `secret`, `*_secret`,
/// `password`, `*_password` (a key such as `token_id` names no credential).
fn kind_of(key: &str) -> Option<Kind> {
    let key = key.to_ascii_lowercase();
    let credential = ["token", "secret", "password"];
    if credential.iter().any(|c| key == *c || key.ends_with(&format!("_{c}"))) {
        return Some(Kind::Secret);
    }
    if key == "email" || key.ends_with("_email") {
        return Some(Kind::Email);
    }
    if key == "phone" || key.ends_with("_phone") || key == "phone_number" || key == "mobile" {
        return Some(Kind::Phone);
    }
    const NAMES: [&str; 8] = [
        "name",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "middle_name",
        "display_name",
    ];
    NAMES.contains(&key.as_str()).then_some(Kind::Name)
}

/// What a credential's value becomes.
const REDACTED: &str = "[redacted]";

/// The payload with personal data masked. Values under a personal key are masked whatever their shape (strings in
/// arrays and objects under it too); numbers, booleans and nulls are left alone.
pub fn payload(value: &Value) -> Value {
    walk(value, None)
}

fn walk(value: &Value, under: Option<Kind>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| (key.clone(), walk(v, kind_of(key).or(under))))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, under)).collect()),
        Value::String(s) => Value::String(match under {
            Some(Kind::Email) => email(s),
            Some(Kind::Phone) => phone(s),
            Some(Kind::Name) => name(s),
            Some(Kind::Secret) => REDACTED.to_owned(),
            None => emails_within(s),
        }),
        other => other.clone(),
    }
}

/// `jane.doe@example.com` -> `j***@example.com`. Not an email at all: masked like a name.
pub fn email(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            format!("{}@{domain}", name(local))
        }
        _ => name(s),
    }
}

/// `+44 7700 900089` -> `+44********89`: the country code's two digits and the last two stay, every other digit
/// is a `*`, separators go. Four digits or fewer: all masked.
pub fn phone(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    let plus = if s.trim_start().starts_with('+') { "+" } else { "" };
    if digits.len() <= 4 {
        return format!("{plus}{}", "*".repeat(digits.len().max(1)));
    }
    let n = digits.len();
    let masked: String = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i < 2 || i >= n - 2 { *d } else { '*' })
        .collect();
    format!("{plus}{masked}")
}

/// `Jane` -> `J***`; empty stays empty.
pub fn name(s: &str) -> String {
    match s.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

/// `s` with every whitespace-separated word that looks like an email masked (free text such as a reason).
fn emails_within(s: &str) -> String {
    if !s.contains('@') {
        return s.to_owned();
    }
    s.split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end();
            let word = word.trim_matches(|c: char| "<>()[],;:\"'".contains(c));
            if looks_like_email(word) {
                piece.replacen(word, &email(word), 1)
            } else {
                piece.to_owned()
            }
        })
        .collect()
}

/// One `@` with something before it, a dotted domain after it, no spaces: an email wherever it appears.
fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_kind_keeps_just_enough_to_recognise() {
        let cases = [
            (email("jane.doe@example.com"), "j***@example.com"),
            (email("not-an-email"), "n***"),
            (phone("+44 20 7946 0089"), "+44********89"),
            (phone("+447700900089"), "+44********89"),
            (phone("0612"), "****"),
            (phone(""), "*"),
            (name("Jane"), "J***"),
            (name("Élodie"), "É***"),
            (name(""), ""),
        ];
        for (masked, expected) in cases {
            assert_eq!(masked, expected);
        }
    }

    #[test]
    fn the_walk_masks_by_key_at_any_depth_and_stray_emails_anywhere() {
        let data = json!({
            "booking_id": "b-1",
            "contact_email": "ann@example.com",
            "contact_phone": "+33 6 12 34 56 78",
            "contact": {"Email": "bob@example.org", "phone": null},
            "travellers": [{"first_name": "Ann", "last_name": "Lee", "type": "adult"}],
            "name": ["Ann", "Lee"],
            "note": "from zoe@example.net, twice: <zoe@example.net>",
            "reason": "zoe@example.net",
            "total_minor": 12000,
            "sealed_token": "pxs1.0a1b2c3d.c2VhbGVk",
            "token_id": "6f1c",
            "reset": {"Secret": "s", "password": ["p"]},
        });
        let masked = payload(&data);
        assert_eq!(
            masked,
            json!({
                "booking_id": "b-1",
                "contact_email": "a***@example.com",
                "contact_phone": "+33*******78",
                "contact": {"Email": "b***@example.org", "phone": null},
                "travellers": [{"first_name": "A***", "last_name": "L***", "type": "adult"}],
                "name": ["A***", "L***"],
                "note": "from z***@example.net, twice: <z***@example.net>",
                "reason": "z***@example.net",
                "total_minor": 12000,
                "sealed_token": "[redacted]",
                "token_id": "6f1c",
                "reset": {"Secret": "[redacted]", "password": ["[redacted]"]},
            })
        );
    }
}
