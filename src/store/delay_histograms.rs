//! The delay histograms every backend keeps per arm and epoch, beside the counters they derive
//! from (the rule is in the table of `rules`): what `stats::fit_delays` reads to correct the
//! posterior for conversions that have not arrived yet (README, delay-aware posterior).
//!
//! - **Cohorts**: every counted exposure (a winning sticky insert or re-assignment, an
//!   `on_render` confirmation, a per-request exposure) adds its count to the bin of its
//!   counting time, `now_ms / DELAY_BIN_MS` (for a sticky insert that is the assignment time).
//! - **Delays**: every credited reward adds its value to the delay bin of its arrival minus
//!   its assignment (`stats::delay_bin`: the sticky record's `assigned_ms`, the token's
//!   `issued_ms`; an arrival before the assignment, by clock skew, is a delay of 0).
//!
//! Cohorts older than the reward window are complete: the estimator counts their exposures
//! through N alone, so a backend may delete them (fold them into N, which already holds them)
//! without changing any fit. Neither backend does so yet: a cohort is a few bytes per arm and
//! hour. An epoch written by a build without histograms has none: its exposures all read as
//! complete (the naive posterior) until new exposures accrue, and its delay law is learnt from
//! the conversions that arrive from then on.
//!
//! Pure values and arithmetic, like `rules`: no backend types, no I/O, the clock handed in.

use std::collections::{BTreeMap, HashMap};

use super::audit_report::DelayMismatch;
use super::types::{ArmCounters, Epoch, StickyRecord, TokenCredit};
use crate::stats::{DELAY_BIN_MS, DelayCounts, bin_count, delay_bin};

/// The two histograms of one arm in one epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DelayHistograms {
    /// Exposures by cohort bin ([`cohort_bin`]).
    pub cohorts: BTreeMap<u64, u64>,
    /// Reward mass by delay bin ([`conversion_delay_bin`]).
    pub delays: BTreeMap<u32, f64>,
}

/// The cohort bin of an exposure counted at `counted_ms`.
pub fn cohort_bin(counted_ms: u64) -> u64 {
    counted_ms / DELAY_BIN_MS
}

/// The delay bin of a reward arriving at `arrived_ms` for an assignment made at `assigned_ms`.
pub fn conversion_delay_bin(assigned_ms: u64, arrived_ms: u64) -> u32 {
    u32::try_from(delay_bin(arrived_ms.saturating_sub(assigned_ms))).unwrap_or(u32::MAX)
}

/// Whether every exposure of cohort `bin` is older than the window at `now_ms` (so the cohort
/// may be folded away, see the module docs).
pub fn cohort_complete(bin: u64, window_ms: u64, now_ms: u64) -> bool {
    bin.saturating_add(1)
        .saturating_mul(DELAY_BIN_MS)
        .saturating_add(window_ms)
        <= now_ms
}

impl DelayHistograms {
    /// Counts `n` exposures counted at `counted_ms`.
    pub fn add_exposures(&mut self, counted_ms: u64, n: u64) {
        *self.cohorts.entry(cohort_bin(counted_ms)).or_default() += n;
    }

    /// Counts a reward of `reward` arriving at `arrived_ms` for an assignment at `assigned_ms`.
    pub fn add_reward(&mut self, reward: f64, assigned_ms: u64, arrived_ms: u64) {
        *self
            .delays
            .entry(conversion_delay_bin(assigned_ms, arrived_ms))
            .or_default() += reward;
    }

    /// Adds another part of the same arm (a Redis shard's share).
    pub fn merge(&mut self, other: &DelayHistograms) {
        for (bin, n) in &other.cohorts {
            *self.cohorts.entry(*bin).or_default() += n;
        }
        for (bin, r) in &other.delays {
            *self.delays.entry(*bin).or_default() += r;
        }
    }

    /// Exposures the cohorts hold.
    pub fn cohort_total(&self) -> u64 {
        self.cohorts.values().sum()
    }

    /// Reward mass the delay bins hold.
    pub fn delay_total(&self) -> f64 {
        self.delays.values().sum()
    }

