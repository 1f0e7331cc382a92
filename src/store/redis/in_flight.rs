//! Group commits in flight at once, and the order rule that keeps two commits touching one
//! unit or event id in the order their commands came (`commit::run` sends, this module decides
//! what may go).

use std::collections::{HashMap, HashSet};

use super::commit::Command;
use super::timeline::Stamps;
use crate::store::{Epoch, RewardTarget};

/// Commits in flight at once: 2, or `BANDITD_REDIS_IN_FLIGHT` (1 to 4; a bench switch, so one
/// build can be compared with one commit at a time).
pub fn in_flight_limit() -> usize {
    std::env::var("BANDITD_REDIS_IN_FLIGHT")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|n| (1..=4).contains(n))
        .unwrap_or(2)
}

/// What a commit in flight reports when its answers are sent.
pub struct Landed {
    pub units: HashMap<Epoch, Vec<String>>,
    pub carried_flush: bool,
    pub flushed: bool,
    pub stamps: Option<Stamps>,
    pub commands: usize,
    pub calls: usize,
}

/// The order rule of commits in flight: splits `batch` (in the order its commands came) into
/// what may be sent now and what waits. A sticky write waits while a commit in flight
/// (`busy`) writes its unit, or while an earlier command of the batch on its unit waits (so
/// one unit's commands keep their order); rewards wait unless nothing is in flight
/// (`idle`), and so does every command that came after them: otherwise each commit that lands
/// would let later writes go out again, the pipe would never be idle under load, and the
/// rewards would wait for ever.
pub fn hold_back(
    batch: Vec<Command>,
    busy: &HashMap<Epoch, HashSet<String>>,
    idle: bool,
) -> (Vec<Command>, Vec<Command>) {
    if idle {
        return (batch, Vec::new());
    }
    let mut waiting: HashSet<(Epoch, String)> = HashSet::new();
    let mut send = Vec::with_capacity(batch.len());
    let mut later = Vec::new();
    let is_busy = |epoch: &Epoch, unit: &str, waiting: &HashSet<(Epoch, String)>| {
        busy.get(epoch).is_some_and(|set| set.contains(unit))
            || waiting.contains(&(epoch.clone(), unit.to_owned()))
    };
    let mut rewards_wait = false;
    for command in batch {
        if rewards_wait {
            later.push(command);
            continue;
        }
        match &command {
            Command::Insert { epoch, unit, .. } | Command::Reassign { epoch, unit, .. } => {
                if is_busy(epoch, unit, &waiting) {
                    waiting.insert((epoch.clone(), unit.clone()));
                    later.push(command);
                } else {
                    send.push(command);
                }
            }
            Command::Rewards { .. } => {
                rewards_wait = true;
                later.push(command);
            }
            Command::Shutdown { .. } => later.push(command),
        }
    }
    (send, later)
}

/// The (epoch, unit) pairs the sticky writes and unit rewards of `batch` write.
pub fn written_units(batch: &[Command]) -> Vec<(Epoch, String)> {
    let mut units = Vec::new();
    for command in batch {
        match command {
            Command::Insert { epoch, unit, .. } | Command::Reassign { epoch, unit, .. } => {
                units.push((epoch.clone(), unit.clone()));
            }
            Command::Rewards { ops, .. } => {
                for op in ops {
                    if let RewardTarget::Unit(unit) = &op.target {
                        units.push((op.epoch.clone(), unit.clone()));
                    }
                }
            }
            Command::Shutdown { .. } => {}
        }
    }
    units
}

pub fn group_units(units: Vec<(Epoch, String)>) -> HashMap<Epoch, Vec<String>> {
    let mut grouped: HashMap<Epoch, Vec<String>> = HashMap::new();
    for (epoch, unit) in units {
        grouped.entry(epoch).or_default().push(unit);
    }
    grouped
}
