//! Contract: per-request token confirmations of `exposure: on_render` (see
//! `store::confirmations`). What every backend must give: at most one counted exposure per
//! assignment id however many confirmations race, also after a restart; the allocation at
//! issue in the expected exposures; `confirm_within` and the sweep's watermark enforced in the
//! store; the mark kept for its windows and then removed with nothing else changing; and a
//! reward on such a token credited only once it was confirmed.

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean, counters_of};
use crate::store::test_support::{DAY_MS, T0_MS, epoch, tally_with, token_reward};
use crate::store::{ConfirmOp, ConfirmOutcome, RewardOp, RewardOutcome, RewardTarget, Store};

const WITHIN_MS: u64 = 10 * 60 * 1000;

/// A confirmation of token `assignment_id` (variant `variant`, issued at [`T0_MS`] when the
/// allocation was 70/30) arriving at `now_ms`; 7-day reward window.
fn confirmation(assignment_id: &str, variant: &str, now_ms: u64) -> ConfirmOp {
    ConfirmOp {
        epoch: epoch(),
        assignment_id: assignment_id.to_owned(),
        variant: variant.to_owned(),
        issued_ms: T0_MS,
        propensity: 0.7,
        now_ms,
        confirm_within_ms: WITHIN_MS,
        reward_window_ms: 7 * DAY_MS,
        tally: tally_with(T0_MS, None, &[("a", 0.7), ("b", 0.3)]),
    }
}

/// A reward on a per-request on_render token: credited only once confirmed.
fn rendered_reward(event_id: &str, assignment_id: &str, variant: &str, at_ms: u64) -> RewardOp {
    let mut op = token_reward(event_id, assignment_id, variant, T0_MS, 1.0, at_ms);
    if let RewardTarget::Token { confirmed_only, .. } = &mut op.target {
        *confirmed_only = true;
    }
    op
}

/// Racing confirmations of one token count one exposure with the allocation at issue, which
/// also starts the epoch at issue; a retry after a restart is a duplicate.
pub async fn a_token_confirmation_counts_once_even_when_racing_and_after_a_restart<B: Backend>() {
    let mut backend = B::open().await;
    let store = backend.store();
    let racing = (0..16).map(|_| store.confirm_tokens(vec![confirmation("t1", "a", T0_MS + 5)]));
    let outcomes: Vec<ConfirmOutcome> = join_all(racing)
        .await
        .into_iter()
        .flat_map(|answer| answer.expect("confirmations acknowledged"))
        .collect();
    let confirmed = outcomes
        .iter()
        .filter(|o| **o == ConfirmOutcome::Confirmed)
        .count();
    assert_eq!(confirmed, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        ConfirmOutcome::Confirmed | ConfirmOutcome::AlreadyConfirmed
    )));
    // One request confirming two tokens, one of them twice: in order.
    let batch = store
        .confirm_tokens(vec![
            confirmation("t2", "b", T0_MS + 6),
            confirmation("t2", "b", T0_MS + 6),
            confirmation("t1", "a", T0_MS + 6),
        ])
        .await
        .unwrap();
    assert_eq!(
        batch,
        [
            ConfirmOutcome::Confirmed,
            ConfirmOutcome::AlreadyConfirmed,
            ConfirmOutcome::AlreadyConfirmed
        ]
    );
    let counted = counters_of(store).await;
    assert_eq!((counted["a"].exposures, counted["b"].exposures), (1, 1));
    assert!(
        (counted["a"].expected_exposures - 1.4).abs() < 1e-6
            && (counted["b"].expected_exposures - 0.6).abs() < 1e-6,
        "two exposures under the 70/30 split at issue: {counted:?}"
    );
    let info = store.epoch_info(&epoch()).await.unwrap();
    assert_eq!(info.started_ms, Some(T0_MS), "exposures date from issue");
    let report = assert_audit_clean(store).await;
    assert_eq!(report.live_confirmation_marks, 2);
    backend.reopen().await;
    let store = backend.store();
    let again = store
        .confirm_tokens(vec![confirmation("t1", "a", T0_MS + 7)])
        .await
        .unwrap();
    assert_eq!(again, [ConfirmOutcome::AlreadyConfirmed]);
    assert_eq!(counters_of(store).await, counted);
    assert_audit_clean(store).await;
}

