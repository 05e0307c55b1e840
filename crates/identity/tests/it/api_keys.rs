use phoenix_api::{Credential, Principal, Role};
use phoenix_db::{Pool, Timestamp};
use phoenix_identity::{Error, NewUser, OrganizationKind, Service};

use crate::{PASSWORD, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        key_authenticates_as_its_owner_until_revoked,
        tampered_or_expired_keys_fail,
        only_the_owner_or_an_admin_revokes,
        revoking_a_revoked_key_succeeds_without_another_event,
    ]
);

async fn partner(identity: &Service, email: &str) -> Principal {
    let org = identity
        .create_organization(&format!("Org of {email}"), OrganizationKind::Agency)
        .await
        .unwrap();
    let user = identity
        .create_user(NewUser {
            email,
            password: PASSWORD,
            name: "Partner",
            roles: &[Role::Partner],
            organization_id: Some(org.id),
        })
        .await
        .unwrap();
    Principal {
        user_id: user.id,
        roles: user.roles.as_slice().into(),
        organization_id: user.organization_id,
        credential: Credential::AccessToken {
            token_id: uuid::Uuid::now_v7(),
        },
    }
}

async fn key_authenticates_as_its_owner_until_revoked(pool: Pool) {
    let identity = service(pool.clone()).await;
    let owner = partner(&identity, "p@example.com").await;
    let (key, secret) = identity.create_api_key(&owner, "booking engine", None).await.unwrap();
    assert!(secret.starts_with("phx_"));
    assert!(secret.starts_with(&key.prefix));
    assert_ne!(key.secret_hash, secret.as_bytes(), "only a digest is stored");

    let principal = identity.authenticate_api_key(&secret).await.unwrap();
    assert_eq!(principal.user_id, owner.user_id);
    assert_eq!(principal.roles, [Role::Partner].into());
    assert_eq!(principal.organization_id, owner.organization_id);
    assert_eq!(principal.credential, Credential::ApiKey { key_id: key.id });

    let listed = identity.api_keys(&owner).await.unwrap();
    assert_eq!(listed.len(), 1);
    // Keys made one after another tell themselves apart by their listed prefix, and list oldest first.
    let mut made = vec![key.id];
    for n in 0..5 {
        made.push(
            identity
                .create_api_key(&owner, &format!("engine {n}"), None)
                .await
                .unwrap()
                .0
                .id,
        );
    }
    let listed = identity.api_keys(&owner).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), made);
    let prefixes: std::collections::HashSet<&str> = listed.iter().map(|k| k.prefix.as_str()).collect();
    assert_eq!(prefixes.len(), listed.len(), "{prefixes:?}");
    for extra in &listed[1..] {
        identity.revoke_api_key(&owner, extra.id).await.unwrap();
    }
    identity.revoke_api_key(&owner, key.id).await.unwrap();
    assert!(matches!(
        identity.authenticate_api_key(&secret).await.unwrap_err(),
        Error::InvalidApiKey
    ));
    let events = pool.unpublished_events(100).await.unwrap();
    assert!(events.iter().any(|e| e.event_type == "identity.api_key_revoked.v1"));
    assert!(
        !events.iter().any(|e| e.data.0.to_string().contains(&secret)),
        "no key in events"
    );
}

async fn tampered_or_expired_keys_fail(pool: Pool) {
    let identity = service(pool).await;
    let owner = partner(&identity, "p@example.com").await;
    let (_, secret) = identity.create_api_key(&owner, "k", None).await.unwrap();
    let mut tampered = secret.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        tampered.as_str(),
        "phx_",
        "phx_nothing_here",
        &secret[..secret.len() - 1],
    ] {
        assert!(
            matches!(
                identity.authenticate_api_key(bad).await.unwrap_err(),
                Error::InvalidApiKey
            ),
            "{bad}"
        );
    }
    let past = identity
        .create_api_key(&owner, "k", Some(Timestamp::now() - time::Duration::seconds(1)))
        .await
        .unwrap_err();
    assert!(matches!(past, Error::Invalid(_)));
}

async fn only_the_owner_or_an_admin_revokes(pool: Pool) {
    let identity = service(pool).await;
    let owner = partner(&identity, "p@example.com").await;
    let stranger = partner(&identity, "q@example.com").await;
    let (key, secret) = identity.create_api_key(&owner, "k", None).await.unwrap();
    assert!(matches!(
        identity.revoke_api_key(&stranger, key.id).await.unwrap_err(),
        Error::ApiKeyNotFound
    ));
    identity.authenticate_api_key(&secret).await.unwrap();
    let admin = Principal {
        roles: [Role::Admin].into(),
        ..stranger
    };
    identity.revoke_api_key(&admin, key.id).await.unwrap();
    assert!(identity.authenticate_api_key(&secret).await.is_err());
}

async fn revoking_a_revoked_key_succeeds_without_another_event(pool: Pool) {
    let identity = service(pool.clone()).await;
    let owner = partner(&identity, "p@example.com").await;
    let (key, _) = identity.create_api_key(&owner, "k", None).await.unwrap();
    identity.revoke_api_key(&owner, key.id).await.unwrap();
    identity.revoke_api_key(&owner, key.id).await.unwrap();
    let admin = Principal {
        roles: [Role::Admin].into(),
        ..partner(&identity, "a@example.com").await
    };
    identity.revoke_api_key(&admin, key.id).await.unwrap();

    let events = pool.unpublished_events(100).await.unwrap();
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "identity.api_key_revoked.v1")
        .map(|e| &e.data.0)
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["revoked_by"], owner.user_id.to_string());
}
