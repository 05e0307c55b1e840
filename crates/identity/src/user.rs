use std::ops::RangeInclusive;

use phoenix_api::Role;
use phoenix_db::Timestamp;
use uuid::Uuid;

/// A person (or a partner system) who can sign in.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    /// Normalized (see [`crate::email::Email`]).
    pub email: String,
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub organization_id: Option<Uuid>,
    /// Base32 TOTP secret: pending while `totp_enabled` is false, active once it is true.
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    /// The last TOTP time step accepted, so no code is accepted twice.
    pub totp_last_step: Option<i64>,
    pub created_at: Timestamp,
}

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

fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS.iter().any(|range| range.contains(&c))
}

/// A name (a person's, an organization's, an API key's): trimmed, 1 to 200 characters, no control or format
/// characters.
pub fn parse_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > 200 {
        return Err("must be at most 200 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if name.chars().any(is_format_character) {
        return Err("must not contain invisible format characters (bidirectional overrides, zero-width spaces)");
    }
    Ok(name.to_owned())
}

/// Checks a role assignment: at least one role, no duplicates, and an organization exactly when a role needs one.
pub fn check_roles(roles: &[Role], organization_id: Option<Uuid>) -> Result<Vec<Role>, &'static str> {
    if roles.is_empty() {
        return Err("must name at least one role");
    }
    let mut sorted = roles.to_vec();
    sorted.sort();
    sorted.dedup();
    let needs_org = sorted.iter().any(|role| role.needs_organization());
    match (needs_org, organization_id) {
        (true, None) => Err("agent, partner and operator roles need an organization_id"),
        _ => Ok(sorted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_assignments() {
        let org = Some(Uuid::now_v7());
        assert!(check_roles(&[], None).is_err());
        assert!(check_roles(&[Role::Agent], None).is_err());
        assert_eq!(
            check_roles(&[Role::Agent, Role::Agent], org).unwrap(),
            vec![Role::Agent]
        );
        assert_eq!(
            check_roles(&[Role::Admin, Role::Customer], None).unwrap(),
            vec![Role::Customer, Role::Admin]
        );
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("  Ann Lee ").unwrap(), "Ann Lee");
        assert!(parse_name("   ").is_err());
        assert!(parse_name("a\u{0}b").is_err());
        assert!(parse_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn names_with_format_characters_are_refused() {
        for bad in [
            "\u{202e}evil\u{200b}",
            "Ann\u{200b}Lee",
            "Ann\u{200f}",
            "\u{2066}Ann\u{2069}",
            "Ann\u{feff}",
            "Ann\u{ad}Lee",
            "Ann\u{e0041}",
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        for good in ["Zoë Ødegård", "李小龍", "محمد", "Ann-Marie O'Neil", "علی\u{200c}رضا"] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
    }
}
