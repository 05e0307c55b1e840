use phoenix_api::{Credential, Principal, Role};
use phoenix_db::{Pool, Timestamp};
use phoenix_identity::{Error, NewUser, OrganizationKind, Service};

use crate::{PASSWORD, serve_as, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        key_authenticates_as_its_owner_until_revoked,
        tampered_or_expired_keys_fail,
        only_the_owner_or_an_admin_revokes,
        revoking_a_revoked_key_succeeds_without_another_event,
        an_api_key_cannot_create_keys,
        live_keys_are_capped_and_every_one_is_listed,
        an_api_key_revokes_itself_but_no_other_key,
        a_key_works_only_while_its_owner_holds_a_key_role,
    ]
);

async fn partner(identity: &Service, email: &str) -> Principal {
    let org = identity
        .create_organization(&format!("Org of {email}"), OrganizationKind::Agency, None)
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
    // Keys are made from a signed-in session that is still open.
    let session = crate::login(identity, email).await;
    Principal {
        user_id: user.id,
        roles: user.roles.as_slice().into(),
        organization_id: user.organization_id,
        credential: Credential::AccessToken {
            token_id: session.token_id,
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

async fn an_api_key_cannot_create_keys(pool: Pool) {
    let identity = service(pool.clone()).await;
    let owner = partner(&identity, "p@example.com").await;
    let (_, secret) = identity.create_api_key(&owner, "leaked", None).await.unwrap();
    let by_key = identity.authenticate_api_key(&secret).await.unwrap();
    let refused = identity.create_api_key(&by_key, "backdoor", None).await.unwrap_err();
    assert!(matches!(refused, Error::SessionRequired), "{refused:?}");
    let on_behalf = Principal {
        credential: Credential::OnBehalf { of: owner.user_id },
        ..owner
    };
    let refused = identity.create_api_key(&on_behalf, "backdoor", None).await.unwrap_err();
    assert!(matches!(refused, Error::SessionRequired), "{refused:?}");

    let url = serve_as(&identity, by_key, "10.0.0.1".parse().unwrap()).await;
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/v1/api-keys"))
        .json(&serde_json::json!({ "name": "backdoor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "session_required", "{problem}");
    assert_eq!(
        identity.api_keys(&owner).await.unwrap().len(),
        1,
        "only the first key exists"
    );
}

async fn live_keys_are_capped_and_every_one_is_listed(pool: Pool) {
    let identity = service(pool).await;
    let owner = partner(&identity, "p@example.com").await;
    let max = 100;
    for n in 0..max - 2 {
        identity.create_api_key(&owner, &format!("k{n}"), None).await.unwrap();
    }
    // Racing creations never pass the cap: two of ten fit.
    let racers: Vec<_> = (0..10)
        .map(|n| {
            let identity = identity.clone();
            tokio::spawn(async move { identity.create_api_key(&owner, &format!("racer {n}"), None).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => created += 1,
            Err(Error::TooManyApiKeys { max: 100 }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 2);
    let listed = identity.api_keys(&owner).await.unwrap();
    assert_eq!(listed.len(), max);

    // A revoked key frees its place, and stays listed after the live ones it was made before.
    identity.revoke_api_key(&owner, listed[0].id).await.unwrap();
    let (newest, _) = identity.create_api_key(&owner, "after revoking", None).await.unwrap();
    let listed = identity.api_keys(&owner).await.unwrap();
    assert_eq!(listed.len(), max + 1);
    assert!(listed[0].revoked_at.is_some());
    assert_eq!(listed[max].id, newest.id);
    assert!(listed[1..].iter().all(|k| k.revoked_at.is_none()));
    assert!(matches!(
        identity.create_api_key(&owner, "one too many", None).await.unwrap_err(),
        Error::TooManyApiKeys { max: 100 }
    ));
}

async fn an_api_key_revokes_itself_but_no_other_key(pool: Pool) {
    let identity = service(pool.clone()).await;
    let owner = partner(&identity, "p@example.com").await;
    let (first, first_secret) = identity.create_api_key(&owner, "first", None).await.unwrap();
    let (second, second_secret) = identity.create_api_key(&owner, "second", None).await.unwrap();
    let by_first = identity.authenticate_api_key(&first_secret).await.unwrap();

    let refused = identity.revoke_api_key(&by_first, second.id).await.unwrap_err();
    assert!(matches!(refused, Error::SessionRequired), "{refused:?}");
    // The same answer for an id that does not exist: a key learns nothing about other ids.
    let unknown = identity
        .revoke_api_key(&by_first, uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(unknown, Error::SessionRequired), "{unknown:?}");
    let url = serve_as(&identity, by_first, "10.0.0.1".parse().unwrap()).await;
    let http = reqwest::Client::new();
    let answer = http
        .delete(format!("{url}/api/v1/api-keys/{}", second.id))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "session_required", "{problem}");
    identity.authenticate_api_key(&second_secret).await.unwrap();

    // An admin's key is no different: another key (even someone else's) needs a session.
    let admin = Principal {
        roles: [Role::Admin].into(),
        credential: Credential::ApiKey { key_id: first.id },
        ..owner
    };
    assert!(matches!(
        identity.revoke_api_key(&admin, second.id).await.unwrap_err(),
        Error::SessionRequired
    ));

    let answer = http
        .delete(format!("{url}/api/v1/api-keys/{}", first.id))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    assert!(matches!(
        identity.authenticate_api_key(&first_secret).await.unwrap_err(),
        Error::InvalidApiKey
    ));
    identity.authenticate_api_key(&second_secret).await.unwrap();
    let revoked: Vec<_> = pool
        .unpublished_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "identity.api_key_revoked.v1")
        .map(|e| e.data.0)
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["key_id"], first.id.to_string());
}

/// A partner re-roled as support (or customer) must not find their old keys reading what support reads, nor keep a
/// credential their new role could not make: the keys stop working, and work again if the role comes back. The
/// owner, signed in again, still lists and revokes them.
async fn a_key_works_only_while_its_owner_holds_a_key_role(pool: Pool) {
    let identity = service(pool.clone()).await;
    let owner = partner(&identity, "p@example.com").await;
    let organization_id = owner.organization_id;
    let (first, first_secret) = identity.create_api_key(&owner, "engine", None).await.unwrap();
    let (_, second_secret) = identity.create_api_key(&owner, "reports", None).await.unwrap();
    let admin = crate::signed_in_admin(&identity).await;
    for roles in [&[Role::Support][..], &[Role::Customer][..]] {
        identity.set_roles(&admin, owner.user_id, roles, None).await.unwrap();
        for secret in [&first_secret, &second_secret] {
            assert!(
                matches!(identity.authenticate_api_key(secret).await, Err(Error::InvalidApiKey)),
                "{roles:?}"
            );
        }
    }
    // Signed in again (the change ended their sessions), the owner sees both keys and revokes one.
    let session = crate::login(&identity, "p@example.com").await;
    let demoted = Principal {
        user_id: owner.user_id,
        roles: [Role::Customer].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: session.token_id,
        },
    };
    assert_eq!(identity.api_keys(&demoted).await.unwrap().len(), 2);
    identity.revoke_api_key(&demoted, first.id).await.unwrap();
    // A partner again: the key left works, the revoked one does not.
    identity
        .set_roles(&admin, owner.user_id, &[Role::Partner], organization_id)
        .await
        .unwrap();
    let principal = identity.authenticate_api_key(&second_secret).await.unwrap();
    assert_eq!(principal.roles, [Role::Partner].into());
    assert!(matches!(
        identity.authenticate_api_key(&first_secret).await,
        Err(Error::InvalidApiKey)
    ));
}
