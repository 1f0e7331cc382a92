//! The Redis backend against a real `redis-server` that each test starts (see the harness).

use std::sync::Arc;

use super::*;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, epoch, record, unit_reward};
use crate::store::{Decision, DecisionRule, HistoryArm, RewardTarget};

/// Shared with the HTTP tests, which use other parts of it.
#[allow(dead_code)]
#[path = "../../../tests/api/redis_harness.rs"]
pub(super) mod harness;
use harness::RedisServer;

pub(super) fn open(server: &RedisServer) -> RedisStore {
    open_with_gather(server, Default::default())
}

/// [`open`] with the commit gather set (`gather_tests`).
pub(super) fn open_with_gather(server: &RedisServer, commit_gather: CommitGather) -> RedisStore {
    RedisStore::open(RedisOptions {
        url: server.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 1000,
        history_interval_ms: 60_000,
        wait: Default::default(),
        commit_gather,
    })
    .expect("redis store opens")
}

pub(super) fn tally(now_ms: u64) -> Tally {
    Tally {
        now_ms,
        half_life_ms: None,
        allocation: Arc::from(vec![("control".to_owned(), 0.5), ("bold".to_owned(), 0.5)]),
    }
}

fn token_reward(event_id: &str, assignment_id: &str, at_ms: u64) -> RewardOp {
    RewardOp {
        target: RewardTarget::Token {
            assignment_id: assignment_id.to_owned(),
            variant: "bold".to_owned(),
            issued_ms: T0_MS,
            propensity: 0.5,
            confirmed_only: false,
        },
        ..unit_reward(event_id, "-", 1.0, at_ms)
    }
}

#[test]
fn a_unit_racing_on_two_replicas_gets_one_variant_counted_once() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        let mut racing = Vec::new();
        for i in 0..100 {
            let unit = format!("u{i}");
            racing.push(a.insert_sticky(&epoch(), &unit, record("control", T0_MS), tally(T0_MS)));
            racing.push(b.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS)));
        }
        let results = futures_util::future::join_all(racing).await;
        for pair in results.chunks(2) {
            let (first, second) = (pair[0].as_ref().unwrap(), pair[1].as_ref().unwrap());
            assert_eq!(first.0.variant, second.0.variant);
            assert!(first.1 ^ second.1, "exactly one call wrote the record");
        }
        let counters = a.counters(&epoch()).await.unwrap();
        let total: u64 = counters.values().map(|arm| arm.exposures).sum();
        assert_eq!(total, 100);
        let expected: f64 = counters.values().map(|arm| arm.expected_exposures).sum();
        assert_eq!(
            expected, 100.0,
            "fixed point: expected exposures add up exactly"
        );
        assert!(a.audit().await.unwrap().is_clean());
    });
}

#[test]
fn an_event_posted_to_two_replicas_is_applied_once() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        a.insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        a.insert_sticky(&epoch(), "u2", record("control", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        let (first, second) = tokio::join!(
            a.apply_rewards(vec![unit_reward("e1", "u1", 0.3, T0_MS + 5)]),
            b.apply_rewards(vec![unit_reward("e1", "u1", 0.3, T0_MS + 5)]),
        );
        let mut outcomes = vec![first.unwrap().remove(0), second.unwrap().remove(0)];
        outcomes.sort_by_key(|outcome| format!("{outcome:?}"));
        assert_eq!(
            outcomes,
            vec![
                RewardOutcome::Applied {
                    variant: "control".into()
                },
                RewardOutcome::Duplicate
            ]
        );
        // The same id for another unit, in one request after a fresh id: applied once, in order.
        let outcomes = b
            .apply_rewards(vec![
                unit_reward("e2", "u2", 0.1, T0_MS + 6),
                unit_reward("e2", "u1", 0.1, T0_MS + 6),
                unit_reward("e1", "u2", 0.1, T0_MS + 6),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                RewardOutcome::Applied {
                    variant: "control".into()
                },
                RewardOutcome::Duplicate,
                RewardOutcome::Duplicate
            ]
        );
        let counters = a.counters(&epoch()).await.unwrap();
        assert_eq!(counters["control"].reward_sum, 0.4);
        assert_eq!(
            a.sticky(&epoch(), "u1").await.unwrap().unwrap().reward,
            Some(0.3)
        );
        assert!(b.audit().await.unwrap().is_clean());
    });
}

