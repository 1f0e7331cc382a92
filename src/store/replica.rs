//! Replica reports: what each server process sharing a store says it runs, so that a
//! half-finished rollout (replicas on different experiment-folder versions) is visible from
//! any of them (`GET /v1/admin/config`, `banditd plan --server`).
//!
//! A report is announced with an expiry and refreshed well before it; a replica that stops
//! withdraws its report, and one that dies drops out when its report expires. The embedded
//! store serves one process, so it only ever holds that process's report ([`LocalReplica`]).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One server process's own account of the experiment folder it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaReport {
    /// Stable for the life of the process: `hostname:pid`.
    pub id: String,
    /// The socket address the process serves HTTP on, as it bound it.
    pub address: String,
    /// Content hash of the experiment folder it runs (the `version` of its
    /// `GET /v1/admin/config`).
    pub version: String,
    /// When that version was loaded (Unix ms, the replica's clock).
    pub loaded_ms: u64,
    /// When the replica last refreshed this report (Unix ms, the replica's clock).
    pub reported_ms: u64,
}

/// The one report an embedded store can hold: its own process's.
#[derive(Debug, Default)]
pub(crate) struct LocalReplica {
    /// The report and when it expires (Unix ms).
    report: Mutex<Option<(ReplicaReport, u64)>>,
}

impl LocalReplica {
    pub(crate) fn announce(&self, report: ReplicaReport, expires_ms: u64) {
        *self.lock() = Some((report, expires_ms));
    }

    pub(crate) fn withdraw(&self, id: &str) {
        let mut held = self.lock();
        if held.as_ref().is_some_and(|(report, _)| report.id == id) {
            *held = None;
        }
    }

    /// The report, unless it expired at or before `now_ms`.
    pub(crate) fn live(&self, now_ms: u64) -> Vec<ReplicaReport> {
        self.lock()
            .as_ref()
            .filter(|(_, expires_ms)| *expires_ms > now_ms)
            .map(|(report, _)| report.clone())
            .into_iter()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(ReplicaReport, u64)>> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
