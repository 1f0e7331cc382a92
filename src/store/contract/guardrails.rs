//! Contract: guardrail events and halts (`store::guardrail_events`, `store::halts`).

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean};
use crate::store::guardrail_events::{guardrail_epoch, guardrail_target};
use crate::store::test_support::{DAY_MS, T0_MS, epoch, halt, record, tally, unit_reward};
use crate::store::{Epoch, Halt, RewardOp, RewardOutcome, Store};

/// Racing halts of one arm and metric: one holds for everybody, a later one (even after a
/// restart) does not replace it, and other metrics, arms and epochs keep their own.
pub async fn the_first_halt_of_an_arm_and_metric_holds_against_racing_and_later_ones<B: Backend>() {
    let mut backend = B::open().await;
    let held = {
        let store = backend.store();
        assert!(store.halts(&epoch()).await.unwrap().is_empty());
        let racing =
            (0..8u64).map(|caller| store.record_halt(&epoch(), halt("refunds", "bold", caller)));
        let answers: Vec<Halt> = join_all(racing)
            .await
            .into_iter()
            .map(|answer| answer.expect("halt acknowledged"))
            .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        let other = store
            .record_halt(&epoch(), halt("errors", "bold", 50))
            .await
            .unwrap();
        assert_eq!(other.halted_ms, 50, "each metric has its own halt");
        answers[0].clone()
    };
    backend.reopen().await;
    let store = backend.store();
    let later = store
        .record_halt(&epoch(), halt("refunds", "bold", T0_MS))
        .await
        .unwrap();
    assert_eq!(later, held);
    let halts = store.halts(&epoch()).await.unwrap();
    assert_eq!(halts.len(), 2, "{halts:?}");
    assert!(halts.contains(&held));
    let other_epoch = Epoch {
        revision: 2,
        ..epoch()
    };
    assert!(store.halts(&other_epoch).await.unwrap().is_empty());
    assert_audit_clean(store).await;
}

fn guardrail_op(
    event_id: &str,
    unit: &str,
    assigned_ms: u64,
    variant: &str,
    at_ms: u64,
) -> RewardOp {
    RewardOp {
        epoch: guardrail_epoch(&epoch(), "refunds"),
        target: guardrail_target(unit, &record(variant, assigned_ms)),
        ..unit_reward(event_id, unit, 1.0, at_ms)
    }
}

/// Guardrail events follow the reward rules in their metric's epoch: one credit per
/// assignment and metric, retries are duplicates, the window holds, the primary reward of
/// the same assignment is untouched, and the counters survive a restart and pass the audit.
pub async fn guardrail_events_count_once_per_assignment_and_metric<B: Backend>() {
    let mut backend = B::open().await;
    let refunds = guardrail_epoch(&epoch(), "refunds");
    {
        let store = backend.store();
        store
            .insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        let at = T0_MS + 1000;
        let outcomes = store
            .apply_rewards(vec![
                guardrail_op("g1", "u1", T0_MS, "bold", at),
                guardrail_op("g1", "u1", T0_MS, "bold", at),
                guardrail_op("g2", "u1", T0_MS, "bold", at),
                // A later assignment of the unit (after a re-assignment) is a new one.
                guardrail_op("g3", "u1", T0_MS + 500, "control", at),
                guardrail_op("g4", "u2", T0_MS - 8 * DAY_MS, "bold", at),
                unit_reward("r1", "u1", 1.0, at),
                RewardOp {
                    epoch: guardrail_epoch(&epoch(), "errors"),
                    ..guardrail_op("g1", "u1", T0_MS, "bold", at)
                },
            ])
            .await
            .unwrap();
        let applied = |v: &str| RewardOutcome::Applied {
            variant: v.to_owned(),
        };
        assert_eq!(
            outcomes,
            vec![
                applied("bold"),
                RewardOutcome::Duplicate,
                RewardOutcome::AlreadyRewarded,
                applied("control"),
                RewardOutcome::OutsideWindow,
                applied("bold"),
                applied("bold"),
            ]
        );
    }
    backend.reopen().await;
    let store = backend.store();
    let counters = store.counters(&refunds).await.unwrap();
    assert_eq!(counters["bold"].reward_sum, 1.0);
    assert_eq!(
        counters["bold"].exposures, 0,
        "exposures are the experiment's"
    );
    assert_eq!(counters["control"].reward_sum, 1.0);
    let primary = store.counters(&epoch()).await.unwrap();
    assert_eq!(
        (primary["bold"].exposures, primary["bold"].reward_sum),
        (1, 1.0)
    );
    assert_audit_clean(store).await;
}
