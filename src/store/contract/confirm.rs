//! Contract: `exposure: on_render` (see `engine::exposure`). Assignments go to a ledger epoch;
//! a confirmation is a set-if-absent insert of the assignment into the counted epoch, with the
//! allocation at the assignment (`rules::confirmed_allocation`). What every backend must give
//! that composition: at most one counted exposure per unit however many confirmations race, the
//! expected exposures of the allocation at the assignment, the ledger untouched, rewards only
//! for confirmed units, everything durable across a restart and equal to the records.

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean, counters_of};
use crate::engine::exposure::ASSIGNMENT_LEDGER_SUFFIX;
use crate::store::rules;
use crate::store::test_support::{T0_MS, epoch, record, tally_with, unit_reward};
use crate::store::{Epoch, RewardOutcome, Store};

fn ledger() -> Epoch {
    let counted = epoch();
    Epoch {
        experiment: format!("{}{ASSIGNMENT_LEDGER_SUFFIX}", counted.experiment),
        revision: counted.revision,
    }
}

/// Racing confirmations of one recorded assignment count one exposure, credit the expected
/// exposures with the allocation of the assignment (not of the confirmation), leave the ledger
/// as it was, and make the unit rewardable; a retry after a restart is still no second count.
pub async fn a_confirmation_counts_once_with_the_allocation_of_its_assignment<B: Backend>() {
    let mut backend = B::open().await;
    let at_assignment = [("a", 0.7), ("b", 0.3)];
    let assigned = record("a", T0_MS);
    let store = backend.store();
    store
        .insert_sticky(
            &ledger(),
            "u1",
            assigned.clone(),
            tally_with(T0_MS, None, &at_assignment),
        )
        .await
        .expect("assignment recorded");
    let refused = store
        .apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS + 10)])
        .await
        .unwrap();
    assert_eq!(refused, [RewardOutcome::UnitNotAssigned], "not shown yet");
    let confirmed_at = T0_MS + 60_000;
    assert!(!rules::confirmation_window_closed(
        T0_MS,
        confirmed_at,
        600_000
    ));
    let carried: Vec<(String, f64)> = at_assignment
        .iter()
        .map(|(v, p)| ((*v).to_owned(), *p))
        .collect();
    let now = [("a".to_owned(), 0.1), ("b".to_owned(), 0.9)];
    let allocation = rules::confirmed_allocation(Some(&carried), "a", 0.7, &now);
    let pairs: Vec<(&str, f64)> = allocation.iter().map(|(v, p)| (v.as_str(), *p)).collect();
    let racing = (0..16).map(|_| {
        store.insert_sticky(
            &epoch(),
            "u1",
            assigned.clone(),
            tally_with(assigned.assigned_ms, None, &pairs),
        )
    });
    let answers: Vec<_> = join_all(racing)
        .await
        .into_iter()
        .map(|answer| answer.expect("confirmation acknowledged"))
        .collect();
    assert_eq!(answers.iter().filter(|(_, won)| *won).count(), 1);
    let counted = counters_of(store).await;
    assert_eq!(counted["a"].exposures, 1);
    assert!(
        (counted["a"].expected_exposures - 0.7).abs() < 1e-6,
        "{counted:?}"
    );
    assert!(
        (counted["b"].expected_exposures - 0.3).abs() < 1e-6,
        "{counted:?}"
    );
    let assigned_counts = store.counters(&ledger()).await.unwrap();
    assert_eq!(
        assigned_counts["a"].exposures, 1,
        "the ledger still says assigned once"
    );
    let info = store.epoch_info(&epoch()).await.unwrap();
    assert_eq!(
        info.started_ms,
        Some(T0_MS),
        "the exposure dates from its assignment"
    );
    let applied = store
        .apply_rewards(vec![unit_reward("e2", "u1", 1.0, confirmed_at + 10)])
        .await
        .unwrap();
    assert_eq!(
        applied,
        [RewardOutcome::Applied {
            variant: "a".into()
        }]
    );
    assert_audit_clean(store).await;
    backend.reopen().await;
    let store = backend.store();
    let (_, won) = store
        .insert_sticky(&epoch(), "u1", assigned, tally_with(T0_MS, None, &pairs))
        .await
        .unwrap();
    assert!(!won, "a retry after a restart is a duplicate");
    assert_eq!(counters_of(store).await["a"].exposures, 1);
    assert_audit_clean(store).await;
}
