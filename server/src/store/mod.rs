//! Where the challenges' state lives: behind [`Store`], in this process ([`MemoryStore`],
//! the default: one binary needs nothing else) or in Redis ([`RedisStore`], for any
//! number of instances behind any load balancer).
//!
//! The state is small and mostly immutable (see [`crate::challenge`]): a record written
//! once, an append-only frame log whose entries are scored once, a once-only finished
//! flag, and the ctx nonces already used. The two changes that race are compare-and-set
//! operations on the log's length ([`Store::append_frame`], [`Store::finish`]): the
//! caller reads a [`Snapshot`], applies the rules, and writes only if nobody appended in
//! between; otherwise it reads again. So the rules live in one place, in Rust, and each
//! backend only has to make those two writes atomic.

mod memory;
mod redis;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

pub use self::memory::MemoryStore;
pub use self::redis::{redis_host, RedisStore, CALL_TIMEOUT};
use crate::challenge::{Record, Score, Snapshot, Timing};
use crate::tokens::{LEEWAY_SECS, MAX_CTX_LIFETIME_SECS};

/// A finished challenge is kept this long after its window, so a second finish is 409.
pub const CHALLENGE_AFTERLIFE: Duration = Duration::from_secs(300);

/// How long each kind of key lives. Every key has one, in both backends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ttls {
    /// A challenge (record, log and flag), from its creation.
    pub challenge: Duration,
    /// A used ctx nonce: at least as long as a ctx token can be valid.
    pub nonce: Duration,
    /// A client's count of challenge creations in a shared store: the window
    /// `challenges_per_minute` is counted in.
    pub rate: Duration,
}

impl Ttls {
    /// The challenge's window plus an afterlife; nonces as long as a ctx token lives.
    pub fn for_timing(timing: &Timing) -> Self {
        Self {
            challenge: Duration::from_millis(timing.window_ms()) + CHALLENGE_AFTERLIFE,
            nonce: Duration::from_secs(MAX_CTX_LIFETIME_SECS + 2 * LEEWAY_SECS),
            rate: Duration::from_secs(60),
        }
    }
}

/// The store could not answer. Either way the request fails and nothing is decided.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, or refused the command: a 503, try again later.
    #[error("the challenge store is unavailable ({0})")]
    Unavailable(String),
    /// Data in the store that this version cannot read.
    #[error("the challenge store holds unreadable data ({0})")]
    Corrupt(String),
}

/// Result of a compare-and-set write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Written; for an append, the new entry's index.
    Done(usize),
    /// The log's length was not the expected one: read again and re-apply the rules.
    Stale,
    /// The challenge is already finished.
    Finished,
    /// No such challenge (never created, or expired).
    Gone,
}

/// A ctx nonce's identity in the store: a hash of the issuer and the nonce, so a key has
/// a fixed size and shape whatever the token carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NonceKey(String);

impl NonceKey {
    pub fn new(iss: &str, nonce: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(iss.as_bytes())
            .chain_update([0u8])
            .chain_update(nonce.as_bytes())
            .finalize();
        Self(URL_SAFE_NO_PAD.encode(digest))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client a creation budget belongs to: its IPv4 address, or the /64 of its IPv6
/// address (one user's network: a client can pick any of its 2^64 addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn new(ip: IpAddr) -> Self {
        Self(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
            v4 => v4,
        })
    }

    /// A fixed-size name for the store: a hash, so no address is written there as is.
    pub fn hashed(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"smile-factor rate limit\0")
            .chain_update(self.0.to_string().as_bytes())
            .finalize();
        URL_SAFE_NO_PAD.encode(&digest[..18])
    }
}

/// The challenges' state. Implementations make each method atomic on its own; the
/// compare-and-set methods are the only writes that can race.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Marks a ctx nonce used; `true` if it was fresh (first use anywhere).
    async fn take_nonce(&self, key: &NonceKey) -> Result<bool, StoreError>;

    /// Writes a new challenge's record, with an empty log; `false` if `id` exists.
    async fn create(&self, id: &str, record: &Record) -> Result<bool, StoreError>;

    /// Reads a challenge; `None` if unknown or expired.
    async fn load(&self, id: &str) -> Result<Option<Snapshot>, StoreError>;

    /// Appends a pending frame admitted at `at_ms`, if the challenge is not finished and
    /// its log still has `expected_len` entries.
    async fn append_frame(
        &self,
        id: &str,
        expected_len: usize,
        at_ms: u64,
    ) -> Result<Cas, StoreError>;

    /// Sets the score of the entry at `index` (once its crop is analysed).
    async fn score_frame(&self, id: &str, index: usize, score: Score) -> Result<(), StoreError>;

    /// Sets the finished flag, if not set yet and the log still has `expected_len`
    /// entries. Exactly one caller gets [`Cas::Done`] for a challenge.
    async fn finish(&self, id: &str, expected_len: usize) -> Result<Cas, StoreError>;

    /// Counts one challenge creation by `client` in the current window ([`Ttls::rate`])
    /// across every instance sharing this store, and returns the count so far; `None`
    /// when the store is this process's own, whose in-process limiter sees every creation.
    async fn count_creation(&self, _client: &ClientKey) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}
