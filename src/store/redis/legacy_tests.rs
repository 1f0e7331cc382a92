//! A store written before the event-id directory and the hourly claim outcomes (one key with
//! an expiry per event id, listed in a due index, and one key per claim outcome) stays
//! readable: its ids are recognised until they expire, its pending claims are finished and
//! settled where they are, and the sweep forgets them on time.

use super::call::Reward;
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, epoch, record, unit_reward};

/// Writes what the previous layout kept for `op`'s event id: its key (with the expiry it
/// had) and its entry in the shard's due index.
fn write_legacy_id(server: &RedisServer, op: &RewardOp, value: &str) {
    let key = layout::event_key(&op.epoch.experiment, &op.event_id);
    let due = layout::event_due_key(&op.epoch.experiment, layout::shard_of(&op.event_id));
    let keep = (op.window_ms + DAY_MS).to_string();
    let retain = (op.now_ms + op.window_ms).to_string();
    server.cli(&["SET", &key, value, "PX", &keep]);
    server.cli(&["ZADD", &due, &retain, &key]);
}

#[test]
fn ids_and_claims_written_by_the_previous_layout_are_still_recognised_and_expire() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        for (unit, variant) in [("u1", "a"), ("u2", "b")] {
            store
                .insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        let applied = unit_reward("old-applied", "u1", 1.0, T0_MS + 1);
        let pending = unit_reward("old-pending", "u1", 0.5, T0_MS + 1);
        write_legacy_id(&server, &applied, "A");
        // A claim left pending by a replica of the previous version that died.
        let body = format!("Pdead:1\t{}", Reward::of(&pending).encode());
        write_legacy_id(&server, &pending, &body);
        // Retries of both ids, naming another unit, and a new id.
        let retries = vec![
            unit_reward("old-applied", "u2", 1.0, T0_MS + 2),
            unit_reward("old-pending", "u2", 1.0, T0_MS + 2),
            unit_reward("new", "u2", 1.0, T0_MS + 2),
        ];
        let outcomes = store.apply_rewards(retries).await.unwrap();
        assert_eq!(
            outcomes,
            vec![
                RewardOutcome::Duplicate,
                RewardOutcome::Duplicate,
                RewardOutcome::Applied {
                    variant: "b".to_owned()
                }
            ]
        );
        let scanned = store.scan_sticky(&epoch(), None, 10).await.unwrap();
        let rewards: Vec<(&str, Option<f64>)> = scanned
            .iter()
            .map(|(unit, record)| (unit.as_str(), record.reward))
            .collect();
        // u1: the pending claim's reward; u2: only the new id's.
        assert_eq!(rewards, vec![("u1", Some(0.5)), ("u2", Some(1.0))]);
        let legacy_key = layout::event_key(&epoch().experiment, "old-pending");
        assert_eq!(server.cli(&["GET", &legacy_key]), "A", "settled in place");
        let (outcome_key, field) =
            layout::claim_outcome(&epoch(), layout::shard_of("u1"), "dead:1");
        assert_eq!(field, "", "a claim of the previous version");
        assert_eq!(server.cli(&["GET", &outcome_key]), "Aa");
        let digests = layout::event_digest_key(&epoch().experiment, layout::shard_of("new"));
        assert_eq!(server.cli(&["SCARD", &digests]), "1", "kept as its digest");
        let report = store.audit().await.unwrap();
        assert!(report.is_clean());
        assert_eq!(report.event_ids, 3);

        // Nothing is forgotten before its retention, everything after it.
        assert_eq!(store.expire(T0_MS + 7 * DAY_MS).await.unwrap(), 0);
        assert_eq!(store.expire(T0_MS + 30 * DAY_MS).await.unwrap(), 3);
        assert_eq!(store.audit().await.unwrap().event_ids, 0);
        let due = layout::event_due_key(&epoch().experiment, layout::shard_of("old-applied"));
        assert_eq!(server.cli(&["EXISTS", &due, &legacy_key]), "0");
    });
}