/// A reward on a per-request on_render token is refused until the token is confirmed, and
/// the refusal keeps nothing: the same event id is credited once the token is confirmed,
/// and at most once.
pub async fn a_reward_on_a_rendered_token_needs_its_confirmation<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let early = store
        .apply_rewards(vec![rendered_reward("e1", "t1", "a", T0_MS + 10)])
        .await
        .unwrap();
    assert_eq!(early, [RewardOutcome::NotConfirmed]);
    assert_eq!(
        counters_of(store).await.get("a").map(|a| a.reward_sum),
        None
    );
    store
        .confirm_tokens(vec![confirmation("t1", "a", T0_MS + 20)])
        .await
        .unwrap();
    let outcomes = store
        .apply_rewards(vec![
            rendered_reward("e1", "t1", "a", T0_MS + 30),
            rendered_reward("e2", "t1", "a", T0_MS + 30),
            rendered_reward("e3", "t9", "b", T0_MS + 30),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RewardOutcome::Applied {
                variant: "a".into()
            },
            RewardOutcome::AlreadyRewarded,
            RewardOutcome::NotConfirmed,
        ]
    );
    let counted = counters_of(store).await;
    assert_eq!((counted["a"].exposures, counted["a"].reward_sum), (1, 1.0));
    assert_audit_clean(store).await;
}

/// `confirm_within` and the sweep are the store's to enforce: a late confirmation counts
/// nothing; a mark is kept through the reward window (plus slack), listed by scans, then
/// removed with no counter changing; a confirmation or a reward after the sweep is refused.
pub async fn confirmation_marks_expire_after_their_windows_and_late_ones_are_refused<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let late = store
        .confirm_tokens(vec![confirmation("late", "a", T0_MS + WITHIN_MS + 1)])
        .await
        .unwrap();
    assert_eq!(late, [ConfirmOutcome::OutsideWindow]);
    assert!(counters_of(store).await.is_empty(), "nothing counted");
    let ids: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let ops = ids
        .iter()
        .map(|id| confirmation(id, "b", T0_MS + WITHIN_MS))
        .collect();
    let outcomes = store.confirm_tokens(ops).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == ConfirmOutcome::Confirmed));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_token_confirmations(&epoch(), after.clone(), 2)
            .await
            .unwrap();
        seen.extend(page.iter().map(|mark| mark.assignment_id.clone()));
        if page.len() < 2 {
            break;
        }
        after = page.last().map(|mark| mark.assignment_id.clone());
    }
    assert_eq!(seen, ids, "every mark once, by assignment id");
    let mark = &store
        .scan_token_confirmations(&epoch(), None, 1)
        .await
        .unwrap()[0];
    assert_eq!(
        (mark.variant.as_str(), mark.issued_ms, mark.confirmed_ms),
        ("b", T0_MS, T0_MS + WITHIN_MS)
    );
    let deadline =
        crate::store::rules::confirmation_mark_retained_until(T0_MS, WITHIN_MS, 7 * DAY_MS);
    assert_eq!(mark.retained_until_ms, deadline);
    let counted = counters_of(store).await;
    // Before its deadline (both windows closed long ago): the mark stays.
    store.expire(deadline - 1).await.unwrap();
    let kept = store
        .scan_token_confirmations(&epoch(), None, 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 5);
    store.expire(deadline + 2 * DAY_MS).await.unwrap();
    let report = assert_audit_clean(store).await;
    assert_eq!(report.live_confirmation_marks, 0);
    assert_eq!(
        counters_of(store).await,
        counted,
        "expiry changes no counter"
    );
    let after_sweep = store
        .confirm_tokens(vec![confirmation("t0", "b", T0_MS + 5)])
        .await
        .unwrap();
    assert_eq!(
        after_sweep,
        [ConfirmOutcome::OutsideWindow],
        "the sweep passed it"
    );
    let reward = store
        .apply_rewards(vec![rendered_reward("e1", "t0", "b", T0_MS + 5)])
        .await
        .unwrap();
    assert_eq!(reward, [RewardOutcome::OutsideWindow]);
    assert_eq!(counters_of(store).await, counted);
}
