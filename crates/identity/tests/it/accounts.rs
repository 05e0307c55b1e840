use phoenix_api::{Credential, Principal, Role};
use phoenix_db::Pool;
use phoenix_identity::{Error, NewUser, OrganizationKind};
use uuid::Uuid;

use crate::{PASSWORD, ended_since, login, principal_of, refreshes, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        registration_normalizes_email_and_writes_event,
        duplicate_email_is_taken_even_when_racing,
        weak_password_and_bad_email_are_named,
        role_assignment_needs_existing_organization,
        admin_cannot_remove_own_admin_role,
        a_role_change_ends_the_users_sessions_but_an_admins_own,
        users_page_in_creation_order,
        user_search_takes_wildcards_as_plain_characters,
        names_with_invisible_format_characters_are_refused,
    ]
);

/// An administrator, `root@example.com`.
async fn root(identity: &phoenix_identity::Service) -> phoenix_identity::User {
    identity
        .create_user(NewUser {
            email: "root@example.com",
            password: PASSWORD,
            name: "Root",
            roles: &[Role::Admin],
            organization_id: None,
        })
        .await
        .unwrap()
}

fn admin_principal(user_id: Uuid) -> Principal {
    Principal {
        user_id,
        roles: [Role::Admin].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

async fn registration_normalizes_email_and_writes_event(pool: Pool) {
    let identity = service(pool.clone()).await;
    let user = identity
        .register("  Ann.Lee@Example.COM", PASSWORD, " Ann Lee ")
        .await
        .unwrap();
    assert_eq!(user.email, "ann.lee@example.com");
    assert_eq!(user.name, "Ann Lee");
    assert_eq!(user.roles, vec![Role::Customer]);
    assert!(user.password_hash.starts_with("$argon2id$"));

    let events = pool.unpublished_events(10).await.unwrap();
    let registered: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "identity.user_registered.v1")
        .collect();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].subject, user.id.to_string());
    assert!(
        !registered[0].data.0.to_string().contains("argon2"),
        "no secrets in events"
    );
}

async fn duplicate_email_is_taken_even_when_racing(pool: Pool) {
    let identity = service(pool.clone()).await;
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let identity = identity.clone();
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            tokio::spawn(async move { identity.register(email, PASSWORD, "Racer").await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => created += 1,
            Err(Error::EmailTaken) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(created, 1);
    let users = identity.list_users(Some("race@"), None, 10).await.unwrap();
    assert_eq!(users.len(), 1);
}

async fn weak_password_and_bad_email_are_named(pool: Pool) {
    let identity = service(pool.clone()).await;
    let Err(Error::Invalid(errors)) = identity.register("not-an-email", "short", "").await else {
        panic!("expected a validation error");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["email", "name", "password"]);
    // Addresses no mail could be sent to (a reset email would die undelivered) are refused at sign-up.
    for unreachable in ["a,b@example.com", "<script>@example.com", "ok@123.123.123.123"] {
        let Err(Error::Invalid(errors)) = identity.register(unreachable, PASSWORD, "Ann").await else {
            panic!("{unreachable:?} must be refused");
        };
        assert_eq!(errors[0].field, "email", "{unreachable:?}");
    }
    // An account whose address an earlier rule let in still signs in with it.
    let bob = identity.register("bob@example.com", PASSWORD, "Bob").await.unwrap();
    set_email_as_before(&pool, bob.id, "b,ob@example.com").await;
    let session = login(&identity, " B,ob@Example.com").await;
    assert_eq!(principal_of(&session).user_id, bob.id);

    let Err(Error::Invalid(errors)) = identity.register("bob@example.com", "bobbobbobbob1", "Bob").await else {
        panic!("a password built from the name must be refused");
    };
    assert_eq!(errors[0].field, "password");
}

async fn role_assignment_needs_existing_organization(pool: Pool) {
    let identity = service(pool.clone()).await;
    let admin = identity
        .create_user(NewUser {
            email: "admin@example.com",
            password: PASSWORD,
            name: "Admin",
            roles: &[Role::Admin],
            organization_id: None,
        })
        .await
        .unwrap();
    let agent = identity.register("agent@example.com", PASSWORD, "Agent").await.unwrap();
    let actor = admin_principal(admin.id);

    let no_org = identity
        .set_roles(&actor, agent.id, &[Role::Agent], None)
        .await
        .unwrap_err();
    assert!(
        matches!(no_org, Error::Invalid(ref e) if e[0].field == "roles"),
        "{no_org:?}"
    );
    let unknown = identity
        .set_roles(&actor, agent.id, &[Role::Agent], Some(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, Error::Invalid(ref e) if e[0].field == "organization_id"),
        "{unknown:?}"
    );

    let agency = identity
        .create_organization("Sunny Travel", OrganizationKind::Agency, Some(actor.user_id))
        .await
        .unwrap();
    let airline = identity
        .create_organization("Phoenix Air", OrganizationKind::Airline, None)
        .await
        .unwrap();
    // The event names the admin who created it (the audit log's actor); the command line names no one.
    let created: Vec<serde_json::Value> = pool
        .unpublished_events(1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "identity.organization_created.v1")
        .map(|e| e.data.0)
        .collect();
    let by: Vec<(&str, &serde_json::Value)> = created
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), &e["created_by"]))
        .collect();
    assert_eq!(
        by,
        [
            ("Sunny Travel", &serde_json::json!(actor.user_id)),
            ("Phoenix Air", &serde_json::Value::Null)
        ]
    );
    // A role belongs to its kind of organization: operators to suppliers, agents and partners to agencies.
    for (roles, org) in [
        (&[Role::Operator][..], agency.id),
        (&[Role::Agent][..], airline.id),
        (&[Role::Customer, Role::Partner][..], airline.id),
    ] {
        let refused = identity
            .set_roles(&actor, agent.id, roles, Some(org))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::Invalid(ref e) if e[0].field == "roles"),
            "{roles:?}: {refused:?}"
        );
    }
    identity
        .set_roles(&actor, agent.id, &[Role::Operator], Some(airline.id))
        .await
        .unwrap();
    let updated = identity
        .set_roles(&actor, agent.id, &[Role::Agent], Some(agency.id))
        .await
        .unwrap();
    assert_eq!(updated.roles, vec![Role::Agent]);
    assert_eq!(updated.organization_id, Some(agency.id));

    let taken = identity
        .create_organization("Sunny Travel", OrganizationKind::Airline, None)
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::OrganizationNameTaken));
    let missing = identity
        .set_roles(&actor, Uuid::now_v7(), &[Role::Customer], None)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::UserNotFound));
}

