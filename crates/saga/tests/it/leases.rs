use std::collections::HashSet;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_booking::orchestration::{HoldLine, SagaKind, SagaRequest};
use phoenix_db::{Pool, Timestamp};
use phoenix_saga::saga::StepRecord;
use phoenix_saga::store::{Save, Store};
use phoenix_saga::{Saga, State};
use time::Duration;
use uuid::Uuid;

phoenix_db::contract_suite!(
    phoenix_saga::migrations(),
    [
        a_booking_gets_one_saga_of_each_kind,
        racing_instances_claim_each_due_saga_exactly_once,
        a_live_lease_is_kept_and_a_lapsed_one_taken_over,
        an_instance_that_lost_its_lease_cannot_save,
        a_batch_of_saves_keeps_each_sagas_lease_and_order,
        a_save_the_database_refuses_does_not_fail_its_batch,
        a_finished_saga_is_never_claimed,
    ]
);

fn request(booking_id: Uuid, kind: SagaKind) -> SagaRequest {
    SagaRequest {
        booking_id,
        kind,
        actor: Principal {
            user_id: Uuid::now_v7(),
            roles: Roles::from([Role::Customer]),
            organization_id: None,
            credential: Credential::OnBehalf { of: booking_id },
        },
        lines: vec![HoldLine {
            item_id: "room:test:2026-12-01".to_owned(),
            quantity: 1,
        }],
        hold_ttl_secs: 900,
        currency: "EUR".to_owned(),
        amount_minor: 10_000,
        payment_token: Some("tok_visa".to_owned()),
        refund_minor: 0,
        hold_id: None,
        payment_id: None,
        traceparent: None,
    }
}

fn record(step: &str) -> StepRecord {
    StepRecord {
        seq: 0,
        step: step.to_owned(),
        direction: "do".to_owned(),
        attempt: 1,
        outcome: "ok".to_owned(),
        error: None,
        at: Timestamp::now(),
    }
}

/// `n` sagas whose owner has gone: leased to nobody alive, due now.
async fn orphans(store: &Store, n: usize) -> Vec<Uuid> {
    let now = Timestamp::now();
    let sagas: Vec<Saga> = (0..n)
        .map(|_| Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now))
        .collect();
    let dead = Uuid::now_v7();
    store.create(&sagas, dead, now - Duration::seconds(1)).await.unwrap()
}

pub async fn a_booking_gets_one_saga_of_each_kind(pool: Pool) {
    let store = Store::new(pool);
    let booking_id = Uuid::now_v7();
    let now = Timestamp::now();
    let owner = Uuid::now_v7();
    let until = now + Duration::seconds(30);
    let first = Saga::start(request(booking_id, SagaKind::Booking), now);
    assert_eq!(
        store.create(std::slice::from_ref(&first), owner, until).await.unwrap(),
        vec![first.id]
    );
    // Booking handed the same request over again (the saga service died before acknowledging it).
    let again = Saga::start(request(booking_id, SagaKind::Booking), now);
    assert!(store.create(&[again], owner, until).await.unwrap().is_empty());
    let cancellation = Saga::start(request(booking_id, SagaKind::Cancellation), now);
    assert_eq!(
        store
            .create(std::slice::from_ref(&cancellation), owner, until)
            .await
            .unwrap(),
        vec![cancellation.id]
    );
    let sagas = store.of_booking(booking_id).await.unwrap();
    assert_eq!(
        sagas.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![first.id, cancellation.id]
    );
    assert_eq!(sagas[0].data.request.payment_token.as_deref(), Some("tok_visa"));
    // One batch: a new booking's request twice, and the first booking's again: one saga created.
    let other = Uuid::now_v7();
    let batch = [
        Saga::start(request(other, SagaKind::Booking), now),
        Saga::start(request(other, SagaKind::Booking), now),
        Saga::start(request(booking_id, SagaKind::Booking), now),
    ];
    assert_eq!(store.create(&batch, owner, until).await.unwrap(), vec![batch[0].id]);
    assert_eq!(store.of_booking(other).await.unwrap().len(), 1);
}

