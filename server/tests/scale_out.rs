//! Several server instances sharing one real redis-server (started by the test on a free
//! loopback port): a challenge moves between instances, a nonce is taken once across
//! them, a client's creation limit holds across them, a racing finish signs once, Redis
//! going away fails closed with a 503, and TTLs clean up.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::*;
use serde_json::json;
use smile_factor_server::clock::FakeClock;
use smile_factor_server::store::{RedisStore, Store, Ttls, CALL_TIMEOUT};

/// `n` instances on one Redis and one clock, each with its own connection to Redis.
async fn instances(redis: &RedisServer, n: usize, ttls: Ttls) -> Vec<TestServer> {
    limited_instances(redis, n, ttls, 10_000).await
}

/// The same, allowing each client `per_minute` challenge creations.
async fn limited_instances(
    redis: &RedisServer,
    n: usize,
    ttls: Ttls,
    per_minute: u32,
) -> Vec<TestServer> {
    let clock = FakeClock::new(T0_MS);
    let mut out = Vec::new();
    for _ in 0..n {
        let store: Arc<dyn Store> = Arc::new(RedisStore::new(&redis.url(), ttls).expect("store"));
        out.push(TestServer::with_store(settings(per_minute), clock.clone(), store).await);
    }
    out
}

fn default_ttls() -> Ttls {
    Ttls::for_timing(&settings(1).timing)
}

