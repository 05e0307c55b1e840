//! Forged and broken access tokens are all 401. Tokens with bad claims are signed with the real signing key (read
//! from identity's database), so each test proves the claim check, not the signature check, rejects them; a
//! control token made the same way with good claims is accepted.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{TestApp, spawn};

struct Forge {
    kid: String,
    key: EncodingKey,
    public_key: Vec<u8>,
    user_id: String,
    token: String,
}

async fn forge(app: &TestApp) -> Forge {
    let (user_id, token) = app.customer("ann@example.com").await;
    let pool = app.identity.as_ref().unwrap().pool().clone();
    let (kid, pkcs8, public_key): (String, Vec<u8>, Vec<u8>) = phoenix_db::dispatch!(&pool, conn => {
        sqlx::query_as(
            "SELECT kid, private_pkcs8, public_key FROM signing_keys WHERE retired_at IS NULL",
        )
        .fetch_one(conn)
        .await
    })
    .unwrap();
    // Stored sealed: open it as identity does.
    let pkcs8 = app
        .sealer
        .open(&format!("identity.signing_keys.private_pkcs8:{kid}"), &pkcs8)
        .unwrap();
    assert!(pkcs8.current, "sealed under the app's key");
    Forge {
        kid,
        key: EncodingKey::from_ed_der(&pkcs8.value),
        public_key,
        user_id,
        token,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn good_claims(user_id: &str) -> Value {
    json!({
        "iss": "phoenix", "aud": "phoenix-api", "sub": user_id,
        "exp": now() + 600, "iat": now(), "nbf": now(),
        "jti": uuid::Uuid::now_v7(), "roles": ["customer"], "org": null,
    })
}

fn sign(forge: &Forge, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(forge.kid.clone());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &forge.key).unwrap()
}

fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn assert_rejected(app: &TestApp, token: &str, why: &str) {
    let reply = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(reply.status, 401, "{why}: {reply:?}");
    assert_eq!(reply.headers["content-type"], "application/problem+json", "{why}");
}

#[tokio::test]
async fn a_token_forged_with_the_real_key_and_good_claims_is_accepted() {
    let app = spawn().await;
    let forge = forge(&app).await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&forge.token)).await.status, 200);
    let control = sign(&forge, &good_claims(&forge.user_id));
    assert_eq!(app.get("/api/v1/auth/me", Some(&control)).await.status, 200);
}

#[tokio::test]
async fn alg_none_in_any_casing_is_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let claims = good_claims(&forge.user_id);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": forge.kid});
        assert_rejected(&app, &raw_token(&header, &claims, b""), alg).await;
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_rejected(&app, &unsigned, alg).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let claims = good_claims(&forge.user_id);
    let x = URL_SAFE_NO_PAD.encode(&forge.public_key);
    for secret in [forge.public_key.clone(), x.into_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(forge.kid.clone());
        header.typ = Some("at+jwt".to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_rejected(&app, &token, "HS256 with the public key").await;
    }
}

#[tokio::test]
async fn bad_claims_signed_with_the_real_key_are_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let good = good_claims(&forge.user_id);
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let cases = [
        ("expired", with("exp", json!(now() - 120))),
        ("missing exp", without("exp")),
        ("wrong aud", with("aud", json!("someone-else"))),
        ("wrong iss", with("iss", json!("https://evil.example.com"))),
        ("missing iss", without("iss")),
        ("missing aud", without("aud")),
        ("not yet valid", with("nbf", json!(now() + 3_600))),
        ("missing sub", without("sub")),
        ("missing jti", without("jti")),
    ];
    for (why, claims) in cases {
        assert_rejected(&app, &sign(&forge, &claims), why).await;
    }
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let parts: Vec<&str> = forge.token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["roles"] = json!(["admin"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_rejected(&app, &tampered, "roles raised to admin").await;
    let reply = app.get("/api/v1/admin/users", Some(&tampered)).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn unknown_kid_and_foreign_keys_are_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let foreign = EncodingKey::from_ed_der(pkcs8.as_ref());
    for kid in [Some("not-a-key".to_owned()), Some(forge.kid.clone()), None] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.clone();
        header.typ = Some("at+jwt".to_owned());
        let token = jsonwebtoken::encode(&header, &good_claims(&forge.user_id), &foreign).unwrap();
        assert_rejected(&app, &token, &format!("foreign key with kid {kid:?}")).await;
    }
}

#[tokio::test]
async fn garbage_and_wrong_schemes_are_rejected() {
    let app = spawn().await;
    let forge = forge(&app).await;
    assert_rejected(&app, "garbage", "not a JWT").await;
    assert_rejected(&app, "a.b.c", "not base64 JSON").await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(forge.kid.clone());
    header.typ = Some("JWT".to_owned());
    let wrong_typ = jsonwebtoken::encode(&header, &good_claims(&forge.user_id), &forge.key).unwrap();
    assert_rejected(&app, &wrong_typ, "typ is not at+jwt").await;
    let basic = app
        .http
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("authorization", format!("Basic {}", forge.token))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid_and_sign_new_ones() {
    let app = spawn().await;
    let forge = forge(&app).await;
    let identity = app.identity.as_ref().unwrap();
    let new_kid = identity.rotate_signing_key().await.unwrap();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&forge.token)).await.status,
        200,
        "old token still valid"
    );
    let (fresh, _) = app.login("ann@example.com").await;
    assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap(), new_kid);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&fresh)).await.status,
        200,
        "new kid fetched by the gateway"
    );
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), forge.kid.as_str()]);
    assert_eq!(jwks.body["keys"][0]["alg"], "EdDSA");
    assert!(jwks.body["keys"][0].get("d").is_none(), "no private key material");
}
