//! The refresh's reads (`fresh`): a shard whose change counter has not moved is not read
//! again, and a write on another replica is seen by the next read all the same. Commands are
//! counted by Redis itself (`INFO commandstats`).

use std::collections::HashMap;

use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

/// Calls of `command` since the last `CONFIG RESETSTAT`.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix(&prefix)?;
            rest.split(',').next()?.parse().ok()
        })
        .unwrap_or(0)
}

async fn insert(store: &RedisStore, unit: &str, variant: &str) {
    store
        .insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS))
        .await
        .unwrap();
}

/// Exposures and reward sums by variant, to compare two replicas' reads.
fn raw(counters: &HashMap<String, ArmCounters>) -> Vec<(String, u64, f64, f64)> {
    let mut raw: Vec<_> = counters
        .iter()
        .map(|(variant, arm)| {
            (
                variant.clone(),
                arm.exposures,
                arm.reward_sum,
                arm.expected_exposures,
            )
        })
        .collect();
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    raw
}

#[test]
fn an_unchanged_epoch_is_not_read_again_and_a_changed_shard_is_read_alone() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        for i in 0..20 {
            insert(&a, &format!("u{i}"), "bold").await;
        }
        let first = a.counters(&epoch()).await.unwrap();
        let first_delays = a.delay_histograms(&epoch()).await.unwrap();
        server.cli(&["CONFIG", "RESETSTAT"]);
        for _ in 0..5 {
            assert_eq!(raw(&a.counters(&epoch()).await.unwrap()), raw(&first));
            assert_eq!(a.delay_histograms(&epoch()).await.unwrap(), first_delays);
        }
        assert_eq!(
            calls(&server, "hgetall"),
            0,
            "ten reads of an unchanged epoch read no counters or histograms"
        );
        assert_eq!(
            calls(&server, "hget"),
            10 * u64::from(layout::SHARDS),
            "each read looks at one change counter per shard"
        );

        // One commit on another replica writes one shard's counters and histograms: the next
        // reads fetch that shard alone.
        insert(&b, "late", "control").await;
        server.cli(&["CONFIG", "RESETSTAT"]);
        let counters = a.counters(&epoch()).await.unwrap();
        assert_eq!(counters["control"].exposures, 1);
        assert_eq!(counters["bold"].exposures, 20);
        let delays = a.delay_histograms(&epoch()).await.unwrap();
        assert_eq!(
            calls(&server, "hgetall"),
            2,
            "one arms hash, one histogram hash"
        );
        assert_eq!(
            raw(&counters),
            raw(&open(&server).counters(&epoch()).await.unwrap())
        );
        assert_eq!(
            delays,
            open(&server).delay_histograms(&epoch()).await.unwrap()
        );
    });
}

#[test]
fn a_write_on_another_replica_is_seen_by_the_next_read() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        insert(&a, "seed", "bold").await;
        assert_eq!(a.counters(&epoch()).await.unwrap()["bold"].exposures, 1);
        let mut delays = a.delay_histograms(&epoch()).await.unwrap();
        for round in 0..6u64 {
            // New units (their shards' counters), a reward (counters and histograms) and
            // per-request exposures (a flush), each on the other replica, each read back by
            // `a` at once: a refresh that follows the write sees it.
            let unit = format!("r{round}");
            insert(&b, &unit, "control").await;
            let seen = a.counters(&epoch()).await.unwrap();
            assert_eq!(seen["control"].exposures, round * 3 + 1, "round {round}");
            let at = T0_MS + 60_000 * (round + 1);
            let outcome = b
                .apply_rewards(vec![unit_reward(&format!("e{round}"), &unit, 1.0, at)])
                .await
                .unwrap();
            assert_eq!(outcome.len(), 1);
            let seen = a.counters(&epoch()).await.unwrap();
            assert_eq!(
                seen["control"].reward_sum,
                (round + 1) as f64,
                "round {round}"
            );
            let now = a.delay_histograms(&epoch()).await.unwrap();
            assert_ne!(now, delays, "round {round}: the reward's delay bin moved");
            delays = now;
            for _ in 0..2 {
                assert!(b.count_exposure(&epoch(), "control", tally(at)));
            }
            // The flush runs every EXPOSURE_FLUSH_EVERY_MS on `b`'s own thread: wait for it
            // (up to a bound a loaded machine keeps), then the read must see exactly it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let seen = loop {
                std::thread::sleep(std::time::Duration::from_millis(EXPOSURE_FLUSH_EVERY_MS));
                let seen = a.counters(&epoch()).await.unwrap();
                if seen["control"].exposures >= round * 3 + 3
                    || std::time::Instant::now() > deadline
                {
                    break seen;
                }
            };
            assert_eq!(seen["control"].exposures, round * 3 + 3, "round {round}");
            let fresh = open(&server);
            assert_eq!(raw(&seen), raw(&fresh.counters(&epoch()).await.unwrap()));
            assert_eq!(
                a.delay_histograms(&epoch()).await.unwrap(),
                fresh.delay_histograms(&epoch()).await.unwrap()
            );
        }
    });
}
