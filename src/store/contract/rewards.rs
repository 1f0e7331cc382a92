//! Contract: at-most-once rewards, counters against records, token credits, retention.

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean, counters_of, eventually, exposures_of};
use crate::store::test_support::{
    DAY_MS, T0_MS, epoch, raw, record, tally, tally_with, token_reward, unit_reward,
};
use crate::store::{MAX_RETENTION_LAG_MS, RewardOutcome, Store, TOKEN_MARK_SLACK_MS};

fn applied(variant: &str) -> RewardOutcome {
    RewardOutcome::Applied {
        variant: variant.to_owned(),
    }
}

/// One event id posted many times at once, and again later: applied once.
pub async fn an_event_id_is_applied_at_most_once_even_when_racing<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    store
        .insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let racing =
        (0..16).map(|_| store.apply_rewards(vec![unit_reward("same-event", "u1", 1.0, T0_MS + 5)]));
    let outcomes: Vec<RewardOutcome> = join_all(racing)
        .await
        .into_iter()
        .flat_map(|answer| answer.expect("rewards acknowledged"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == applied("a")).count(), 1);
    assert!(
        outcomes
            .iter()
            .all(|o| *o == applied("a") || *o == RewardOutcome::Duplicate),
        "{outcomes:?}"
    );
    // Within one request too, and for a token target.
    let token = token_reward("token-event", "t1", "b", T0_MS, 0.5, T0_MS + 5);
    let outcomes = store
        .apply_rewards(vec![token.clone(), token.clone()])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![applied("b"), RewardOutcome::Duplicate]);
    assert_eq!(
        store.apply_rewards(vec![token]).await.unwrap(),
        vec![RewardOutcome::Duplicate]
    );
    let counters = counters_of(store).await;
    assert_eq!(counters["a"].reward_sum, 1.0);
    assert_eq!(counters["b"].reward_sum, 0.5);
    assert_audit_clean(store).await;
}

/// A second event for the same assignment is refused, whatever its id; the outcomes name
/// the reason, and a batch's other rewards still apply.
pub async fn an_assignment_is_credited_at_most_once_for_units_and_tokens<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    store
        .insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let outcomes = store
        .apply_rewards(vec![
            unit_reward("e1", "u1", 1.0, T0_MS + 1),
            unit_reward("e2", "u1", 1.0, T0_MS + 2),
            unit_reward("e3", "nobody", 1.0, T0_MS + 3),
            token_reward("e4", "t1", "b", T0_MS, 1.0, T0_MS + 4),
            token_reward("e5", "t1", "b", T0_MS, 1.0, T0_MS + 5),
            unit_reward("e6", "u1", 1.0, T0_MS + 8 * DAY_MS),
            token_reward("e7", "t2", "b", T0_MS, 1.0, T0_MS + 8 * DAY_MS),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            applied("a"),
            RewardOutcome::AlreadyRewarded,
            RewardOutcome::UnitNotAssigned,
            applied("b"),
            RewardOutcome::AlreadyRewarded,
            // Checked against the window first: the reason a late retry sees.
            RewardOutcome::OutsideWindow,
            RewardOutcome::OutsideWindow,
        ]
    );
    let mut backdated = unit_reward("e8", "u2", 1.0, T0_MS + 10);
    store
        .insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    backdated.occurred_ms = Some(T0_MS - 3_600_000);
    assert_eq!(
        store.apply_rewards(vec![backdated]).await.unwrap(),
        vec![RewardOutcome::TimestampBeforeAssignment]
    );
    let credited = store.sticky(&epoch(), "u1").await.unwrap().unwrap();
    assert_eq!(
        (credited.reward, credited.rewarded_ms),
        (Some(1.0), Some(T0_MS + 1)),
        "the reward and when it arrived (the applied one, not the refused retries)"
    );
    let counters = counters_of(store).await;
    assert_eq!(raw(&counters["a"]), (2, 1.0));
    assert_eq!(counters["b"].reward_sum, 1.0);
    assert_audit_clean(store).await;
}

