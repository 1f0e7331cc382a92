//! What an audit (`Store::audit`, `banditd audit`) found, in terms every backend shares: the
//! records it counted, and every arm or epoch whose counters disagree with them.

use super::types::{ArmCounters, Epoch};

/// An arm whose stored counters disagree with its records.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterMismatch {
    pub epoch: Epoch,
    pub variant: String,
    /// What the arm's counter key holds (zero if it has none).
    pub stored: ArmCounters,
    /// What the records imply.
    pub implied: ArmCounters,
}

/// An epoch whose arms' expected exposures do not add up to their exposures.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectationMismatch {
    pub epoch: Epoch,
    /// Σ over the epoch's arms of stored exposures.
    pub exposures: u64,
    /// Σ over the epoch's arms of stored expected exposures.
    pub expected_exposures: f64,
}

/// An arm whose delay histograms disagree with its counters or records
/// (`delay_histograms::disagreement`).
#[derive(Debug, Clone, PartialEq)]
pub struct DelayMismatch {
    pub epoch: Epoch,
    pub variant: String,
    pub reason: String,
}

/// The result of [`super::Store::audit`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditReport {
    /// Arms compared (the union of arms with counters and arms with records).
    pub arms_checked: usize,
    pub sticky_records: u64,
    /// sled: entries of the unit log that a later entry of the same unit superseded (a
    /// compaction removes them, see `unit_log`); other backends: 0.
    pub superseded_entries: u64,
    pub live_token_marks: u64,
    /// Confirmation marks of per-request `exposure: on_render` tokens still retained.
    pub live_confirmation_marks: u64,
    /// Event ids kept for dedup.
    pub event_ids: u64,
    /// Kept event ids and marks that nothing would ever remove (sled: confirmation marks not
    /// listed with their deadline in the expiry index, and token marks whose digest is not in
    /// their paired event-log value, its event ids being removed with their event-log
    /// generation; a backend with native expiry: no deadline set).
    pub unindexed_records: u64,
    /// Epoch records (start time, decision) that decoded.
    pub epoch_records: u64,
    /// History points that decoded.
    pub history_points: u64,
    pub mismatches: Vec<CounterMismatch>,
    pub expectation_mismatches: Vec<ExpectationMismatch>,
    pub delay_mismatches: Vec<DelayMismatch>,
}

impl AuditReport {
    /// True when every arm's counters equal what its records imply, every epoch's expected
    /// exposures add up to its exposures, every arm's delay histograms agree with both, and every retained record is in the expiry index.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
            && self.expectation_mismatches.is_empty()
            && self.delay_mismatches.is_empty()
            && self.unindexed_records == 0
    }
}