pub async fn racing_instances_claim_each_due_saga_exactly_once(pool: Pool) {
    let store = Store::new(pool);
    let ids: HashSet<Uuid> = orphans(&store, 60).await.into_iter().collect();
    assert_eq!(ids.len(), 60);
    let claims = futures::future::join_all((0..8).map(|_| {
        let store = store.clone();
        async move {
            let owner = Uuid::now_v7();
            let mut mine = Vec::new();
            for _ in 0..10 {
                let now = Timestamp::now();
                mine.extend(
                    store
                        .claim_due(owner, now, now + Duration::seconds(30), 7)
                        .await
                        .unwrap(),
                );
            }
            mine
        }
    }))
    .await;
    let claimed: Vec<Uuid> = claims.into_iter().flatten().collect();
    let distinct: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), distinct.len(), "a saga was claimed by two instances");
    assert_eq!(distinct, ids, "every orphan was claimed");
}

pub async fn a_live_lease_is_kept_and_a_lapsed_one_taken_over(pool: Pool) {
    let store = Store::new(pool);
    let now = Timestamp::now();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let saga = Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now);
    store
        .create(std::slice::from_ref(&saga), a, now + Duration::seconds(30))
        .await
        .unwrap();
    assert!(
        !store.lease(saga.id, b, now, now + Duration::seconds(30)).await.unwrap(),
        "a's lease is live"
    );
    assert!(
        store
            .claim_due(b, now, now + Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.lease(saga.id, a, now, now + Duration::seconds(30)).await.unwrap(),
        "a renews its own"
    );
    // Thirty-one seconds later a has not renewed: it is dead, and b resumes the saga.
    let later = now + Duration::seconds(31);
    assert_eq!(
        store
            .claim_due(b, later, later + Duration::seconds(30), 10)
            .await
            .unwrap(),
        vec![saga.id]
    );
    assert!(
        !store
            .lease(saga.id, a, later, later + Duration::seconds(30))
            .await
            .unwrap()
    );
}

pub async fn an_instance_that_lost_its_lease_cannot_save(pool: Pool) {
    let store = Store::new(pool);
    let now = Timestamp::now();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut saga = Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now);
    store
        .create(std::slice::from_ref(&saga), a, now - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        store.claim_due(b, now, now + Duration::seconds(30), 10).await.unwrap(),
        vec![saga.id]
    );
    saga.step = 1;
    assert!(
        !store
            .save(&saga, a, now + Duration::seconds(30), &record("hold_inventory"))
            .await
            .unwrap(),
        "a lost the lease to b"
    );
    assert!(
        store
            .save(&saga, b, now + Duration::seconds(30), &record("hold_inventory"))
            .await
            .unwrap()
    );
    let stored = store.get(saga.id).await.unwrap().unwrap();
    assert_eq!(stored.step, 1);
    assert_eq!(
        stored.lease_until,
        Some(now + Duration::seconds(30)),
        "saving renews the owner's lease"
    );
    let steps = store.steps(saga.id).await.unwrap();
    assert_eq!(steps.len(), 1, "only the owner's attempt is recorded");
}

/// The orchestrator's group commit: many sagas' saves in one transaction, each judged on its own lease, a saga
/// named twice saved in order, and sagas whose data is large enough to split the batch's statements.
pub async fn a_batch_of_saves_keeps_each_sagas_lease_and_order(pool: Pool) {
    let store = Store::new(pool);
    let now = Timestamp::now();
    let (owner, other) = (Uuid::now_v7(), Uuid::now_v7());
    let until = now + Duration::seconds(30);
    let mut sagas: Vec<Saga> = (0..40)
        .map(|_| Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now))
        .collect();
    let lost = Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now);
    store.create(&sagas, owner, until).await.unwrap();
    store.create(std::slice::from_ref(&lost), other, until).await.unwrap();
    let save = |saga: &Saga, step: &str| Save {
        saga: saga.clone(),
        owner,
        lease_until: until + Duration::seconds(1),
        record: record(step),
    };
    let mut saves = Vec::new();
    for (i, saga) in sagas.iter_mut().enumerate() {
        saga.step = 1;
        // A long error makes the batch larger than one PostgreSQL message.
        saga.last_error = Some(format!("attempt {i}: {}", "x".repeat(2_000)));
        saves.push(save(saga, "hold_inventory"));
    }
    // The first saga again, one step further, and a saga leased to another instance.
    sagas[0].step = 2;
    saves.push(save(&sagas[0], "authorize_payment"));
    saves.push(save(&lost, "hold_inventory"));
    let saved = store.save_many(&saves).await.unwrap();
    let mut expected = vec![true; 41];
    expected.push(false);
    assert_eq!(saved, expected, "every save but the one whose lease is another's");
    for (i, saga) in sagas.iter().enumerate() {
        let stored = store.get(saga.id).await.unwrap().unwrap();
        let steps: Vec<(u32, String)> = store
            .steps(saga.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.seq, r.step))
            .collect();
        if i == 0 {
            assert_eq!(stored.step, 2, "the later save of one saga wins");
            assert_eq!(
                steps,
                vec![(1, "hold_inventory".to_owned()), (2, "authorize_payment".to_owned())]
            );
        } else {
            assert_eq!(stored.step, 1);
            assert_eq!(steps, vec![(1, "hold_inventory".to_owned())]);
        }
        assert_eq!(stored.last_error, saga.last_error);
        assert_eq!(
            stored.lease_until,
            Some(until + Duration::seconds(1)),
            "the lease is renewed"
        );
    }
    let untouched = store.get(lost.id).await.unwrap().unwrap();
    assert_eq!((untouched.step, untouched.lease_owner), (0, Some(other)));
    assert!(store.steps(lost.id).await.unwrap().is_empty());
}