#[test]
fn rewards_follow_the_window_and_credit_an_assignment_once() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        store
            .insert_sticky(&epoch(), "u1", record("control", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        let late = unit_reward("late", "u1", 1.0, T0_MS + 8 * DAY_MS);
        let mut early = unit_reward("early", "u1", 1.0, T0_MS + 1);
        early.occurred_ms = Some(T0_MS - 10 * 60 * 1000);
        let outcomes = store
            .apply_rewards(vec![
                late,
                early,
                unit_reward("e1", "u1", 1.0, T0_MS + 2),
                unit_reward("e2", "u1", 1.0, T0_MS + 3),
                unit_reward("e3", "nobody", 1.0, T0_MS + 3),
                token_reward("t1", "a1", T0_MS + 4),
                token_reward("t2", "a1", T0_MS + 5),
            ])
            .await
            .unwrap();
        use RewardOutcome::*;
        let applied = |v: &str| Applied {
            variant: v.to_owned(),
        };
        assert_eq!(
            outcomes,
            vec![
                OutsideWindow,
                TimestampBeforeAssignment,
                applied("control"),
                AlreadyRewarded,
                UnitNotAssigned,
                applied("bold"),
                AlreadyRewarded
            ]
        );
        let credits = store.scan_token_credits(&epoch(), None, 10).await.unwrap();
        assert_eq!(credits.credits.len(), 1);
        // After their retention the mark and both applied event ids go, and a late retry is
        // refused, not credited again.
        let removed = store.expire(T0_MS + 9 * DAY_MS).await.unwrap();
        assert_eq!(removed, 3);
        let retry = store
            .apply_rewards(vec![token_reward("t3", "a1", T0_MS + 6)])
            .await
            .unwrap();
        assert_eq!(retry, vec![OutsideWindow]);
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 1.0);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn reassignment_is_a_compare_and_set() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        a.insert_sticky(&epoch(), "u1", record("old", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        a.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS + 1)])
            .await
            .unwrap();
        let (x, y) = tokio::join!(
            a.reassign_sticky(
                &epoch(),
                "u1",
                "old",
                record("control", T0_MS + 2),
                tally(T0_MS + 2)
            ),
            b.reassign_sticky(
                &epoch(),
                "u1",
                "old",
                record("bold", T0_MS + 2),
                tally(T0_MS + 2)
            ),
        );
        let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
        assert_eq!(x.0.variant, y.0.variant);
        assert!(x.1 ^ y.1);
        assert_eq!(x.0.reward, None);
        assert_eq!(
            a.reassign_sticky(
                &epoch(),
                "nobody",
                "old",
                record("bold", T0_MS),
                tally(T0_MS)
            )
            .await
            .unwrap(),
            None
        );
        let counters = a.counters(&epoch()).await.unwrap();
        assert_eq!(counters["old"].exposures, 1);
        assert_eq!(counters["old"].reward_sum, 1.0);
        assert!(a.audit().await.unwrap().is_clean());
    });
}

#[test]
fn per_request_exposures_are_written_within_100_ms_and_counted_once() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    let snapshot = tally(T0_MS);
    for _ in 0..500 {
        assert!(a.count_exposure(&epoch(), "bold", snapshot.clone()));
        assert!(b.count_exposure(&epoch(), "control", snapshot.clone()));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    block_on(async {
        let counters = a.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].exposures, 500);
        assert_eq!(counters["control"].exposures, 500);
        assert_eq!(counters["bold"].expected_exposures, 500.0);
        assert_eq!(
            a.epoch_info(&epoch()).await.unwrap().started_ms,
            Some(T0_MS)
        );
        assert!(a.audit().await.unwrap().is_clean());
    });
}

#[test]
fn decayed_counters_in_lua_match_the_rust_rule_within_rounding() {
    // Exposures at many times and rewards aged from their assignment, written by the script,
    // against the same sums computed by `stats::DecayedCounts` in Rust. A float error that
    // grew with the number of writes would show here.
    let server = RedisServer::start();
    let store = open(&server);
    let half_life = 3 * DAY_MS;
    let mut rust = crate::stats::DecayedCounts::new(0);
    block_on(async {
        for i in 0..400u64 {
            let at = T0_MS + i * 3_600_000 + (i % 7) * 1_234;
            let mut snapshot = tally(at);
            snapshot.half_life_ms = Some(half_life);
            let unit = format!("u{i}");
            store
                .insert_sticky(&epoch(), &unit, record("bold", at), snapshot)
                .await
                .unwrap();
            rust = rust.add(at, half_life, 1.0, 0.0);
            if i % 3 == 0 {
                let arrival = at + 1_800_000;
                let reward = 0.25 + (i % 4) as f64 * 0.125;
                let mut op = unit_reward(&format!("e{i}"), &unit, reward, arrival);
                op.half_life_ms = Some(half_life);
                store.apply_rewards(vec![op]).await.unwrap();
                let weighted = reward * crate::stats::decay_weight(arrival - at, half_life);
                rust = rust.add(arrival, half_life, 0.0, weighted);
            }
        }
        let arm = store.counters(&epoch()).await.unwrap()["bold"];
        let (n, r) = arm.decayed_as_of(rust.at_ms, Some(half_life));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        assert!(close(n, rust.exposures), "{n} vs {}", rust.exposures);
        assert!(close(r, rust.reward_sum), "{r} vs {}", rust.reward_sum);
        assert_eq!(arm.exposures, 400);
    });
}

