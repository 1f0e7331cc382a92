//! The order rule of commits in flight (`in_flight::hold_back`), and two commits in flight on
//! a real `redis-server` keeping one unit's writes in the order they came. `CLIENT PAUSE ..
//! WRITE` holds commits in flight on the server for as long as a test needs.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::commit::Command;
use super::in_flight::hold_back;
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::RewardTarget;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

fn insert(unit: &str) -> Command {
    Command::Insert {
        epoch: epoch(),
        unit: unit.to_owned(),
        record: record("a", T0_MS),
        tally: tally(T0_MS),
        reply: oneshot::channel().0,
    }
}

fn reassign(unit: &str) -> Command {
    Command::Reassign {
        epoch: epoch(),
        unit: unit.to_owned(),
        from: "a".to_owned(),
        record: record("b", T0_MS),
        tally: tally(T0_MS),
        reply: oneshot::channel().0,
    }
}

fn rewards(unit: &str) -> Command {
    Command::Rewards {
        ops: vec![unit_reward("e", unit, 1.0, T0_MS + 1)],
        reply: oneshot::channel().0,
    }
}

/// What each command is, in order: `I u`, `R u`, `W u` (rewards on u).
fn names(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .map(|command| match command {
            Command::Insert { unit, .. } => format!("I {unit}"),
            Command::Reassign { unit, .. } => format!("R {unit}"),
            Command::Rewards { ops, .. } => match &ops[0].target {
                RewardTarget::Unit(unit) => format!("W {unit}"),
                RewardTarget::Token { .. } => "W token".to_owned(),
            },
            Command::Shutdown { .. } => "shutdown".to_owned(),
        })
        .collect()
}

fn busy(units: &[&str]) -> HashMap<Epoch, HashSet<String>> {
    HashMap::from([(
        epoch(),
        units.iter().map(|unit| (*unit).to_owned()).collect(),
    )])
}

#[test]
fn with_nothing_in_flight_a_batch_goes_whole() {
    let batch = vec![insert("u"), rewards("u"), reassign("u")];
    let (send, later) = hold_back(batch, &HashMap::new(), true);
    assert_eq!(names(&send), ["I u", "W u", "R u"]);
    assert!(later.is_empty());
}

#[test]
fn a_write_on_a_unit_in_flight_waits_and_so_does_every_later_one_on_it() {
    let batch = vec![reassign("u"), insert("v"), insert("u"), insert("x")];
    let (send, later) = hold_back(batch, &busy(&["u"]), false);
    // u is in flight: both its writes wait, in order; v and x go.
    assert_eq!(names(&send), ["I v", "I x"]);
    assert_eq!(names(&later), ["R u", "I u"]);
}

/// Rewards wait for an idle pipe, and every command after them waits with them, on any unit:
/// were later writes sent while rewards wait, a replica under load would always have a
/// commit in flight and the rewards would never go.
#[test]
fn rewards_wait_for_an_idle_pipe_and_nothing_after_them_overtakes_them() {
    let batch = vec![insert("v"), rewards("w"), insert("w"), insert("x")];
    let (send, later) = hold_back(batch, &busy(&["u"]), false);
    assert_eq!(names(&send), ["I v"]);
    assert_eq!(names(&later), ["W w", "I w", "I x"]);
}