    /// What the estimator reads, for an arm with `exposures` counted exposures in all, at
    /// `now_ms`: the cohorts younger than the window (complete ones count through
    /// `exposures`), and the delays on the window's grid (a delay past the last bin, which a
    /// reward accepted at the window's boundary can have, goes to the last).
    pub fn counts(&self, exposures: u64, window_ms: u64, now_ms: u64) -> DelayCounts {
        let bins = bin_count(window_ms);
        let mut delays = vec![0.0; bins];
        for (&bin, &mass) in &self.delays {
            delays[(bin as usize).min(bins - 1)] += mass;
        }
        DelayCounts {
            cohorts: self
                .cohorts
                .iter()
                .filter(|(bin, _)| !cohort_complete(**bin, window_ms, now_ms))
                .map(|(bin, n)| (*bin, *n as f64))
                .collect(),
            delays,
            exposures: exposures as f64,
        }
    }
}

/// What the records of one arm imply of its histograms, for the audit: the cohort of every
/// sticky record (counted at its assignment), and the delay bin of every rewarded sticky
/// record and live token mark that kept its reward's arrival time. Per-request exposures and
/// rewards folded or moved away keep no record of their time, so only their totals are
/// checkable: the histograms never hold more than the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedDelays {
    pub cohorts: BTreeMap<u64, u64>,
    pub delays: BTreeMap<u32, f64>,
}

/// Rounding allowed between two sums of `terms` rewards in [0, 1].
fn close_enough(terms: usize) -> f64 {
    1e-9 * (terms as f64 + 1.0)
}

/// Why an arm's histograms disagree with its counters (`exposures`, `reward_sum`) and its
/// records, if they do:
/// - they never hold more than the counters (Σ cohorts ≤ N, Σ delays ≤ R);
/// - where they hold all of N (an epoch written since histograms were kept), every sticky
///   record's cohort holds at least the records of that hour; likewise the delay bins, where
///   they hold all of R. An epoch begun by an older build holds less, and only the first
///   check applies to it; so a histogram that lost counts reads like such an epoch, and
///   what the audit proves of it is only that it never counts more than the counters.
pub fn disagreement(
    histograms: &DelayHistograms,
    exposures: u64,
    reward_sum: f64,
    recorded: &RecordedDelays,
) -> Option<String> {
    let cohorts = histograms.cohort_total();
    let delays = histograms.delay_total();
    let slack = close_enough(histograms.delays.len() + recorded.delays.len());
    if cohorts > exposures {
        return Some(format!(
            "cohorts hold {cohorts} exposures, the counters {exposures}"
        ));
    }
    if delays > reward_sum + slack {
        return Some(format!(
            "delay bins hold {delays} of reward, the counters {reward_sum}"
        ));
    }
    if cohorts == exposures {
        for (bin, n) in &recorded.cohorts {
            let held = histograms.cohorts.get(bin).copied().unwrap_or(0);
            if held < *n {
                return Some(format!(
                    "cohort {bin} holds {held} exposures, its records {n}"
                ));
            }
        }
    }
    if (reward_sum - delays).abs() <= slack {
        for (bin, r) in &recorded.delays {
            let held = histograms.delays.get(bin).copied().unwrap_or(0.0);
            if held + slack < *r {
                return Some(format!(
                    "delay bin {bin} holds {held} of reward, its records {r}"
                ));
            }
        }
    }
    None
}

/// What the records of one epoch imply, per arm (see [`RecordedDelays`]).
pub fn recorded<'a>(
    records: impl IntoIterator<Item = &'a StickyRecord>,
    marks: impl IntoIterator<Item = &'a TokenCredit>,
) -> HashMap<String, RecordedDelays> {
    let mut arms: HashMap<String, RecordedDelays> = HashMap::new();
    for record in records {
        let arm = arms.entry(record.variant.clone()).or_default();
        *arm.cohorts
            .entry(cohort_bin(record.assigned_ms))
            .or_default() += 1;
        if let (Some(reward), Some(arrived)) = (record.reward, record.rewarded_ms) {
            *arm.delays
                .entry(conversion_delay_bin(record.assigned_ms, arrived))
                .or_default() += reward;
        }
    }
    for mark in marks {
        if let Some(arrived) = mark.credited_ms {
            *arms
                .entry(mark.variant.clone())
                .or_default()
                .delays
                .entry(conversion_delay_bin(mark.issued_ms, arrived))
                .or_default() += mark.reward;
        }
    }
    arms
}