async fn stop_all(servers: Vec<TestServer>) {
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_created_on_one_instance_takes_frames_on_another_and_finishes_on_a_third() {
    let redis = RedisServer::start();
    let s = instances(&redis, 3, default_ttls()).await;
    let (a, b, c) = (&s[0], &s[1], &s[2]);
    let (id, nonce) = a.open("cross").await;
    let neutral = jpeg_crop("neutral_1");
    // Round robin over the three instances, one crop a second.
    for i in 0..5 {
        let (status, body) = s[(i + 1) % 3].frame(&id, neutral.clone()).await;
        assert_eq!(status, 200, "frame {i}: {body}");
        a.clock.advance(1_000);
    }
    // The budget is shared: the spacing rule sees the frame another instance admitted.
    assert_eq!(b.frame(&id, neutral.clone()).await.0, 200);
    let (status, body) = c.frame(&id, neutral.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_fast")),
        "{body}"
    );
    let token = c.finish_token(&id).await;
    let claims = verdict_claims(&token);
    assert_eq!(claims.state, "cross");
    assert_eq!(claims.nonce, nonce);
    assert!(claims.notsmiling);
    assert_eq!(claims.frames, 6);
    // Finished everywhere.
    for srv in [a, b, c] {
        let (status, body) = srv.finish(&id).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("finished")));
    }
    // The smile is seen whichever instance judged it.
    let (id, _) = b.open("smile").await;
    for i in 0..2 {
        assert_eq!(s[i % 3].frame(&id, jpeg_crop("smile_1")).await.0, 200);
        a.clock.advance(1_000);
    }
    let (status, body) = c.finish(&id).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (200, Some("smiled")),
        "{body}"
    );
    stop_all(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_used_on_one_instance_is_refused_on_another() {
    let redis = RedisServer::start();
    let s = instances(&redis, 2, default_ttls()).await;
    let token = ctx_token(&ctx_claims(&fresh_nonce(), s[0].now_secs()), CTX_SECRET);
    s[0].open_with("first", &token).await;
    for srv in &s {
        let (status, body) = srv
            .create(json!({"state": "again", "session_token": token}))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("nonce_reused"))
        );
    }
    stop_all(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_racing_on_two_instances_signs_exactly_once() {
    let redis = RedisServer::start();
    let s = instances(&redis, 2, default_ttls()).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(s[i % 2].open("race").await.0);
    }
    s[0].clock.advance(DURATION_MS);
    for id in &ids {
        let (x, y) = tokio::join!(s[0].finish(id), s[1].finish(id));
        let mut statuses = [x.0, y.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{x:?} {y:?}");
        let (won, lost) = if x.0 == 200 { (x.1, y.1) } else { (y.1, x.1) };
        assert_eq!(lost["error"], "finished");
        // No frame: a signed no_face failure, still exactly one token.
        assert_eq!(
            verdict_claims(won["token"].as_str().expect("token"))
                .reason
                .as_deref(),
            Some("no_face")
        );
    }
    // Frames racing on two instances: one is admitted, the other is too fast.
    let (id, _) = s[0].open("frames").await;
    let crop = jpeg_crop("neutral_2");
    let (x, y) = tokio::join!(s[0].frame(&id, crop.clone()), s[1].frame(&id, crop.clone()));
    let mut statuses = [x.0, y.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429], "{x:?} {y:?}");
    stop_all(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_is_a_503_and_the_challenge_fails_closed() {
    let mut redis = RedisServer::start();
    let s = instances(&redis, 2, default_ttls()).await;
    let (a, b) = (&s[0], &s[1]);
    let (id, _) = a.open("down").await;
    b.send_frames(&id, "neutral_1", 2).await;
    redis.kill();
    // Every API call answers 503 store_unavailable, promptly.
    let bound = CALL_TIMEOUT * 2 + Duration::from_secs(1);
    let t = Instant::now();
    let (status, body) = b.frame(&id, jpeg_crop("neutral_1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(t.elapsed() < bound, "took {:?}", t.elapsed());
    a.clock.advance(DURATION_MS);
    for srv in [a, b] {
        let t = Instant::now();
        let (status, body) = srv.finish(&id).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("store_unavailable")),
            "{body}"
        );
        assert!(t.elapsed() < bound, "took {:?}", t.elapsed());
        let token = ctx_token(&ctx_claims(&fresh_nonce(), srv.now_secs()), CTX_SECRET);
        let (status, body) = srv
            .create(json!({"state": "s", "session_token": token}))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("store_unavailable")),
            "{body}"
        );
        // The instance itself is alive and still serves the page.
        let page = srv.client.get(srv.url("/")).send().await.expect("page");
        assert_eq!(page.status(), 200);
    }
    // Redis comes back empty: the challenge is gone, never signed, on any instance.
    redis.restart();
    for srv in [a, b] {
        let (status, body) = srv.finish(&id).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("unknown_challenge")),
            "{body}"
        );
    }
    // New challenges work again once the connection is back.
    let (id, _) = a.open("back").await;
    b.send_frames(&id, "neutral_1", 5).await;
    let claims = verdict_claims(&a.finish_token(&id).await);
    assert!(claims.notsmiling, "{claims:?}");
    stop_all(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creation_limit_holds_across_instances() {
    let redis = RedisServer::start();
    let ttls = Ttls {
        rate: Duration::from_millis(1_000),
        ..default_ttls()
    };
    let s = limited_instances(&redis, 3, ttls, 2).await;
    // One client, two creations on two instances: its budget of 2 is spent everywhere.
    s[0].open("one").await;
    s[1].open("two").await;
    let token = ctx_token(&ctx_claims(&fresh_nonce(), s[2].now_secs()), CTX_SECRET);
    let (status, body) = s[2]
        .create(json!({"state": "three", "session_token": token}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    // The counter lives in Redis under a hash, never the address, and expires with its
    // window; then the client may create again.
    let keys = redis.keys("sf:rate:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains("127.0.0.1"), "{keys:?}");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    s[2].open("again").await;
    stop_all(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_removes_every_key_of_a_challenge_its_nonce_and_its_creation_count() {
    let redis = RedisServer::start();
    let ttls = Ttls {
        challenge: Duration::from_millis(1_000),
        nonce: Duration::from_millis(1_000),
        rate: Duration::from_millis(1_000),
    };
    let s = instances(&redis, 2, ttls).await;
    let (id, _) = s[0].open("ttl").await;
    s[1].send_frames(&id, "neutral_1", 1).await;
    let keys = redis.keys("sf:*").await;
    let tag = format!("{{{id}}}");
    let kinds: Vec<&str> = keys
        .iter()
        .map(|k| k.rsplit(':').next().unwrap_or(""))
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter().filter(|k| k.contains(&tag)).count() == 3,
        "{keys:?}"
    );
    assert!(
        kinds.contains(&"log") && kinds.contains(&"rec") && kinds.contains(&"scores"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("sf:nonce:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("sf:rate:")), "{keys:?}");
    for k in &keys {
        let ttl = redis.pttl(k).await;
        assert!(ttl > 0 && ttl <= 1_000, "{k}: {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let keys = redis.keys("sf:*").await;
    assert!(keys.is_empty(), "left behind: {keys:?}");
    let (status, body) = s[1].finish(&id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_challenge"))
    );
    stop_all(s).await;
}
