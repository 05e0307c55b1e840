//! Secrets a service must read back, sealed before they reach its database.
//!
//! A password is hashed because nobody needs it back; a signing key, a TOTP secret or a webhook's signing secret
//! must be used again, so it is encrypted instead: AES-256-GCM under a key that lives outside the database
//! (configuration, or a key file beside an embedded deployment's data). A copy of the database (a dump, a backup,
//! a replica, a stolen disk) then holds no usable secret.
//!
//! Each sealed value names the key that sealed it (a 4-byte id derived from the key) and is bound to what it is
//! the secret of: the `context` (`identity.signing_key:<kid>`) is authenticated with it, so a value copied to another
//! row does not open there. A [`Sealer`] holds the current key, which seals, and previous keys, which only open:
//! rotating means configuring a new key with the old one as previous, and services seal again under the new key
//! what an older key sealed (see [`Opened::current`]).
//!
//! Stored forms: bytes are `PXS1 | key id (4) | nonce (12) | ciphertext and tag`; text is
//! `pxs1.<key id, hex>.<base64 of nonce, ciphertext and tag>`. A value in neither form was stored before sealing
//! existed and is returned as it is, marked not current, so the service seals it.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Bytes in a key.
pub const KEY_LEN: usize = 32;

const MAGIC: &[u8; 4] = b"PXS1";
const TEXT_PREFIX: &str = "pxs1.";
const KEY_ID_LEN: usize = 4;

/// Why a key could not be used or a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A configured key is not base64 of 32 bytes.
    #[error("invalid sealing key: {0}")]
    InvalidKey(String),
    /// The value was sealed with a key this process does not have (neither current nor previous).
    #[error("sealed with key {0}, which is not configured (set it as the current or a previous secrets key)")]
    UnknownKey(String),
    /// The value does not open under its key and context: altered, truncated or moved from another row.
    #[error("sealed value does not open: altered, truncated or not this row's")]
    Tampered,
}

/// A value read back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    pub value: T,
    /// Sealed with the current key. False for a value sealed with a previous key or stored before sealing
    /// existed: seal it again.
    pub current: bool,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: RandomizedNonceKey,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Key, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::InvalidKey(format!(
                "{} bytes, expected {KEY_LEN}",
                bytes.len()
            )));
        }
        let aead = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SealError::InvalidKey("rejected by AES-256-GCM".to_owned()))?;
        // The id tells keys apart; derived one-way under a label, so it says nothing about the key.
        let mut labelled = b"phoenix sealing key id\0".to_vec();
        labelled.extend_from_slice(bytes);
        let hash = digest(&SHA256, &labelled);
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&hash.as_ref()[..KEY_ID_LEN]);
        Ok(Key { id, aead })
    }
}

/// Seals and opens a service's stored secrets. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Keys>,
}

struct Keys {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.key_id())
            .field("previous", &self.keys.previous.len())
            .finish()
    }
}

impl Sealer {
    /// A sealer with `current` (which seals) and `previous` keys (which only open), each raw 32 bytes.
    pub fn new(current: &[u8], previous: &[&[u8]]) -> Result<Sealer, SealError> {
        Ok(Sealer {
            keys: Arc::new(Keys {
                current: Key::new(current)?,
                previous: previous.iter().map(|key| Key::new(key)).collect::<Result<_, _>>()?,
            }),
        })
    }

