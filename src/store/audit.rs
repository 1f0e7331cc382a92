//! The sled store's audit (`Store::audit`, report in `audit_report`): recomputes every arm's
//! counters from the records and compares them with the stored counters, the check behind
//! "counters always equal what the stored records imply, after any crash".
//!
//! Implied N = sticky records of the arm (the latest of each unit in the unit log, `unit_log`) + its per-request exposure count + units re-assigned
//! away from it. Implied R = rewards of its sticky records + rewards of its live token marks (the mark log) +
//! rewards folded in from expired marks + rewards the re-assigned units' old records carried.
//! (A re-assignment replaces a record but not the history the arm's counters hold, so the
//! moved-away counts are the record of what moved.) This is a full scan (seconds for millions of
//! units), meant for operators and tests, and it must see a quiescent store: [`super::SledStore::audit`] runs it on the writer thread
//! between commits, or directly when the writer is gone.
//!
//! Decayed N and R cannot be recomputed: per-request exposures leave no record of their time,
//! and the half-life each write used is not kept. Per-arm expected exposures cannot either (the
//! allocation of each moment is not kept), but every counted exposure adds exactly one
//! exposure's worth of allocation to the epoch, so Σₖ expectedₖ = Σₖ Nₖ is checked per epoch,
//! up to rounding. Epoch records and history points imply no counters; they are decoded so that
//! a corrupt one is reported.
//!
//! It also checks retention: every confirmation mark must be listed, with the deadline it
//! holds, by an expiry-index value (see `expiry_index`); one that is not would never be
//! removed. Token marks are read from the mark log (`mark_log`): each payload value's marks
//! must digest to exactly the digests of its paired event-log value, or their at-most-once
//! check and their removal would not hold. Event ids need no such check: the event-log key
//! that holds them names their generation (`event_log`). Index, pairs and records are written
//! in the same atomic commit, so this holds after any crash too.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::audit_report::{AuditReport, CounterMismatch, ExpectationMismatch};
use super::codec;
use super::error::StoreError;
use super::event_log;
use super::expiry_index;
use super::keys::{
    self, KIND_ARM, KIND_EPOCH, KIND_EPOCH_SPEC, KIND_EXPIRY, KIND_FOLDED, KIND_HISTORY,
    KIND_MOVED_AWAY, KIND_PER_REQUEST, io,
};
use super::mark_log;
use super::types::{ArmCounters, Epoch};
use super::unit_log;

#[derive(Default)]
struct Implied {
    counters: ArmCounters,
    /// How many rewards were summed (bounds the rounding difference, see [`rewards_agree`]).
    reward_terms: u64,
}

type ByArm<T> = BTreeMap<(Epoch, String), T>;

