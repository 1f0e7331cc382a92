//! Contract: the delay histograms (`delay_histograms`, the rule in `rules`'s table). Every
//! counted exposure lands in its arm's cohort of its counting hour, every credited reward in
//! its arm's delay bin (arrival minus assignment), a losing or refused write in neither; the
//! histograms hold exactly the counters' N and R, and survive a restart.

use std::collections::{BTreeMap, HashMap};

use super::{Backend, assert_audit_clean, counters_of, eventually};
use crate::store::delay_histograms::cohort_bin;
use crate::store::rule_cases::delay_bin_cases;
use crate::store::test_support::{DAY_MS, T0_MS, epoch, record, tally, token_reward, unit_reward};
use crate::store::{DelayHistograms, RewardOutcome, Store};

const HOUR_MS: u64 = 3_600_000;

async fn histograms_of<S: Store>(store: &S) -> HashMap<String, DelayHistograms> {
    store
        .delay_histograms(&epoch())
        .await
        .expect("histograms read")
}

pub async fn every_counted_exposure_and_credit_lands_in_the_delay_histograms<B: Backend>() {
    let mut backend = B::open().await;
    let store = backend.store();
    assert!(
        histograms_of(store).await.is_empty(),
        "a new epoch has none"
    );
    let (won, lost) = (
        store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS)),
        store.insert_sticky(&epoch(), "u1", record("b", T0_MS), tally(T0_MS)),
    );
    let (won, lost) = (won.await.unwrap(), lost.await.unwrap());
    assert!(won.1 != lost.1, "one of the racing inserts wins");
    let first = won.0.variant.clone();
    let later = T0_MS + 2 * HOUR_MS;
    store
        .insert_sticky(&epoch(), "u2", record("b", later), tally(later))
        .await
        .unwrap();
    let moved = T0_MS + 6 * HOUR_MS;
    let reassigned = store
        .reassign_sticky(&epoch(), "u2", "b", record("a", moved), tally(moved))
        .await
        .unwrap();
    assert!(reassigned.is_some_and(|(_, won)| won));
    let per_request = T0_MS + 5 * HOUR_MS;
    for _ in 0..3 {
        assert!(store.count_exposure(&epoch(), "a", tally(per_request)));
    }
    eventually(store, "per-request exposures are counted", async |s| {
        counters_of(s).await.get("a").map_or(0, |c| c.exposures) >= 4 + u64::from(first == "a")
    })
    .await;
    // A unit reward 90 s after its assignment, a token reward two days after its issue, and
    // a retry and a late reward that are refused.
    let outcomes = store
        .apply_rewards(vec![
            unit_reward("e1", "u1", 1.0, T0_MS + 90_000),
            token_reward("e2", "t1", "b", T0_MS, 0.5, T0_MS + 2 * DAY_MS),
            unit_reward("e1", "u1", 1.0, T0_MS + 95_000),
            unit_reward("e3", "u2", 1.0, moved + 8 * DAY_MS),
        ])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], RewardOutcome::Applied { .. }));
    assert!(matches!(outcomes[1], RewardOutcome::Applied { .. }));
    assert_eq!(outcomes[2], RewardOutcome::Duplicate);
    assert_eq!(outcomes[3], RewardOutcome::OutsideWindow);
    let bin_of = |delay: u64| {
        delay_bin_cases()
            .into_iter()
            .find(|case| case.arrived_ms - case.assigned_ms == delay)
            .map(|case| case.expected_bin)
    };
    // Worked out by hand: cohorts of the counting hours, delays of the worked bin cases.
    let mut expected: BTreeMap<String, DelayHistograms> = BTreeMap::new();
    {
        let a = expected.entry("a".to_owned()).or_default();
        a.cohorts.insert(cohort_bin(moved), 1);
        a.cohorts.insert(cohort_bin(per_request), 3);
    }
    {
        let b = expected.entry("b".to_owned()).or_default();
        b.cohorts.insert(cohort_bin(later), 1);
        b.delays.insert(bin_of(2 * DAY_MS).unwrap_or(55), 0.5);
    }
    {
        let winner = expected.entry(first.clone()).or_default();
        *winner.cohorts.entry(cohort_bin(T0_MS)).or_default() += 1;
        winner.delays.insert(1, 1.0);
    }
    for round in 0..2 {
        let store = backend.store();
        let got: BTreeMap<String, DelayHistograms> =
            histograms_of(store).await.into_iter().collect();
        assert_eq!(got, expected, "round {round}");
        let counters = counters_of(store).await;
        for (variant, histograms) in &got {
            let c = counters[variant];
            assert_eq!(histograms.cohort_total(), c.exposures, "{variant}: N");
            assert!(
                (histograms.delay_total() - c.reward_sum).abs() < 1e-9,
                "{variant}: R"
            );
        }
        assert_audit_clean(store).await;
        if round == 0 {
            backend.reopen().await;
        }
    }
}
