//! Contract: epoch facts (decision, start, history), durability across a restart, health.

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean, counters_of, eventually};
use crate::store::test_support::{
    DAY_MS, T0_MS, decision, epoch, point, record, tally, token_reward, unit_reward,
};
use crate::store::{ArmPrior, Epoch, EpochInfo, EpochSpec, RewardOutcome, Store, StoreError};

fn other_epoch() -> Epoch {
    Epoch {
        revision: 2,
        ..epoch()
    }
}

/// Racing decisions: one holds for everybody, and no later one (nor a restart) reverses it.
pub async fn the_first_decision_holds_against_racing_and_later_ones<B: Backend>() {
    let mut backend = B::open().await;
    let held = {
        let store = backend.store();
        let racing = (0..8u64).map(|caller| {
            store.record_decision(&epoch(), decision(&format!("v{caller}"), T0_MS + caller))
        });
        let answers: Vec<_> = join_all(racing)
            .await
            .into_iter()
            .map(|answer| answer.expect("decision acknowledged"))
            .collect();
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "{answers:?}"
        );
        let info = store.epoch_info(&epoch()).await.unwrap();
        assert_eq!(info.decision.as_ref(), Some(&answers[0]));
        answers[0].clone()
    };
    backend.reopen().await;
    let store = backend.store();
    assert_eq!(
        store.epoch_info(&epoch()).await.unwrap().decision,
        Some(held.clone())
    );
    let later = store
        .record_decision(&epoch(), decision("reversed", T0_MS + DAY_MS))
        .await
        .unwrap();
    assert_eq!(later, held);
    assert_eq!(
        store
            .record_decision(&other_epoch(), decision("b", T0_MS))
            .await
            .unwrap(),
        decision("b", T0_MS),
        "each epoch has its own decision"
    );
}

/// History points come back oldest first, from `since_ms` inclusive, at most `limit`; a point
/// stored again at the same time replaces the first one; epochs do not mix.
pub async fn history_is_ordered_ranged_and_replaced_at_the_same_time<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let at = |i: u64| T0_MS + i * 1000;
    for i in [3, 1, 2, 256] {
        store
            .append_history(&epoch(), point(at(i), &i.to_string()))
            .await
            .unwrap();
    }
    store
        .append_history(&epoch(), point(at(2), "two"))
        .await
        .unwrap();
    store
        .append_history(&other_epoch(), point(at(1), "elsewhere"))
        .await
        .unwrap();
    let all = vec![
        point(at(1), "1"),
        point(at(2), "two"),
        point(at(3), "3"),
        point(at(256), "256"),
    ];
    assert_eq!(store.history(&epoch(), 0, 100).await.unwrap(), all);
    assert_eq!(store.history(&epoch(), at(2), 100).await.unwrap(), all[1..]);
    assert_eq!(
        store.history(&epoch(), at(2) + 1, 100).await.unwrap(),
        all[2..]
    );
    assert_eq!(store.history(&epoch(), 0, 2).await.unwrap(), all[..2]);
    assert!(store.history(&epoch(), 0, 0).await.unwrap().is_empty());
    // Newest first: the latest points of a long history, within the same range.
    let newest = |since, limit| store.history_newest_first(&epoch(), since, limit);
    assert_eq!(
        newest(0, 2).await.unwrap(),
        vec![all[3].clone(), all[2].clone()]
    );
    assert_eq!(
        newest(at(2), 100).await.unwrap(),
        vec![all[3].clone(), all[2].clone(), all[1].clone()]
    );
    assert!(newest(at(256) + 1, 10).await.unwrap().is_empty());
    assert!(newest(0, 0).await.unwrap().is_empty());
    assert_eq!(
        store.history(&other_epoch(), 0, 10).await.unwrap(),
        vec![point(at(1), "elsewhere")]
    );
    // A decision and history carry no evidence: they do not start the epoch.
    assert_eq!(
        store.epoch_info(&epoch()).await.unwrap(),
        EpochInfo::default()
    );
}

/// The epoch starts at the time of its first counted write (assignment, exposure, reward),
/// and no later write moves it, even with an earlier clock.
pub async fn the_epoch_starts_at_its_first_counted_write_and_never_moves<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    store
        .insert_sticky(&epoch(), "u1", record("a", T0_MS + 5), tally(T0_MS + 5))
        .await
        .unwrap();
    store
        .insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    assert_eq!(
        store.epoch_info(&epoch()).await.unwrap().started_ms,
        Some(T0_MS + 5)
    );
    let mut by_token = token_reward("e1", "t1", "b", T0_MS, 1.0, T0_MS + 7);
    by_token.epoch = other_epoch();
    store.apply_rewards(vec![by_token]).await.unwrap();
    assert_eq!(
        store.epoch_info(&other_epoch()).await.unwrap().started_ms,
        Some(T0_MS + 7)
    );
    let mut refused = unit_reward("e2", "nobody", 1.0, T0_MS);
    refused.epoch.revision = 3;
    store.apply_rewards(vec![refused]).await.unwrap();
    let third = Epoch {
        revision: 3,
        ..epoch()
    };
    assert_eq!(
        store.epoch_info(&third).await.unwrap(),
        EpochInfo::default(),
        "a refused reward starts nothing"
    );
}

