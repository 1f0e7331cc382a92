//! The shared rules on their own, with no store around them: every backend's outcomes follow
//! from these (the contract suite checks the backends).

use std::sync::Arc;

use super::*;
use crate::store::Epoch;

const T0_MS: u64 = 1_700_000_000_000;
const WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;

fn record(variant: &str, assigned_ms: u64, reward: Option<f64>) -> StickyRecord {
    StickyRecord {
        variant: variant.to_owned(),
        assigned_ms,
        propensity: 0.5,
        reward,
        rewarded_ms: None,
    }
}

fn op(target: RewardTarget, now_ms: u64, occurred_ms: Option<u64>) -> RewardOp {
    RewardOp {
        epoch: Epoch {
            experiment: "exp".to_owned(),
            revision: 1,
        },
        event_id: "e1".to_owned(),
        target,
        reward: 1.0,
        occurred_ms,
        now_ms,
        window_ms: WINDOW_MS,
        half_life_ms: None,
    }
}

fn token(issued_ms: u64) -> RewardTarget {
    RewardTarget::Token {
        assignment_id: "a1".to_owned(),
        variant: "b".to_owned(),
        issued_ms,
        propensity: 0.5,
        confirmed_only: false,
    }
}

fn unit() -> RewardTarget {
    RewardTarget::Unit("u1".to_owned())
}

#[test]
fn the_first_insert_wins_and_a_later_one_gets_the_held_record() {
    let first = record("a", T0_MS, None);
    assert_eq!(insert_sticky(None, first.clone()), (first.clone(), true));
    assert_eq!(
        insert_sticky(Some(first.clone()), record("b", T0_MS + 1, None)),
        (first, false)
    );
}

#[test]
fn a_reassignment_replaces_only_the_expected_variant_and_clears_the_reward() {
    let held = record("retired", T0_MS, Some(1.0));
    assert_eq!(
        reassign_sticky(held.clone(), "other", record("b", T0_MS + 5, None)),
        Reassignment::Keep(held.clone())
    );
    assert_eq!(
        reassign_sticky(held, "retired", record("b", T0_MS + 5, Some(0.7))),
        Reassignment::Replace {
            record: record("b", T0_MS + 5, None),
            old_variant: "retired".to_owned(),
            moved_reward: Some(1.0),
        }
    );
}

#[test]
fn a_kept_event_id_is_a_duplicate_whatever_its_target_holds() {
    let held = record("a", T0_MS, None);
    let late = op(unit(), T0_MS + 2 * WINDOW_MS, None);
    assert_eq!(
        judge_reward(&late, true, TargetState::Unit(Some(&held))),
        Err(RewardOutcome::Duplicate)
    );
}

#[test]
fn a_unit_reward_is_credited_once_inside_its_window() {
    let fresh = record("a", T0_MS, None);
    let credited = judge_reward(
        &op(unit(), T0_MS + 10, None),
        false,
        TargetState::Unit(Some(&fresh)),
    )
    .unwrap();
    assert_eq!(
        credited,
        Credit {
            variant: "a".to_owned(),
            assigned_ms: T0_MS,
            event_id_retained_until_ms: T0_MS + 10 + WINDOW_MS,
            mark_retained_until_ms: None,
        }
    );
    let rewarded = record("a", T0_MS, Some(1.0));
    assert_eq!(
        judge_reward(
            &op(unit(), T0_MS + 10, None),
            false,
            TargetState::Unit(Some(&rewarded))
        ),
        Err(RewardOutcome::AlreadyRewarded)
    );
    assert_eq!(
        judge_reward(
            &op(unit(), T0_MS + 10, None),
            false,
            TargetState::Unit(None)
        ),
        Err(RewardOutcome::UnitNotAssigned)
    );
}

#[test]
fn the_window_is_measured_at_arrival_and_a_backdated_timestamp_cannot_reopen_it() {
    let fresh = record("a", T0_MS, None);
    let at_edge = op(unit(), T0_MS + WINDOW_MS, None);
    assert!(judge_reward(&at_edge, false, TargetState::Unit(Some(&fresh))).is_ok());
    let late_but_backdated = op(unit(), T0_MS + WINDOW_MS + 1, Some(T0_MS + 1));
    assert_eq!(
        judge_reward(&late_but_backdated, false, TargetState::Unit(Some(&fresh))),
        Err(RewardOutcome::OutsideWindow)
    );
}

#[test]
fn a_timestamp_before_the_assignment_is_refused_beyond_the_clock_slack() {
    let fresh = record("a", T0_MS, None);
    let within = op(unit(), T0_MS + 10, Some(T0_MS - MAX_CLOCK_SKEW_MS));
    assert!(judge_reward(&within, false, TargetState::Unit(Some(&fresh))).is_ok());
    let beyond = op(unit(), T0_MS + 10, Some(T0_MS - MAX_CLOCK_SKEW_MS - 1));
    assert_eq!(
        judge_reward(&beyond, false, TargetState::Unit(Some(&fresh))),
        Err(RewardOutcome::TimestampBeforeAssignment)
    );
}

#[test]
fn a_token_is_credited_once_and_its_mark_outlives_the_window_by_the_slack() {
    let reward = op(token(T0_MS), T0_MS + 10, None);
    let unmarked = TargetState::Token {
        marked: false,
        expired_through: 0,
        confirmed: false,
    };
    let credit = judge_reward(&reward, false, unmarked).unwrap();
    assert_eq!(
        credit.mark_retained_until_ms,
        Some(T0_MS + WINDOW_MS + TOKEN_MARK_SLACK_MS)
    );
    assert_eq!((credit.variant.as_str(), credit.assigned_ms), ("b", T0_MS));
    let marked = TargetState::Token {
        marked: true,
        expired_through: 0,
        confirmed: false,
    };
    assert_eq!(
        judge_reward(
            &op(token(T0_MS), T0_MS + 2 * WINDOW_MS, None),
            false,
            marked
        ),
        Err(RewardOutcome::AlreadyRewarded),
        "a credited token stays credited after its window"
    );
}

