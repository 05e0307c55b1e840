/// An email address, normalized: trimmed and lowercased, so `Ann@Example.COM ` and `ann@example.com` are one
/// account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

impl Email {
    pub const MAX_LEN: usize = phoenix_api::email::MAX_LEN;

    /// Trims and lowercases `raw`, then checks its shape with the platform's one test
    /// ([`phoenix_api::email::problem`]), so every account's address is one notification can send to.
    pub fn parse(raw: &str) -> Result<Email, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        match phoenix_api::email::problem(&email) {
            Some(why) => Err(InvalidEmail(why)),
            None => Ok(Email(email)),
        }
    }

    /// `raw` normalized as [`parse`](Self::parse) does, without judging its shape: for finding an account by the
    /// address it signs in with, which may predate today's rules (an account that could register can still sign in).
    pub fn for_lookup(raw: &str) -> Option<Email> {
        let email = raw.trim().to_lowercase();
        (!email.is_empty() && email.len() <= Self::MAX_LEN).then_some(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Ann.Lee@Example.COM ").unwrap().as_str(),
            "ann.lee@example.com"
        );
    }

    /// The shape rules are `phoenix_api::email`'s, tested there; here, that they apply after normalizing.
    #[test]
    fn rejects_malformed_addresses() {
        for bad in ["", "  ", "ann", "A,B@Example.com", " ann@example "] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
