use reqwest::Method;
use serde_json::json;

use crate::common::{PASSWORD, spawn};

#[tokio::test]
async fn register_login_and_me() {
    let app = spawn().await;
    let user = app.register("Ann.Lee@Example.com").await;
    assert_eq!(user["email"], "ann.lee@example.com");
    assert_eq!(user["roles"], json!(["customer"]));
    assert!(user.get("password_hash").is_none());

    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann.lee@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 900);
    let token = login.body["access_token"].as_str().unwrap();

    let me = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], user["id"]);
    assert_eq!(me.body["mfa_enabled"], false);

    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "ANN.LEE@example.com", "password": PASSWORD, "name": "x"}),
    )
    .await
    .assert_problem(409, "email_taken");
    app.get("/api/v1/auth/me", None)
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_the_same_401() {
    let app = spawn().await;
    app.register("ann@example.com").await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "who@example.com", "password": PASSWORD}),
        )
        .await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann@example.com", "password": "not the password"}),
        )
        .await;
    unknown.assert_problem(401, "invalid_credentials");
    wrong.assert_problem(401, "invalid_credentials");
    assert_eq!(unknown.body["detail"], wrong.body["detail"]);
}

#[tokio::test]
async fn refresh_rotation_reuse_detection_and_logout() {
    let app = spawn().await;
    app.register("ann@example.com").await;
    let (_, first) = app.login("ann@example.com").await;

    let rotated = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": first}))
        .await;
    assert_eq!(rotated.status, 200);
    let second = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let me = app.get("/api/v1/auth/me", rotated.body["access_token"].as_str()).await;
    assert_eq!(me.status, 200);

    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": first}))
        .await
        .assert_problem(401, "refresh_token_reused");
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": second}))
        .await
        .assert_problem(401, "invalid_refresh_token");

    let (_, other) = app.login("ann@example.com").await;
    let logout = app
        .post("/api/v1/auth/logout", None, json!({"refresh_token": other}))
        .await;
    assert_eq!(logout.status, 204);
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": other}))
        .await
        .assert_problem(401, "invalid_refresh_token");
}

/// An access token is signed for 15 minutes, but its session can end sooner: signing out, or signing out
/// everywhere, makes the gateway refuse it (401 `session_ended`) although it was verified and cached before, while
/// the user's other sessions and other users carry on, and signing in again works.
#[tokio::test]
async fn ended_sessions_access_tokens_are_refused_before_they_expire() {
    let app = spawn().await;
    app.register("ann@example.com").await;
    app.register("bob@example.com").await;
    let (here, _) = app.login("ann@example.com").await;
    let (signed_out, signed_out_refresh) = app.login("ann@example.com").await;
    let (bob, _) = app.login("bob@example.com").await;
    for token in [&here, &signed_out, &bob] {
        assert_eq!(app.get("/api/v1/auth/me", Some(token)).await.status, 200);
    }

    let logout = app
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": signed_out_refresh}),
        )
        .await;
    assert_eq!(logout.status, 204);
    app.until_refused("/api/v1/auth/me", &signed_out, 401, "session_ended")
        .await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&here)).await.status,
        200,
        "another session"
    );

    let everywhere = app
        .call(Method::DELETE, "/api/v1/auth/sessions", Some(&here), None)
        .await;
    assert_eq!(everywhere.status, 204, "{everywhere:?}");
    app.until_refused("/api/v1/bookings", &here, 401, "session_ended").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&bob)).await.status, 200, "another user");
    let (again, _) = app.login("ann@example.com").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&again)).await.status, 200);
}