/// The audit recomputes N and R from the records: sticky records, per-request exposures,
/// rewards, re-assignments and expired marks; and Σ expected = Σ N per epoch.
pub async fn counters_equal_what_the_records_imply<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let allocation = [("a", 0.25), ("b", 0.75)];
    for i in 0..10 {
        let variant = if i % 3 == 0 { "b" } else { "a" };
        let unit = format!("u{i}");
        store
            .insert_sticky(
                &epoch(),
                &unit,
                record(variant, T0_MS),
                tally_with(T0_MS, Some(DAY_MS), &allocation),
            )
            .await
            .unwrap();
    }
    for _ in 0..7 {
        assert!(store.count_exposure(&epoch(), "b", tally_with(T0_MS, None, &allocation)));
    }
    store
        .reassign_sticky(
            &epoch(),
            "u1",
            "a",
            record("c", T0_MS + 1),
            tally(T0_MS + 1),
        )
        .await
        .unwrap();
    let rewards = (0..10)
        .map(|i| unit_reward(&format!("e{i}"), &format!("u{i}"), 0.5, T0_MS + 2))
        .chain([token_reward("t", "tok", "b", T0_MS, 1.0, T0_MS + 3)])
        .collect();
    store.apply_rewards(rewards).await.unwrap();
    eventually(store, "per-request exposures are counted", async |store| {
        exposures_of(store, "b").await >= 4 + 7
    })
    .await;
    let report = assert_audit_clean(store).await;
    assert_eq!(report.sticky_records, 10);
    assert_eq!(report.live_token_marks, 1);
    assert_eq!(report.event_ids, 11);
    let counters = counters_of(store).await;
    let total: u64 = counters.values().map(|arm| arm.exposures).sum();
    assert_eq!(
        total,
        10 + 7 + 1,
        "10 units, 7 per-request, 1 re-assignment"
    );
    let expected: f64 = counters.values().map(|arm| arm.expected_exposures).sum();
    assert!((expected - total as f64).abs() < 1e-9, "{counters:?}");
    // Expiry folds the token's reward into its arm: still clean.
    store.expire(T0_MS + 60 * DAY_MS).await.unwrap();
    let report = assert_audit_clean(store).await;
    assert_eq!((report.live_token_marks, report.event_ids), (0, 0));
    assert_eq!(
        counters_of(store).await,
        counters,
        "expiry changes no counter"
    );
}

/// Pages of token credits cover every retained mark once, by assignment id.
pub async fn token_credit_scans_page_through_every_mark<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let ops = (0..23)
        .map(|i| {
            let variant = if i % 2 == 0 { "a" } else { "b" };
            token_reward(
                &format!("e{i}"),
                &format!("as-{i:02}"),
                variant,
                T0_MS + i,
                0.25,
                T0_MS + 100,
            )
        })
        .collect();
    store.apply_rewards(ops).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_token_credits(&epoch(), after.clone(), 10)
            .await
            .unwrap();
        seen.extend(page.credits);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // Each mark once; the order is the backend's.
    seen.sort_by(|a, b| a.assignment_id.cmp(&b.assignment_id));
    let ids: Vec<String> = seen.iter().map(|c| c.assignment_id.clone()).collect();
    let expected: Vec<String> = (0..23).map(|i| format!("as-{i:02}")).collect();
    assert_eq!(ids, expected);
    let first = &seen[0];
    assert_eq!(
        (
            first.variant.as_str(),
            first.reward,
            first.issued_ms,
            first.propensity
        ),
        ("a", 0.25, T0_MS, 0.5)
    );
    assert_eq!(
        first.credited_ms,
        Some(T0_MS + 100),
        "when the reward arrived"
    );
    assert_eq!(
        first.retained_until_ms,
        T0_MS + 7 * DAY_MS + TOKEN_MARK_SLACK_MS
    );
}

/// Event ids are kept at least the reward window after arrival (a retry is recognised), token
/// marks the window plus the slack after issue; an expiry after that removes them and keeps
/// the counters; the store does not grow without bound.
pub async fn ids_and_marks_expire_after_the_window_and_not_before<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    store
        .insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let arrival = T0_MS + 10;
    let unit = unit_reward("unit-event", "u1", 1.0, arrival);
    let token = token_reward("token-event", "t1", "b", T0_MS, 1.0, arrival);
    store
        .apply_rewards(vec![unit.clone(), token.clone()])
        .await
        .unwrap();
    let window_end = arrival + 7 * DAY_MS;
    assert_eq!(store.expire(window_end - 1).await.unwrap(), 0);
    let mut retry = unit.clone();
    retry.now_ms = window_end;
    assert_eq!(
        store.apply_rewards(vec![retry]).await.unwrap(),
        vec![RewardOutcome::Duplicate],
        "a retry inside the window is recognised"
    );
    let mark_end = T0_MS + 7 * DAY_MS + TOKEN_MARK_SLACK_MS;
    assert_eq!(
        store
            .scan_token_credits(&epoch(), None, 10)
            .await
            .unwrap()
            .credits
            .len(),
        1
    );
    let after_everything = mark_end + MAX_RETENTION_LAG_MS + 1;
    assert!(store.expire(after_everything).await.unwrap() >= 3);
    assert_eq!(store.expire(after_everything).await.unwrap(), 0);
    assert!(
        store
            .scan_token_credits(&epoch(), None, 10)
            .await
            .unwrap()
            .credits
            .is_empty()
    );
    let mut late_unit = unit;
    late_unit.now_ms = after_everything;
    let mut late_token = token;
    late_token.now_ms = after_everything;
    assert_eq!(
        store
            .apply_rewards(vec![late_unit, late_token])
            .await
            .unwrap(),
        vec![RewardOutcome::OutsideWindow, RewardOutcome::OutsideWindow],
        "a forgotten id is never credited again"
    );
    let counters = counters_of(store).await;
    assert_eq!(
        (counters["a"].reward_sum, counters["b"].reward_sum),
        (1.0, 1.0)
    );
    let report = assert_audit_clean(store).await;
    assert_eq!((report.event_ids, report.live_token_marks), (0, 0));
}
