//! The rate-limit contract, run against the memory store and a real Redis.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use phoenix_ratelimit::{Decision, Limiter, Quota};

fn hourly(limit: u32) -> Quota {
    // A long period makes refill during a test negligible, so the counts below are exact.
    Quota {
        limit,
        period: Duration::from_secs(3_600),
    }
}

fn redis_url() -> String {
    std::env::var("PHOENIX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

macro_rules! limiter_suite {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(phoenix_ratelimit::Limiter::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let prefix = format!("phoenix-test:{}:", uuid::Uuid::new_v4());
                    let limiter = phoenix_ratelimit::Limiter::redis(&super::redis_url(), &prefix)
                        .await
                        .expect("connect to Redis (is it running?)");
                    super::$test(limiter).await;
                }
            )*
        }
    };
}

limiter_suite!(
    burst_up_to_limit_then_limited_with_retry_after,
    peek_does_not_count,
    keys_are_independent,
    reset_forgets_a_key,
    racing_checks_never_exceed_the_limit,
);

async fn burst_up_to_limit_then_limited_with_retry_after(limiter: Limiter) {
    let quota = hourly(5);
    for _ in 0..5 {
        assert_eq!(limiter.check("alice", quota).await.unwrap(), Decision::Allowed);
    }
    let decision = limiter.check("alice", quota).await.unwrap();
    let Decision::Limited { retry_after } = decision else {
        panic!("sixth event must be limited, got {decision:?}");
    };
    // The next slot opens one emission interval (3600 s / 5) after the burst.
    assert!(retry_after <= Duration::from_secs(720), "{retry_after:?}");
    assert!(retry_after >= Duration::from_secs(700), "{retry_after:?}");
    assert!(decision.retry_after_secs() >= 700);
}

async fn peek_does_not_count(limiter: Limiter) {
    let quota = hourly(2);
    for _ in 0..10 {
        assert!(limiter.peek("bob", quota).await.unwrap().is_allowed());
    }
    assert!(limiter.check("bob", quota).await.unwrap().is_allowed());
    assert!(limiter.check("bob", quota).await.unwrap().is_allowed());
    assert!(!limiter.peek("bob", quota).await.unwrap().is_allowed());
    assert!(!limiter.check("bob", quota).await.unwrap().is_allowed());
}

async fn keys_are_independent(limiter: Limiter) {
    let quota = hourly(1);
    assert!(limiter.check("carol", quota).await.unwrap().is_allowed());
    assert!(!limiter.check("carol", quota).await.unwrap().is_allowed());
    assert!(limiter.check("dave", quota).await.unwrap().is_allowed());
}

async fn reset_forgets_a_key(limiter: Limiter) {
    let quota = hourly(1);
    assert!(limiter.check("erin", quota).await.unwrap().is_allowed());
    assert!(!limiter.check("erin", quota).await.unwrap().is_allowed());
    limiter.reset("erin").await.unwrap();
    assert!(limiter.check("erin", quota).await.unwrap().is_allowed());
}

async fn racing_checks_never_exceed_the_limit(limiter: Limiter) {
    let quota = hourly(50);
    let tasks: Vec<_> = (0..400)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("frank", quota).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap().is_allowed() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50);
}
