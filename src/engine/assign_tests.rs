//! Assign answers while the store fails: a page always gets a variant, and nothing is counted
//! or promised that the store could not make durable.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::recovery::Faults;
use crate::store::{SledStore, Store};

const T0_MS: u64 = 1_700_000_000_000;

fn yaml(id: &str, assignment: &str) -> String {
    format!(
        "id: {id}\ndescription: d\nowner: o\nstatus: running\nassignment: {assignment}\n\
         reward: {{ window: 7d }}\npolicy: {{ burn_in: 0 }}\ndefault_variant: control\n\
         variants:\n  - id: control\n    payload: {{}}\n  - id: bold\n    payload: {{}}\n"
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    engine: Engine,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let specs = [("sticky", "sticky"), ("ranking", "per_request")]
        .into_iter()
        .map(|(id, mode)| {
            let file = format!("{id}.yaml");
            crate::spec::parse_experiment(Path::new(&file), &yaml(id, mode)).unwrap()
        })
        .collect();
    let engine = block_on(Engine::start(
        specs,
        store.clone(),
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(T0_MS)),
    ))
    .unwrap();
    Fixture {
        _dir: dir,
        store,
        engine,
    }
}

fn assign(fixture: &Fixture, experiment: &str, unit: &str) -> Assignment {
    let unit = Unit::parse(unit).unwrap();
    block_on(fixture.engine.assign(experiment, &unit, true)).expect("assign never fails")
}

fn assert_degraded_default(answer: &Assignment) {
    assert_eq!(answer.variant_id(), "control");
    assert!(answer.degraded && !answer.counted);
    assert_eq!(answer.token, None);
}

fn wait_writable(store: &SledStore) {
    let start = Instant::now();
    while !store.writable() {
        assert!(start.elapsed() < Duration::from_secs(10), "no recovery");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_sticky_assignment_whose_commit_fails_gets_the_default_uncounted_and_without_a_token() {
    let fixture = fixture();
    fixture.store.inject_faults(Faults {
        fail_before_apply: 1,
        fail_reopens: u32::MAX,
        ..Faults::default()
    });
    assert_degraded_default(&assign(&fixture, "sticky", "new-unit"));
}

#[test]
fn while_the_store_fails_known_units_keep_their_variant_and_nothing_carries_a_token() {
    let fixture = fixture();
    let known = assign(&fixture, "sticky", "known");
    assert!(known.counted && known.token.is_some() && !known.degraded);
    fixture.store.inject_faults(Faults {
        fail_before_apply: 1,
        fail_reopens: 2,
        ..Faults::default()
    });
    assert_degraded_default(&assign(&fixture, "sticky", "first"));
    assert!(
        !fixture.store.writable(),
        "the failed commit began an episode"
    );
    let again = assign(&fixture, "sticky", "known");
    assert_eq!(again.variant_id(), known.variant_id());
    assert!(again.degraded && !again.counted);
    assert_eq!(again.token, None);
    for i in 0..10 {
        assert_degraded_default(&assign(&fixture, "ranking", &format!("r{i}")));
    }
    wait_writable(&fixture.store);
    let after = assign(&fixture, "ranking", "after");
    assert!(after.counted && after.token.is_some() && !after.degraded);
    let again = assign(&fixture, "sticky", "known");
    assert!(again.token.is_some() && !again.degraded);
}
