//! Replica reports on one Redis, as several replicas see them.

use super::super::tests::harness::RedisServer;
use super::super::tests::open;
use super::*;
use crate::store::Store;
use crate::store::contract::report;
use crate::store::test_support::{T0_MS, block_on};

/// The hash tag of a key, as Redis Cluster reads it: between the first `{` and the next `}`.
fn hash_tag(key: &str) -> &str {
    let open = key.find('{').expect("a hash tag opens");
    let close = key[open..].find('}').expect("a hash tag closes") + open;
    &key[open + 1..close]
}

#[test]
fn both_replica_keys_share_one_hash_tag_so_they_sit_in_one_cluster_slot() {
    assert_eq!(hash_tag(REPORTS_KEY), "bd:replicas");
    assert_eq!(hash_tag(EXPIRY_KEY), hash_tag(REPORTS_KEY));
}

#[test]
fn every_replica_on_one_redis_sees_every_live_report_in_id_order() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        let (on_a, on_b) = (report("host:2", "v1", T0_MS), report("host:1", "v2", T0_MS));
        a.announce(on_a.clone(), T0_MS + 10_000).await.unwrap();
        b.announce(on_b.clone(), T0_MS + 10_000).await.unwrap();
        let expected = vec![on_b.clone(), on_a.clone()];
        assert_eq!(a.replicas(T0_MS).await.unwrap(), expected);
        assert_eq!(b.replicas(T0_MS).await.unwrap(), expected);
        b.withdraw(&on_b.id).await.unwrap();
        assert_eq!(a.replicas(T0_MS).await.unwrap(), vec![on_a]);
    });
}

#[test]
fn a_dead_replicas_report_is_deleted_at_the_first_read_after_it_expires() {
    let server = RedisServer::start();
    let store = open(&server);
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    block_on(async {
        let (dead, alive) = (
            report("dead:1", "v1", T0_MS),
            report("alive:2", "v1", T0_MS),
        );
        store.announce(dead, T0_MS + 1_000).await.unwrap();
        store.announce(alive.clone(), T0_MS + 60_000).await.unwrap();
        assert_eq!(store.replicas(T0_MS + 1_000).await.unwrap(), vec![alive]);
    });
    let ids: Vec<String> = redis::cmd("HKEYS")
        .arg(REPORTS_KEY)
        .query(&mut raw)
        .unwrap();
    let scored: Vec<String> = redis::cmd("ZRANGE")
        .arg(EXPIRY_KEY)
        .arg(0)
        .arg(-1)
        .query(&mut raw)
        .unwrap();
    assert_eq!(ids, vec!["alive:2".to_owned()]);
    assert_eq!(scored, vec!["alive:2".to_owned()]);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(REPORTS_KEY).query(&mut raw).unwrap();
    assert!(
        ttl_ms > 0 && ttl_ms <= 2 * 60_000,
        "the keys expire by themselves when nobody announces (PTTL {ttl_ms})"
    );
}

#[test]
fn an_unreadable_report_is_an_error_not_a_silent_gap() {
    let server = RedisServer::start();
    let store = open(&server);
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let _: () = redis::pipe()
        .hset(REPORTS_KEY, "odd:1", "not json")
        .ignore()
        .zadd(EXPIRY_KEY, "odd:1", T0_MS + 10_000)
        .ignore()
        .query(&mut raw)
        .unwrap();
    let error = block_on(store.replicas(T0_MS)).unwrap_err();
    assert!(
        matches!(&error, crate::store::StoreError::Corrupt(detail) if detail.contains(REPORTS_KEY)),
        "{error:?}"
    );
}
