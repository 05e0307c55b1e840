//! Rate limits for the gateway (requests per principal and per IP) and identity (failed logins per account and per
//! IP), counted in memory in one process or in Redis when several replicas must share the count.
//!
//! Both stores run the same algorithm, GCRA (the generic cell rate algorithm): a key's state is one instant, its
//! "theoretical arrival time" (TAT). A quota of `limit` per `period` spaces events `period / limit` apart and lets a
//! burst of up to `limit` through. GCRA is written here rather than taken from `governor` because identity needs to
//! *peek* (is this account locked out?) separately from *counting* a failure, and the Redis store has to run the
//! algorithm in a script anyway; one implementation of the arithmetic ([`gcra`]) serves both stores.

mod memory;
mod redis_store;

use std::time::Duration;

pub use memory::Memory;
pub use redis_store::Redis;

/// At most `limit` events per `period`, in bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(limit: u32) -> Quota {
        Quota {
            limit,
            period: Duration::from_secs(60),
        }
    }

    fn emission_interval_micros(self) -> u64 {
        (self.period.as_micros() as u64 / u64::from(self.limit.max(1))).max(1)
    }

    fn period_micros(self) -> u64 {
        self.period.as_micros() as u64
    }
}

/// What the limiter says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the quota: try again after this long.
    Limited {
        retry_after: Duration,
    },
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// Whole seconds to put in `Retry-After` (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Decision::Allowed => 0,
            Decision::Limited { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rate limit store unavailable")]
    Redis(#[from] redis::RedisError),
    #[error("rate limit store answered {0:?}")]
    UnexpectedReply(String),
}

/// Where counts are kept: chosen once at start-up from configuration.
#[derive(Clone)]
pub enum Limiter {
    Memory(Memory),
    Redis(Redis),
}

impl Limiter {
    pub fn memory() -> Limiter {
        Limiter::Memory(Memory::new(Memory::DEFAULT_MAX_KEYS))
    }

    pub async fn redis(url: &str, prefix: &str) -> Result<Limiter, Error> {
        Ok(Limiter::Redis(Redis::connect(url, prefix).await?))
    }

    /// Counts one event under `key` if the quota allows it.
    pub async fn check(&self, key: &str, quota: Quota) -> Result<Decision, Error> {
        match self {
            Limiter::Memory(memory) => Ok(memory.apply(key, quota, true)),
            Limiter::Redis(redis) => redis.apply(key, quota, true).await,
        }
    }

    /// Says whether an event under `key` would be allowed now, without counting it.
    pub async fn peek(&self, key: &str, quota: Quota) -> Result<Decision, Error> {
        match self {
            Limiter::Memory(memory) => Ok(memory.apply(key, quota, false)),
            Limiter::Redis(redis) => redis.apply(key, quota, false).await,
        }
    }

    /// Forgets `key` (a successful login clears its failures).
    pub async fn reset(&self, key: &str) -> Result<(), Error> {
        match self {
            Limiter::Memory(memory) => {
                memory.reset(key);
                Ok(())
            }
            Limiter::Redis(redis) => redis.reset(key).await,
        }
    }
}

/// The GCRA step, shared by the memory store (and mirrored line for line by the Redis script): given the stored
/// TAT and the time now (microseconds), decides and returns the TAT to store if the event is counted.
pub(crate) fn gcra(tat_micros: Option<u64>, now_micros: u64, quota: Quota) -> (Decision, u64) {
    let interval = quota.emission_interval_micros();
    let tat = tat_micros.unwrap_or(now_micros).max(now_micros);
    let new_tat = tat + interval;
    let allow_at = new_tat.saturating_sub(quota.period_micros());
    if allow_at > now_micros {
        let retry_after = Duration::from_micros(allow_at - now_micros);
        (Decision::Limited { retry_after }, tat)
    } else {
        (Decision::Allowed, new_tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_of_limit_then_limited_until_one_interval_passes() {
        let quota = Quota {
            limit: 3,
            period: Duration::from_secs(3),
        };
        let mut tat = None;
        for _ in 0..3 {
            let (decision, next) = gcra(tat, 0, quota);
            assert_eq!(decision, Decision::Allowed);
            tat = Some(next);
        }
        let (decision, _) = gcra(tat, 0, quota);
        assert_eq!(
            decision,
            Decision::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        // One emission interval later, exactly one more is allowed.
        let (decision, next) = gcra(tat, 1_000_000, quota);
        assert_eq!(decision, Decision::Allowed);
        let (decision, _) = gcra(Some(next), 1_000_000, quota);
        assert!(!decision.is_allowed());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let decision = Decision::Limited {
            retry_after: Duration::from_millis(1_200),
        };
        assert_eq!(decision.retry_after_secs(), 2);
    }
}
