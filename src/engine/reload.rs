//! Reloading the experiment folder, all or nothing.
//!
//! The new folder is read, parsed and validated completely, checked for compatibility with
//! the running set, and the data each experiment needs is loaded from the store, before one
//! atomic swap replaces the set: a request in flight keeps the set it started with, and never
//! sees half of a reload. If anything is wrong nothing changes; the error is kept for
//! `GET /v1/admin/config`, logged, and returned to whoever asked.
//!
//! Reading and validating run on a blocking thread (`spawn_blocking`), never on the HTTP
//! worker that asked or on the runtime that serves requests: a folder of thousands of files
//! once stalled a concurrent request for most of a second. Only the final swap touches the
//! serving state.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// How the folder is watched for changes (set by the file watcher when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// Not watched: reloads come from SIGHUP and `POST /v1/admin/reload` only.
    #[default]
    Off,
    /// Filesystem notifications (inotify, FSEvents, ReadDirectoryChangesW, kqueue).
    Notify,
    /// Notifications are unavailable: the folder's entries are stat-ed periodically.
    Poll,
}

/// How reloads reach the folder, as `GET /v1/admin/config` shows it under `watch`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct WatchStatus {
    pub mode: WatchMode,
    /// How long the folder must hold still after a change before it is reloaded.
    pub debounce_ms: Option<u64>,
    /// Times the folder was read for a reload since start, whatever asked: an idle server
    /// with nothing changing keeps this at 0.
    pub folder_reads: u64,
}

/// The engine's reload bookkeeping.
#[derive(Default)]
pub(crate) struct ReloadState {
    folder_reads: AtomicU64,
    watch: std::sync::Mutex<(WatchMode, Option<u64>)>,
    /// Runs on the loader's thread before the folder is read, so a test can hold the loader
    /// and prove that requests are served meanwhile.
    #[cfg(test)]
    pub(crate) before_read: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// One loaded file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileStatus {
    pub path: String,
    pub experiment: String,
    pub revision: u32,
}