/// Two commits in flight on one connection: every unit's insert and its reassignment, sent
/// without waiting for each other, land in order (the reassignment finds the insert's
/// record), and the counters equal what the records imply.
#[test]
fn two_commits_in_flight_keep_each_units_writes_in_order() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let units: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
        let mut writes = Vec::new();
        for unit in &units {
            writes.push(store.insert_sticky(&epoch(), unit, record("a", T0_MS), tally(T0_MS)));
        }
        let mut reassigns = Vec::new();
        for unit in &units {
            reassigns.push(store.reassign_sticky(
                &epoch(),
                unit,
                "a",
                record("b", T0_MS + 1),
                tally(T0_MS + 1),
            ));
        }
        // The inserts are queued before the reassignments (`join` polls them in order).
        let (inserted, reassigned) = tokio::join!(
            futures_util::future::join_all(writes),
            futures_util::future::join_all(reassigns)
        );
        for ((unit, inserted), reassigned) in units.iter().zip(inserted).zip(reassigned) {
            assert!(inserted.expect("insert acknowledged").1, "{unit} inserted");
            let reassigned = reassigned.expect("reassign acknowledged");
            assert_eq!(
                reassigned.map(|(record, _)| record.variant).as_deref(),
                Some("b"),
                "{unit}: the reassignment came after the insert and found it"
            );
        }
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["b"].exposures, 200);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// When a store future resolved, with its result.
async fn timed<T>(future: impl Future<Output = T>) -> (Instant, T) {
    let result = future.await;
    (Instant::now(), result)
}

/// Lets the commit task (on the store's own thread) take what was queued and send it.
fn settle() {
    std::thread::sleep(Duration::from_millis(60));
}

/// Two commits held in flight by a write pause, then a reward, then an insert on another
/// unit: the insert does not overtake the reward (it goes with it, once nothing is in flight,
/// and is answered after it). Sent while the reward waits, it would land first.
#[test]
fn a_write_queued_after_a_reward_is_not_answered_before_it() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        // The library is loaded (a write, which the pause would hold).
        let inserted = store.insert_sticky(&epoch(), "r", record("a", T0_MS), tally(T0_MS));
        inserted.await.expect("r inserted");
    });
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1500", "WRITE"]), "OK");
    let first = store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS));
    settle();
    let second = store.insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS));
    settle();
    let reward = store.apply_rewards(vec![unit_reward("e1", "r", 1.0, T0_MS + 1)]);
    settle();
    let later = store.insert_sticky(&epoch(), "u3", record("a", T0_MS), tally(T0_MS));
    block_on(async {
        let (first, second, reward, later) =
            tokio::join!(timed(first), timed(second), timed(reward), timed(later));
        assert!(first.1.expect("u1 inserted").1);
        assert!(second.1.expect("u2 inserted").1);
        assert!(later.1.expect("u3 inserted").1);
        assert!(matches!(
            reward.1.expect("reward answered").as_slice(),
            [RewardOutcome::Applied { .. }]
        ));
        assert!(
            reward.0 <= later.0,
            "u3 came after the reward and was answered {:?} before it",
            reward.0 - later.0
        );
    });
}

/// A flush held in flight at shutdown lands first, and the exposures counted since it was
/// taken go in the last commit: the shutdown answers success only with all of them written.
#[test]
fn exposures_counted_while_a_flush_is_in_flight_are_written_at_shutdown() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let inserted = store.insert_sticky(&epoch(), "r", record("a", T0_MS), tally(T0_MS));
        inserted.await.expect("r inserted");
    });
    for _ in 0..5 {
        assert!(store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    }
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]), "OK");
    // A tick (every `FLUSH_EVERY_MS`) takes the five and sends them; the pause holds them.
    std::thread::sleep(Duration::from_millis(3 * commit::FLUSH_EVERY_MS));
    for _ in 0..7 {
        assert!(store.count_exposure(&epoch(), "bold", tally(T0_MS)));
    }
    block_on(store.shutdown()).expect("clean shutdown");
    let reader = open(&server);
    let counters = block_on(reader.counters(&epoch())).expect("counters read");
    assert_eq!(counters["bold"].exposures, 12);
}

/// Redis killed with two commits in flight (held by a write pause) and a write queued behind
/// them: every write is answered, with an error (none was durable), and none hangs.
#[test]
fn redis_killed_with_two_commits_in_flight_answers_every_write_with_an_error() {
    let mut server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let inserted = store.insert_sticky(&epoch(), "r", record("a", T0_MS), tally(T0_MS));
        inserted.await.expect("r inserted");
    });
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]), "OK");
    let first = store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS));
    settle();
    let second = store.insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS));
    settle();
    let third = store.insert_sticky(&epoch(), "u3", record("a", T0_MS), tally(T0_MS));
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
