//! Errors of the engine boundary. The HTTP layer maps each to a status (`http::problem`).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no experiment with id '{0}' is loaded")]
    UnknownExperiment(String),
    #[error(
        "experiment '{experiment}' exists but is not live in environment '{environment}' \
         (its file lists environments: [{}]); serve it with `--environment` set to one of \
         them, or add '{environment}' to its `environments`",
        live_in.join(", ")
    )]
    NotInEnvironment {
        experiment: String,
        environment: String,
        live_in: Vec<String>,
    },
    #[error("experiment '{0}' is a draft and is not served; set `status: running` to serve it")]
    Draft(String),
    #[error(
        "experiment '{experiment}' has no revision {revision}; the loaded revision is {current}"
    )]
    UnknownRevision {
        experiment: String,
        revision: u32,
        current: u32,
    },
    #[error("credible level {0} must lie strictly between 0 and 1, e.g. 0.95")]
    BadLevel(f64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// A stable, machine-readable name for the error, for answers that list several errors
    /// side by side (`POST /v1/assign`); the `Display` text is the human detail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownExperiment(_) => "unknown_experiment",
            Self::Draft(_) => "experiment_not_served",
            Self::NotInEnvironment { .. } => "not_in_environment",
            Self::UnknownRevision { .. } => "unknown_revision",
            Self::BadLevel(_) => "bad_level",
            Self::Store(_) => "store_unavailable",
        }
    }
}