#[test]
fn shards_with_different_reference_times_sum_to_one_decayed_count() {
    let h = DAY_MS;
    let summed = read::sum_for_test(vec![
        vec![("a", 1, 1.0, 0, Some(h))],
        vec![("a", 1, 1.0, h, Some(h))],
    ]);
    assert_eq!(summed["a"].decayed_exposures, 1.5);
    assert_eq!(summed["a"].decayed_at_ms, h);
}

fn decision(variant: &str) -> Decision {
    Decision {
        decided_ms: T0_MS,
        expected_loss: 0.0001,
        exposures: [(variant.to_owned(), 10)].into(),
        prob_best: 0.99,
        rule: DecisionRule::default(),
        variant: variant.to_owned(),
    }
}

fn point(at_ms: u64, exposures: u64) -> HistoryPoint {
    HistoryPoint {
        at_ms,
        arms: vec![HistoryArm {
            expected_loss: 0.0,
            exposures,
            posterior_mean: 0.5,
            prob_best: 0.5,
            rewards: 0.0,
            traffic_share: 0.5,
            variant: "bold".to_owned(),
        }],
    }
}

#[test]
fn the_first_decision_wins_and_history_keeps_one_point_per_interval() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        assert_eq!(
            a.record_decision(&epoch(), decision("bold")).await.unwrap(),
            decision("bold")
        );
        assert_eq!(
            b.record_decision(&epoch(), decision("control"))
                .await
                .unwrap(),
            decision("bold")
        );
        assert_eq!(
            b.epoch_info(&epoch()).await.unwrap().decision,
            Some(decision("bold"))
        );
        // Two replicas record the same minute a few ms apart: one point is kept.
        a.append_history(&epoch(), point(T0_MS - T0_MS % 60_000 + 10, 1))
            .await
            .unwrap();
        b.append_history(&epoch(), point(T0_MS - T0_MS % 60_000 + 25, 2))
            .await
            .unwrap();
        // The same time again replaces it.
        a.append_history(&epoch(), point(T0_MS - T0_MS % 60_000 + 10, 3))
            .await
            .unwrap();
        a.append_history(&epoch(), point(T0_MS - T0_MS % 60_000 + 60_010, 4))
            .await
            .unwrap();
        let points = b.history(&epoch(), 0, 10).await.unwrap();
        let exposures: Vec<u64> = points.iter().map(|p| p.arms[0].exposures).collect();
        assert_eq!(exposures, vec![3, 4]);
        assert_eq!(b.history(&epoch(), 0, 1).await.unwrap().len(), 1);
    });
}

#[test]
fn an_export_pages_through_every_shard_in_unit_order() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        for i in 0..45 {
            store
                .insert_sticky(
                    &epoch(),
                    &format!("unit-{i:03}"),
                    record("bold", T0_MS),
                    tally(T0_MS),
                )
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .scan_sticky(&epoch(), after.clone(), 10)
                .await
                .unwrap();
            seen.extend(page.iter().map(|(unit, _)| unit.clone()));
            if page.len() < 10 {
                break;
            }
            after = page.last().map(|(unit, _)| unit.clone());
        }
        let expected: Vec<String> = (0..45).map(|i| format!("unit-{i:03}")).collect();
        assert_eq!(seen, expected);
    });
}

#[test]
fn every_replica_gets_the_same_generated_secret() {
    let server = RedisServer::start();
    let (a, b) = (open(&server), open(&server));
    block_on(async {
        let first = a.secret("token", Box::new(|| vec![1; 32])).await.unwrap();
        let second = b.secret("token", Box::new(|| vec![2; 32])).await.unwrap();
        assert_eq!(first, vec![1; 32]);
        assert_eq!(second, first);
    });
}

