//! Statistical semantics of the engine an analyst relies on: no decision from the priors
//! alone, and a burn-in that ends when the counts say so, even inside one snapshot interval.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::SledStore;

const T0_MS: u64 = 1_700_000_000_000;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

/// An engine over one experiment whose clock never moves, so the snapshot taken at start is
/// the one every request uses (a burst inside one refresh interval).
fn engine_with(yaml: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let spec = crate::spec::parse_experiment(Path::new("e.yaml"), yaml).unwrap();
    let engine = block_on(Engine::start(
        vec![spec],
        store,
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(T0_MS)),
    ))
    .unwrap();
    (dir, engine)
}

fn assign(engine: &Engine, unit: &str) -> Assignment {
    let unit = Unit::parse(unit).unwrap();
    block_on(engine.assign("e", &unit, true)).expect("assign never fails")
}

#[test]
fn a_burst_stops_drawing_uniformly_once_every_arm_reached_burn_in() {
    // Burn-in 5; after it, `a` (prior Beta(1, 1)) against `b` (Beta(1, 1000)) gives `a` a
    // P(best) of 1 − O(1e-3), so its propensity is far from the uniform 1/2. The clock stands
    // still, so the start-up snapshot (no exposures: burn-in) serves the whole burst.
    let (_dir, engine) = engine_with(
        "id: e\ndescription: d\nowner: o\nstatus: running\npolicy: { burn_in: 5, min_share: 0 }\n\
         default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n    \
         prior: { alpha: 1, beta: 1000 }\n",
    );
    let answers: Vec<Assignment> = (0..100)
        .map(|i| assign(&engine, &format!("u{i}")))
        .collect();
    assert!(answers.iter().all(|a| a.counted));
    let uniform = answers.iter().filter(|a| a.propensity == 0.5).count();
    // Uniform draws until both arms have 5: that takes more than 40 draws with probability
    // P(at most 4 of one arm in 40 fair draws)·2 < 1e-6. With the snapshot's stale counts all
    // 100 were uniform.
    assert!((10..=40).contains(&uniform), "{uniform} uniform draws");
    // Every uniform draw came first: once burn-in ended it stays ended.
    assert!(answers[..uniform].iter().all(|a| a.propensity == 0.5));
    let b_after: usize = answers[uniform..]
        .iter()
        .filter(|a| a.variant_id() == "b")
        .count();
    assert!(b_after <= 2, "{b_after} draws of b after burn-in");
}

const STRONG_PRIORS: &str = "id: e\ndescription: d\nowner: o\nstatus: running\n\
     policy: { burn_in: 1 }\nstopping: { prob_best: 0.95, max_expected_loss: 0.01 STOP }\n\
     default_variant: a\nvariants:\n  - id: a\n    payload: 1\n    prior: { alpha: 200, beta: 1 }\n\
     \x20 - id: b\n    payload: 2\n    prior: { alpha: 1, beta: 200 }\n";

#[test]
fn no_winner_is_declared_from_the_priors_alone() {
    // The priors alone give `a` P(best) = 1 and an expected loss ~1e-90: the rule is met
    // before a single exposure, and used to be decided then.
    let (_dir, engine) = engine_with(&STRONG_PRIORS.replace(" STOP", ""));
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    assert_eq!(
        report.stopping.status, "collecting",
        "{:?}",
        report.stopping
    );
    assert!(report.stopping.decided.is_none());
    assert!(
        report
            .stopping
            .detail
            .contains("0 of 1 exposures on 'a'; 0 of 1 exposures on 'b'"),
        "{}",
        report.stopping.detail
    );
    // One exposure of each arm (a burn-in of 1 draws uniformly until then) is data enough
    // for the rule to act on.
    let mut seen = std::collections::HashSet::new();
    for i in 0..200 {
        seen.insert(assign(&engine, &format!("u{i}")).variant_id().to_owned());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2);
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    assert_eq!(report.stopping.status, "winner", "{:?}", report.stopping);
}

#[test]
fn allow_prior_only_decision_lets_the_priors_decide() {
    let (_dir, engine) =
        engine_with(&STRONG_PRIORS.replace(" STOP", ", allow_prior_only_decision: true"));
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    assert_eq!(report.stopping.status, "winner", "{:?}", report.stopping);
    let decided = report.stopping.decided.unwrap();
    assert_eq!(decided.variant, "a");
    assert!(decided.exposures.values().all(|&n| n == 0));
}

#[test]
fn a_concluded_experiment_reports_its_counts_before_and_after_the_conclusion() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let epoch = crate::store::Epoch {
        experiment: "e".into(),
        revision: 1,
    };
    // The data of the running experiment: 3 units on `a`, 2 on `b`.
    for (i, variant) in ["a", "a", "a", "b", "b"].iter().enumerate() {
        let record = crate::store::StickyRecord {
            variant: (*variant).into(),
            assigned_ms: T0_MS - 1000,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        };
        let tally = crate::store::Tally {
            now_ms: T0_MS - 1000,
            half_life_ms: None,
            allocation: Arc::from(vec![("a".to_owned(), 0.5), ("b".to_owned(), 0.5)]),
        };
        block_on(store.insert_sticky(&epoch, &format!("old-{i}"), record, tally)).unwrap();
    }
    let yaml = "id: e\ndescription: d\nowner: o\nstatus: concluded\nwinner: b\n\
                default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n";
    let spec = crate::spec::parse_experiment(Path::new("e.yaml"), yaml).unwrap();
    let engine = block_on(Engine::start(
        vec![spec],
        store,
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(T0_MS)),
    ))
    .unwrap();
    // Four new units get the winner, counted with propensity 1; a returning one is not.
    for i in 0..4 {
        let answer = assign(&engine, &format!("new-{i}"));
        assert_eq!((answer.variant_id(), answer.propensity), ("b", 1.0));
        assert!(answer.counted);
    }
    assert!(!assign(&engine, "old-0").counted);
    let report = block_on(engine.report("e", 0.95, None)).unwrap();
    let concluded = report.concluded.expect("a concluded block");
    assert_eq!(concluded.winner, "b");
    assert_eq!(concluded.concluded_ms, T0_MS);
    let map = |pairs: [(&str, u64); 2]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(v, n)| ((*v).to_owned(), *n)).collect()
    };
    assert_eq!(concluded.exposures_before, map([("a", 3), ("b", 2)]));
    assert_eq!(concluded.exposures_after, map([("a", 0), ("b", 4)]));
}
