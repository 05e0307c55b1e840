//! Short-lived signed price offers.
//!
//! When the catalog quotes a price it hands the client an [`Offer`] sealed into an opaque token. A booking presents
//! the token later, and the catalog can then prove the price the customer was shown without having stored anything:
//! the token carries the offer itself and an HMAC over it, so only this catalog's key can have produced it.
//!
//! Token format:
//!
//! ```text
//! ofr_<base64url(postcard(offer))>.<base64url(hmac_sha256(key, "ofr_" + base64url(postcard(offer))))>
//! ```
//!
//! The offer is encoded with [postcard](https://docs.rs/postcard) (compact binary, serde's data model): a hotel
//! offer with its price breakdown makes a token of about 300 characters where JSON made 880, and a search page
//! carries one per option. Both parts use the URL-safe base64 alphabet without padding, so a token fits in URLs and
//! headers unescaped. The MAC covers the prefix and the encoded payload exactly as transmitted, and is checked in
//! constant time before the payload is decoded, so unauthenticated input never reaches the decoder. Offers are not
//! secret: anyone holding a token can read it (`GET /api/v1/offers/{id}` shows it as JSON), but nobody without the
//! key can change it or mint a new one. The details are typed by the caller, which reads a token back as the type it
//! signed (postcard's encoding does not name its types).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What every offer token starts with.
const PREFIX: &str = "ofr_";

/// Longest token [`OfferSigner::verify`] looks at; anything longer is rejected unread.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// An amount of money in a currency's minor unit (cents for EUR, yen for JPY).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The amount in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 currency code, e.g. `EUR`.
    pub currency: String,
}

/// A price quoted to a customer, bookable at that price until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer<D = serde_json::Value> {
    /// Identifies this offer, e.g. to refuse booking it twice.
    pub id: uuid::Uuid,
    /// Unix time (seconds) from which the offer can no longer be booked.
    pub expires_at_unix: i64,
    /// The total price shown to the customer.
    pub total: Quote,
    /// What was offered (product, dates, price breakdown), as the quoting code chose to describe it.
    pub details: D,
}

/// Why an offer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Not an offer token at all: wrong prefix or shape, too long, bad base64, or a payload that is not an offer.
    #[error("is malformed")]
    Malformed,
    /// Shaped like a token, but not signed by this key, or altered since.
    #[error("signature does not match")]
    BadSignature,
    /// Genuine, but past its expiry time.
    #[error("has expired")]
    Expired,
}

/// Signs offers into tokens and verifies tokens back into offers, with HMAC-SHA256.
pub struct OfferSigner {
    key: hmac::Key,
}

impl OfferSigner {
    /// A signer using `secret` as its HMAC-SHA256 key. Every instance sharing the secret accepts the others' tokens.
    pub fn new(secret: &[u8]) -> OfferSigner {
        OfferSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A signer with a fresh random 32-byte key, for tests and single-instance deployments. Its tokens die with it.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> OfferSigner {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("the system random number generator failed");
        OfferSigner::new(&secret)
    }

    /// Seals `offer` into a token (see the [module documentation](self) for the format).
    ///
    /// # Panics
    ///
    /// If `D` cannot be encoded by postcard: a type that serializes with `skip_serializing_if`, flattening or
    /// another self-describing-only feature (the offer types of this crate have none).
    pub fn sign<D: Serialize>(&self, offer: &Offer<D>) -> String {
        let payload = postcard::to_stdvec(offer).expect("offer details encode with postcard");
        let mut token = String::with_capacity(PREFIX.len() + payload.len() * 4 / 3 + 48);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        token
    }

    /// Opens a token made by [`sign`](Self::sign) with the same key, if it is still valid at `now_unix`.
    ///
    /// The signature is checked, in constant time, before the payload is decoded, so the offer returned is exactly
    /// one this key signed. An offer expires at `expires_at_unix` itself.
    ///
    /// # Errors
    ///
    /// [`OfferError::Malformed`] if the token is not shaped like one (or is over 8 KiB), or its signed payload is not
    /// an offer; [`OfferError::BadSignature`] if this key did not sign it as it is; [`OfferError::Expired`] if
    /// `now_unix` is at or past the offer's expiry.
    pub fn verify<D: DeserializeOwned>(&self, token: &str, now_unix: i64) -> Result<Offer<D>, OfferError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OfferError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(OfferError::Malformed)?;
        let payload = signed.strip_prefix(PREFIX).ok_or(OfferError::Malformed)?;
        if payload.is_empty() || tag.is_empty() {
            return Err(OfferError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| OfferError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| OfferError::BadSignature)?;

        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| OfferError::Malformed)?;
        let (offer, rest) = postcard::take_from_bytes::<Offer<D>>(&payload).map_err(|_| OfferError::Malformed)?;
        if !rest.is_empty() {
            return Err(OfferError::Malformed);
        }
        if now_unix >= offer.expires_at_unix {
            return Err(OfferError::Expired);
        }
        Ok(offer)
    }
}

