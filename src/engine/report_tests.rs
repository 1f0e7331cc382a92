//! Tests of the analysts' report: the sample-ratio check against the allocation the units were
//! assigned under.

use std::sync::Arc;

use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::{SledStore, StickyRecord, Store, Tally};

const YAML: &str = "id: srm\ndescription: d\nowner: o\nstatus: running\npolicy: { burn_in: 0 }\n\
                    default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n";

/// Stores `n` units on `variant` while the allocation said `allocation`.
async fn expose(store: &SledStore, n: usize, variant: &str, allocation: [(&str, f64); 2]) {
    let epoch = crate::store::Epoch {
        experiment: "srm".into(),
        revision: 1,
    };
    let allocation: Arc<[(String, f64)]> = allocation
        .iter()
        .map(|(v, p)| (v.to_string(), *p))
        .collect();
    for i in 0..n {
        let record = StickyRecord {
            variant: variant.into(),
            assigned_ms: 1_000,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        };
        let tally = Tally {
            now_ms: 1_000,
            half_life_ms: None,
            allocation: allocation.clone(),
        };
        store
            .insert_sticky(&epoch, &format!("{variant}-{i}"), record, tally)
            .await
            .unwrap();
    }
}

async fn srm_of(store: Arc<SledStore>) -> SrmReport {
    let spec = crate::spec::parse_experiment(std::path::Path::new("srm.yaml"), YAML).unwrap();
    let engine = Engine::start(
        vec![spec],
        store,
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(2_000)),
    )
    .await
    .unwrap();
    engine.report("srm", 0.95, None).await.unwrap().srm
}

#[test]
fn the_sample_ratio_check_alerts_when_traffic_does_not_follow_the_allocation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The policy said 50/50 for 200 units, but 150 reached `a`: chi-square
        // (150−100)²/100 + (50−100)²/100 = 50 on 1 degree of freedom, p ≈ 1.5e-12.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        expose(&store, 150, "a", [("a", 0.5), ("b", 0.5)]).await;
        expose(&store, 50, "b", [("a", 0.5), ("b", 0.5)]).await;
        let srm = srm_of(store).await;
        let p = srm.p_value.unwrap();
        assert!(srm.alert && p < 1e-11 && p > 1e-13, "{srm:?}");
    });
    runtime.block_on(async {
        // The same split is exactly what a 75/25 allocation predicts: no alert.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        expose(&store, 150, "a", [("a", 0.75), ("b", 0.25)]).await;
        expose(&store, 50, "b", [("a", 0.75), ("b", 0.25)]).await;
        let srm = srm_of(store).await;
        assert!(!srm.alert && srm.p_value.unwrap() > 0.99, "{srm:?}");
    });
}