#[tokio::test]
async fn customers_cannot_reach_admin_routes_or_other_users() {
    let app = spawn().await;
    let (ann_id, ann) = app.customer("ann@example.com").await;
    let (bob_id, bob) = app.customer("bob@example.com").await;

    for (method, path, body) in [
        (Method::GET, "/api/v1/admin/users".to_owned(), None),
        (
            Method::PUT,
            format!("/api/v1/admin/users/{bob_id}/roles"),
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::POST,
            "/api/v1/admin/organizations".to_owned(),
            Some(json!({"name": "X", "kind": "agency"})),
        ),
        (Method::POST, "/api/v1/api-keys".to_owned(), Some(json!({"name": "k"}))),
    ] {
        app.call(method, &path, Some(&ann), body)
            .await
            .assert_problem(403, "forbidden");
    }

    assert_eq!(
        app.get(&format!("/api/v1/users/{ann_id}"), Some(&ann)).await.status,
        200
    );
    app.get(&format!("/api/v1/users/{bob_id}"), Some(&ann))
        .await
        .assert_problem(404, "not_found");
    let missing = app
        .get(&format!("/api/v1/users/{}", uuid::Uuid::now_v7()), Some(&ann))
        .await;
    missing.assert_problem(404, "not_found");
    assert_eq!(
        app.get(&format!("/api/v1/users/{ann_id}"), Some(&bob)).await.status,
        404
    );

    let admin = app.admin().await;
    assert_eq!(
        app.get(&format!("/api/v1/users/{bob_id}"), Some(&admin)).await.status,
        200
    );
}

/// Access tokens carry roles, so a role change ends the user's sessions: the tokens issued with the old roles are
/// refused (a demoted admin cannot use one to give the role back), the refresh tokens too, and signing in again
/// gets the new roles. An API key acts with its owner's current roles at once.
#[tokio::test]
async fn role_changes_end_the_users_sessions_and_the_next_sign_in_has_the_new_roles() {
    let app = spawn().await;
    let admin = app.admin().await;
    let user = app.register("sam@example.com").await;
    let user_id = user["id"].as_str().unwrap();
    let set_roles = |token: String, roles: serde_json::Value| {
        let app = &app;
        let path = format!("/api/v1/admin/users/{user_id}/roles");
        async move {
            app.call(Method::PUT, &path, Some(&token), Some(json!({ "roles": roles })))
                .await
        }
    };
    let promoted = set_roles(admin.clone(), json!(["admin"])).await;
    assert_eq!(promoted.status, 200, "{promoted:?}");
    let (as_admin, refresh) = app.login("sam@example.com").await;
    let key = app
        .post("/api/v1/api-keys", Some(&as_admin), json!({"name": "scripts"}))
        .await;
    assert_eq!(key.status, 201, "{key:?}");
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/admin/users", Some(&key)).await.status, 200);

    let demoted = set_roles(admin.clone(), json!(["support"])).await;
    assert_eq!(demoted.status, 200, "{demoted:?}");
    assert_eq!(demoted.body["roles"], json!(["support"]));
    // The admin token is refused, so it cannot restore the role; the refresh token is spent.
    app.until_refused("/api/v1/admin/users", &as_admin, 401, "session_ended")
        .await;
    set_roles(as_admin.clone(), json!(["admin"]))
        .await
        .assert_problem(401, "session_ended");
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    // The key stops working at once: support does not hold API keys, so it neither assigns roles nor reads what
    // support reads.
    set_roles(key.clone(), json!(["admin"]))
        .await
        .assert_problem(401, "invalid_api_key");
    app.get("/api/v1/admin/users", Some(&key))
        .await
        .assert_problem(401, "invalid_api_key");

    let (as_support, _) = app.login("sam@example.com").await;
    let users = app.get("/api/v1/admin/users", Some(&as_support)).await;
    assert_eq!(users.status, 200, "{users:?}");
    assert!(users.body["items"].as_array().unwrap().len() >= 2);
    set_roles(as_support, json!(["admin"]))
        .await
        .assert_problem(403, "forbidden");
    let me = app.get("/api/v1/auth/me", Some(&admin)).await;
    assert_eq!(me.status, 200, "the admin who changed the roles keeps their session");
}

