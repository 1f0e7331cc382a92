//! `exposure: on_render` in the engine: the confirmation window by the server's clock and unit
//! confirmations. (The healthy frontend whose confirmations keep the sample-ratio check quiet
//! at its stated false-alarm rate, over many runs, is in `exposure_per_request_tests.rs`.)

use std::path::Path;
use std::sync::Arc;

use super::exposure::{ConfirmationRejectionReason, RawConfirmation};
use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::SledStore;

const T0_MS: u64 = 1_700_000_000_000;

const YAML: &str = "id: e\ndescription: d\nowner: o\nstatus: running\nexposure: on_render\n\
                    confirm_within: 10m\npolicy: { burn_in: 0, min_share: 0.1 }\n\
                    default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    \
                    payload: 2\n  - id: c\n    payload: 3\n";

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

fn engine() -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let spec = crate::spec::parse_experiment(Path::new("e.yaml"), YAML).unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let engine = block_on(Engine::start(
        vec![spec],
        store,
        TokenSigner::new(&[7; 32]),
        clock.clone(),
    ))
    .unwrap();
    (dir, engine, clock)
}

fn by_token(token: &str) -> Result<RawConfirmation, String> {
    Ok(RawConfirmation {
        experiment: "e".into(),
        token: Some(token.into()),
        unit: None,
    })
}

fn by_unit(unit: &str) -> Result<RawConfirmation, String> {
    Ok(RawConfirmation {
        experiment: "e".into(),
        token: None,
        unit: Some(unit.into()),
    })
}

#[test]
fn a_confirmation_after_the_window_is_refused_and_one_at_its_end_counts() {
    let (_dir, engine, clock) = engine();
    let unit = Unit::parse("u1").unwrap();
    let first = block_on(engine.assign("e", &unit, true)).unwrap();
    let second = block_on(engine.assign("e", &Unit::parse("u2").unwrap(), true)).unwrap();
    clock.advance_ms(600_000);
    let on_time =
        block_on(engine.confirm(vec![by_token(first.token.as_deref().unwrap())])).unwrap();
    assert_eq!(on_time.confirmed, 1, "{on_time:?}");
    clock.advance_ms(1);
    let late = block_on(engine.confirm(vec![
        by_token(second.token.as_deref().unwrap()),
        by_unit("u2"),
    ]))
    .unwrap();
    assert_eq!(late.rejected, 2, "{late:?}");
    assert!(
        late.rejections
            .iter()
            .all(|r| r.reason == ConfirmationRejectionReason::OutsideWindow)
    );
    assert!(
        late.rejections[0].detail.contains("confirm_within is 10m"),
        "{late:?}"
    );
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    assert_eq!(report.summary.exposures, 1);
    assert_eq!(report.arms.iter().map(|a| a.assigned).sum::<u64>(), 2);
}

#[test]
fn a_unit_confirmation_counts_the_recorded_assignment() {
    let (_dir, engine, _clock) = engine();
    let answer = block_on(engine.assign("e", &Unit::parse("u1").unwrap(), true)).unwrap();
    assert!(answer.confirm && !answer.counted);
    let outcome = block_on(engine.confirm(vec![by_unit("u1"), by_unit("u1")])).unwrap();
    assert_eq!(
        (outcome.confirmed, outcome.duplicate),
        (1, 1),
        "{outcome:?}"
    );
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    let arm = report
        .arms
        .iter()
        .find(|a| a.variant == answer.variant_id())
        .unwrap();
    assert_eq!((arm.exposures, arm.assigned), (1, 1));
    assert_eq!(arm.confirmation_rate, Some(1.0));
}
