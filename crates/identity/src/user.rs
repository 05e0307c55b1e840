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
    if phoenix_api::text::has_invisible_format(name) {
        return Err(phoenix_api::text::INVISIBLE_FORMAT);
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
