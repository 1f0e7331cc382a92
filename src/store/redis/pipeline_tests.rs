//! What the next commit takes from the queue while other commits are in flight.

use tokio::sync::oneshot;

use super::{Pending, Ticket, take_batch};
use crate::store::redis::commit::Command;
use crate::store::redis::tests::tally;
use crate::store::{Epoch, StickyRecord};

fn epoch() -> Epoch {
    Epoch {
        experiment: "headline".to_owned(),
        revision: 1,
    }
}

fn insert(unit: &str) -> Command {
    Command::Insert {
        epoch: epoch(),
        unit: unit.to_owned(),
        record: StickyRecord {
            variant: "bold".to_owned(),
            assigned_ms: 1,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        },
        tally: tally(1),
        reply: oneshot::channel().0,
    }
}

fn rewards() -> Command {
    Command::Rewards {
        ops: Vec::new(),
        reply: oneshot::channel().0,
    }
}

/// What each command of a queue is, for assertions.
fn names(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .map(|command| match command {
            Command::Insert { unit, .. } | Command::Reassign { unit, .. } => unit.clone(),
            Command::Rewards { .. } => "rewards".to_owned(),
            Command::Shutdown { .. } => "shutdown".to_owned(),
        })
        .collect()
}

fn in_flight(pending: &mut Pending, units: &[&str], with_rewards: bool) -> Ticket {
    let ticket = Ticket {
        units: units
            .iter()
            .map(|unit| pending.key(&epoch(), unit))
            .collect(),
        rewards: with_rewards,
        flush: false,
    };
    pending.take(&ticket);
    ticket
}

#[test]
fn a_sticky_write_for_a_unit_an_in_flight_commit_writes_waits_for_that_commit() {
    let mut pending = Pending::default();
    let ticket = in_flight(&mut pending, &["u1"], false);
    let mut queue = vec![insert("u1"), insert("u2"), insert("u1")];
    let (batch, taken) = take_batch(&mut queue, &pending, false);
    assert_eq!(names(&batch), ["u2"]);
    assert_eq!(names(&queue), ["u1", "u1"]);
    assert_eq!(taken.units, [pending.key(&epoch(), "u2")]);
    // Once the commit in flight settles, the held writes go (together, as one script's).
    pending.release(&ticket);
    let (batch, _) = take_batch(&mut queue, &pending, true);
    assert_eq!(names(&batch), ["u1", "u1"]);
    assert!(queue.is_empty());
}

#[test]
fn a_unit_held_by_two_commits_in_flight_waits_for_both() {
    let mut pending = Pending::default();
    let first = in_flight(&mut pending, &["u1"], false);
    let second = in_flight(&mut pending, &["u1"], false);
    pending.release(&first);
    let mut queue = vec![insert("u1")];
    assert!(take_batch(&mut queue, &pending, false).0.is_empty());
    pending.release(&second);
    assert_eq!(names(&take_batch(&mut queue, &pending, true).0), ["u1"]);
}

#[test]
fn rewards_go_only_into_a_commit_that_starts_with_nothing_in_flight() {
    let pending = Pending::default();
    let mut queue = vec![insert("u1"), rewards(), insert("u2")];
    let (batch, ticket) = take_batch(&mut queue, &pending, false);
    assert_eq!(names(&batch), ["u1"]);
    assert!(!ticket.rewards);
    assert_eq!(names(&queue), ["rewards", "u2"]);
    let (batch, ticket) = take_batch(&mut queue, &pending, true);
    assert_eq!(names(&batch), ["rewards", "u2"]);
    assert!(ticket.rewards);
    assert!(queue.is_empty());
}

#[test]
fn a_settled_reward_commit_lets_the_next_commit_start() {
    let mut pending = Pending::default();
    let ticket = in_flight(&mut pending, &[], true);
    assert!(pending.rewards);
    pending.release(&ticket);
    assert!(!pending.rewards);
    assert!(pending.units.is_empty());
}
