//! Identity as other services reach it: the client in process and over the internal HTTP route agree, and the
//! route answers only callers with the internal token.

use std::time::Duration;

use phoenix_api::{Credential, Principal, Role, remote};
use phoenix_db::Pool;
use phoenix_identity::{Client, Membership, NewUser, OrganizationKind, Service};
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        membership_is_the_same_in_process_and_over_http,
        revocations_are_the_same_in_process_and_over_http
    ]
);

const TOKEN: &str = "an internal token for tests";

/// Identity's internal routes on a port of their own, as an identity process serves them; its URL.
async fn serve(identity: Service) -> String {
    let router = phoenix_identity::internal_router(identity).layer(phoenix_api::internal::Layer::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn membership_is_the_same_in_process_and_over_http(pool: Pool) {
    let identity = service(pool).await;
    let agency = identity
        .create_organization("Sunny Travel", OrganizationKind::Agency, None)
        .await
        .unwrap();
    let public = identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let staff = identity
        .create_user(NewUser {
            email: "desk@example.com",
            password: PASSWORD,
            name: "Desk",
            roles: &[Role::Agent],
            organization_id: Some(agency.id),
        })
        .await
        .unwrap();
    let url = serve(identity.clone()).await;
    let local = Client::Local(identity.clone());
    let remote = Client::Remote(remote::Client::new(&url, TOKEN, Duration::from_secs(10)).unwrap());
    for client in [&local, &remote] {
        assert_eq!(
            client.membership(public.id).await.unwrap(),
            Some(Membership {
                user_id: public.id,
                organization_id: None,
            })
        );
        assert_eq!(
            client.membership(staff.id).await.unwrap(),
            Some(Membership {
                user_id: staff.id,
                organization_id: Some(agency.id),
            })
        );
        assert_eq!(client.membership(Uuid::now_v7()).await.unwrap(), None);
    }

    // A change made through this process shows at once, although memberships are served from memory.
    let admin = Principal {
        user_id: Uuid::now_v7(),
        roles: [Role::Admin].into(),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    };
    identity
        .set_roles(&admin, public.id, &[Role::Agent], Some(agency.id))
        .await
        .unwrap();
    let moved = local.membership(public.id).await.unwrap().unwrap();
    assert_eq!(moved.organization_id, Some(agency.id));

    // Without the internal token the route is refused, and the client says so rather than "no such user".
    let stranger = Client::Remote(remote::Client::new(&url, "not the token", Duration::from_secs(10)).unwrap());
    let refused = stranger.membership(staff.id).await.unwrap_err();
    assert_eq!(refused.status.as_u16(), 401);
}

/// The gateway reads ended sessions through this client, page by page: over HTTP the pages and their cursors are
/// the ones the service gives in process.
async fn revocations_are_the_same_in_process_and_over_http(pool: Pool) {
    let identity = service(pool).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let mut ended = Vec::new();
    for _ in 0..3 {
        let session = login(&identity, "ann@example.com").await;
        identity.logout(&session.refresh_token).await.unwrap();
        ended.push(session.token_id);
    }
    let url = serve(identity.clone()).await;
    let local = Client::Local(identity.clone());
    let remote = Client::Remote(remote::Client::new(&url, TOKEN, Duration::from_secs(10)).unwrap());
    let first = local.revocations(None, 2).await.unwrap();
    assert_eq!(remote.revocations(None, 2).await.unwrap(), first);
    assert_eq!(first.tokens.len(), 2);
    assert!(!first.complete);
    let rest = remote.revocations(Some(first.next), 2).await.unwrap();
    assert_eq!(local.revocations(Some(first.next), 2).await.unwrap(), rest);
    assert!(rest.complete);
    let read: Vec<Uuid> = first.tokens.iter().chain(&rest.tokens).map(|t| t.token_id).collect();
    assert_eq!(read, ended, "in the order the sessions ended");
    assert!(
        local.revocations_changed().is_some(),
        "in process, the gateway is told at once"
    );
    assert!(remote.revocations_changed().is_none());
}
