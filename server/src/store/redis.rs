//! The shared store: challenges and nonces in Redis, so any number of server instances
//! behind any load balancer serve one challenge together (create on one, frames on
//! another, finish on a third).
//!
//! Keys (a challenge's keys share the hash tag `{id}`, so a Lua script may touch them
//! all, on a Redis Cluster too); every key has a TTL:
//! - `sf:{id}:rec`: the [`Record`] as JSON, `SET NX PX` at creation;
//! - `sf:{id}:log`: a list of admission times (ms), appended by a Lua compare-and-set;
//! - `sf:{id}:scores`: a hash from a log index to its [`Score`] as JSON;
//! - `sf:{id}:done`: the finished flag, set once by a Lua compare-and-set;
//! - `sf:nonce:<hash>`: a used ctx nonce, `SET NX PX`;
//! - `sf:rate:<hash>`: one client's challenge creations in the current window (a counter
//!   that expires with its window), so the creation limit holds across instances.
//!
//! The log, scores and flag take the record's remaining TTL, so a challenge's keys all
//! vanish together. Every call is bounded by [`CALL_TIMEOUT`]: an unreachable Redis is a
//! [`StoreError::Unavailable`] (503) within a few seconds, never a hang.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};

use super::{Cas, ClientKey, NonceKey, Store, StoreError, Ttls};
use crate::challenge::{FrameEntry, Record, Score, Snapshot};

/// Longest wait for one store call, reconnection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting and each command's answer, within a call.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Appends an admission time if the record exists, the flag is not set and the log has
/// the expected length. KEYS: rec, log, done. ARGV: expected length, at_ms.
const APPEND: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return -3 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
local n = redis.call('LLEN', KEYS[2])
if n ~= tonumber(ARGV[1]) then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
return n
";

/// Sets the flag once, under the same conditions. KEYS: rec, log, done. ARGV: length.
const FINISH: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return -3 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[3], '1', 'PX', ttl)
return 1
";

/// Records a score if the challenge still exists. KEYS: rec, scores. ARGV: index, JSON.
const SCORE: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
";

/// Counts a creation in a fixed window: the first in a window starts its expiry.
/// KEYS: the client's counter. ARGV: the window in ms.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// Challenges and nonces in one Redis (or a primary that replicas follow).
pub struct RedisStore {
    conn: ConnectionManager,
    ttls: Ttls,
    append: Script,
    finish: Script,
    score: Script,
    count: Script,
}

/// `host:port` of a Redis URL, for messages: never its password.
pub fn redis_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "an unreadable URL".to_owned())
}

fn unavailable(e: &RedisError) -> StoreError {
    // The category only: a server's message could quote a key.
    StoreError::Unavailable(e.category().to_owned())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

struct Keys {
    rec: String,
    log: String,
    scores: String,
    done: String,
}

impl Keys {
    fn of(id: &str) -> Self {
        Self {
            rec: format!("sf:{{{id}}}:rec"),
            log: format!("sf:{{{id}}}:log"),
            scores: format!("sf:{{{id}}}:scores"),
            done: format!("sf:{{{id}}}:done"),
        }
    }
}

impl RedisStore {
    /// A store on `url` (`redis://[:password@]host:port[/db]`). It connects on first use
    /// and reconnects by itself, so an instance may start before Redis is up.
    pub fn new(url: &str, ttls: Ttls) -> Result<Self, StoreError> {
        if url.starts_with("rediss:") {
            return Err(StoreError::Unavailable(format!(
                "rediss:// (TLS) is not built in ({}); reach Redis over a private network or a TLS tunnel and use redis://",
                redis_host(url)
            )));
        }
        let client = redis::Client::open(url).map_err(|_| {
            StoreError::Unavailable(format!("the Redis URL is not valid ({})", redis_host(url)))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // Reconnect quickly: a call waits for the reconnection, within CALL_TIMEOUT.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn,
            ttls,
            append: Script::new(APPEND),
            finish: Script::new(FINISH),
            score: Script::new(SCORE),
            count: Script::new(COUNT),
        })
    }

    /// Checks that Redis answers (at start, for a clear message on a wrong URL).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable("unexpected answer to PING".into()))
        }
    }

    async fn cas(
        &self,
        script: &Script,
        id: &str,
        expected_len: usize,
        arg: Option<u64>,
    ) -> Result<i64, StoreError> {
        let k = Keys::of(id);
        let mut inv = script.key(&k.rec);
        inv.key(&k.log).key(&k.done).arg(expected_len);
        if let Some(a) = arg {
            inv.arg(a);
        }
        let inv = &inv;
        self.call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await
    }
}

