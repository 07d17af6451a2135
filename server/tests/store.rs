//! The [`Store`] contract, one test body run against both backends: the embedded
//! [`MemoryStore`] and a [`RedisStore`] on a real redis-server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis_server::RedisServer;
use smile_factor::challenge::prompt::Mode;
use smile_factor_server::challenge::{Record, Score, Timing};
use smile_factor_server::prompts::draw_os;
use smile_factor_server::store::{Cas, ClientKey, MemoryStore, NonceKey, RedisStore, Store, Ttls};
use smile_factor_server::tokens::CtxClaims;

fn ttls() -> Ttls {
    Ttls::for_timing(&Timing::new(5_000, 1_000))
}

fn record(nonce: &str) -> Record {
    Record {
        ctx: CtxClaims {
            sub: "auth0|1".into(),
            iss: "tenant.test".into(),
            exp: 2_000_000_000,
            iat: None,
            use_: "smile-ctx".into(),
            nonce: nonce.into(),
            v: 1,
        },
        state: "st&ate ü".into(),
        timing: Timing::new(5_000, 1_000),
        started_ms: 1_000,
        mode: Mode::Straight,
        // A real drawn schedule, so its JSON round trip through Redis is covered.
        schedule: draw_os(15_000, 1_000, Mode::Straight).expect("os random"),
    }
}

/// Every operation and its refusals, in the order a challenge lives.
async fn lifecycle(store: Arc<dyn Store>) {
    let n = NonceKey::new("tenant.test", "n1");
    assert!(store.take_nonce(&n).await.expect("nonce"));
    assert!(
        !store.take_nonce(&n).await.expect("nonce again"),
        "a nonce is taken once"
    );
    // Same nonce, other tenant: another key.
    assert!(store
        .take_nonce(&NonceKey::new("other.test", "n1"))
        .await
        .expect("nonce"));

    assert_eq!(store.load("nope").await.expect("load"), None);
    assert_eq!(
        store.append_frame("nope", 0, 5).await.expect("append"),
        Cas::Gone
    );
    assert_eq!(store.finish("nope", 0).await.expect("finish"), Cas::Gone);

    let rec = record("n1");
    assert!(store.create("c1", &rec).await.expect("create"));
    assert!(
        !store.create("c1", &record("other")).await.expect("again"),
        "ids are never overwritten"
    );
    let snap = store.load("c1").await.expect("load").expect("exists");
    assert_eq!(snap.record, rec);
    assert!(snap.frames.is_empty() && !snap.finished);

    assert_eq!(
        store.append_frame("c1", 0, 1_000).await.expect("a"),
        Cas::Done(0)
    );
    assert_eq!(
        store.append_frame("c1", 0, 1_500).await.expect("b"),
        Cas::Stale,
        "the log moved on"
    );
    assert_eq!(
        store.append_frame("c1", 1, 2_000).await.expect("c"),
        Cas::Done(1)
    );
    store
        .score_frame("c1", 1, Score::Face { smile: 0.25 })
        .await
        .expect("score");
    let snap = store.load("c1").await.expect("load").expect("exists");
    let got: Vec<_> = snap.frames.iter().map(|f| (f.at_ms, f.score)).collect();
    assert_eq!(
        got,
        [
            (1_000, Score::Pending),
            (2_000, Score::Face { smile: 0.25 })
        ]
    );
    store
        .score_frame("c1", 0, Score::NoFace)
        .await
        .expect("score");
    assert!(!store
        .load("c1")
        .await
        .expect("load")
        .expect("exists")
        .has_pending());

    assert_eq!(store.finish("c1", 1).await.expect("stale"), Cas::Stale);
    assert_eq!(store.finish("c1", 2).await.expect("finish"), Cas::Done(2));
    assert_eq!(store.finish("c1", 2).await.expect("again"), Cas::Finished);
    assert_eq!(
        store.append_frame("c1", 2, 3_000).await.expect("late"),
        Cas::Finished
    );
    assert!(
        store
            .load("c1")
            .await
            .expect("load")
            .expect("exists")
            .finished
    );
}