impl std::fmt::Debug for OfferSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferSigner").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Stay {
        hotel: String,
        nights: u32,
        note: String,
        nightly_minor: Vec<i64>,
    }

    fn offer() -> Offer<Stay> {
        Offer {
            id: uuid::Uuid::new_v4(),
            expires_at_unix: NOW + 900,
            total: Quote {
                amount_minor: 12_345,
                currency: "EUR".to_owned(),
            },
            details: Stay {
                hotel: "h-1".to_owned(),
                nights: 2,
                note: "café ☕".to_owned(),
                nightly_minor: vec![6_000, -1, i64::MAX],
            },
        }
    }

    /// A token over `payload`, correctly signed by `signer`.
    fn sealed(signer: &OfferSigner, payload: &[u8]) -> String {
        let signed = format!("ofr_{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(&signer.key, signed.as_bytes()));
        format!("{signed}.{tag}")
    }

    /// Replaces the character at `index` of `token` with a different base64url character.
    fn tamper(token: &str, index: usize) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    }

    #[test]
    fn round_trip() {
        let signer = OfferSigner::generate();
        let offer = offer();
        let token = signer.sign(&offer);
        assert!(token.starts_with("ofr_"));
        assert_eq!(token.matches('.').count(), 1);
        assert!(!token.contains('='));
        assert_eq!(signer.verify(&token, NOW), Ok(offer));
    }

    #[test]
    fn same_secret_verifies_across_instances() {
        let offer = offer();
        let token = OfferSigner::new(b"shared secret").sign(&offer);
        assert_eq!(OfferSigner::new(b"shared secret").verify(&token, NOW), Ok(offer));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let signer = OfferSigner::generate();
        let token = signer.sign(&offer());
        for index in [PREFIX.len(), PREFIX.len() + 10, token.find('.').unwrap() - 1] {
            assert_eq!(
                signer.verify::<Stay>(&tamper(&token, index), NOW),
                Err(OfferError::BadSignature)
            );
        }
    }

    #[test]
    fn forged_payload_with_old_signature_is_rejected() {
        let signer = OfferSigner::generate();
        let token = signer.sign(&offer());
        let (_, tag) = token.split_once('.').unwrap();
        let mut cheaper = offer();
        cheaper.total.amount_minor = 1;
        let forged_payload = URL_SAFE_NO_PAD.encode(postcard::to_stdvec(&cheaper).unwrap());
        let forged = format!("ofr_{forged_payload}.{tag}");
        assert_eq!(signer.verify::<Stay>(&forged, NOW), Err(OfferError::BadSignature));
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let signer = OfferSigner::generate();
        let token = signer.sign(&offer());
        let index = token.find('.').unwrap() + 1;
        assert_eq!(
            signer.verify::<Stay>(&tamper(&token, index), NOW),
            Err(OfferError::BadSignature)
        );
        // 43 base64 characters of tag cut to 40: still valid base64 (30 bytes), but not the tag.
        let truncated = &token[..token.len() - 3];
        assert_eq!(signer.verify::<Stay>(truncated, NOW), Err(OfferError::BadSignature));
    }

    #[test]
    fn other_key_is_rejected() {
        let token = OfferSigner::new(b"one key").sign(&offer());
        assert_eq!(
            OfferSigner::new(b"another key").verify::<Stay>(&token, NOW),
            Err(OfferError::BadSignature)
        );
    }

    #[test]
    fn expires_at_expires_at() {
        let signer = OfferSigner::generate();
        let offer = offer();
        let token = signer.sign(&offer);
        let expiry = offer.expires_at_unix;
        assert_eq!(signer.verify(&token, expiry - 1), Ok(offer));
        assert_eq!(signer.verify::<Stay>(&token, expiry), Err(OfferError::Expired));
        assert_eq!(signer.verify::<Stay>(&token, expiry + 3600), Err(OfferError::Expired));
    }

    #[test]
    fn garbage_is_malformed() {
        let signer = OfferSigner::generate();
        let token = signer.sign(&offer());
        let (_, tag) = token.split_once('.').unwrap();
        let over_long = format!("ofr_{}.{tag}", "A".repeat(MAX_TOKEN_LEN));
        for garbage in [
            "",
            "ofr_",
            "ofr_abc",
            "ofr_.",
            "ofr_abc.",
            "ofr_.abc",
            "xyz.abc",
            "ofr_abc.!!!",
            "ofr_abc.a b",
            &token[PREFIX.len()..],
            &over_long,
        ] {
            assert_eq!(
                signer.verify::<Stay>(garbage, NOW),
                Err(OfferError::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn signed_garbage_is_malformed() {
        // A correctly signed payload that is not an offer (or not base64) is still malformed, not trusted.
        let signer = OfferSigner::new(b"secret");
        let offer = offer();
        let bytes = postcard::to_stdvec(&offer).unwrap();
        assert_eq!(signer.verify(&sealed(&signer, &bytes), NOW), Ok(offer));
        let mut trailing = bytes.clone();
        trailing.push(0);
        for payload in [
            &b"{\"not\":\"an offer\"}"[..],
            &bytes[..bytes.len() - 1],
            &trailing,
            &[],
        ] {
            assert_eq!(
                signer.verify::<Stay>(&sealed(&signer, payload), NOW),
                Err(OfferError::Malformed),
                "{payload:?}"
            );
        }
        let not_base64 = format!(
            "ofr_!!!.{}",
            URL_SAFE_NO_PAD.encode(hmac::sign(&signer.key, b"ofr_!!!"))
        );
        assert_eq!(signer.verify::<Stay>(&not_base64, NOW), Err(OfferError::Malformed));
    }

    #[test]
    fn tokens_are_compact() {
        // The point of the binary encoding: an offer costs little on a page of search results.
        let signer = OfferSigner::generate();
        let offer = offer();
        let json_token_len = 4 + serde_json::to_vec(&offer).unwrap().len().div_ceil(3) * 4 + 44;
        assert!(signer.sign(&offer).len() < json_token_len * 2 / 3);
    }

    #[test]
    fn debug_hides_the_key() {
        let rendered = format!("{:?}", OfferSigner::new(b"super secret"));
        assert_eq!(rendered, "OfferSigner { .. }");
    }

    #[test]
    fn error_messages_follow_the_word_offer() {
        assert_eq!(format!("offer {}", OfferError::Expired), "offer has expired");
    }
}
