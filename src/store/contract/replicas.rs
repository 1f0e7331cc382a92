//! Contract: replica reports (`Store::announce`, `withdraw`, `replicas`) as one process sees
//! its own. What several replicas see of each other is the shared backends' own test.

use super::Backend;
use crate::store::test_support::T0_MS;
use crate::store::{ReplicaReport, Store};

/// A report of replica `id` running `version`, refreshed at `reported_ms`.
pub fn report(id: &str, version: &str, reported_ms: u64) -> ReplicaReport {
    ReplicaReport {
        id: id.to_owned(),
        address: "127.0.0.1:8080".to_owned(),
        version: version.to_owned(),
        loaded_ms: T0_MS,
        reported_ms,
    }
}

/// A report is live until its expiry (exclusive), a new announce replaces it, and a
/// withdrawal removes it at once; another id's withdrawal leaves it alone.
pub async fn a_replica_report_is_live_until_it_expires_or_is_withdrawn<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    assert_eq!(store.replicas(T0_MS).await.unwrap(), vec![]);
    let first = report("host-a:41", "v1", T0_MS);
    store.announce(first.clone(), T0_MS + 10_000).await.unwrap();
    assert_eq!(store.replicas(T0_MS).await.unwrap(), vec![first]);
    let second = report("host-a:41", "v2", T0_MS + 1_000);
    store
        .announce(second.clone(), T0_MS + 11_000)
        .await
        .unwrap();
    assert_eq!(
        store.replicas(T0_MS + 10_999).await.unwrap(),
        vec![second.clone()],
        "the new announce replaced the old one and its expiry"
    );
    assert_eq!(
        store.replicas(T0_MS + 11_000).await.unwrap(),
        vec![],
        "expired at its expiry"
    );
    store
        .announce(second.clone(), T0_MS + 20_000)
        .await
        .unwrap();
    store.withdraw("host-b:7").await.unwrap();
    assert_eq!(
        store.replicas(T0_MS + 12_000).await.unwrap(),
        vec![second.clone()]
    );
    store.withdraw(&second.id).await.unwrap();
    assert_eq!(store.replicas(T0_MS + 12_000).await.unwrap(), vec![]);
}