async fn admin_cannot_remove_own_admin_role(pool: Pool) {
    let identity = service(pool).await;
    let admin = root(&identity).await;
    let error = identity
        .set_roles(&admin_principal(admin.id), admin.id, &[Role::Support], None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CannotRemoveOwnAdmin));
}

/// Access tokens carry the roles they were issued with: a role change ends every session of the user (and lists
/// them for the gateway to refuse), except the one an admin changing their own roles asked from.
async fn a_role_change_ends_the_users_sessions_but_an_admins_own(pool: Pool) {
    let identity = service(pool).await;
    let admin = root(&identity).await;
    let sam = identity.register("sam@example.com", PASSWORD, "Sam").await.unwrap();
    let sessions = [
        login(&identity, "sam@example.com").await,
        login(&identity, "sam@example.com").await,
    ];
    let admins = [
        login(&identity, "root@example.com").await,
        login(&identity, "root@example.com").await,
    ];
    let before = identity.revocations(None, 100).await.unwrap().next;

    let as_admin = Principal {
        roles: [Role::Admin].into(),
        ..principal_of(&admins[0])
    };
    identity
        .set_roles(&as_admin, sam.id, &[Role::Support], None)
        .await
        .unwrap();
    for session in &sessions {
        assert!(!refreshes(&identity, session).await, "the user's sessions end");
    }
    let listed = ended_since(&identity, before).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(sessions.iter().all(|s| listed.contains(&s.token_id)));

    // An admin giving themselves another role keeps the session they asked from, not their others.
    identity
        .set_roles(&as_admin, admin.id, &[Role::Admin, Role::Support], None)
        .await
        .unwrap();
    assert!(refreshes(&identity, &admins[0]).await, "the caller's session");
    assert!(!refreshes(&identity, &admins[1]).await, "another session of theirs");
}

async fn users_page_in_creation_order(pool: Pool) {
    let identity = service(pool).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            identity
                .register(&format!("user{i}@example.com"), PASSWORD, "User")
                .await
                .unwrap()
                .id,
        );
    }
    let first = identity.list_users(None, None, 3).await.unwrap();
    let rest = identity.list_users(None, Some(first[2].id), 3).await.unwrap();
    let seen: Vec<Uuid> = first.iter().chain(rest.iter()).map(|u| u.id).collect();
    assert_eq!(seen, ids);
}

/// Gives an account an address that today's rules refuse but an earlier one let in.
async fn set_email_as_before(pool: &Pool, user_id: Uuid, email: &str) {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user_id)
            .execute(conn)
            .await
            .map(|_| ())
    })
    .unwrap();
}

async fn user_search_takes_wildcards_as_plain_characters(pool: Pool) {
    let identity = service(pool.clone()).await;
    for email in ["ann@example.com", "a_n@example.com", "100%off@example.com"] {
        identity.register(email, PASSWORD, "User").await.unwrap();
    }
    // A backslash is no longer taken in an address, but accounts from before may have one.
    let slash = identity.register("slash@example.com", PASSWORD, "User").await.unwrap();
    set_email_as_before(&pool, slash.id, "back\\slash@example.com").await;
    for (search, found) in [
        ("%", &["100%off@example.com"][..]),
        ("_", &["a_n@example.com"]),
        ("a_n", &["a_n@example.com"]),
        ("_@b.c", &[]),
        ("\\", &["back\\slash@example.com"]),
        ("ANN@", &["ann@example.com"]),
        (
            "@example.com",
            &[
                "ann@example.com",
                "a_n@example.com",
                "100%off@example.com",
                "back\\slash@example.com",
            ],
        ),
    ] {
        let users = identity.list_users(Some(search), None, 10).await.unwrap();
        let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, found, "{search}");
    }
}

async fn names_with_invisible_format_characters_are_refused(pool: Pool) {
    let identity = service(pool).await;
    let name = "\u{202e}evil\u{200b}";
    let refused = identity.register("eve@example.com", PASSWORD, name).await.unwrap_err();
    assert!(
        matches!(refused, Error::Invalid(ref e) if e.len() == 1 && e[0].field == "name"),
        "{refused:?}"
    );
    let refused = identity
        .create_organization(name, OrganizationKind::Agency, None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Invalid(ref e) if e.len() == 1 && e[0].field == "name"),
        "{refused:?}"
    );
    assert!(identity.list_users(None, None, 10).await.unwrap().is_empty());
    assert!(identity.list_organizations(None, 10).await.unwrap().is_empty());
}