/// Many callers finishing one challenge at once: exactly one wins.
async fn one_finish_wins(store: Arc<dyn Store>) {
    for round in 0..10 {
        let id = format!("race{round}");
        assert!(store.create(&id, &record("r")).await.expect("create"));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let id = id.clone();
                tokio::spawn(async move { store.finish(&id, 0).await.expect("finish") })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.expect("task") {
                Cas::Done(_) => won += 1,
                Cas::Finished => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
}

/// Many callers appending at the same expected length: exactly one entry is added.
async fn one_append_per_length(store: Arc<dyn Store>) {
    assert!(store.create("app", &record("a")).await.expect("create"));
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .append_frame("app", 0, 1_000 + i)
                    .await
                    .expect("append")
            })
        })
        .collect();
    let mut done = 0;
    for t in tasks {
        match t.await.expect("task") {
            Cas::Done(0) => done += 1,
            Cas::Stale => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(done, 1);
    assert_eq!(
        store
            .load("app")
            .await
            .expect("load")
            .expect("exists")
            .frames
            .len(),
        1
    );
}

/// With short TTLs, a challenge and a nonce are gone after them.
async fn expiry(store: Arc<dyn Store>) {
    let n = NonceKey::new("tenant.test", "short");
    assert!(store.take_nonce(&n).await.expect("nonce"));
    assert!(store
        .create("short", &record("short"))
        .await
        .expect("create"));
    assert_eq!(
        store.append_frame("short", 0, 1_000).await.expect("append"),
        Cas::Done(0)
    );
    store
        .score_frame("short", 0, Score::NoFace)
        .await
        .expect("score");
    assert!(store.load("short").await.expect("load").is_some());
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(store.load("short").await.expect("load"), None);
    assert_eq!(
        store.append_frame("short", 1, 9_000).await.expect("append"),
        Cas::Gone
    );
    assert!(
        store.take_nonce(&n).await.expect("nonce"),
        "an expired nonce is forgotten"
    );
}

fn client(ip: &str) -> ClientKey {
    ClientKey::new(ip.parse().expect("an address"))
}

/// A shared store counts creations per client and window: an IPv6 client by its /64, an
/// IPv4-mapped address as the IPv4 one; the count starts again when the window ends.
async fn creation_counts(store: Arc<dyn Store>) {
    let count = |ip: &'static str| {
        let store = store.clone();
        async move { store.count_creation(&client(ip)).await.expect("count") }
    };
    assert_eq!(count("192.0.2.1").await, Some(1));
    assert_eq!(count("192.0.2.1").await, Some(2));
    assert_eq!(count("::ffff:192.0.2.1").await, Some(3));
    assert_eq!(count("192.0.2.2").await, Some(1));
    assert_eq!(count("2001:db8:1:2::1").await, Some(1));
    assert_eq!(count("2001:db8:1:2:ffff::9").await, Some(2));
    assert_eq!(count("2001:db8:1:3::1").await, Some(1));
    tokio::time::sleep(short().rate + Duration::from_millis(300)).await;
    assert_eq!(count("192.0.2.1").await, Some(1), "a new window");
}

fn short() -> Ttls {
    Ttls {
        challenge: Duration::from_millis(800),
        nonce: Duration::from_millis(800),
        rate: Duration::from_millis(800),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_contract() {
    lifecycle(Arc::new(MemoryStore::new(ttls()))).await;
    one_finish_wins(Arc::new(MemoryStore::new(ttls()))).await;
    one_append_per_length(Arc::new(MemoryStore::new(ttls()))).await;
    expiry(Arc::new(MemoryStore::new(short()))).await;
    // One process's store leaves the count to the in-process limiter.
    let store = MemoryStore::new(short());
    assert_eq!(
        store
            .count_creation(&client("192.0.2.1"))
            .await
            .expect("count"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_contract() {
    let redis = RedisServer::start();
    let store =
        |t| -> Arc<dyn Store> { Arc::new(RedisStore::new(&redis.url(), t).expect("store")) };
    lifecycle(store(ttls())).await;
    one_finish_wins(store(ttls())).await;
    one_append_per_length(store(ttls())).await;
    expiry(store(short())).await;
    creation_counts(store(short())).await;
    // Every key the store wrote has a TTL; the expired ones are gone.
    let keys = redis.keys("sf:*").await;
    assert!(!keys.is_empty());
    assert!(!keys.iter().any(|k| k.contains("{short}")), "{keys:?}");
    for k in &keys {
        let ttl = redis.pttl(k).await;
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
}
