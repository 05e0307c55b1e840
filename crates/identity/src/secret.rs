//! Random secrets handed to clients (refresh tokens, API keys, recovery codes) and how they are stored: only a
//! SHA-256 digest. These secrets carry 99 (recovery codes, which people type) to 256 bits of randomness, so a fast
//! hash is enough; slow hashing is for passwords that people choose.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // SystemRandom reads the OS generator; it fails only if the OS cannot supply randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("the operating system's random number generator failed"));
    bytes
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn sha256(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// A recovery code a person can type: twenty characters from an alphabet of 31 without look-alikes, as
/// `xxxxx-xxxxx-xxxxx-xxxxx`: 99 random bits, beyond an offline search of its digest. Characters are drawn without
/// modulo bias (bytes at or above the largest multiple of 31 are drawn again).
pub fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    const CHARS: usize = 20;
    let limit = 256 - 256 % ALPHABET.len();
    let mut chars = Vec::with_capacity(CHARS);
    while chars.len() < CHARS {
        for b in random_bytes::<32>() {
            if usize::from(b) < limit && chars.len() < CHARS {
                chars.push(ALPHABET[usize::from(b) % ALPHABET.len()]);
            }
        }
    }
    chars
        .chunks(5)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// Recovery codes are compared case- and dash-insensitively.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_typeable_and_normalize() {
        let code = recovery_code();
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        assert!(groups.iter().all(|g| g.len() == 5), "{code}");
        assert!(
            code.bytes()
                .all(|b| b == b'-' || b"abcdefghjkmnpqrstuvwxyz23456789".contains(&b)),
            "{code}"
        );
        assert_ne!(code, recovery_code());
        assert_eq!(normalize_recovery_code(&code.to_uppercase()), code.replace('-', ""));
    }

    #[test]
    fn tokens_are_unique() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
    }
}
