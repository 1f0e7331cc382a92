//! What the store does when its primary refuses writes for want of replicas
//! (`min-replicas-to-write`, the README's way to bound what a failover can lose): it answers
//! unavailable (degraded answers, never a false success) and stays unready until a write
//! would go through again.

use std::time::{Duration, Instant};

use super::tests::harness::RedisServer;
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

/// The primary answers PING while it refuses every write (NOREPLICAS): readiness must not
/// come back on PING alone.
#[test]
fn a_primary_short_of_replicas_keeps_the_store_unready_until_a_replica_returns() {
    let primary = RedisServer::start_with(&[
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
    ]);
    let store = tests::open(&primary);
    let insert = |unit: &str| {
        block_on(store.insert_sticky(
            &epoch(),
            unit,
            record("control", T0_MS),
            tests::tally(T0_MS),
        ))
    };
    assert!(
        matches!(insert("refused"), Err(StoreError::Unavailable(_))),
        "a write the primary refuses is unavailable, not a success or a bug"
    );
    // Five probe periods: the store must stay unready all along.
    let until = Instant::now() + PROBE_EVERY * 5;
    while Instant::now() < until {
        assert!(
            !store.health().writable,
            "ready again while the primary refuses every write"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = primary.port.to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.health().writable {
        assert!(
            Instant::now() < deadline,
            "not ready again once a replica is back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(insert("accepted").is_ok());
    block_on(async {
        assert!(store.sticky(&epoch(), "refused").await.unwrap().is_none());
        assert!(store.sticky(&epoch(), "accepted").await.unwrap().is_some());
    });
}
