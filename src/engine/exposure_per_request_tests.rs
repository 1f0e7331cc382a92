//! `exposure: on_render` with `assignment: per_request` in the engine: a draw counts only as
//! assigned, its token confirms it once, a reward needs that confirmation, and a healthy
//! frontend keeps the sample-ratio check quiet at its false-alarm rate over many runs.

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

fn conversion<'a>(id: &'a str, token: &'a str) -> Result<RawEvent<'a>, String> {
    Ok(RawEvent {
        id: id.into(),
        experiment: "e".into(),
        unit: None,
        token: Some(token.into()),
        reward: None,
        timestamp: None,
        metric: None,
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

/// A healthy frontend (every arm's renders confirmed with the same probability) keeps the
/// server's sample-ratio check quiet at its stated false-alarm rate, measured over many runs
/// through the engine and the store: the allocation moves with the posterior (burn-in 0), each
/// token carries the split of its draw, and its confirmation credits that split. The page's
/// losses are seeded; the server's Thompson draws are not (it owns its RNG), so the bounds
/// are α plus five binomial standard errors, which a correct server exceeds with probability
/// below 10⁻⁴ per level.
#[test]
fn a_healthy_per_request_frontend_keeps_the_check_quiet_at_its_false_alarm_rate() {
    use rand::{RngExt, SeedableRng};
    const RUNS: usize = 300;
    const DRAWS: usize = 150;
    let specs: Vec<_> = (0..RUNS)
        .map(|run| {
            let yaml = YAML
                .replace("id: e\n", &format!("id: run-{run}\n"))
                .replace("burn_in: 1000", "burn_in: 0, min_share: 0.1");
            crate::spec::parse_experiment(Path::new("run.yaml"), &yaml).unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(T0_MS));
    let engine = block_on(Engine::start(
        specs,
        store,
        TokenSigner::new(&[7; 32]),
        clock.clone(),
    ))
    .unwrap();
    let mut page = rand::rngs::StdRng::seed_from_u64(20_261_130);
    let unit = Unit::parse("visitor").unwrap();
    let mut p_values = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let id = format!("run-{run}");
        let mut confirmations = Vec::new();
        for _ in 0..DRAWS {
            // 10 ms apart: the 100 ms snapshot, so the allocation moves every 10 draws.
            clock.advance_ms(10);
            let answer = block_on(engine.assign(&id, &unit, true)).unwrap();
            if page.random::<f64>() < 0.8 {
                confirmations.push(Ok(RawConfirmation {
                    experiment: id.clone(),
                    token: answer.token.clone(),
                    unit: None,
                }));
            }
        }
        block_on(engine.confirm(confirmations)).unwrap();
        let report = block_on(engine.report(&id, 0.95, None)).unwrap();
        p_values.push(report.srm.p_value.expect("enough confirmed exposures"));
    }
    for alpha in [crate::stats::SRM_ALERT_P, 0.01, 0.05] {
        let share = p_values.iter().filter(|p| **p < alpha).count() as f64 / RUNS as f64;
        let se = (alpha * (1.0 - alpha) / RUNS as f64).sqrt();
        assert!(
            share <= alpha + 5.0 * se,
            "alerts at p < {alpha}: {share} of {RUNS} runs"
        );
    }
    // Not asleep: the p-values spread over (0, 1).
    let mut sorted = p_values.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[RUNS / 2];
    assert!((0.3..0.8).contains(&median), "median p-value {median}");
}
