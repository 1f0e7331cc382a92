//! Config drift across replicas: each server process announces the experiment-folder version
//! it runs through the store (`Store::announce`), and any of them can show every live
//! replica's version and whether they agree (`GET /v1/admin/config`, `banditd plan --server`),
//! so a half-finished rollout is visible from wherever an operator looks.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
use crate::store::ReplicaReport;

/// How often a replica refreshes its report (and so how soon a reload shows).
pub const ANNOUNCE_EVERY_MS: u64 = 1_000;

/// How long a report lives unless refreshed: how soon a replica that died without
/// withdrawing (`kill -9`, a lost host) drops out. Ten refreshes, so a replica that is slow for
/// a few seconds (a busy host, a Redis failover) does not flap in and out.
pub const REPLICA_TTL_MS: u64 = 10_000;

/// Who this process is among the replicas: fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaIdentity {
    /// `hostname:pid`: unique among live processes, and readable in an alert.
    pub id: String,
    /// The address the process serves HTTP on.
    pub address: String,
}

impl ReplicaIdentity {
    /// This process, serving on `address`.
    pub fn of_process(address: SocketAddr) -> Self {
        Self {
            id: format!("{}:{}", hostname(), std::process::id()),
            address: address.to_string(),
        }
    }
}

/// The host's name: the kernel's, else `$HOSTNAME`, else `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The replicas that run one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionGroup {
    /// Content hash of the experiment folder.
    pub version: String,
    /// Ids of the live replicas that run it, sorted.
    pub replicas: Vec<String>,
}

/// Every live replica sharing this server's store, and whether they run the same
/// experiment folder (`GET /v1/admin/config`, under `replicas`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaSet {
    /// True when every live replica runs the same version; false during a rollout that has
    /// not reached every replica (or a replica that refused a reload).
    pub agree: bool,
    /// The id of the replica that answered.
    pub this_replica: String,
    /// Each version that runs, most replicas first (ties: by version), with its replicas.
    pub versions: Vec<VersionGroup>,
    /// Every live replica's report, by id. The embedded store serves one process, so there it
    /// is this replica alone.
    pub live: Vec<ReplicaReport>,
}

impl ReplicaSet {
    /// The set as the store reports it, with `this` replica's own current report in place of
    /// whatever the store holds for it (which can be a refresh behind, or not there yet).
    pub fn of(this: ReplicaReport, stored: Vec<ReplicaReport>) -> Self {
        let this_replica = this.id.clone();
        let mut live: Vec<ReplicaReport> = stored
            .into_iter()
            .filter(|report| report.id != this_replica)
            .chain(std::iter::once(this))
            .collect();
        live.sort_by(|a, b| a.id.cmp(&b.id));
        let mut versions: Vec<VersionGroup> = Vec::new();
        for report in &live {
            match versions.iter_mut().find(|g| g.version == report.version) {
                Some(group) => group.replicas.push(report.id.clone()),
                None => versions.push(VersionGroup {
                    version: report.version.clone(),
                    replicas: vec![report.id.clone()],
                }),
            }
        }
        versions.sort_by(|a, b| {
            b.replicas
                .len()
                .cmp(&a.replicas.len())
                .then_with(|| a.version.cmp(&b.version))
        });
        Self {
            agree: versions.len() <= 1,
            this_replica,
            versions,
            live,
        }
    }

    /// One line per version, for a warning: `version V on a, b`.
    pub fn describe_versions(&self) -> String {
        self.versions
            .iter()
            .map(|group| format!("version {} on {}", group.version, group.replicas.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Engine {
    /// This replica's report now: the version it runs and when that was loaded.
    pub fn replica_report(&self, identity: &ReplicaIdentity) -> ReplicaReport {
        let status = self.config_status();
        ReplicaReport {
            id: identity.id.clone(),
            address: identity.address.clone(),
            version: status.version.clone(),
            loaded_ms: status.loaded_ms,
            reported_ms: self.now_ms(),
        }
    }

    /// Publishes this replica's report for [`REPLICA_TTL_MS`]. Run every
    /// [`ANNOUNCE_EVERY_MS`].
    pub async fn announce(&self, identity: &ReplicaIdentity) -> Result<(), EngineError> {
        let report = self.replica_report(identity);
        let expires_ms = report.reported_ms.saturating_add(REPLICA_TTL_MS);
        Ok(self.store().announce(report, expires_ms).await?)
    }

    /// Takes this replica out of the set at once (a clean stop).
    pub async fn withdraw(&self, identity: &ReplicaIdentity) -> Result<(), EngineError> {
        Ok(self.store().withdraw(&identity.id).await?)
    }

    /// Every live replica, this one as it is now.
    pub async fn replica_set(&self, identity: &ReplicaIdentity) -> Result<ReplicaSet, EngineError> {
        let stored = self.store().replicas(self.now_ms()).await?;
        Ok(ReplicaSet::of(self.replica_report(identity), stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, version: &str) -> ReplicaReport {
        ReplicaReport {
            id: id.to_owned(),
            address: "127.0.0.1:1".to_owned(),
            version: version.to_owned(),
            loaded_ms: 1,
            reported_ms: 2,
        }
    }

    #[test]
    fn replicas_on_one_version_agree() {
        let set = ReplicaSet::of(
            report("b", "v1"),
            vec![report("a", "v1"), report("c", "v1")],
        );
        assert!(set.agree);
        assert_eq!(
            set.versions,
            vec![VersionGroup {
                version: "v1".into(),
                replicas: vec!["a".into(), "b".into(), "c".into()]
            }]
        );
    }

    #[test]
    fn replicas_on_two_versions_disagree_and_each_version_names_its_replicas() {
        let set = ReplicaSet::of(
            report("b", "new"),
            vec![report("a", "old"), report("c", "old")],
        );
        assert!(!set.agree);
        assert_eq!(set.this_replica, "b");
        assert_eq!(
            set.describe_versions(),
            "version old on a, c; version new on b"
        );
    }

    #[test]
    fn this_replicas_current_report_replaces_its_stale_stored_one() {
        let set = ReplicaSet::of(report("a", "new"), vec![report("a", "old")]);
        assert!(set.agree, "a stale report of itself is no drift");
        assert_eq!(set.live, vec![report("a", "new")]);
    }

    #[test]
    fn a_replica_alone_agrees_with_itself() {
        let set = ReplicaSet::of(report("a", "v1"), vec![]);
        assert!(set.agree);
        assert_eq!(set.live.len(), 1);
    }

    #[test]
    fn the_identity_names_the_host_and_the_process() {
        let identity = ReplicaIdentity::of_process("127.0.0.1:8080".parse().unwrap());
        let (host, pid) = identity.id.rsplit_once(':').unwrap();
        assert!(!host.is_empty());
        assert_eq!(pid, std::process::id().to_string());
        assert_eq!(identity.address, "127.0.0.1:8080");
    }
}
