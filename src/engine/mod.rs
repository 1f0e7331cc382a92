//! Live experiments: assignment, event ingestion, stats. The engine is the imperative shell
//! around the pure `policy`/`stats` core: it owns the clock, the RNG and the store handle.

mod assign;
mod burn_in;
mod claims_json;
pub mod clock;
mod conclusion;
mod delay_report;
mod delay_view;
mod epoch_spec;
mod error;
mod events;
mod guardrail_events;
mod halts;
pub use halts::{HaltReport, in_force as halt_in_force};
pub mod export;
mod export_confirmations;
pub mod exposure;
mod exposure_report;
mod history;
mod live;
mod refresh;
mod reload;
mod replicas;
mod report;
mod stopping_detail;
pub mod token;
mod unit;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use assign::{AssignMany, Assignment, Fallback, Refused};
pub use clock::{Clock, ManualClock, SystemClock};
pub use delay_report::{ArmDelayReport, NaiveArmReport};
pub use error::EngineError;
pub use events::{
    EVENT_OUTCOMES, EventBatchReport, RawEvent, Rejection, RejectionReason, Timestamp,
    parse_timestamp,
};
pub use history::{
    DEFAULT_HISTORY_INTERVAL_MS, HistoryEntry, HistoryPoint, HistoryQuery as HistoryRequest,
    MAX_HISTORY_POINTS, MAX_HISTORY_REVISIONS,
};
pub use live::{LiveExperiment, SNAPSHOT_REFRESH_MS, Snapshot};
pub use reload::{
    ConfigStatus, ExperimentSource, FileStatus, ReloadError, ReloadFailure, ReloadOutcome,
    WatchMode, WatchStatus,
};
pub use replicas::{ANNOUNCE_EVERY_MS, REPLICA_TTL_MS, ReplicaIdentity, ReplicaSet, VersionGroup};
pub use report::{
    ArmReport, CredibleInterval, DECISION_STATES, DEFAULT_CREDIBLE_LEVEL, DecisionReport,
    DecisionStatus, ExperimentReport, ExperimentSummary, PosteriorReport, SrmReport,
    decision_state,
};
pub use token::TokenSigner;
pub use unit::{MAX_UNIT_BYTES, Unit, UnitError};

use crate::spec::{Experiment, Status};
use crate::store::Store;

/// The loaded set of experiments, swapped as a whole so a request never sees half of a reload.
#[derive(Debug, Default)]
pub struct ExperimentSet {
    /// Looked up on every assign call by the id in its path. foldhash, not std's SipHash-1-3:
    /// the keys are the operator's ids and a caller only looks up, so chosen ids cannot grow
    /// the table or its probes beyond the folder's own; with SipHash-1-3 the lookup took ~390
    /// instructions per assign, ~210 with foldhash (benches/load/results/
    /// preq16-2026-12-01-s16.md).
    by_id: HashMap<String, Arc<LiveExperiment>, foldhash::fast::RandomState>,
    /// File order, for stable listings.
    order: Vec<Arc<LiveExperiment>>,
    /// Experiments of the folder that are not live in this server's environment (not
    /// served, no state loaded): kept only to answer "not live here" rather than "unknown".
    elsewhere: HashMap<String, Arc<Experiment>>,
}

impl ExperimentSet {
    pub fn get(&self, id: &str) -> Option<&Arc<LiveExperiment>> {
        self.by_id.get(id)
    }

    /// An experiment of the folder that is not live in this environment.
    pub fn elsewhere(&self, id: &str) -> Option<&Arc<Experiment>> {
        self.elsewhere.get(id)
    }

    /// Every experiment of the folder that is not live in this environment.
    pub fn all_elsewhere(&self) -> impl Iterator<Item = &Arc<Experiment>> {
        self.elsewhere.values()
    }