    /// A sealer from keys written as base64 (standard or URL-safe, padded or not), as configuration holds them.
    pub fn from_base64(current: &str, previous: &[&str]) -> Result<Sealer, SealError> {
        let current = decode_key(current)?;
        let previous = previous
            .iter()
            .map(|key| decode_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        Sealer::new(&current, &previous.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// A new random key, base64: what `secrets_key` takes.
    pub fn generate_key() -> Result<String, SealError> {
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealError::InvalidKey("the system's random generator failed".to_owned()))?;
        Ok(STANDARD.encode(key))
    }

    /// The current key's id, hex: what sealed values name.
    pub fn key_id(&self) -> String {
        hex(&self.keys.current.id)
    }

    /// The prefix of every text this sealer seals now. A stored text without it needs sealing again.
    pub fn current_text_prefix(&self) -> String {
        format!("{TEXT_PREFIX}{}.", self.key_id())
    }

    /// Seals `plaintext` as the secret of `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let (nonce, sealed) = self.seal_raw(context, plaintext);
        let mut out = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.keys.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`Sealer::seal`] stored for `context`; a value stored before sealing comes back as it is.
    pub fn open(&self, context: &str, stored: &[u8]) -> Result<Opened<Vec<u8>>, SealError> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok(Opened {
                value: stored.to_vec(),
                current: false,
            });
        };
        if rest.len() < KEY_ID_LEN {
            return Err(SealError::Tampered);
        }
        let (id, sealed) = rest.split_at(KEY_ID_LEN);
        self.open_raw(context, id, sealed)
    }

    /// Seals text as the secret of `context`, as text.
    pub fn seal_text(&self, context: &str, plaintext: &str) -> String {
        let (nonce, sealed) = self.seal_raw(context, plaintext.as_bytes());
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        format!("{}{}", self.current_text_prefix(), URL_SAFE_NO_PAD.encode(body))
    }

    /// Opens what [`Sealer::seal_text`] stored for `context`; a value stored before sealing comes back as it is.
    pub fn open_text(&self, context: &str, stored: &str) -> Result<Opened<String>, SealError> {
        let Some(rest) = stored.strip_prefix(TEXT_PREFIX) else {
            return Ok(Opened {
                value: stored.to_owned(),
                current: false,
            });
        };
        let (id, body) = rest.split_once('.').ok_or(SealError::Tampered)?;
        let id = unhex(id).ok_or(SealError::Tampered)?;
        let sealed = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Tampered)?;
        let opened = self.open_raw(context, &id, &sealed)?;
        Ok(Opened {
            value: String::from_utf8(opened.value).map_err(|_| SealError::Tampered)?,
            current: opened.current,
        })
    }

    /// What to store instead of `stored` (bytes) for `context`: `None` when the current key sealed it already.
    pub fn reseal(&self, context: &str, stored: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        let opened = self.open(context, stored)?;
        Ok((!opened.current).then(|| self.seal(context, &opened.value)))
    }

    /// What to store instead of `stored` (text) for `context`: `None` when the current key sealed it already.
    pub fn reseal_text(&self, context: &str, stored: &str) -> Result<Option<String>, SealError> {
        let opened = self.open_text(context, stored)?;
        Ok((!opened.current).then(|| self.seal_text(context, &opened.value)))
    }

    fn seal_raw(&self, context: &str, plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .keys
            .current
            .aead
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut in_out)
            // Sealing fails only for inputs of about 64 GiB; secrets are bytes to kilobytes.
            .expect("AES-256-GCM seals any secret-sized input");
        (*nonce.as_ref(), in_out)
    }

    fn open_raw(&self, context: &str, id: &[u8], sealed: &[u8]) -> Result<Opened<Vec<u8>>, SealError> {
        let keys = &self.keys;
        let (key, current) = if id == keys.current.id {
            (&keys.current, true)
        } else {
            let key = keys
                .previous
                .iter()
                .find(|key| key.id == id)
                .ok_or_else(|| SealError::UnknownKey(hex(id)))?;
            (key, false)
        };
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Tampered);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Tampered)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = key
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Tampered)?;
        Ok(Opened {
            value: plaintext.to_vec(),
            current,
        })
    }
}

fn decode_key(text: &str) -> Result<Vec<u8>, SealError> {
    let text = text.trim();
    let unpadded = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|_| SealError::InvalidKey("not base64".to_owned()))
}

/// A text column of sealed values, one per row of `table`, whose rows are keyed by a UUID `id` column. Names come
/// from code, never from a request.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
}

/// Why re-sealing a column stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Db(#[from] crate::Error),
    #[error(transparent)]
    Sealed(#[from] SealError),
}

/// Rows a re-seal reads per statement.
const RESEAL_PAGE: i64 = 500;

