use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::{Decision, Error, Quota};

/// The GCRA step of [`crate::gcra`], run atomically inside Redis with Redis's own clock, so every replica shares
/// one count and one notion of now. Returns `{allowed, retry_after_micros}`.
const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local count = ARGV[3] == "1"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, allow_at - now}
end
if count then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
end
return {1, 0}
"#;

/// Counts in Redis, shared by every replica. Keys expire when their TAT passes, so Redis holds only live counts.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl Redis {
    pub async fn connect(url: &str, prefix: &str) -> Result<Redis, Error> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Redis {
            connection,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) async fn apply(&self, key: &str, quota: Quota, count: bool) -> Result<Decision, Error> {
        let mut connection = self.connection.clone();
        let (allowed, retry_after_micros): (i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(quota.emission_interval_micros())
            .arg(quota.period_micros())
            .arg(if count { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await?;
        match (allowed, retry_after_micros) {
            (1, _) => Ok(Decision::Allowed),
            (0, micros) if micros >= 0 => Ok(Decision::Limited {
                retry_after: Duration::from_micros(micros as u64),
            }),
            other => Err(Error::UnexpectedReply(format!("{other:?}"))),
        }
    }

    pub(crate) async fn reset(&self, key: &str) -> Result<(), Error> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}
