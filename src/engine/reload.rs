//! Reloading the experiment folder, all or nothing.
//!
//! The new folder is read, parsed and validated completely, checked for compatibility with
//! the running set, and the data each experiment needs is loaded from the store, before one
//! atomic swap replaces the set: a request in flight keeps the set it started with, and never
//! sees half of a reload. If anything is wrong nothing changes; the error is kept for
//! `GET /v1/admin/config`, logged, and returned to whoever asked.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::live::{LiveExperiment, Snapshot, epoch_of};
use super::{Engine, EngineError, ExperimentSet};
use crate::spec::Experiment;
use crate::store::StoreError;

/// Where the experiments come from, for reloads.
#[derive(Debug, Clone)]
pub struct ExperimentSource {
    pub dir: PathBuf,
    /// Only experiments live in this environment are loaded.
    pub environment: Option<String>,
}

/// One loaded file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub path: String,
    pub experiment: String,
    pub revision: u32,
}

/// The last reload that did not apply.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    pub at_ms: u64,
    /// What asked for it: `startup`, `sighup`, `api`, `watch`.
    pub trigger: String,
    /// Each problem, `file:line:col: message` where it has a place.
    pub errors: Vec<String>,
    /// The files that have errors (the other files of the folder were fine).
    pub files: Vec<String>,
}

/// What is loaded, as `GET /v1/admin/config` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// Content hash of the folder that is loaded.
    pub version: String,
    pub loaded_ms: u64,
    pub directory: Option<String>,
    pub environment: Option<String>,
    pub files: Vec<FileStatus>,
    pub last_error: Option<ReloadFailure>,
}

/// A reload that did apply (or had nothing to do).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    /// `applied` or `unchanged`.
    pub result: &'static str,
    pub version: String,
    pub experiments: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the experiment folder is invalid; nothing was changed")]
    Invalid(Vec<crate::spec::SpecError>),
    #[error("the new experiment set is not compatible with the running data; nothing was changed")]
    Incompatible(Vec<String>),
    #[error("this server was started without an experiment folder to reload")]
    NoSource,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ReloadError {
    /// The individual problems, for the response and the config status.
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            Self::Incompatible(errors) => errors.clone(),
            other => vec![other.to_string()],
        }
    }
}

impl ReloadError {
    /// The distinct files a refused reload blames.
    pub fn files(&self) -> Vec<String> {
        let files: std::collections::BTreeSet<String> = match self {
            Self::Invalid(errors) => errors
                .iter()
                .map(|e| e.file.display().to_string())
                .collect(),
            _ => Default::default(),
        };
        files.into_iter().collect()
    }
}

impl From<StoreError> for ReloadError {
    fn from(error: StoreError) -> Self {
        Self::Engine(EngineError::Store(error))
    }
}

pub(crate) fn file_statuses(experiments: &[Experiment]) -> Vec<FileStatus> {
    experiments
        .iter()
        .map(|e| FileStatus {
            path: e.source.display().to_string(),
            experiment: e.id.as_str().to_owned(),
            revision: e.revision,
        })
        .collect()
}