#[test]
fn writes_fail_while_redis_is_down_and_the_store_recovers_by_itself() {
    let mut server = RedisServer::start();
    assert!(
        server
            .cli(&["CONFIG", "GET", "appendfsync"])
            .ends_with("always"),
        "the harness makes every acknowledged write durable"
    );
    let store = open(&server);
    block_on(async {
        store
            .insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
    });
    server.kill();
    let failed = block_on(store.insert_sticky(&epoch(), "u2", record("bold", T0_MS), tally(T0_MS)));
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(!store.writable());
    assert!(!store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.writable() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(store.health().episodes, 1);
    // The acknowledged write survived the crash (AOF, appendfsync always).
    let held = block_on(store.sticky(&epoch(), "u1")).unwrap();
    assert_eq!(held.map(|r| r.variant), Some("bold".to_owned()));
}

#[test]
fn a_tls_url_is_refused_and_no_error_quotes_the_password() {
    let refused = topology(&"rediss://:hunter2@example:6380".into(), None, None);
    assert_eq!(refused.err(), Some(RedisUrlError::Tls));
    let invalid = topology(&"redis://:hunter2@[bad".into(), None, None)
        .err()
        .unwrap();
    assert!(!invalid.to_string().contains("hunter2"), "{invalid}");
    let Ok(Topology::Standalone(info)) =
        topology(&"redis://127.0.0.1:1".into(), Some(&"s3cret".into()), None)
    else {
        panic!("a redis:// URL is standalone");
    };
    assert_eq!(info.redis_settings().password(), Some("s3cret"));
}

#[test]
fn concurrent_writes_on_a_replica_share_group_commits() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let before = store.stats().commits;
        let writes = (0..400).map(|i| {
            store.insert_sticky(
                &epoch(),
                &format!("u{i}"),
                record("bold", T0_MS),
                tally(T0_MS),
            )
        });
        for result in futures_util::future::join_all(writes).await {
            assert!(result.unwrap().1);
        }
        let commits = store.stats().commits - before;
        assert!(
            commits * 10 <= 400,
            "400 concurrent inserts took {commits} commits: not batched"
        );
    });
}

/// Lets the commit task (on the store's own thread) take what was queued and send it.
fn settle() {
    std::thread::sleep(Duration::from_millis(60));
}

/// A flush held in flight at shutdown (`CLIENT PAUSE .. WRITE` holds it on the server) lands
/// first, and the exposures counted since it was taken go in the last commit: the shutdown
/// answers success only with all of them written.
#[test]
fn exposures_counted_while_a_flush_is_in_flight_are_written_at_shutdown() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let inserted = store.insert_sticky(&epoch(), "r", record("a", T0_MS), tally(T0_MS));
        inserted.await.expect("r inserted (the library is loaded)");
    });
    for _ in 0..5 {
        assert!(store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    }
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]), "OK");
    // A tick (every `FLUSH_EVERY_MS`) takes the five and sends them; the pause holds them.
    std::thread::sleep(Duration::from_millis(3 * FLUSH_EVERY_MS));
    for _ in 0..7 {
        assert!(store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    }
    block_on(store.shutdown()).expect("clean shutdown");
    let reader = open(&server);
    let counters = block_on(reader.counters(&epoch())).expect("counters read");
    assert_eq!(counters["bold"].exposures, 12);
}

/// Redis killed with a commit in flight (held by a write pause) and writes queued behind it:
/// every write is answered, with an error (none was durable), and none hangs.
#[test]
fn redis_killed_with_a_commit_in_flight_answers_every_write_with_an_error() {
    let mut server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let inserted = store.insert_sticky(&epoch(), "r", record("a", T0_MS), tally(T0_MS));
        inserted.await.expect("r inserted (the library is loaded)");
    });
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]), "OK");
    let first = store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS));
    settle();
    let second = store.insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS));
    let third = store.insert_sticky(&epoch(), "u3", record("a", T0_MS), tally(T0_MS));
    settle();
    server.kill();
    block_on(async {
        let answered = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(first, second, third)
        });
        let (first, second, third) = answered.await.expect("every write answered");
        assert!(first.is_err(), "u1 answered {first:?}");
        assert!(second.is_err(), "u2 answered {second:?}");
        assert!(third.is_err(), "u3 answered {third:?}");
    });
}

/// A port taken between the harness's pick and the server's bind (here a cluster node's bus
/// port, as a parallel test's server took it in CI on 2026-12-01: "bind: Address already in
/// use", the node exited) made a test fail at start; the harness now starts the server again
/// on fresh ports.
#[test]
fn the_harness_starts_a_node_whose_bus_port_is_taken_on_fresh_ports() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bus = taken.local_addr().unwrap().port().to_string();
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    drop(first);
    let extra = ["--cluster-enabled", "yes", "--cluster-port", bus.as_str()];
    let server = RedisServer::spawn_on(port, Some(extra.map(str::to_owned).to_vec()));
    assert_ne!(server.port, port, "the first try's ports were given up");
    assert_eq!(server.cli(&["PING"]), "PONG");
}
