//! A bulk commit of several requests in two waves of calls (`direct::split_at`): the first is
//! with Redis while the second is built; each request is judged whole by one call.

use std::time::Duration;

use super::direct::{SPLIT_FROM, split_at};
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

/// `calls` of FCALL in `INFO commandstats` (0 when never called).
fn fcalls(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The ops of requests of `sizes` ops each, as `rewards::apply` lists them.
fn open_ops(sizes: &[usize]) -> Vec<(usize, usize)> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(job, &size)| (0..size).map(move |at| (job, at)))
        .collect()
}

#[test]
fn a_commit_is_split_at_the_request_end_nearest_its_half_and_never_inside_a_request() {
    // Below the threshold, or one request: one wave.
    assert_eq!(
        split_at(&open_ops(&[SPLIT_FROM / 2, SPLIT_FROM / 2 - 1])),
        SPLIT_FROM - 1
    );
    assert_eq!(split_at(&open_ops(&[5000])), 5000);
    assert_eq!(split_at(&open_ops(&[600, 600])), 600);
    // Ends at 1,000 and 2,000 of 3,000: as near the half, the first.
    assert_eq!(split_at(&open_ops(&[1000, 1000, 1000])), 1000);
    assert_eq!(split_at(&open_ops(&[1000, 1000, 1000, 1000, 1000])), 2000);
    assert_eq!(split_at(&open_ops(&[4000, 1000])), 4000);
    assert_eq!(split_at(&open_ops(&[10, 3000, 20])), 3010);
}

/// Two requests taken by one commit (queued behind a commit a write pause holds): two calls,
/// each request's ids judged in its order (its own id twice: applied, then a duplicate), an
/// id sent in both applied once, and every id kept once.
#[test]
fn two_bulk_requests_of_one_commit_go_in_two_calls_each_judged_whole() {
    let server = RedisServer::start();
    let store = open(&server);
    let per = 600;
    assert!(2 * per >= SPLIT_FROM);
    block_on(async {
        let inserts: Vec<_> = (0..2 * per)
            .map(|i| {
                store.insert_sticky(&epoch(), &format!("u{i}"), record("a", T0_MS), tally(T0_MS))
            })
            .collect();
        for inserted in futures_util::future::join_all(inserts).await {
            inserted.expect("inserted");
        }
    });
    let before = fcalls(&server);
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "700", "WRITE"]), "OK");
    let held = store.apply_rewards(vec![unit_reward("held", "u0", 1.0, T0_MS + 1)]);
    std::thread::sleep(Duration::from_millis(100));
    let mut one: Vec<RewardOp> = (1..per)
        .map(|i| unit_reward(&format!("a{i}"), &format!("u{i}"), 1.0, T0_MS + 2))
        .collect();
    one.push(unit_reward("a1", "u1", 1.0, T0_MS + 2));
    let mut two: Vec<RewardOp> = (per..2 * per)
        .map(|i| unit_reward(&format!("b{i}"), &format!("u{i}"), 1.0, T0_MS + 2))
        .collect();
    two.push(unit_reward("a2", "u2", 1.0, T0_MS + 2));
    let (first, second) = (store.apply_rewards(one), store.apply_rewards(two));
    block_on(async {
        held.await.expect("the held reward");
        let first = first.await.expect("request one");
        let second = second.await.expect("request two");
        let applied = |outcome: &RewardOutcome| matches!(outcome, RewardOutcome::Applied { .. });
        assert!(first[..per - 1].iter().all(applied), "{first:?}");
        assert_eq!(
            first[per - 1],
            RewardOutcome::Duplicate,
            "a1 again in its request"
        );
        assert!(second[..per].iter().all(applied), "{second:?}");
        assert_eq!(
            second[per],
            RewardOutcome::Duplicate,
            "a2, applied by request one"
        );
        assert_eq!(
            store.audit().await.expect("audit").event_ids,
            u64::try_from(2 * per).unwrap_or(0)
        );
    });
    // The held commit's call, then one per wave of the two requests' commit.
    assert_eq!(fcalls(&server) - before, 3, "one call per wave");
}
