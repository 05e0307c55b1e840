//! The shape of an email address the platform will send to. Identity takes accounts' addresses and booking takes
//! contacts' addresses with this one test, so an address accepted at sign-up or booking is one the mailer can write
//! to (the `lettre` parser notification sends with accepts every address this does).
//!
//! Whether mail arrives only sending can tell; this refuses what no mailer could use: quoted or commented local
//! parts, commas, angle brackets, stray dots, IP addresses and numeric top-level domains, spaces.

/// The longest address: what fits in SMTP's forward path.
pub const MAX_LEN: usize = 254;

/// Why `address` is not a usable email address, or `None` when it is. Case is not judged (callers normalize).
pub fn problem(address: &str) -> Option<&'static str> {
    if address.is_empty() {
        return Some("must not be empty");
    }
    if address.len() > MAX_LEN {
        return Some("must be at most 254 characters");
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some("must contain @");
    };
    if !local_part_ok(local) {
        return Some("the part before @ is not valid");
    }
    if !domain_ok(domain) {
        return Some("the domain is not valid");
    }
    None
}

/// RFC 5322's dot-atom, with RFC 6531's non-ASCII letters: atoms of letters, digits and ``!#$%&'*+/=?^_`{|}~-``,
/// joined by single dots, at most 64 bytes. (A quoted local part is valid too, but nobody needs one.)
fn local_part_ok(local: &str) -> bool {
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    !local.is_empty() && local.len() <= 64 && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

/// A host name of at least two labels (letters, digits and inner hyphens, at most 63 bytes each) whose top-level
/// label is not a number: no IP addresses, no bare host names.
fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_people_have_are_taken() {
        for good in [
            "ann@example.com",
            "ann.lee+trips@mail.example.co.uk",
            "o'brien@example.ie",
            "a!#$%&*/=?^_`{|}~-@example.com",
            "jörg@example.de",
            "ann@exämple.de",
            "ann@sub-domain.example.com",
            "ann@example.c0m",
        ] {
            assert_eq!(problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn addresses_no_mailer_could_use_are_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@exa mple.com",
            "a@b@c.com",
            "ann@-x.com",
            "a,b@example.com",
            "<script>@example.com",
            "x\"y@example.com",
            "a(c)@example.com",
            "a;b@example.com",
            "a:b@example.com",
            "a[b]@example.com",
            "a\\b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "ok@123.123.123.123",
            "ann@[127.0.0.1]",
            "ann@example.com.",
        ] {
            assert!(problem(bad).is_some(), "{bad:?} should be refused");
        }
        assert!(problem(&format!("{}@example.com", "a".repeat(65))).is_some());
        assert!(problem(&format!("a@{}.com", "b".repeat(250))).is_some());
    }
}
