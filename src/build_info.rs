//! What this binary is: its version, the git commit it was built from (embedded by `build.rs`:
//! `GIT_COMMIT`, else `git rev-parse HEAD`, else "unknown"), the build profile, target and
//! features. Shown by `banditd --version`, `GET /v1/admin/build` and the startup summary, so an
//! operator can tell which code a replica runs.

use serde::Serialize;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full git commit, or "unknown".
pub const COMMIT: &str = env!("BANDITD_GIT_COMMIT");

/// `debug` or `release`.
pub const PROFILE: &str = env!("BANDITD_BUILD_PROFILE");

/// The target triple the binary was compiled for.
pub const TARGET: &str = env!("BANDITD_BUILD_TARGET");

/// `banditd --version` after the name: the version and the commit.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BANDITD_GIT_COMMIT"),
    ", ",
    env!("BANDITD_BUILD_PROFILE"),
    ", ",
    env!("BANDITD_BUILD_TARGET"),
    ")"
);

/// The build as `GET /v1/admin/build` answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub profile: &'static str,
    pub target: &'static str,
    /// Cargo features compiled in (`otel`), empty for the default build.
    pub features: Vec<&'static str>,
}

/// This binary's build.
pub fn current() -> BuildInfo {
    let mut features = Vec::new();
    if cfg!(feature = "otel") {
        features.push("otel");
    }
    BuildInfo {
        version: VERSION,
        commit: COMMIT,
        profile: PROFILE,
        target: TARGET,
        features,
    }
}