#[test]
fn a_token_whose_mark_a_sweep_may_have_removed_is_refused() {
    let deadline = T0_MS + WINDOW_MS + TOKEN_MARK_SLACK_MS;
    let swept = TargetState::Token {
        marked: false,
        expired_through: deadline,
        confirmed: false,
    };
    // A clock stepped far back: inside the window by this clock, but the sweep passed.
    assert_eq!(
        judge_reward(&op(token(T0_MS), T0_MS + 10, None), false, swept),
        Err(RewardOutcome::OutsideWindow)
    );
    let not_yet = TargetState::Token {
        marked: false,
        expired_through: deadline - 1,
        confirmed: false,
    };
    assert!(judge_reward(&op(token(T0_MS), T0_MS + 10, None), false, not_yet).is_ok());
}

#[test]
fn expected_shares_sum_to_the_exposures_and_ignore_unusable_entries() {
    let allocation = vec![
        ("a".to_owned(), 0.2),
        ("b".to_owned(), 0.6),
        ("c".to_owned(), f64::NAN),
        ("d".to_owned(), -1.0),
    ];
    let shares = expected_exposure_shares(&allocation, "a", 4.0);
    let arms: Vec<&str> = shares.iter().map(|(variant, _)| *variant).collect();
    assert_eq!(arms, ["a", "b"]);
    assert!((shares[0].1 - 1.0).abs() < 1e-12 && (shares[1].1 - 3.0).abs() < 1e-12);
    let nothing_usable = vec![("a".to_owned(), 0.0), ("b".to_owned(), f64::INFINITY)];
    assert_eq!(
        expected_exposure_shares(&nothing_usable, "b", 2.0),
        vec![("b", 2.0)]
    );
    assert_eq!(expected_exposure_shares(&[], "z", 1.0), vec![("z", 1.0)]);
}

#[test]
fn exposures_and_rewards_move_raw_and_decayed_counters() {
    let tally = Tally {
        now_ms: T0_MS,
        half_life_ms: Some(1000),
        allocation: Arc::from(Vec::new()),
    };
    let mut counters = ArmCounters::default();
    add_exposures(&mut counters, &tally, 2);
    assert_eq!((counters.exposures, counters.decayed_exposures), (2, 2.0));
    // A reward one half-life after its assignment enters decayed R at half weight, and the
    // exposures decay to the reward's arrival.
    add_reward(&mut counters, 1.0, T0_MS, T0_MS + 1000, Some(1000));
    assert_eq!(counters.reward_sum, 1.0);
    assert!((counters.decayed_reward_sum - 0.5).abs() < 1e-12);
    assert!((counters.decayed_exposures - 1.0).abs() < 1e-12);
    assert_eq!(counters.decayed_at_ms, T0_MS + 1000);
}

#[test]
fn the_epoch_start_is_set_once_and_the_first_decision_holds() {
    assert_eq!(epoch_start(None, T0_MS), Some(T0_MS));
    assert_eq!(epoch_start(Some(T0_MS), T0_MS - 5), None);
    let first = crate::store::test_support::decision("a", T0_MS);
    let second = crate::store::test_support::decision("b", T0_MS + 1);
    assert_eq!(settle_decision(None, first.clone()), (first.clone(), true));
    assert_eq!(settle_decision(Some(&first), second), (first, false));
}

#[test]
fn a_confirmation_is_accepted_up_to_the_end_of_its_window_and_refused_after() {
    assert!(!confirmation_window_closed(T0_MS, T0_MS, 600_000));
    assert!(!confirmation_window_closed(T0_MS, T0_MS + 600_000, 600_000));
    assert!(confirmation_window_closed(T0_MS, T0_MS + 600_001, 600_000));
    // A clock behind the assignment's is no reason to refuse.
    assert!(!confirmation_window_closed(T0_MS, T0_MS - 10, 600_000));
    assert!(!confirmation_window_closed(u64::MAX - 1, u64::MAX, 600_000));
}

#[test]
fn a_confirmation_credits_the_allocation_it_carries_or_one_built_from_its_propensity() {
    let own = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
        v.iter().map(|(k, p)| ((*k).to_owned(), *p)).collect()
    };
    let carried = own(&[("a", 0.7), ("b", 0.3)]);
    let now = own(&[("a", 0.1), ("b", 0.6), ("c", 0.3)]);
    assert_eq!(
        confirmed_allocation(Some(&carried), "b", 0.3, &now),
        carried
    );
    // `b` keeps its propensity 0.4; the other 0.6 follows a : c = 0.1 : 0.3 now.
    let built = confirmed_allocation(None, "b", 0.4, &now);
    let expect = own(&[("b", 0.4), ("a", 0.15), ("c", 0.45)]);
    assert_eq!(built.len(), 3);
    for ((v, p), (w, q)) in built.iter().zip(&expect) {
        assert_eq!(v, w);
        assert!((p - q).abs() < 1e-15, "{built:?}");
    }
    // Two arms: exactly (p, 1 − p), whatever the split is now.
    let two = own(&[("a", 0.9), ("b", 0.1)]);
    assert_eq!(
        confirmed_allocation(None, "a", 0.25, &two),
        own(&[("a", 0.25), ("b", 0.75)])
    );
    // Nothing else allocated: everything to the exposed arm.
    assert_eq!(
        confirmed_allocation(None, "a", 0.5, &own(&[("a", 1.0)])),
        own(&[("a", 0.5)])
    );
}
