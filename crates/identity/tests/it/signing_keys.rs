use phoenix_db::Pool;

use crate::{PASSWORD, login, service};

phoenix_db::contract_suite!(
    phoenix_identity::migrations(),
    [
        first_start_creates_one_key_and_restart_keeps_it,
        rotation_signs_with_the_new_key_and_still_publishes_the_old,
    ]
);

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn first_start_creates_one_key_and_restart_keeps_it(pool: Pool) {
    let first = service(pool.clone()).await;
    let keys = first.jwks(true).await.unwrap();
    assert_eq!(keys.keys.len(), 1);
    let again = service(pool).await;
    assert_eq!(again.jwks(true).await.unwrap(), keys);
}

async fn rotation_signs_with_the_new_key_and_still_publishes_the_old(pool: Pool) {
    let identity = service(pool.clone()).await;
    identity.register("ann@example.com", PASSWORD, "Ann").await.unwrap();
    let before = login(&identity, "ann@example.com").await;
    let old_kid = kid_of(&before.access_token);

    // Rotation by another process (the CLI) on the same database.
    let cli = service(pool).await;
    let new_kid = cli.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);

    let published: Vec<String> = identity
        .jwks(true)
        .await
        .unwrap()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(published, vec![new_kid.clone(), old_kid]);
    let after = login(&identity, "ann@example.com").await;
    assert_eq!(kid_of(&after.access_token), new_kid);
}
