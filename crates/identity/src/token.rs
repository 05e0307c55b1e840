//! Access tokens: EdDSA (Ed25519) JWTs signed with a key from the keyring, and the JWKS that publishes the keys.
//!
//! Keys live in identity's database with a `kid` (the key's RFC 7638 thumbprint). The newest unretired key signs;
//! rotation retires it, and a retired key stays published until every token it signed has expired, so rotating
//! never logs anyone out. Every process reloads the keyring at most [`Keyring::RELOAD_AFTER`] after a rotation made
//! by another process (`phoenix keys rotate`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use phoenix_api::Role;
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::Error;
use crate::store::{SigningKeyRow, Store};

/// The claims of a Phoenix access token. The gateway requires every one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: Uuid,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub org: Option<Uuid>,
}

/// The `typ` header of access tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";

/// Where token claims come from and how long tokens live.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

struct Loaded {
    signing: Option<(String, EncodingKey)>,
    published: JwkSet,
    at: Instant,
}

/// The signing keys, cached from the database.
#[derive(Clone)]
pub struct Keyring {
    store: Store,
    settings: Arc<TokenSettings>,
    loaded: Arc<RwLock<Loaded>>,
}

impl Keyring {
    pub const RELOAD_AFTER: Duration = Duration::from_secs(10);

    pub async fn load(store: Store, settings: TokenSettings) -> Result<Keyring, Error> {
        let keyring = Keyring {
            store,
            settings: Arc::new(settings),
            loaded: Arc::new(RwLock::new(Loaded {
                signing: None,
                published: JwkSet { keys: Vec::new() },
                at: Instant::now(),
            })),
        };
        if keyring.store.active_signing_key().await?.is_none() {
            keyring.rotate().await?;
        }
        keyring.reload().await?;
        Ok(keyring)
    }

    /// Creates a new signing key and retires the current one (still published until its tokens expire).
    pub async fn rotate(&self) -> Result<String, Error> {
        let key = generate_key()?;
        let kid = key.kid.clone();
        self.store.insert_signing_key(&key).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self) -> Result<(), Error> {
        let now = Timestamp::now();
        // A key retired longer ago than a token lives (plus clock leeway) has no valid tokens left.
        let horizon =
            now - time::Duration::try_from(self.settings.access_ttl + Duration::from_secs(60)).unwrap_or_default();
        let rows = self.store.published_signing_keys(horizon).await?;
        let signing = rows
            .iter()
            .find(|row| row.retired_at.is_none())
            .map(|row| (row.kid.clone(), EncodingKey::from_ed_der(&row.private_pkcs8)));
        let published = JwkSet {
            keys: rows.iter().map(|row| public_jwk(&row.kid, &row.public_key)).collect(),
        };
        *self.loaded.write().await = Loaded {
            signing,
            published,
            at: Instant::now(),
        };
        Ok(())
    }

    async fn reload_if_stale(&self) -> Result<(), Error> {
        let stale = self.loaded.read().await.at.elapsed() >= Self::RELOAD_AFTER;
        if stale {
            self.reload().await?;
        }
        Ok(())
    }

    /// The public keys that verify tokens now: the signing key and retired keys whose tokens may still be live.
    pub async fn jwks(&self, fresh: bool) -> Result<JwkSet, Error> {
        if fresh {
            self.reload().await?;
        } else {
            self.reload_if_stale().await?;
        }
        Ok(self.loaded.read().await.published.clone())
    }

    /// Signs an access token for `sub` with `roles` and `org`; returns the token and its claims.
    pub async fn issue(&self, sub: Uuid, roles: Vec<Role>, org: Option<Uuid>) -> Result<(String, AccessClaims), Error> {
        self.reload_if_stale().await?;
        let now = Timestamp::now().unix_secs();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub,
            exp: now + self.settings.access_ttl.as_secs() as i64,
            iat: now,
            nbf: now,
            jti: Uuid::now_v7(),
            roles,
            org,
        };
        let loaded = self.loaded.read().await;
        let (kid, key) = loaded.signing.as_ref().ok_or(Error::NoSigningKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        header.typ = Some(TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).map_err(Error::Sign)?;
        Ok((token, claims))
    }
}

fn generate_key() -> Result<SigningKeyRow, Error> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| Error::KeyGeneration)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| Error::KeyGeneration)?;
    let public_key = pair.public_key().as_ref().to_vec();
    let kid = public_jwk("", &public_key)
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(Error::Sign)?;
    Ok(SigningKeyRow {
        kid,
        private_pkcs8: pkcs8.as_ref().to_vec(),
        public_key,
        created_at: Timestamp::now(),
        retired_at: None,
    })
}

fn public_jwk(kid: &str, public_key: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: (!kid.is_empty()).then(|| kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}
