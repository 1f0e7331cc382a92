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

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;
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
