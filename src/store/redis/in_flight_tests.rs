//! The order rule of commits in flight (`in_flight::hold_back`), and two commits in flight on
//! a real `redis-server` keeping one unit's writes in the order they came.

use std::collections::{HashMap, HashSet};

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
    let batch = vec![
        reassign("u"),
        insert("v"),
        insert("u"),
        rewards("w"),
        insert("w"),
        insert("x"),
    ];
    let (send, later) = hold_back(batch, &busy(&["u"]), false);
    // u is in flight: both its writes wait, in order; the rewards wait for an idle pipe and
    // the write on their unit behind them; v and x go.
    assert_eq!(names(&send), ["I v", "I x"]);
    assert_eq!(names(&later), ["R u", "I u", "W w", "I w"]);
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