/// Seals again under the current key every value of `sealed` that is not (kept in clear before sealing existed,
/// or sealed with a previous key), a page at a time in id order, so a rotation over many rows never holds them all;
/// `context(id)` is the row's context (as it was sealed with). A row is rewritten only if unchanged since it was
/// read. Returns how many were rewritten; fails, naming the key, on a value sealed with a key `sealer` lacks.
pub async fn reseal_column(
    pool: &crate::Pool,
    sealer: &Sealer,
    sealed: SealedColumn,
    context: impl Fn(uuid::Uuid) -> String,
) -> Result<u64, ResealError> {
    let SealedColumn { table, column } = sealed;
    let select = format!(
        "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL AND substr({column}, 1, $1) <> $2 AND id > $3
         ORDER BY id LIMIT $4"
    );
    let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3");
    let prefix = sealer.current_text_prefix();
    let mut rewritten = 0;
    let mut after = uuid::Uuid::nil();
    loop {
        let rows: Vec<(uuid::Uuid, String)> = crate::dispatch!(pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(i32::try_from(prefix.len()).unwrap_or(i32::MAX))
                .bind(&prefix)
                .bind(after)
                .bind(RESEAL_PAGE)
                .fetch_all(conn)
                .await
        })
        .map_err(crate::Error::from)?;
        let full = rows.len() == usize::try_from(RESEAL_PAGE).unwrap_or(usize::MAX);
        for (id, stored) in rows {
            after = id;
            let Some(resealed) = sealer.reseal_text(&context(id), &stored)? else {
                continue;
            };
            rewritten += crate::dispatch!(pool, conn => {
                sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                    .bind(&resealed)
                    .bind(id)
                    .bind(&stored)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            })
            .map_err(crate::Error::from)?;
        }
        if !full {
            return Ok(rewritten);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&[byte; KEY_LEN], &[]).unwrap()
    }

    #[test]
    fn bytes_and_text_open_to_what_was_sealed_and_hide_it() {
        let sealer = sealer(1);
        let sealed = sealer.seal("identity.signing_key:k1", b"private key bytes");
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        let opened = sealer.open("identity.signing_key:k1", &sealed).unwrap();
        assert_eq!(opened.value, b"private key bytes");
        assert!(opened.current);

        let text = sealer.seal_text("identity.totp:u1", "JBSWY3DPEHPK3PXP");
        assert!(text.starts_with(&sealer.current_text_prefix()), "{text}");
        assert!(!text.contains("JBSWY3DP"));
        let opened = sealer.open_text("identity.totp:u1", &text).unwrap();
        assert_eq!(opened.value, "JBSWY3DPEHPK3PXP");
        assert!(opened.current);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let sealer = sealer(1);
        assert_ne!(sealer.seal_text("c", "same"), sealer.seal_text("c", "same"));
    }

    #[test]
    fn a_value_opens_only_for_its_own_context() {
        let sealer = sealer(1);
        let text = sealer.seal_text("identity.totp:alice", "secret");
        assert_eq!(
            sealer.open_text("identity.totp:mallory", &text),
            Err(SealError::Tampered)
        );
        let bytes = sealer.seal("a", b"secret");
        assert_eq!(sealer.open("b", &bytes), Err(SealError::Tampered));
    }

    #[test]
    fn an_altered_or_truncated_value_does_not_open() {
        let sealer = sealer(1);
        let mut bytes = sealer.seal("c", b"secret");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(sealer.open("c", &bytes), Err(SealError::Tampered));
        assert_eq!(sealer.open("c", &bytes[..10]), Err(SealError::Tampered));
        assert_eq!(sealer.open("c", b"PXS1ab"), Err(SealError::Tampered));

        let text = sealer.seal_text("c", "secret");
        assert_eq!(sealer.open_text("c", &text[..text.len() - 2]), Err(SealError::Tampered));
        assert_eq!(sealer.open_text("c", "pxs1.zz.abc"), Err(SealError::Tampered));
        assert_eq!(sealer.open_text("c", "pxs1.nodot"), Err(SealError::Tampered));
    }

    #[test]
    fn previous_keys_open_but_do_not_seal_and_unknown_keys_are_named() {
        let old = sealer(1);
        let sealed = old.seal_text("c", "secret");
        let rotated = Sealer::new(&[2; KEY_LEN], &[&[1; KEY_LEN]]).unwrap();
        let opened = rotated.open_text("c", &sealed).unwrap();
        assert_eq!(
            opened,
            Opened {
                value: "secret".to_owned(),
                current: false
            }
        );
        let resealed = rotated.reseal_text("c", &sealed).unwrap().expect("sealed again");
        assert!(resealed.starts_with(&rotated.current_text_prefix()));
        assert!(rotated.open_text("c", &resealed).unwrap().current);
        assert_eq!(rotated.reseal_text("c", &resealed), Ok(None));
        let bytes = rotated
            .reseal("c", &old.seal("c", b"x"))
            .unwrap()
            .expect("sealed again");
        assert_eq!(
            rotated.open("c", &bytes).unwrap(),
            Opened {
                value: b"x".to_vec(),
                current: true
            }
        );
        assert_eq!(rotated.reseal("c", &bytes), Ok(None));

        assert_eq!(
            sealer(3).open_text("c", &sealed),
            Err(SealError::UnknownKey(old.key_id()))
        );
        assert_eq!(
            sealer(3).open("c", &old.seal("c", b"x")),
            Err(SealError::UnknownKey(old.key_id()))
        );
    }

    #[test]
    fn values_stored_before_sealing_come_back_as_they_are_and_not_current() {
        let sealer = sealer(1);
        let opened = sealer.open_text("c", "whsec_abc").unwrap();
        assert_eq!(
            opened,
            Opened {
                value: "whsec_abc".to_owned(),
                current: false
            }
        );
        let opened = sealer.open("c", &[0x30, 0x51, 0x02]).unwrap();
        assert_eq!(
            opened,
            Opened {
                value: vec![0x30, 0x51, 0x02],
                current: false
            }
        );
    }

    #[test]
    fn keys_are_read_from_base64_and_bad_ones_are_refused() {
        let key = Sealer::generate_key().unwrap();
        assert_ne!(key, Sealer::generate_key().unwrap());
        let a = Sealer::from_base64(&key, &[]).unwrap();
        let b = Sealer::from_base64(&format!(" {key}\n"), &[]).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let url_safe = URL_SAFE_NO_PAD.encode(STANDARD.decode(&key).unwrap());
        assert_eq!(Sealer::from_base64(&url_safe, &[]).unwrap().key_id(), a.key_id());
        assert_eq!(a.key_id().len(), 8);

        assert!(matches!(
            Sealer::from_base64("not base64!", &[]),
            Err(SealError::InvalidKey(_))
        ));
        assert!(matches!(
            Sealer::from_base64(&STANDARD.encode([0u8; 16]), &[]),
            Err(SealError::InvalidKey(_))
        ));
        assert!(matches!(
            Sealer::from_base64(&key, &["short"]),
            Err(SealError::InvalidKey(_))
        ));
        assert!(!format!("{a:?}").contains(&key));
    }
}
