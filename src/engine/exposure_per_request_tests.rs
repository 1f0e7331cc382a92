//! `exposure: on_render` with `assignment: per_request` in the engine: a draw counts only as
//! assigned, its token confirms it once, and a reward needs that confirmation.

use std::path::Path;
use std::sync::Arc;

use super::exposure::{ConfirmationRejectionReason, RawConfirmation};
use super::*;
use crate::engine::{ManualClock, RawEvent, RejectionReason, TokenSigner};
use crate::store::SledStore;

const T0_MS: u64 = 1_700_000_000_000;

const YAML: &str = "id: e\ndescription: d\nowner: o\nstatus: running\n\
                    assignment: per_request\nexposure: on_render\nconfirm_within: 10m\n\
                    policy: { burn_in: 1000 }\ndefault_variant: a\nvariants:\n  - id: a\n    \
                    payload: 1\n  - id: b\n    payload: 2\n";

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

fn conversion(id: &str, token: &str) -> Result<RawEvent, String> {
    Ok(RawEvent {
        id: id.into(),
        experiment: "e".into(),
        unit: None,
        token: Some(token.into()),
        reward: None,
        timestamp: None,
    })
}

/// Assigned and confirmed counts of `variant`, once the per-request draws are committed.
fn counts(engine: &Engine, variant: &str, assigned: u64) -> (u64, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = block_on(engine.report("e", 0.95, None)).unwrap();
        let arm = report.arms.iter().find(|a| a.variant == variant).unwrap();
        let total: u64 = report.arms.iter().map(|a| a.assigned).sum();
        if total >= assigned || std::time::Instant::now() > deadline {
            return (arm.assigned, arm.exposures);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_per_request_draw_counts_as_assigned_until_its_token_is_confirmed_once() {
    let (_dir, engine, _clock) = engine();
    let unit = Unit::parse("u1").unwrap();
    let answers: Vec<_> = (0..3)
        .map(|_| block_on(engine.assign("e", &unit, true)).unwrap())
        .collect();
    for answer in &answers {
        assert!(answer.confirm && !answer.counted, "{answer:?}");
        let claims = engine
            .signer
            .verify(answer.token.as_deref().unwrap())
            .unwrap();
        let carried = claims.allocation.expect("the token carries the allocation");
        assert_eq!(carried.len(), 2);
        assert!((carried.iter().map(|(_, p)| p).sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let first = &answers[0];
    let variant = first.variant_id().to_owned();
    let assigned_of_variant = answers.iter().filter(|a| a.variant_id() == variant).count();
    assert_eq!(
        counts(&engine, &variant, 3),
        (assigned_of_variant as u64, 0)
    );
    let token = first.token.as_deref().unwrap();
    let outcome = block_on(engine.confirm(vec![
        by_token(token),
        by_token(token),
        Ok(RawConfirmation {
            experiment: "e".into(),
            token: None,
            unit: Some("u1".into()),
        }),
    ]))
    .unwrap();
    assert_eq!(
        (outcome.confirmed, outcome.duplicate),
        (1, 1),
        "{outcome:?}"
    );
    assert_eq!(outcome.rejections.len(), 1);
    assert_eq!(outcome.rejections[0].index, 2);
    assert_eq!(
        outcome.rejections[0].reason,
        ConfirmationRejectionReason::TokenRequired
    );
    let (assigned, confirmed) = counts(&engine, &variant, 3);
    assert_eq!((assigned, confirmed), (assigned_of_variant as u64, 1));
}

#[test]
fn a_reward_on_an_unconfirmed_token_is_refused_and_credited_once_confirmed() {
    let (_dir, engine, _clock) = engine();
    let answer = block_on(engine.assign("e", &Unit::parse("u1").unwrap(), true)).unwrap();
    let token = answer.token.as_deref().unwrap();
    let refused = block_on(engine.ingest(vec![conversion("e1", token)])).unwrap();
    assert_eq!(refused.rejected, 1, "{refused:?}");
    assert_eq!(refused.rejections[0].reason, RejectionReason::NotConfirmed);
    assert!(
        refused.rejections[0].detail.contains("never confirmed"),
        "{refused:?}"
    );
    block_on(engine.confirm(vec![by_token(token)])).unwrap();
    let applied =
        block_on(engine.ingest(vec![conversion("e1", token), conversion("e2", token)])).unwrap();
    assert_eq!(
        (applied.applied, applied.already_rewarded),
        (1, 1),
        "{applied:?}"
    );
}

#[test]
fn a_late_per_request_confirmation_is_refused_with_how_late_it_was() {
    let (_dir, engine, clock) = engine();
    let answer = block_on(engine.assign("e", &Unit::parse("u1").unwrap(), true)).unwrap();
    clock.advance_ms(11 * 60 * 1000);
    let late = block_on(engine.confirm(vec![by_token(answer.token.as_deref().unwrap())])).unwrap();
    assert_eq!(late.rejected, 1, "{late:?}");
    assert_eq!(
        late.rejections[0].reason,
        ConfirmationRejectionReason::OutsideWindow
    );
    assert!(late.rejections[0].detail.contains("11m"), "{late:?}");
}