impl Engine {
    /// Re-reads the experiment folder and swaps the running set if, and only if, all of it
    /// is valid and compatible. Reloads are serialised.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadOutcome, ReloadError> {
        let _serial = self.reload_lock.lock().await;
        let result = self.try_reload().await;
        let now_ms = self.clock.now_ms();
        match &result {
            Ok(outcome) => {
                if outcome.result == "applied" {
                    tracing::info!(trigger, version = %outcome.version, experiments = ?outcome.experiments, "experiments reloaded");
                }
            }
            Err(error) => {
                let errors = error.problems();
                tracing::error!(trigger, %error, errors = ?errors, "reload refused; still serving the last good set");
                let mut status = (*self.config.load_full()).clone();
                status.last_error = Some(ReloadFailure {
                    at_ms: now_ms,
                    trigger: trigger.to_owned(),
                    errors,
                    files: error.files(),
                });
                self.config.store(Arc::new(status));
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let source = self.source.as_ref().ok_or(ReloadError::NoSource)?;
        let version =
            crate::catalog::fingerprint(&source.dir).map_err(|e| ReloadError::Invalid(vec![e]))?;
        let proposed = crate::catalog::load_dir(&source.dir, source.environment.as_deref())
            .map_err(ReloadError::Invalid)?;
        let current = self.config.load_full();
        if version == current.version {
            if current.last_error.is_some() {
                let mut status = (*current).clone();
                status.last_error = None;
                self.config.store(Arc::new(status));
            }
            return Ok(ReloadOutcome {
                result: "unchanged",
                version,
                experiments: current.files.iter().map(|f| f.experiment.clone()).collect(),
            });
        }
        self.check_compatible(&proposed).await?;
        let now_ms = self.clock.now_ms();
        let set = build_set(self, proposed.clone(), now_ms).await?;
        let experiments: Vec<String> = proposed.iter().map(|e| e.id.as_str().to_owned()).collect();
        // The one moment the new set becomes visible, all at once.
        self.experiments.store(Arc::new(set));
        self.config.store(Arc::new(ConfigStatus {
            version: version.clone(),
            loaded_ms: now_ms,
            directory: Some(source.dir.display().to_string()),
            environment: source.environment.clone(),
            files: file_statuses(&proposed),
            last_error: None,
        }));
        Ok(ReloadOutcome {
            result: "applied",
            version,
            experiments,
        })
    }

    /// The compatibility rules of `spec::plan`, with the retired variants the store knows.
    async fn check_compatible(&self, proposed: &[Experiment]) -> Result<(), ReloadError> {
        let running: Vec<Experiment> = self.catalog().all().map(|l| l.spec.clone()).collect();
        let retired = self.retired_variants().await?;
        let plan = crate::spec::plan(&running, proposed, &retired);
        let reasons: Vec<String> = plan
            .experiments
            .iter()
            .flat_map(|e| match &e.verdict {
                crate::spec::Verdict::NeedsRevisionBump { reasons } => reasons.clone(),
                crate::spec::Verdict::Compatible => Vec::new(),
            })
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(ReloadError::Incompatible(reasons))
        }
    }

    /// Per running experiment, the variants with data in the current revision that its spec
    /// no longer lists.
    pub async fn retired_variants(
        &self,
    ) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, EngineError>
    {
        let mut retired = std::collections::BTreeMap::new();
        for live in self.catalog().all() {
            let counters = self.store.counters(&live.epoch).await?;
            let gone: std::collections::BTreeSet<String> = counters
                .keys()
                .filter(|v| live.spec.variant_index(v).is_none())
                .cloned()
                .collect();
            if !gone.is_empty() {
                retired.insert(live.epoch.experiment.clone(), gone);
            }
        }
        Ok(retired)
    }

    /// What is loaded, and the last reload error.
    pub fn config_status(&self) -> Arc<ConfigStatus> {
        self.config.load_full()
    }

    /// The folder being served, if any (for the file watcher).
    pub fn source(&self) -> Option<&ExperimentSource> {
        self.source.as_ref()
    }
}

/// Loads every experiment's durable state and builds the set to swap in.
pub(crate) async fn build_set(
    engine: &Engine,
    experiments: Vec<Experiment>,
    now_ms: u64,
) -> Result<ExperimentSet, EngineError> {
    let mut set = ExperimentSet::default();
    for spec in experiments {
        let epoch = epoch_of(&spec);
        let counters = engine.store.counters(&epoch).await?;
        let info = engine.store.epoch_info(&epoch).await?;
        let snapshot = Snapshot::build(&spec, &counters, info, now_ms);
        let live = Arc::new(LiveExperiment::new(spec, snapshot));
        set.by_id
            .insert(live.epoch.experiment.clone(), live.clone());
        set.order.push(live);
    }
    Ok(set)
}