/// Recomputes and compares; see the module docs. Undecodable records are an error, not a
/// mismatch: the audit cannot say what they imply.
pub fn audit(db: &sled::Db) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    let index = ExpiryIndex::load(db)?;
    let mut implied: ByArm<Implied> = BTreeMap::new();
    let (latest, log_entries) = unit_log::latest_records(db)?;
    report.superseded_entries = log_entries.saturating_sub(latest.len() as u64);
    for (key, record) in &latest {
        let (_, epoch, _unit) = keys::parse_epoch_key(key)?;
        let implied = implied.entry((epoch, record.variant.clone())).or_default();
        implied.counters.exposures += 1;
        if let Some(reward) = record.reward {
            implied.counters.reward_sum += reward;
            implied.reward_terms += 1;
        }
        report.sticky_records += 1;
    }
    let digester = event_log::digester(db)?;
    let (marks, unpaired) = mark_log::audit(db, &digester, |epoch, mark| {
        let implied = implied.entry((epoch.clone(), mark.variant)).or_default();
        implied.counters.reward_sum += mark.reward;
        implied.reward_terms += 1;
    })?;
    report.live_token_marks += marks;
    report.unindexed_records += unpaired;
    // A confirmation's exposure is in its arm's per-request count (read below); the mark
    // only has to be listed for removal.
    for item in db.scan_prefix([keys::KIND_CONFIRM_MARK]) {
        let (key, value) = item.map_err(io)?;
        keys::parse_epoch_key(&key)?;
        if !index.lists(&key, super::confirm_apply::stored_deadline(&value)?) {
            report.unindexed_records += 1;
        }
        report.live_confirmation_marks += 1;
    }
    report.event_ids += event_log::logged_ids(db)?;
    for item in db.scan_prefix([KIND_PER_REQUEST]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
        let count = codec::decode_u64(&value, "per-request exposures")?;
        implied
            .entry((epoch, variant))
            .or_default()
            .counters
            .exposures += count;
    }
    for item in db.scan_prefix([KIND_FOLDED]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
        let folded = codec::decode_f64(&value, "folded reward")?;
        let implied = implied.entry((epoch, variant)).or_default();
        implied.counters.reward_sum += folded;
        implied.reward_terms += 1;
    }
    for item in db.scan_prefix([KIND_MOVED_AWAY]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
        let moved = codec::decode_moved_away(&value)?;
        let implied = implied.entry((epoch, variant)).or_default();
        implied.counters.exposures += moved.exposures;
        implied.counters.reward_sum += moved.reward_sum;
        implied.reward_terms += 1;
    }
    let mut stored: HashMap<(Epoch, String), ArmCounters> = HashMap::new();
    for item in db.scan_prefix([KIND_ARM]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
        stored.insert((epoch, variant), codec::decode_arm(&value)?);
    }
    for item in db.scan_prefix([KIND_EPOCH]) {
        let (key, value) = item.map_err(io)?;
        keys::parse_epoch_key(&key)?;
        codec::decode_epoch_info(&value)?;
        report.epoch_records += 1;
    }
    for item in db.scan_prefix([KIND_EPOCH_SPEC]) {
        let (key, value) = item.map_err(io)?;
        keys::parse_epoch_key(&key)?;
        codec::decode_epoch_spec(&value)?;
    }
    for item in db.scan_prefix([KIND_HISTORY]) {
        let (key, value) = item.map_err(io)?;
        keys::parse_history_key(&key)?;
        codec::decode_history(&value)?;
        report.history_points += 1;
    }
    report.expectation_mismatches = expectation_mismatches(&stored);
    report.delay_mismatches = super::sled_delay::audit(db, &stored, &latest)?;
    for key in stored.keys() {
        implied.entry(key.clone()).or_default();
    }
    report.arms_checked = implied.len();
    for ((epoch, variant), implied) in implied {
        let stored = stored
            .get(&(epoch.clone(), variant.clone()))
            .copied()
            .unwrap_or_default();
        let terms = implied.reward_terms + implied.counters.exposures;
        if stored.exposures != implied.counters.exposures
            || !rewards_agree(stored.reward_sum, implied.counters.reward_sum, terms)
        {
            report.mismatches.push(CounterMismatch {
                epoch,
                variant,
                stored,
                implied: implied.counters,
            });
        }
    }
    Ok(report)
}

/// Every (record key, deadline) entry of the expiry index, each as the key followed by the
/// deadline's 8 big-endian bytes (one set, no per-entry tuple).
struct ExpiryIndex(HashSet<Vec<u8>>);

impl ExpiryIndex {
    fn load(db: &sled::Db) -> Result<Self, StoreError> {
        let mut entries = HashSet::new();
        for item in db.scan_prefix([KIND_EXPIRY]) {
            let (key, value) = item.map_err(io)?;
            let due_ms = keys::parse_expiry_key(&key)?;
            for (record_key, deadline_ms) in expiry_index::decode_index_value(due_ms, &value)? {
                entries.insert(Self::entry(record_key, deadline_ms));
            }
        }
        Ok(ExpiryIndex(entries))
    }

    fn entry(record_key: &[u8], deadline_ms: u64) -> Vec<u8> {
        let mut entry = Vec::with_capacity(record_key.len() + 8);
        entry.extend_from_slice(record_key);
        entry.extend_from_slice(&deadline_ms.to_be_bytes());
        entry
    }

    fn lists(&self, record_key: &[u8], deadline_ms: u64) -> bool {
        self.0.contains(&Self::entry(record_key, deadline_ms))
    }
}