/// The audit of one epoch's histograms against its counters and records: one mismatch per
/// arm that [`disagreement`] rejects.
pub fn audit_epoch(
    epoch: &Epoch,
    histograms: &HashMap<String, DelayHistograms>,
    counters: &HashMap<String, ArmCounters>,
    recorded: &HashMap<String, RecordedDelays>,
) -> Vec<DelayMismatch> {
    let variants: std::collections::BTreeSet<&String> = histograms.keys().collect();
    variants
        .into_iter()
        .filter_map(|variant| {
            let c = counters.get(variant).copied().unwrap_or_default();
            let none = RecordedDelays::default();
            let reason = disagreement(
                &histograms[variant],
                c.exposures,
                c.reward_sum,
                recorded.get(variant).unwrap_or(&none),
            )?;
            Some(DelayMismatch {
                epoch: epoch.clone(),
                variant: variant.clone(),
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_check_accepts_what_the_writes_implied_and_rejects_a_lost_bin() {
        let mut h = DelayHistograms::default();
        h.add_exposures(T0_MS, 2);
        h.add_exposures(T0_MS + DELAY_BIN_MS, 1);
        h.add_reward(1.0, T0_MS, T0_MS + 61_000);
        let recorded = RecordedDelays {
            cohorts: [(cohort_bin(T0_MS), 2)].into(),
            delays: [(1, 1.0)].into(),
        };
        // One per-request exposure besides the records, all of it in the histograms.
        assert_eq!(disagreement(&h, 3, 1.0, &recorded), None);
        // An older build's exposures (no histograms) make only the totals checkable.
        assert_eq!(disagreement(&h, 10, 3.0, &recorded), None);
        let lost = RecordedDelays {
            cohorts: [(cohort_bin(T0_MS), 3)].into(),
            ..recorded.clone()
        };
        assert!(disagreement(&h, 3, 1.0, &lost).is_some());
        let wrong_bin = RecordedDelays {
            delays: [(2, 1.0)].into(),
            ..recorded.clone()
        };
        assert!(disagreement(&h, 3, 1.0, &wrong_bin).is_some());
        assert!(disagreement(&h, 2, 1.0, &recorded).is_some(), "more than N");
        assert!(disagreement(&h, 3, 0.5, &recorded).is_some(), "more than R");
    }
    use crate::store::rule_cases::{T0_MS, WINDOW_MS, delay_bin_cases};

    #[test]
    fn every_worked_delay_case_lands_in_its_bin() {
        for case in delay_bin_cases() {
            assert_eq!(
                conversion_delay_bin(case.assigned_ms, case.arrived_ms),
                case.expected_bin,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_cohort_is_complete_once_its_last_hour_is_a_window_old() {
        let bin = cohort_bin(T0_MS);
        let end = (bin + 1) * DELAY_BIN_MS;
        assert!(!cohort_complete(bin, WINDOW_MS, end + WINDOW_MS - 1));
        assert!(cohort_complete(bin, WINDOW_MS, end + WINDOW_MS));
    }

    #[test]
    fn the_estimator_reads_recent_cohorts_and_the_delays_on_the_window_grid() {
        let mut h = DelayHistograms::default();
        h.add_exposures(T0_MS, 3);
        h.add_exposures(T0_MS + 10 * DELAY_BIN_MS, 2);
        h.add_reward(1.0, T0_MS, T0_MS + 90_000);
        h.add_reward(0.5, T0_MS, T0_MS + 30 * WINDOW_MS);
        let now = T0_MS + WINDOW_MS + 5 * DELAY_BIN_MS;
        let counts = h.counts(9, WINDOW_MS, now);
        // The first cohort is complete by now; the second is not.
        assert_eq!(
            counts.cohorts,
            vec![(cohort_bin(T0_MS + 10 * DELAY_BIN_MS), 2.0)]
        );
        assert_eq!(counts.exposures, 9.0);
        assert_eq!(counts.delays.len(), bin_count(WINDOW_MS));
        assert_eq!(counts.delays[1], 1.0);
        assert_eq!(counts.delays[bin_count(WINDOW_MS) - 1], 0.5);
        assert_eq!(h.cohort_total(), 5);
        assert_eq!(h.delay_total(), 1.5);
    }
}
