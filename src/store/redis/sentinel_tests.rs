//! The Redis store behind a Sentinel (a real primary, its replica and one Sentinel, see the
//! harness): it finds the primary through the Sentinel, and follows a failover by itself.

use std::time::{Duration, Instant};

use super::tests::harness::RedisSentinel;
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

/// A graceful failover (`SENTINEL FAILOVER`) demotes a primary that stays up: its writes are
/// refused (READONLY), and the store must ask the Sentinel again rather than keep writing to
/// the old address.
#[test]
fn a_store_behind_sentinel_follows_a_graceful_failover() {
    let redis = RedisSentinel::start();
    let store = RedisStore::open(RedisOptions {
        url: redis.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 0,
        history_interval_ms: 0,
    })
    .expect("redis store opens through the Sentinel");
    block_on(async {
        store
            .insert_sticky(&epoch(), "before", record("a", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
    });
    assert_eq!(redis.primary.cli(&["WAIT", "1", "5000"]), "1");
    assert_eq!(
        redis
            .sentinel
            .cli(&["SENTINEL", "FAILOVER", harness_master()]),
        "OK"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the Sentinel has demoted the old primary it still takes writes (lost when it
    // resyncs: the README's "What a failover can lose"); from then on it refuses them.
    while redis.primary_port() != Some(redis.replica.port)
        || !redis.primary.cli(&["ROLE"]).starts_with("slave")
    {
        assert!(Instant::now() < deadline, "the Sentinel did not fail over");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut i = 0;
    loop {
        i += 1;
        let unit = format!("after-{i}");
        let written =
            block_on(store.insert_sticky(&epoch(), &unit, record("b", T0_MS), tests::tally(T0_MS)));
        if written.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not follow: {written:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        redis.replica.cli(&["ROLE"]).starts_with("master"),
        "the write went to the promoted node"
    );
    block_on(async {
        assert!(store.sticky(&epoch(), "before").await.unwrap().is_some());
        assert!(
            store
                .sticky(&epoch(), &format!("after-{i}"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
    assert!(store.health().writable);
}

fn harness_master() -> &'static str {
    super::tests::harness::SENTINEL_MASTER
}