/// The last reload that did not apply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadOutcome {
    /// `applied` or `unchanged`.
    #[schema(value_type = String, pattern = "^(applied|unchanged)$")]
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
    #[tracing::instrument(level = "debug", name = "engine.reload", skip(self))]
    pub async fn reload(&self, trigger: &str) -> Result<ReloadOutcome, ReloadError> {
        let _serial = self.reload_lock.lock().await;
        let result = self.try_reload(trigger).await;
        if let Some(metrics) = crate::metrics::get() {
            metrics.reloaded(result.as_ref().map_or("refused", |outcome| outcome.result));
        }
        let now_ms = self.clock.now_ms();
        match &result {
            Ok(outcome) => {
                if outcome.result == "applied" {
                    tracing::info!(trigger, version = %outcome.version, experiments = %crate::telemetry::JsonList(&outcome.experiments), "experiments reloaded");
                }
            }
            Err(error) => {
                let errors = error.problems();
                tracing::error!(trigger, %error, errors = %crate::telemetry::JsonList(&errors), "reload refused; still serving the last good set");
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

    async fn try_reload(&self, trigger: &str) -> Result<ReloadOutcome, ReloadError> {
        let source = self.source.clone().ok_or(ReloadError::NoSource)?;
        let folder = self.read_folder(source.clone()).await?;
        let (version, proposed, elsewhere) = (folder.version, folder.experiments, folder.elsewhere);
        let current = self.config.load_full();
        if version == current.version {
            // The folder is back to what is served (a broken file restored): the refusal no
            // longer describes it, so it is cleared, whoever asked, and the log says so.
            if let Some(previous) = &current.last_error {
                tracing::info!(
                    trigger,
                    version = %version,
                    error_at_ms = previous.at_ms,
                    "reload error cleared: the folder is back to the version being served"
                );
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
        let proposed = self.check_compatible(proposed).await?;
        let now_ms = self.clock.now_ms();
        let mut set = build_set(self, proposed.clone(), now_ms).await?;
        set.set_elsewhere(elsewhere);
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

    /// Reads, parses and validates the folder on a blocking thread.
    async fn read_folder(
        &self,
        source: ExperimentSource,
    ) -> Result<crate::catalog::LoadedFolder, ReloadError> {
        self.reloads.folder_reads.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        let before_read = self
            .reloads
            .before_read
            .lock()
            .map(|mut hook| hook.take())
            .unwrap_or_default();
        let dir = source.dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            if let Some(hook) = before_read {
                hook();
            }
            crate::catalog::read_folder(&source.dir, source.environment.as_deref())
        })
        .await;
        match read {
            Ok(folder) => folder.map_err(ReloadError::Invalid),
            // The loader panicked or was cancelled: nothing was read, so nothing changes.
            Err(error) => Err(ReloadError::Invalid(vec![
                crate::spec::SpecError::whole_file(
                    &dir,
                    format!("the folder could not be read: {error}"),
                ),
            ])),
        }
    }

    /// The compatibility rules of `spec::plan`, with the retired variants the store knows.
    /// The plan compares every experiment and variant, so it runs on a blocking thread too.
    async fn check_compatible(
        &self,
        proposed: Vec<Experiment>,
    ) -> Result<Vec<Experiment>, ReloadError> {
        let running: Vec<Experiment> = self.catalog().all().map(|l| l.spec.clone()).collect();
        let retired = self.retired_variants().await?;
        let checked = tokio::task::spawn_blocking(move || {
            let plan = crate::spec::plan(&running, &proposed, &retired);
            let reasons: Vec<String> = plan
                .experiments
                .iter()
                .flat_map(|e| match &e.verdict {
                    crate::spec::Verdict::NeedsRevisionBump { reasons } => reasons.clone(),
                    crate::spec::Verdict::Compatible => Vec::new(),
                })
                .collect();
            (proposed, reasons)
        })
        .await;
        match checked {
            Ok((proposed, reasons)) if reasons.is_empty() => Ok(proposed),
            Ok((_, reasons)) => Err(ReloadError::Incompatible(reasons)),
            Err(error) => Err(ReloadError::Incompatible(vec![format!(
                "the compatibility check failed: {error}"
            )])),
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

    /// How the folder is watched, and how often it was read for a reload.
    pub fn watch_status(&self) -> WatchStatus {
        let (mode, debounce_ms) = self
            .reloads
            .watch
            .lock()
            .map(|watch| *watch)
            .unwrap_or_default();
        WatchStatus {
            mode,
            debounce_ms,
            folder_reads: self.reloads.folder_reads.load(Ordering::Relaxed),
        }
    }

    /// Records how the file watcher follows the folder (for [`Engine::watch_status`]).
    pub fn set_watch_mode(&self, mode: WatchMode, debounce_ms: Option<u64>) {
        if let Ok(mut watch) = self.reloads.watch.lock() {
            *watch = (mode, debounce_ms);
        }
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
        let (retired, unrecorded) = engine.load_epoch_spec(&spec, &epoch).await?;
        let snapshot = Snapshot::build(&spec, &retired, &counters, info, now_ms);
        let live = Arc::new(LiveExperiment::new(spec, retired, snapshot));
        if !live.spec.guardrails.is_empty() {
            // Halts apply before the set is served: a halted arm never gets a request.
            engine.rebuild(&live, now_ms).await?;
        }
        live.spec_unrecorded
            .store(unrecorded, std::sync::atomic::Ordering::Release);
        // Before the set is served: a conclusion's "before" counts are exactly the data.
        engine
            .note_conclusion(&live, &live.snapshot(), now_ms)
            .await?;
        set.by_id
            .insert(live.epoch.experiment.clone(), live.clone());
        set.order.push(live);
    }
    Ok(set)
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
