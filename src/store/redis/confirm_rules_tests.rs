//! `apply.lua` against the backend-independent rules for per-request token confirmations
//! (`exposure: on_render`): the script mirrors `rules::judge_confirmation` and the
//! confirmation check of `rules::judge_reward`, so these tests run the mirror on the worked
//! cases of `rule_cases` and compare with their written-out answers.

use super::tests::harness::RedisServer;
use super::tests::open;
use super::*;
use crate::store::rule_cases::{Found, confirmation_cases, reward_cases};
use crate::store::test_support::{DAY_MS, T0_MS, block_on};
use crate::store::{RewardTarget, rules};

/// A confirmation of another assignment id of `op`'s epoch: registers the epoch with the
/// sweep, so that a sweep can raise its watermark.
fn seed(op: &ConfirmOp) -> ConfirmOp {
    ConfirmOp {
        assignment_id: "seed".to_owned(),
        now_ms: op.issued_ms,
        ..op.clone()
    }
}

#[test]
fn the_lua_confirmation_rules_agree_with_the_worked_cases() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        for (k, case) in confirmation_cases().into_iter().enumerate() {
            let mut op = case.op.clone();
            op.epoch = Epoch {
                experiment: format!("confirm-case-{k}"),
                revision: 1,
            };
            store.confirm_tokens(vec![seed(&op)]).await.unwrap();
            if case.marked {
                let first = ConfirmOp {
                    now_ms: op.issued_ms,
                    ..op.clone()
                };
                store.confirm_tokens(vec![first]).await.unwrap();
            }
            if case.expired_through > 0 {
                store.expire(case.expired_through).await.unwrap();
            }
            let got = store.confirm_tokens(vec![op.clone()]).await.unwrap();
            let expected = match case.expected {
                Ok(_) => ConfirmOutcome::Confirmed,
                Err(outcome) => outcome,
            };
            assert_eq!(got, vec![expected], "{}", case.name);
            if let Ok(deadline) = case.expected {
                let marks = store
                    .scan_token_confirmations(&op.epoch, None, 10)
                    .await
                    .unwrap();
                let mark = marks
                    .iter()
                    .find(|mark| mark.assignment_id == op.assignment_id)
                    .expect("the mark is kept");
                assert_eq!(mark.retained_until_ms, deadline, "{}", case.name);
            }
        }
    });
}

#[test]
fn the_lua_reward_confirmation_check_agrees_with_the_worked_cases() {
    let server = RedisServer::start();
    let store = open(&server);
    let mut ran = 0;
    block_on(async {
        for (k, case) in reward_cases().into_iter().enumerate() {
            let RewardTarget::Token {
                assignment_id,
                variant,
                issued_ms,
                confirmed_only: true,
                ..
            } = &case.op.target
            else {
                continue;
            };
            let Found::Token {
                marked,
                expired_through,
                confirmed,
            } = case.found
            else {
                continue;
            };
            ran += 1;
            let mut probe = case.op.clone();
            probe.epoch = Epoch {
                experiment: format!("reward-case-{k}"),
                revision: 1,
            };
            let confirmation = ConfirmOp {
                epoch: probe.epoch.clone(),
                assignment_id: assignment_id.clone(),
                variant: variant.clone(),
                issued_ms: *issued_ms,
                propensity: 0.5,
                now_ms: *issued_ms,
                confirm_within_ms: 10 * 60 * 1000,
                reward_window_ms: probe.window_ms,
                tally: super::tests::tally(*issued_ms),
            };
            // Registers the epoch with the sweep either way.
            store
                .confirm_tokens(vec![seed(&confirmation)])
                .await
                .unwrap();
            if confirmed {
                store.confirm_tokens(vec![confirmation]).await.unwrap();
            }
            let plain = |event_id: &str, assignment_id: &str| RewardOp {
                event_id: event_id.to_owned(),
                target: RewardTarget::Token {
                    assignment_id: assignment_id.to_owned(),
                    variant: variant.clone(),
                    issued_ms: *issued_ms,
                    propensity: 0.5,
                    confirmed_only: false,
                },
                now_ms: *issued_ms + 1,
                occurred_ms: None,
                ..probe.clone()
            };
            if marked {
                // Credited before (by a token that needed no confirmation).
                store
                    .apply_rewards(vec![plain("credit", assignment_id)])
                    .await
                    .unwrap();
            }
            if case.event_id_seen {
                store
                    .apply_rewards(vec![plain(&probe.event_id, "other")])
                    .await
                    .unwrap();
            }
            if expired_through > 0 {
                store.expire(expired_through).await.unwrap();
            }
            let expected = match &case.expected {
                Ok(credit) => RewardOutcome::Applied {
                    variant: credit.variant.clone(),
                },
                Err(outcome) => outcome.clone(),
            };
            let got = store.apply_rewards(vec![probe.clone()]).await.unwrap();
            assert_eq!(got, vec![expected], "{}", case.name);
        }
    });
    assert!(ran >= 5, "{ran} cases");
    // The worked deadline is the rule's own.
    assert_eq!(
        rules::confirmation_mark_retained_until(T0_MS, 1, 7 * DAY_MS),
        T0_MS + 7 * DAY_MS + rules::TOKEN_MARK_SLACK_MS
    );
}