/// Epochs whose Σ expected exposures is not Σ exposures up to rounding.
///
/// Each arm's expected exposures is a sum of up to N_total non-negative terms (one per counted
/// exposure of the epoch), each a probability scaled to sum to 1 with one rounding; adding the
/// K arms' sums adds K − 1 more. So N_total + K + 1 bounds the terms of the recursive-summation
/// error bound used by [`rewards_agree`].
fn expectation_mismatches(
    stored: &HashMap<(Epoch, String), ArmCounters>,
) -> Vec<ExpectationMismatch> {
    let mut by_epoch: BTreeMap<&Epoch, (u64, f64, u64)> = BTreeMap::new();
    for ((epoch, _variant), counters) in stored {
        let (exposures, expected, arms) = by_epoch.entry(epoch).or_default();
        *exposures += counters.exposures;
        *expected += counters.expected_exposures;
        *arms += 1;
    }
    by_epoch
        .into_iter()
        .filter(|(_, (exposures, expected, arms))| {
            !rewards_agree(*expected, *exposures as f64, exposures + arms + 1)
        })
        .map(
            |(epoch, (exposures, expected_exposures, _))| ExpectationMismatch {
                epoch: epoch.clone(),
                exposures,
                expected_exposures,
            },
        )
        .collect()
}

/// Whether two sums of the same rewards, added in different orders, agree up to rounding.
///
/// Recursive summation of n terms has absolute error at most (n − 1)·u·Σ|xᵢ| to first order,
/// u = ε/2 the unit roundoff (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
/// §4.2, eq. 4.4). Two such sums differ by at most twice that; rewards are non-negative so
/// Σ|xᵢ| is the sum itself. `terms` must bound n: the counter was built one reward at a time,
/// and a folded total stands for many expired marks, each a reward to a token assignment, so
/// the caller adds the arm's exposures (tokens are handed out with exposures) to the count. A
/// moved-away total stands for rewards of re-assigned units, each still one of the exposures.
fn rewards_agree(stored: f64, implied: f64, terms: u64) -> bool {
    let magnitude = stored.abs().max(implied.abs());
    let tolerance = 2.0 * (terms as f64 + 1.0) * (f64::EPSILON / 2.0) * magnitude.max(1.0);
    (stored - implied).abs() <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_that_differ_by_rounding_agree() {
        let in_order: f64 = (0..1000).map(|i| f64::from(i) / 997.0).sum();
        let reversed: f64 = (0..1000).rev().map(|i| f64::from(i) / 997.0).sum();
        assert!(rewards_agree(in_order, reversed, 1000));
    }

    fn arm(exposures: u64, expected_exposures: f64) -> ArmCounters {
        ArmCounters {
            exposures,
            expected_exposures,
            ..ArmCounters::default()
        }
    }

    #[test]
    fn expected_exposures_that_add_up_to_the_exposures_pass_and_one_missing_does_not() {
        let ep = |revision| Epoch {
            experiment: "exp".to_owned(),
            revision,
        };
        // 1000 exposures at a 1/3 split: the thirds do not add up to 1000 exactly in binary.
        let third: f64 = (0..1000).map(|_| 1.0 / 3.0).sum();
        let mut stored = HashMap::new();
        for variant in ["a", "b", "c"] {
            stored.insert((ep(1), variant.to_owned()), arm(333, third));
        }
        stored.insert((ep(1), "a".to_owned()), arm(334, third));
        assert!(expectation_mismatches(&stored).is_empty());
        stored.insert((ep(2), "a".to_owned()), arm(5, 4.0));
        stored.insert((ep(2), "b".to_owned()), arm(0, 0.0));
        let mismatches = expectation_mismatches(&stored);
        assert_eq!(
            mismatches,
            vec![ExpectationMismatch {
                epoch: ep(2),
                exposures: 5,
                expected_exposures: 4.0
            }]
        );
    }

    #[test]
    fn rewards_that_differ_by_one_small_reward_do_not_agree() {
        let sum: f64 = (0..1000).map(|i| f64::from(i) / 997.0).sum();
        assert!(!rewards_agree(sum, sum + 0.001, 1000));
        assert!(!rewards_agree(0.0, 1e-9, 1));
    }
}
