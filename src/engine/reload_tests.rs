//! Reloads read the folder off the request path: with one runtime thread (as an HTTP worker
//! has), a request completes while the loader is held inside its read.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::engine::{ManualClock, TokenSigner, Unit};
use crate::store::SledStore;

const HEADLINE: &str = "id: headline\ndescription: d\nowner: o\nstatus: running\n\
    default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n";

/// How long the held loader waits to be released before it gives up. Not a performance
/// threshold: on a loader that blocks the only runtime thread the release can never come,
/// and this bound turns that deadlock into a failure instead of a hung test.
const DEADLOCK_BOUND: Duration = Duration::from_secs(20);

async fn engine_on(dir: &Path, data: &Path) -> Arc<Engine> {
    std::fs::write(dir.join("headline.yaml"), HEADLINE).unwrap();
    let store = Arc::new(SledStore::open(data).unwrap());
    let version = crate::catalog::fingerprint(dir).unwrap();
    let experiments = crate::catalog::load_dir(dir, None).unwrap();
    let engine = Engine::start(
        experiments,
        store,
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(1_700_000_000_000)),
    )
    .await
    .unwrap()
    .with_source(
        ExperimentSource {
            dir: dir.to_path_buf(),
            environment: None,
        },
        version,
    );
    Arc::new(engine)
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_is_served_while_the_loader_is_held_inside_its_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine_on(dir.path(), data.path()).await;
    std::fs::write(
        dir.path().join("headline.yaml"),
        HEADLINE.replace("description: d", "description: changed"),
    )
    .unwrap();

    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (outcome_tx, outcome_rx) = mpsc::channel::<bool>();
    *engine.reloads.before_read.lock().unwrap() = Some(Box::new(move || {
        let _ = entered_tx.send(());
        // `true`: released by the request below; `false`: nobody could release it.
        let _ = outcome_tx.send(release_rx.recv_timeout(DEADLOCK_BOUND).is_ok());
    }));

    let reloading = tokio::spawn({
        let engine = engine.clone();
        async move { engine.reload("api").await }
    });
    entered_rx.await.unwrap();
    // The loader is now held. This runtime has one thread: a loader running on it would
    // have it blocked, and this request could not run until the loader gave up.
    let unit = Unit::parse("u1").unwrap();
    let served = engine.assign("headline", &unit, false).await.unwrap();
    assert!(["a", "b"].contains(&served.variant_id()));
    assert_eq!(
        engine.catalog().get("headline").unwrap().spec.description,
        "d",
        "the running set is untouched until the swap"
    );
    let _ = release_tx.send(());

    let released = outcome_rx.recv().unwrap();
    assert!(
        released,
        "the loader was never released: it ran on the request's thread and blocked it"
    );
    let outcome = reloading.await.unwrap().unwrap();
    assert_eq!(outcome.result, "applied");
    assert_eq!(
        engine.catalog().get("headline").unwrap().spec.description,
        "changed"
    );
    assert_eq!(engine.watch_status().folder_reads, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_invalid_folder_is_refused_off_the_request_path_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = engine_on(dir.path(), data.path()).await;
    let before = engine.config_status().version.clone();
    std::fs::write(dir.path().join("broken.yaml"), "id: [").unwrap();
    let error = engine.reload("api").await.unwrap_err();
    assert!(matches!(error, ReloadError::Invalid(_)), "{error}");
    assert_eq!(engine.config_status().version, before);
    assert!(engine.config_status().last_error.is_some());
    assert!(engine.catalog().get("headline").is_some());
}
