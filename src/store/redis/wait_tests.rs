//! `--redis-wait-replicas` over a real primary and replica: writes are acknowledged while the
//! replica holds them, refused (unavailable, never a false success) while it is gone, and the
//! store is ready again once a write is acknowledged again.

use std::time::{Duration, Instant};

use super::tests::harness::{RedisCluster, RedisServer};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

fn open_waiting(primary: &RedisServer, replicas: u32) -> RedisStore {
    open_url(primary.url(), replicas)
}

fn open_url(url: String, replicas: u32) -> RedisStore {
    RedisStore::open(RedisOptions {
        url: url.into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 1000,
        history_interval_ms: 60_000,
        // Long enough for a replica's acknowledgement on a loaded test machine.
        wait: ReplicaWait {
            replicas,
            timeout_ms: 1000,
        },
        commit_gather: Default::default(),
    })
    .expect("redis store opens")
}

fn replica_of(primary: &RedisServer) -> RedisServer {
    let port = primary.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_until("the replica is in sync", || {
        primary
            .cli(&["INFO", "replication"])
            .contains("state=online")
    });
    replica
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn insert(store: &RedisStore, unit: &str) -> Result<(StickyRecord, bool), StoreError> {
    block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tests::tally(T0_MS)))
}

#[test]
fn writes_are_acknowledged_while_the_replica_holds_them_and_refused_while_it_is_gone() {
    let primary = RedisServer::start();
    let mut replica = replica_of(&primary);
    let store = open_waiting(&primary, 1);
    let (_, inserted) = insert(&store, "with-replica").expect("acknowledged by the replica");
    assert!(inserted);
    let outcomes =
        block_on(store.apply_rewards(vec![unit_reward("e1", "with-replica", 0.5, T0_MS + 1)]))
            .expect("a reward acknowledged by the replica");
    assert!(matches!(outcomes[0], RewardOutcome::Applied { .. }));
    // What was acknowledged is on the replica.
    wait_until("the replica holds the record", || {
        replica.cli(&["DBSIZE"]).trim() != "0"
    });

    replica.kill();
    let refused = insert(&store, "without-replica");
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "a write no replica holds is refused, not acknowledged: {refused:?}"
    );
    let refused =
        block_on(store.apply_rewards(vec![unit_reward("e2", "with-replica", 0.5, T0_MS + 2)]));
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(!store.health().writable, "unready while writes are refused");
    // Five probe periods: the primary takes writes all along, but they are not acknowledged.
    let until = Instant::now() + PROBE_EVERY * 5;
    while Instant::now() < until {
        assert!(!store.health().writable, "ready again without a replica");
        std::thread::sleep(Duration::from_millis(50));
    }

    replica.restart();
    wait_until("ready again once the replica is back", || {
        store.health().writable
    });
    let (held, _) = insert(&store, "replica-back").expect("acknowledged again");
    assert_eq!(held.variant, "bold");
}

#[test]
fn with_the_option_off_writes_do_not_wait_for_replicas() {
    let primary = RedisServer::start();
    let store = open_waiting(&primary, 0);
    let started = Instant::now();
    assert!(
        insert(&store, "alone")
            .expect("acknowledged by the primary")
            .1
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_primary_without_enough_replicas_refuses_within_the_timeout() {
    let primary = RedisServer::start();
    let _replica = replica_of(&primary);
    // One replica, two required.
    let store = open_waiting(&primary, 2);
    let started = Instant::now();
    assert!(matches!(
        insert(&store, "short"),
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "WAIT's timeout bounds the refusal: {:?}",
        started.elapsed()
    );
}

/// The slot ranges a Cluster node serves, from its line of `CLUSTER NODES`.
fn slots_of(cluster: &RedisCluster, node: usize) -> Vec<(u16, u16)> {
    let nodes = cluster.nodes[node].cli(&["CLUSTER", "NODES"]);
    let line = nodes
        .lines()
        .find(|line| line.contains("myself"))
        .expect("the node lists itself");
    line.split_whitespace()
        .skip(8)
        .filter_map(|range| {
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            Some((low.parse().ok()?, high.parse().ok()?))
        })
        .collect()
}

#[test]
fn under_cluster_a_write_waits_on_the_primary_that_took_it() {
    let mut cluster = RedisCluster::start_with_replicas();
    let store = open_url(cluster.url(), 1);
    let units: Vec<String> = (0..48).map(|i| format!("u{i}")).collect();
    // Every primary has its replica: writes to every slot are acknowledged.
    for unit in &units[..32] {
        insert(&store, unit).expect("acknowledged by the slot's replica");
    }
    // The primary of u40's slot loses its replica.
    let slot_of = |unit: &str| -> u16 {
        let tag = layout::tag(&epoch(), layout::shard_of(unit));
        cluster.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", &tag])
            .parse()
            .expect("a slot number")
    };
    let slots: Vec<u16> = units.iter().map(|unit| slot_of(unit)).collect();
    let serves = |ranges: &[(u16, u16)], slot: u16| {
        ranges
            .iter()
            .any(|&(low, high)| (low..=high).contains(&slot))
    };
    let (primary, ranges) = cluster
        .primaries()
        .into_iter()
        .map(|node| (node, slots_of(&cluster, node)))
        .find(|(_, ranges)| serves(ranges, slots[40]))
        .expect("a primary serves the slot");
    let primary_port = cluster.nodes[primary].port.to_string();
    let replica = (0..cluster.nodes.len())
        .find(|&node| {
            let role = cluster.nodes[node].cli(&["ROLE"]);
            role.starts_with("slave") && role.lines().nth(2) == Some(primary_port.as_str())
        })
        .expect("the primary has a replica");
    cluster.nodes[replica].kill();
    let (mut refused, mut acknowledged) = (0, 0);
    for (unit, slot) in units.iter().zip(&slots).skip(32) {
        let result = insert(&store, unit);
        if serves(&ranges, *slot) {
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{unit}: a write its primary's replica does not hold is refused: {result:?}"
            );
            refused += 1;
        } else {
            assert!(
                result.is_ok(),
                "{unit}: another primary's write waits on that primary only: {result:?}"
            );
            acknowledged += 1;
        }
    }
    assert!(
        refused > 0 && acknowledged > 0,
        "{refused} refused, {acknowledged} acknowledged"
    );
}