/// A call failed on the connection rather than in Redis: worth one retry, which waits
/// for the connection manager's reconnection (after a Redis restart or failover).
fn connection_lost(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl RedisStore {
    /// Runs one Redis call, retried once on a lost connection, all under [`CALL_TIMEOUT`].
    /// A retried write whose first reply was lost fails closed: the second attempt sees
    /// its own write (a nonce taken, a log moved on, a flag set) and refuses.
    async fn call<T, Fut>(
        &self,
        mut attempt: impl FnMut(ConnectionManager) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let run = async {
            match attempt(self.conn.clone()).await {
                Err(e) if connection_lost(&e) => attempt(self.conn.clone()).await,
                other => other,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.call(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }
}

fn cas_result(code: i64) -> Cas {
    match code {
        -1 => Cas::Stale,
        -2 => Cas::Finished,
        n if n >= 0 => Cas::Done(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Cas::Gone,
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn take_nonce(&self, key: &NonceKey) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(format!("sf:nonce:{}", key.as_str()))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms(self.ttls.nonce)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn create(&self, id: &str, record: &Record) -> Result<bool, StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(Keys::of(id).rec)
                    .arg(json)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms(self.ttls.challenge)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn load(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        let k = Keys::of(id);
        // MULTI/EXEC: one consistent view of the four keys.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("GET")
            .arg(&k.rec)
            .cmd("EXISTS")
            .arg(&k.done)
            .cmd("LRANGE")
            .arg(&k.log)
            .arg(0)
            .arg(-1)
            .cmd("HGETALL")
            .arg(&k.scores);
        let pipe = &pipe;
        let (rec, done, log, scores): (Option<String>, bool, Vec<u64>, HashMap<usize, String>) =
            self.call(|mut c| async move { pipe.query_async(&mut c).await })
                .await?;
        let Some(rec) = rec else {
            return Ok(None);
        };
        let record: Record =
            serde_json::from_str(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let frames =
            log.into_iter()
                .enumerate()
                .map(|(i, at_ms)| {
                    let score = match scores.get(&i) {
                        Some(s) => serde_json::from_str(s)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        None => Score::Pending,
                    };
                    Ok(FrameEntry { at_ms, score })
                })
                .collect::<Result<_, StoreError>>()?;
        Ok(Some(Snapshot {
            record,
            frames,
            finished: done,
        }))
    }

    async fn append_frame(
        &self,
        id: &str,
        expected_len: usize,
        at_ms: u64,
    ) -> Result<Cas, StoreError> {
        Ok(cas_result(
            self.cas(&self.append, id, expected_len, Some(at_ms))
                .await?,
        ))
    }

    async fn score_frame(&self, id: &str, index: usize, score: Score) -> Result<(), StoreError> {
        let json = serde_json::to_string(&score).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let k = Keys::of(id);
        let mut inv = self.score.key(&k.rec);
        inv.key(&k.scores).arg(index).arg(json);
        let inv = &inv;
        let _: i64 = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(())
    }

    async fn finish(&self, id: &str, expected_len: usize) -> Result<Cas, StoreError> {
        Ok(
            match self.cas(&self.finish, id, expected_len, None).await? {
                1 => Cas::Done(expected_len),
                other => cas_result(other),
            },
        )
    }

    async fn count_creation(&self, client: &ClientKey) -> Result<Option<u64>, StoreError> {
        // A retry after a lost reply may count one creation twice: stricter, never looser.
        let key = format!("sf:rate:{}", client.hashed());
        let mut inv = self.count.key(key);
        inv.arg(ms(self.ttls.rate));
        let inv = &inv;
        let n: u64 = self
            .call(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(Some(n))
    }
}