pub async fn a_finished_saga_is_never_claimed(pool: Pool) {
    let store = Store::new(pool);
    let now = Timestamp::now();
    let owner = Uuid::now_v7();
    let mut saga = Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now);
    store
        .create(&[saga.clone()], owner, now + Duration::seconds(30))
        .await
        .unwrap();
    saga.state = State::Completed;
    saga.step = 5;
    assert!(
        store
            .save(&saga, owner, now + Duration::seconds(30), &record("confirm_booking"))
            .await
            .unwrap()
    );
    let stored = store.get(saga.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.lease_owner),
        (State::Completed, None),
        "a finished saga holds no lease"
    );
    let later = now + Duration::seconds(60);
    assert!(
        store
            .claim_due(Uuid::now_v7(), later, later + Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.lease(saga.id, Uuid::now_v7(), later, later).await.unwrap());
}

/// Makes the database refuse any save of a saga whose last error is `poison` (a stand-in for whatever one row can
/// fail on: a constraint, a lock timeout).
async fn refuse_poisoned_saves(pool: &Pool) {
    let sql = match pool.backend() {
        phoenix_db::Backend::Postgres => {
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'poisoned save'; END $$;
             CREATE TRIGGER refuse_poison BEFORE UPDATE ON sagas FOR EACH ROW
                 WHEN (NEW.last_error = 'poison') EXECUTE FUNCTION refuse_poison();"
        }
        phoenix_db::Backend::Sqlite => {
            "CREATE TRIGGER refuse_poison BEFORE UPDATE ON sagas
                 WHEN NEW.last_error = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned save'); END;"
        }
    };
    phoenix_db::dispatch!(pool, conn => { sqlx::raw_sql(sql).execute(conn).await.map(|_| ()) }).unwrap();
}

pub async fn a_save_the_database_refuses_does_not_fail_its_batch(pool: Pool) {
    refuse_poisoned_saves(&pool).await;
    let store = Store::new(pool);
    let now = Timestamp::now();
    let owner = Uuid::now_v7();
    let until = now + Duration::seconds(30);
    let mut sagas: Vec<Saga> = (0..3)
        .map(|_| Saga::start(request(Uuid::now_v7(), SagaKind::Booking), now))
        .collect();
    store.create(&sagas, owner, until).await.unwrap();
    for saga in &mut sagas {
        saga.step = 1;
    }
    sagas[1].last_error = Some("poison".to_owned());
    let saves: Vec<Save> = sagas
        .iter()
        .map(|saga| Save {
            saga: saga.clone(),
            owner,
            lease_until: until,
            record: record("hold_inventory"),
        })
        .collect();
    assert!(store.save_many(&saves).await.is_err(), "the batch as a whole fails");

    let results = store.save_batch(&saves).await;
    assert_eq!(results.len(), 3);
    assert!(matches!(results[0], Ok(true)), "{:?}", results[0]);
    assert!(results[1].is_err(), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(true)), "{:?}", results[2]);
    for (i, saga) in sagas.iter().enumerate() {
        let stored = store.get(saga.id).await.unwrap().unwrap();
        let steps = store.steps(saga.id).await.unwrap().len();
        let expected = if i == 1 { (0, 0) } else { (1, 1) };
        assert_eq!((stored.step, steps), expected, "saga {i}");
    }
}