    /// Records the folder's experiments that are not live in this environment.
    pub(crate) fn set_elsewhere(&mut self, experiments: Vec<Experiment>) {
        self.elsewhere = experiments
            .into_iter()
            .map(|e| (e.id.as_str().to_owned(), Arc::new(e)))
            .collect();
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<LiveExperiment>> {
        self.order.iter()
    }

    /// Everything a frontend can be assigned in: all but drafts.
    pub fn served(&self) -> impl Iterator<Item = &Arc<LiveExperiment>> {
        self.order.iter().filter(|e| e.spec.status != Status::Draft)
    }
}

/// The running service's core.
pub struct Engine {
    experiments: ArcSwap<ExperimentSet>,
    store: Arc<dyn Store>,
    signer: TokenSigner,
    clock: Arc<dyn Clock>,
    /// The folder to reload from; `None` for an engine built from a fixed list.
    source: Option<ExperimentSource>,
    config: ArcSwap<ConfigStatus>,
    reload_lock: tokio::sync::Mutex<()>,
    reloads: reload::ReloadState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("experiments", &self.experiments.load().order.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads each experiment's durable counters and starts serving them.
    pub async fn start(
        experiments: Vec<Experiment>,
        store: Arc<dyn Store>,
        signer: TokenSigner,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EngineError> {
        let now_ms = clock.now_ms();
        let config = ConfigStatus {
            version: String::new(),
            loaded_ms: now_ms,
            directory: None,
            environment: None,
            files: reload::file_statuses(&experiments),
            last_error: None,
        };
        let mut engine = Self {
            experiments: ArcSwap::from_pointee(ExperimentSet::default()),
            store,
            signer,
            clock,
            source: None,
            config: ArcSwap::from_pointee(config),
            reload_lock: tokio::sync::Mutex::new(()),
            reloads: reload::ReloadState::default(),
        };
        let set = reload::build_set(&engine, experiments, now_ms).await?;
        engine.experiments = ArcSwap::from_pointee(set);
        Ok(engine)
    }

    /// Serves `source` from now on: reloads re-read it; `version` is the fingerprint of the
    /// folder the engine was started with.
    pub fn with_source(self, source: ExperimentSource, version: String) -> Self {
        self.with_source_and_elsewhere(source, version, Vec::new())
    }

    /// [`Engine::with_source`], also knowing the folder's experiments that are not live in
    /// the source's environment (`catalog::LoadedFolder::elsewhere`), so that asking for one
    /// says so instead of "unknown".
    pub fn with_source_and_elsewhere(
        self,
        source: ExperimentSource,
        version: String,
        elsewhere: Vec<Experiment>,
    ) -> Self {
        if !elsewhere.is_empty() {
            let mut set = ExperimentSet {
                by_id: self.experiments.load().by_id.clone(),
                order: self.experiments.load().order.clone(),
                elsewhere: HashMap::new(),
            };
            set.set_elsewhere(elsewhere);
            self.experiments.store(Arc::new(set));
        }
        let mut status = (*self.config.load_full()).clone();
        status.version = version;
        status.directory = Some(source.dir.display().to_string());
        status.environment = source.environment.clone();
        self.config.store(Arc::new(status));
        Self {
            source: Some(source),
            ..self
        }
    }

    pub fn catalog(&self) -> arc_swap::Guard<Arc<ExperimentSet>> {
        self.experiments.load()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A loaded, non-draft experiment.
    fn served(&self, id: &str) -> Result<Arc<LiveExperiment>, EngineError> {
        let live = self.loaded(id)?;
        if live.spec.status == Status::Draft {
            return Err(EngineError::Draft(id.to_owned()));
        }
        Ok(live)
    }

    fn loaded(&self, id: &str) -> Result<Arc<LiveExperiment>, EngineError> {
        self.experiments
            .load()
            .get(id)
            .cloned()
            .ok_or_else(|| self.missing(id))
    }

    /// Why `id` is not loaded: unknown, or in the folder but not live in this environment.
    fn missing(&self, id: &str) -> EngineError {
        let set = self.experiments.load();
        match (set.elsewhere(id), &self.source) {
            (Some(spec), Some(source)) => EngineError::NotInEnvironment {
                experiment: id.to_owned(),
                environment: source.environment.clone().unwrap_or_default(),
                live_in: spec.environments.clone().unwrap_or_default(),
            },
            _ => EngineError::UnknownExperiment(id.to_owned()),
        }
    }

    /// Drops event ids and token marks past their retention. Run periodically.
    pub async fn expire(&self) -> Result<u64, EngineError> {
        Ok(self.store.expire(self.clock.now_ms()).await?)
    }
}

#[cfg(test)]
#[path = "semantics_tests.rs"]
mod semantics_tests;

#[cfg(test)]
#[path = "exposure_per_request_tests.rs"]
mod exposure_per_request_tests;
#[cfg(test)]
#[path = "exposure_tests.rs"]
mod exposure_tests;
