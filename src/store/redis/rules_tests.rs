//! `apply.lua` against the backend-independent rules (`store::rules`): the Lua script mirrors
//! `judge_reward`, so a test checks that both agree.

use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::RewardTarget;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, record};

/// `apply.lua` mirrors `rules::judge_reward`; this checks that both give the same outcome on
/// every combination of the states that decide it.
#[test]
fn the_lua_reward_rules_agree_with_the_rules_module() {
    use crate::store::rules::{TargetState, judge_reward};
    let server = RedisServer::start();
    let store = open(&server);
    let window = 7 * DAY_MS;
    let mut case = 0u32;
    block_on(async {
        for token in [false, true] {
            for held in 0..3 {
                for seen in [false, true] {
                    for swept in [false, true] {
                        for occurred in [None, Some(T0_MS - 6 * 60 * 1000), Some(T0_MS)] {
                            for now in [T0_MS + 1, T0_MS + window, T0_MS + window + 1] {
                                // A sweep runs on tokens only, and removes an earlier credit mark.
                                if swept && (!token || held == 2) {
                                    continue;
                                }
                                case += 1;
                                let epoch = Epoch {
                                    experiment: format!("case-{case}"),
                                    revision: 1,
                                };
                                let op = |event_id: &str, target: RewardTarget| RewardOp {
                                    epoch: epoch.clone(),
                                    event_id: event_id.to_owned(),
                                    target,
                                    reward: 0.5,
                                    occurred_ms: None,
                                    now_ms: T0_MS + 1,
                                    window_ms: window,
                                    half_life_ms: None,
                                };
                                let target = if token {
                                    RewardTarget::Token {
                                        assignment_id: "a1".into(),
                                        variant: "bold".into(),
                                        issued_ms: T0_MS,
                                        propensity: 0.5,
                                        confirmed_only: false,
                                    }
                                } else {
                                    RewardTarget::Unit("u1".into())
                                };
                                // held: 0 nothing, 1 assigned (or a token), 2 already credited.
                                if !token && held >= 1 {
                                    store
                                        .insert_sticky(
                                            &epoch,
                                            "u1",
                                            record("bold", T0_MS),
                                            tally(T0_MS),
                                        )
                                        .await
                                        .unwrap();
                                }
                                if held == 2 {
                                    store
                                        .apply_rewards(vec![op("credit", target.clone())])
                                        .await
                                        .unwrap();
                                }
                                if swept {
                                    let other = RewardTarget::Token {
                                        assignment_id: "other".into(),
                                        variant: "bold".into(),
                                        issued_ms: T0_MS,
                                        propensity: 0.5,
                                        confirmed_only: false,
                                    };
                                    store.apply_rewards(vec![op("other", other)]).await.unwrap();
                                    store.expire(T0_MS + 30 * DAY_MS).await.unwrap();
                                }
                                if seen {
                                    store
                                        .insert_sticky(
                                            &epoch,
                                            "seed",
                                            record("bold", T0_MS),
                                            tally(T0_MS),
                                        )
                                        .await
                                        .unwrap();
                                    store
                                        .apply_rewards(vec![op(
                                            "e",
                                            RewardTarget::Unit("seed".into()),
                                        )])
                                        .await
                                        .unwrap();
                                }
                                let mut probe = op("e", target);
                                probe.occurred_ms = occurred;
                                probe.now_ms = now;
                                let stored = record("bold", T0_MS);
                                let rewarded = StickyRecord {
                                    reward: Some(0.5),
                                    ..stored.clone()
                                };
                                let state = if token {
                                    TargetState::Token {
                                        marked: held == 2,
                                        expired_through: if swept {
                                            T0_MS + 30 * DAY_MS
                                        } else {
                                            0
                                        },
                                        confirmed: false,
                                    }
                                } else {
                                    TargetState::Unit(match held {
                                        0 => None,
                                        1 => Some(&stored),
                                        _ => Some(&rewarded),
                                    })
                                };
                                let expected = match judge_reward(&probe, seen, state) {
                                    Ok(credit) => RewardOutcome::Applied {
                                        variant: credit.variant,
                                    },
                                    Err(outcome) => outcome,
                                };
                                let got = store.apply_rewards(vec![probe.clone()]).await.unwrap();
                                assert_eq!(got, vec![expected], "case {case}: {probe:?}");
                            }
                        }
                    }
                }
            }
        }
    });
    assert!(case > 100);
}

/// `apply.lua` mirrors `delay_histograms::conversion_delay_bin` (and `cohort_bin`); this runs
/// it on every worked case of `rule_cases` for both kinds of reward.
#[test]
fn the_lua_delay_bins_agree_with_the_worked_cases() {
    use crate::store::delay_histograms::cohort_bin;
    use crate::store::rule_cases::delay_bin_cases;
    use crate::store::test_support::token_reward;
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        for (n, case) in delay_bin_cases().into_iter().enumerate() {
            let epoch = Epoch {
                experiment: format!("delay-{n}"),
                revision: 1,
            };
            store
                .insert_sticky(
                    &epoch,
                    "u1",
                    record("bold", case.assigned_ms),
                    tally(case.assigned_ms),
                )
                .await
                .unwrap();
            let unit = RewardOp {
                epoch: epoch.clone(),
                ..crate::store::test_support::unit_reward("e1", "u1", 1.0, case.arrived_ms)
            };
            let token = RewardOp {
                epoch: epoch.clone(),
                ..token_reward("e2", "t1", "bold", case.assigned_ms, 0.5, case.arrived_ms)
            };
            let outcomes = store.apply_rewards(vec![unit, token]).await.unwrap();
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, RewardOutcome::Applied { .. })),
                "{}: {outcomes:?}",
                case.name
            );
            let arm = store.delay_histograms(&epoch).await.unwrap()["bold"].clone();
            assert_eq!(
                arm.delays.into_iter().collect::<Vec<_>>(),
                vec![(case.expected_bin, 1.5)],
                "{}",
                case.name
            );
            assert_eq!(
                arm.cohorts.into_iter().collect::<Vec<_>>(),
                vec![(cohort_bin(case.assigned_ms), 1)],
                "{}",
                case.name
            );
        }
    });
}
