//! `banditd audit [--data-dir DIR]`: opens the store the way `serve` does, recomputes every
//! counter from the stored records through `Store::audit`, and prints what disagrees. Exit 0
//! when counters equal the records, 1 on any mismatch, 2 when the audit could not run (no
//! store there, a data dir locked by a running server, an unreadable record).
//!
//! Run it on a stopped server's data dir (sled allows one process per directory); it takes
//! seconds for millions of units.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::store::{self, AuditReport, StoreConfig, StoreError, StoreOptions};

/// `banditd audit` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The embedded store's data dir (the one `banditd serve --data-dir` used).
    #[arg(long, env = "BANDITD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Audit the Redis store instead (the URL `banditd serve --redis` used). Run it while no
    /// replica writes: the shards are read one after another.
    #[arg(long, env = "BANDITD_REDIS", hide_env_values = true)]
    pub redis: Option<crate::secret::SecretString>,
    /// The Redis password, if not in the URL.
    #[arg(long, env = "BANDITD_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<crate::secret::SecretString>,
    /// The Sentinels' own password, for a `redis+sentinel://` URL.
    #[arg(long, env = "BANDITD_REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<crate::secret::SecretString>,
}

/// Why the audit could not run.
#[derive(Debug, thiserror::Error)]
enum AuditError {
    #[error("{0} holds no store (nothing to audit)")]
    NoStore(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn main(args: &AuditArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("banditd audit: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(audit(args)) {
        Ok(report) => {
            print!("{}", render(&report));
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("banditd audit: {error}");
            ExitCode::from(2)
        }
    }
}

async fn audit(args: &AuditArgs) -> Result<AuditReport, AuditError> {
    let redis = args
        .redis
        .clone()
        .filter(|url| !url.expose().trim().is_empty());
    let config = match redis {
        Some(url) => StoreConfig::Redis(store::RedisOptions {
            url,
            password: args.redis_password.clone(),
            sentinel_password: args.redis_sentinel_password.clone(),
            sticky_cache_entries: 0,
            history_interval_ms: 0,
            wait: Default::default(),
            commit_gather: Default::default(),
        }),
        None => {
            // Opening creates a store where there is none; an audit must not.
            if !args.data_dir.is_dir() {
                return Err(AuditError::NoStore(args.data_dir.display().to_string()));
            }
            StoreConfig::Sled {
                dir: args.data_dir.clone(),
                options: StoreOptions::default(),
            }
        }
    };
    let store = store::open(&config).await?;
    let report = store.audit().await;
    store.shutdown().await?;
    Ok(report?)
}

/// The report as an operator reads it: what was checked, then one line per disagreement.
fn render(report: &AuditReport) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        out,
        "checked {} arms: {} sticky records, {} token marks, {} confirmation marks, {} event ids, {} epoch records, {} history points",
        report.arms_checked,
        report.sticky_records,
        report.live_token_marks,
        report.live_confirmation_marks,
        report.event_ids,
        report.epoch_records,
        report.history_points,
    );
    if report.superseded_entries > 0 {
        let _ = writeln!(
            out,
            "the unit log also holds {} superseded entries (compaction removes them)",
            report.superseded_entries
        );
    }
    for mismatch in &report.mismatches {
        let _ = writeln!(
            out,
            "MISMATCH {} revision {} variant {}: counters say {} exposures, {} rewards; the records imply {} exposures, {} rewards",
            mismatch.epoch.experiment,
            mismatch.epoch.revision,
            mismatch.variant,
            mismatch.stored.exposures,
            mismatch.stored.reward_sum,
            mismatch.implied.exposures,
            mismatch.implied.reward_sum,
        );
    }
    for mismatch in &report.expectation_mismatches {
        let _ = writeln!(
            out,
            "MISMATCH {} revision {}: expected exposures sum to {}, exposures to {}",
            mismatch.epoch.experiment,
            mismatch.epoch.revision,
            mismatch.expected_exposures,
            mismatch.exposures,
        );
    }
    for mismatch in &report.delay_mismatches {
        let _ = writeln!(
            out,
            "MISMATCH {} revision {} variant {}: delay histograms: {}",
            mismatch.epoch.experiment, mismatch.epoch.revision, mismatch.variant, mismatch.reason,
        );
    }
    if report.unindexed_records > 0 {
        let _ = writeln!(
            out,
            "MISMATCH {} retained event ids or marks would never be removed (a confirmation mark not in the expiry index, or a token mark whose digest is not logged)",
            report.unindexed_records,
        );
    }
    let _ = writeln!(
        out,
        "{}",
        if report.is_clean() {
            "clean: every counter equals what the records imply"
        } else {
            "counters disagree with the records"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ArmCounters, CounterMismatch, Epoch};

    #[test]
    fn a_clean_report_says_so_and_a_mismatch_names_the_arm_and_both_counts() {
        let clean = AuditReport {
            arms_checked: 2,
            sticky_records: 3,
            ..AuditReport::default()
        };
        let text = render(&clean);
        assert!(text.contains("checked 2 arms: 3 sticky records"), "{text}");
        assert!(text.ends_with("clean: every counter equals what the records imply\n"));
        let dirty = AuditReport {
            mismatches: vec![CounterMismatch {
                epoch: Epoch {
                    experiment: "headline".to_owned(),
                    revision: 2,
                },
                variant: "bold".to_owned(),
                stored: ArmCounters {
                    exposures: 3,
                    ..ArmCounters::default()
                },
                implied: ArmCounters {
                    exposures: 2,
                    ..ArmCounters::default()
                },
            }],
            unindexed_records: 1,
            ..clean
        };
        let text = render(&dirty);
        assert!(
            text.contains(
                "MISMATCH headline revision 2 variant bold: counters say 3 exposures, 0 rewards; \
                 the records imply 2 exposures, 0 rewards"
            ),
            "{text}"
        );
        assert!(text.contains("MISMATCH 1 retained event ids"), "{text}");
        assert!(text.ends_with("counters disagree with the records\n"));
    }
}