#[tokio::test]
async fn organizations_and_memberships() {
    let app = spawn().await;
    let admin = app.admin().await;
    let org = app
        .post(
            "/api/v1/admin/organizations",
            Some(&admin),
            json!({"name": "Skyways", "kind": "airline"}),
        )
        .await;
    assert_eq!(org.status, 201, "{org:?}");
    let org_id = org.body["id"].as_str().unwrap();
    app.post(
        "/api/v1/admin/organizations",
        Some(&admin),
        json!({"name": "Skyways", "kind": "agency"}),
    )
    .await
    .assert_problem(409, "organization_name_taken");
    app.post(
        "/api/v1/admin/organizations",
        Some(&admin),
        json!({"name": "Z", "kind": "spaceline"}),
    )
    .await
    .assert_problem(422, "invalid_fields");

    let user = app.register("op@example.com").await;
    let path = format!("/api/v1/admin/users/{}/roles", user["id"].as_str().unwrap());
    let no_org = app
        .call(Method::PUT, &path, Some(&admin), Some(json!({"roles": ["operator"]})))
        .await;
    no_org.assert_problem(422, "invalid_fields");
    assert_eq!(no_org.body["errors"][0]["field"], "roles");
    let joined = app
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"roles": ["operator"], "organization_id": org_id})),
        )
        .await;
    assert_eq!(joined.status, 200);
    assert_eq!(joined.body["organization_id"], org_id);

    let (token, _) = app.login("op@example.com").await;
    let me = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.body["roles"], json!(["operator"]));
    let listed = app
        .get(&format!("/api/v1/admin/organizations/{org_id}"), Some(&admin))
        .await;
    assert_eq!(listed.body["kind"], "airline");
}

#[tokio::test]
async fn api_keys_work_as_bearer_credentials_until_revoked() {
    let app = spawn().await;
    let admin = app.admin().await;
    let org = app
        .post(
            "/api/v1/admin/organizations",
            Some(&admin),
            json!({"name": "Partner Co", "kind": "agency"}),
        )
        .await;
    let user = app.register("partner@example.com").await;
    let path = format!("/api/v1/admin/users/{}/roles", user["id"].as_str().unwrap());
    app.call(
        Method::PUT,
        &path,
        Some(&admin),
        Some(json!({"roles": ["partner"], "organization_id": org.body["id"]})),
    )
    .await;
    let (token, _) = app.login("partner@example.com").await;

    let created = app
        .post("/api/v1/api-keys", Some(&token), json!({"name": "booking engine"}))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("phx_"));

    let me = app.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["email"], "partner@example.com");

    let listed = app.get("/api/v1/api-keys", Some(&token)).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(
        listed.body[0].get("key").is_none(),
        "a listed key never shows its secret"
    );

    // Anyone signed in lists and revokes their own keys (none, for a customer, who may not make one); someone
    // else's key does not exist for them.
    let (_, stranger) = app.customer("stranger@example.com").await;
    let none = app.get("/api/v1/api-keys", Some(&stranger)).await;
    assert_eq!(
        (none.status.as_u16(), none.body.as_array().map(Vec::len)),
        (200, Some(0))
    );
    app.post("/api/v1/api-keys", Some(&stranger), json!({"name": "mine"}))
        .await
        .assert_problem(403, "forbidden");
    app.call(
        Method::DELETE,
        &format!("/api/v1/api-keys/{key_id}"),
        Some(&stranger),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    app.get("/api/v1/auth/me", Some(&key))
        .await
        .assert_problem(401, "invalid_api_key");
}

#[tokio::test]
async fn a_page_size_out_of_range_is_refused_not_bent() {
    let app = spawn().await;
    let admin = app.admin().await;
    for list in ["/api/v1/admin/users", "/api/v1/admin/organizations", "/api/v1/bookings"] {
        for limit in ["0", "101", "4294967295"] {
            let answer = app.get(&format!("{list}?limit={limit}"), Some(&admin)).await;
            answer.assert_problem(422, "invalid_fields");
            assert_eq!(
                answer.body["errors"][0]["field"], "limit",
                "{list}?limit={limit}: {answer:?}"
            );
        }
        let largest = app.get(&format!("{list}?limit=100"), Some(&admin)).await;
        assert_eq!(largest.status, 200, "{list}: {largest:?}");
    }
}