/// Everything a store acknowledged is there after a restart: records, counters, dedup state,
/// the decision and the history.
pub async fn acknowledged_writes_survive_a_restart<B: Backend>() {
    let mut backend = B::open().await;
    let (counters, units) = {
        let store = backend.store();
        for i in 0..20 {
            let variant = if i % 2 == 0 { "a" } else { "b" };
            store
                .insert_sticky(
                    &epoch(),
                    &format!("u{i}"),
                    record(variant, T0_MS),
                    tally(T0_MS),
                )
                .await
                .unwrap();
        }
        for _ in 0..5 {
            assert!(store.count_exposure(&epoch(), "c", tally(T0_MS)));
        }
        let rewards = (0..10)
            .map(|i| unit_reward(&format!("e{i}"), &format!("u{i}"), 1.0, T0_MS + 1))
            .chain([token_reward("te", "t1", "c", T0_MS, 0.5, T0_MS + 1)])
            .collect();
        store.apply_rewards(rewards).await.unwrap();
        store
            .record_decision(&epoch(), decision("a", T0_MS + 2))
            .await
            .unwrap();
        store
            .append_history(&epoch(), point(T0_MS + 3, "p"))
            .await
            .unwrap();
        eventually(store, "per-request exposures are counted", async |store| {
            counters_of(store)
                .await
                .get("c")
                .is_some_and(|arm| arm.exposures == 5)
        })
        .await;
        let units = store.scan_sticky(&epoch(), None, 100).await.unwrap();
        (counters_of(store).await, units)
    };
    backend.reopen().await;
    let store = backend.store();
    assert_eq!(counters_of(store).await, counters);
    assert_eq!(store.scan_sticky(&epoch(), None, 100).await.unwrap(), units);
    assert_eq!(units.len(), 20);
    let info = store.epoch_info(&epoch()).await.unwrap();
    assert_eq!(
        (info.started_ms, info.decision),
        (Some(T0_MS), Some(decision("a", T0_MS + 2)))
    );
    assert_eq!(
        store.history(&epoch(), 0, 10).await.unwrap(),
        vec![point(T0_MS + 3, "p")]
    );
    assert_eq!(
        store
            .apply_rewards(vec![
                unit_reward("e0", "u0", 1.0, T0_MS + 4),
                token_reward("te", "t1", "c", T0_MS, 0.5, T0_MS + 4),
                token_reward("te2", "t1", "c", T0_MS, 0.5, T0_MS + 4),
            ])
            .await
            .unwrap(),
        vec![
            RewardOutcome::Duplicate,
            RewardOutcome::Duplicate,
            RewardOutcome::AlreadyRewarded
        ],
        "ids and marks survive the restart"
    );
    assert_eq!(
        store
            .scan_token_credits(&epoch(), None, 10)
            .await
            .unwrap()
            .credits
            .len(),
        1
    );
    assert_audit_clean(store).await;
}

/// While writes fail the store says so, refuses writes without applying anything, and counts
/// a failure episode; it recovers by itself and the episode is kept as the last one.
pub async fn health_follows_a_failure_episode_and_writes_resume<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    store
        .insert_sticky(&epoch(), "kept", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let healthy = store.health();
    assert!(store.writable() && healthy.writable && healthy.failing.is_none());
    if !backend.fail_next_commits(1) {
        return;
    }
    let refused = store
        .insert_sticky(&epoch(), "lost", record("b", T0_MS), tally(T0_MS))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    eventually(store, "the store recovers", async |store| store.writable()).await;
    let health = store.health();
    assert!(health.writable && health.failing.is_none(), "{health:?}");
    assert_eq!(health.episodes, 1);
    assert!(
        health
            .last_episode
            .is_some_and(|episode| episode.ended_ms.is_some())
    );
    assert_eq!(store.sticky(&epoch(), "lost").await.unwrap(), None);
    let (_, won) = store
        .insert_sticky(&epoch(), "lost", record("b", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    assert!(won, "writes resume");
    let counters = counters_of(store).await;
    assert_eq!((counters["a"].exposures, counters["b"].exposures), (1, 1));
    assert_audit_clean(store).await;
}

/// The spec of an epoch: none until stored, the last one stored wins, epochs do not mix, and it
/// survives a restart.
pub async fn an_epoch_spec_is_replaced_kept_per_epoch_and_durable<B: Backend>() {
    let spec = |id: &str, alpha: f64| EpochSpec {
        document: serde_json::json!({"id": id, "revision": 1}),
        priors: [("a".to_owned(), ArmPrior { alpha, beta: 75.0 })].into(),
    };
    let mut backend = B::open().await;
    {
        let store = backend.store();
        assert_eq!(store.epoch_spec(&epoch()).await.unwrap(), None);
        store
            .record_epoch_spec(&epoch(), spec("first", 1.0))
            .await
            .unwrap();
        store
            .record_epoch_spec(&epoch(), spec("second", 25.0))
            .await
            .unwrap();
        store
            .record_epoch_spec(&other_epoch(), spec("other", 2.0))
            .await
            .unwrap();
        assert_eq!(
            store.epoch_spec(&epoch()).await.unwrap(),
            Some(spec("second", 25.0))
        );
    }
    backend.reopen().await;
    let store = backend.store();
    assert_eq!(
        store.epoch_spec(&epoch()).await.unwrap(),
        Some(spec("second", 25.0))
    );
    assert_eq!(
        store.epoch_spec(&other_epoch()).await.unwrap(),
        Some(spec("other", 2.0))
    );
    assert_audit_clean(store).await;
}
