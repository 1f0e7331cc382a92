//! Rewards judged with their ids in one call on a single primary (`direct`): what the
//! three-step protocol left behind is still finished through it, a refused reward keeps no
//! id, and the ids kept are forgotten by the sweep on time.

use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, epoch, record, unit_reward};

/// What a replica leaves behind when it dies right after claim.lua: the id's directory field
/// holding its pending claim.
fn leave_pending_claim(server: &RedisServer, op: &RewardOp) -> String {
    let reward = call::Reward::of(op);
    let key = layout::event_dir_key(&op.epoch.experiment, layout::shard_of(&op.event_id));
    let pending = format!("Pdead:1\t{}", reward.encode());
    server.cli(&["HSET", &key, &op.event_id, &pending]);
    key
}

#[test]
fn a_claim_left_pending_by_a_three_step_replica_is_finished_once_among_fresh_ids() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        for (unit, variant) in [("u1", "a"), ("u2", "b"), ("u3", "b")] {
            store
                .insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        let orphan = unit_reward("orphan", "u1", 1.0, T0_MS + 1);
        let dir = leave_pending_claim(&server, &orphan);
        // The orphan's retry names another unit; a fresh id, and the fresh id again, around it.
        let outcomes = store
            .apply_rewards(vec![
                unit_reward("fresh", "u3", 0.25, T0_MS + 2),
                unit_reward("orphan", "u2", 1.0, T0_MS + 2),
                unit_reward("fresh", "u2", 0.5, T0_MS + 2),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                RewardOutcome::Applied {
                    variant: "b".to_owned()
                },
                RewardOutcome::Duplicate,
                RewardOutcome::Duplicate,
            ]
        );
        let rewards: Vec<Option<f64>> = store
            .scan_sticky(&epoch(), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, record)| record.reward)
            .collect();
        assert_eq!(rewards, vec![Some(1.0), None, Some(0.25)], "u1, u2, u3");
        let held = server.cli(&["HGET", &dir, "orphan"]);
        assert_eq!(
            held,
            format!("A{}", call::Reward::of(&orphan).retain_ms()),
            "the claim is settled"
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.0);
        assert_eq!(counters["b"].reward_sum, 0.25);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn a_refused_reward_keeps_no_id_and_the_id_is_judged_afresh_later() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        // Refused (the unit has no assignment yet), then the same id again in the same batch.
        let outcomes = store
            .apply_rewards(vec![
                unit_reward("e1", "u1", 0.5, T0_MS + 1),
                unit_reward("e1", "u1", 0.5, T0_MS + 1),
            ])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![RewardOutcome::UnitNotAssigned; 2]);
        let dir = layout::event_dir_key(&epoch().experiment, layout::shard_of("e1"));
        assert_eq!(server.cli(&["HEXISTS", &dir, "e1"]), "0");
        store
            .insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        let outcomes = store
            .apply_rewards(vec![
                unit_reward("e1", "u1", 0.5, T0_MS + 2),
                unit_reward("e1", "u1", 0.5, T0_MS + 2),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                RewardOutcome::Applied {
                    variant: "a".to_owned()
                },
                RewardOutcome::Duplicate
            ]
        );
        assert_eq!(store.counters(&epoch()).await.unwrap()["a"].reward_sum, 0.5);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn ids_kept_in_one_call_are_forgotten_after_their_retention_only() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let units = 40;
        for i in 0..units {
            store
                .insert_sticky(&epoch(), &format!("u{i}"), record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        let ops = (0..units)
            .map(|i| unit_reward(&format!("e{i}"), &format!("u{i}"), 1.0, T0_MS + 1))
            .collect();
        store.apply_rewards(ops).await.unwrap();
        assert_eq!(store.audit().await.unwrap().event_ids, units);
        // Kept the 7-day window (ids are dropped at most one hourly list late).
        assert_eq!(store.expire(T0_MS + 7 * DAY_MS).await.unwrap(), 0);
        assert_eq!(store.expire(T0_MS + 8 * DAY_MS).await.unwrap(), units);
        assert_eq!(store.audit().await.unwrap().event_ids, 0);
        // Forgotten ids are judged afresh: the records are credited already.
        let retry = store
            .apply_rewards(vec![unit_reward("e0", "u0", 1.0, T0_MS + 8 * DAY_MS)])
            .await
            .unwrap();
        assert_eq!(retry, vec![RewardOutcome::OutsideWindow]);
    });
}

/// `apply.lua` reads a record's fields by splitting at its tabs (`split`): every form a
/// writer leaves (four fields, or five once rewarded; a fifth after an empty reward too) is
/// judged as the record says, and a credited record keeps its first three fields byte for
/// byte.
#[test]
fn a_batch_credits_each_written_record_form_as_the_record_says() {
    let server = RedisServer::start();
    let store = open(&server);
    let t = T0_MS;
    let forms = [
        ("open4", format!("a\t{t}\t0.5\t")),
        ("open5", format!("a\t{t}\t0.125\t\t{}", t + 5)),
        ("paid4", format!("b\t{t}\t0.5\t250000")),
        ("paid5", format!("b\t{t}\t0.5\t250000\t{}", t + 5)),
    ];
    for (unit, value) in &forms {
        let key = layout::ShardKeys::of(&epoch(), layout::shard_of(unit)).records;
        server.cli(&["HSET", &key, unit, value]);
    }
    let now = t + 10;
    block_on(async {
        let ops = forms
            .iter()
            .enumerate()
            .map(|(i, (unit, _))| unit_reward(&format!("e{i}"), unit, 0.5, now))
            .collect();
        let outcomes = store.apply_rewards(ops).await.unwrap();
        let applied = RewardOutcome::Applied {
            variant: "a".to_owned(),
        };
        assert_eq!(
            outcomes,
            vec![
                applied.clone(),
                applied,
                RewardOutcome::AlreadyRewarded,
                RewardOutcome::AlreadyRewarded
            ]
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.0);
    });
    let expected = [
        format!("a\t{t}\t0.5\t500000\t{now}"),
        format!("a\t{t}\t0.125\t500000\t{now}"),
        forms[2].1.clone(),
        forms[3].1.clone(),
    ];
    for ((unit, _), expected) in forms.iter().zip(expected) {
        let key = layout::ShardKeys::of(&epoch(), layout::shard_of(unit)).records;
        assert_eq!(server.cli(&["HGET", &key, unit]), expected, "{unit}");
    }
}

/// A replica sends each unit reward with the record its cache holds (`judge_known` in
/// `apply.lua`): a record another replica has credited or reassigned since is judged as Redis
/// holds it, not as cached, and a record that matches is credited as `judge_unit` would.
#[test]
fn a_reward_is_judged_against_the_stored_record_whatever_the_replicas_cache_holds() {
    let server = RedisServer::start();
    let store = open(&server);
    let other = open(&server);
    block_on(async {
        for unit in ["u1", "u2", "u3"] {
            store
                .insert_sticky(&epoch(), unit, record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        // Behind this replica's cache: another replica credits u1 and moves u2 to arm b.
        let credited = other
            .apply_rewards(vec![unit_reward("x1", "u1", 1.0, T0_MS + 1)])
            .await
            .unwrap();
        assert!(matches!(credited[0], RewardOutcome::Applied { .. }));
        let moved = other
            .reassign_sticky(
                &epoch(),
                "u2",
                "a",
                record("b", T0_MS + 1),
                tally(T0_MS + 1),
            )
            .await
            .unwrap();
        assert!(moved.is_some_and(|(_, written)| written));
        let outcomes = store
            .apply_rewards(vec![
                unit_reward("e1", "u1", 0.5, T0_MS + 2),
                unit_reward("e2", "u2", 0.5, T0_MS + 2),
                unit_reward("e3", "u3", 0.25, T0_MS + 2),
            ])
            .await
            .unwrap();
        let applied = |variant: &str| RewardOutcome::Applied {
            variant: variant.to_owned(),
        };
        assert_eq!(
            outcomes,
            vec![RewardOutcome::AlreadyRewarded, applied("b"), applied("a")]
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.25);
        assert_eq!(counters["b"].reward_sum, 0.5);
        let records = store.scan_sticky(&epoch(), None, 10).await.unwrap();
        let u3 = &records.iter().find(|(unit, _)| unit == "u3").unwrap().1;
        assert_eq!(
            (u3.reward, u3.rewarded_ms, u3.propensity),
            (Some(0.25), Some(T0_MS + 2), 0.5)
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// Op Q looks a call's digests up 512 at a time per id shard and op B reads the rewards in
/// one pass, unit and token rewards mixed: a batch of ~600 ids per id shard (so every shard
/// takes a full and a partial SMISMEMBER), with ids repeated within the batch, then the batch
/// resent with new ids among the old, is judged as a plain model of the rules says (an id
/// applied at most once, a unit credited at most once, a refused reward keeps no id).
#[test]
fn a_mixed_batch_over_many_ids_per_shard_is_judged_as_the_rules_say() {
    use crate::store::test_support::token_reward;
    use std::collections::HashSet;
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let units = 4_000u64;
        let inserts = (0..units).map(|i| {
            store.insert_sticky(&epoch(), &format!("u{i}"), record("a", T0_MS), tally(T0_MS))
        });
        for result in futures_util::future::join_all(inserts).await {
            assert!(result.unwrap().1, "a new unit");
        }
        // Fixed-seed choices (xorshift64): each op rewards a unit (`u<units>` and `missing*`
        // have no assignment), or a token; one op in eight repeats an earlier id of the batches.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut ids: Vec<(String, String)> = Vec::new();
        let (mut applied_ids, mut credited) = (HashSet::new(), HashSet::new());
        let mut applied = 0u64;
        for round in 0..2 {
            let mut ops = Vec::new();
            let mut expect = Vec::new();
            for n in 0..5_000u64 {
                let (id, target) = if !ids.is_empty() && next(8) == 0 {
                    ids[usize::try_from(next(ids.len() as u64)).unwrap()].clone()
                } else {
                    let target = match next(10) {
                        0 => format!("t{round}-{n}"),
                        1 => format!("missing{}", next(50)),
                        _ => format!("u{}", next(units + 1)),
                    };
                    let id = format!("e{round}-{n}");
                    ids.push((id.clone(), target.clone()));
                    (id, target)
                };
                let op = if target.starts_with('t') {
                    token_reward(&id, &target, "a", T0_MS, 0.5, T0_MS + 10)
                } else {
                    unit_reward(&id, &target, 0.5, T0_MS + 10)
                };
                ops.push(op);
                let assigned = target
                    .strip_prefix('u')
                    .and_then(|i| i.parse::<u64>().ok())
                    .is_some_and(|i| i < units);
                let outcome = if applied_ids.contains(&id) {
                    RewardOutcome::Duplicate
                } else if target.starts_with('t') || (assigned && credited.insert(target.clone())) {
                    applied_ids.insert(id.clone());
                    applied += 1;
                    RewardOutcome::Applied {
                        variant: "a".to_owned(),
                    }
                } else if assigned {
                    RewardOutcome::AlreadyRewarded
                } else {
                    RewardOutcome::UnitNotAssigned
                };
                expect.push(outcome);
            }
            let outcomes = store.apply_rewards(ops).await.unwrap();
            for (at, (got, want)) in outcomes.iter().zip(&expect).enumerate() {
                assert_eq!(got, want, "round {round}, op {at}");
            }
            assert_eq!(outcomes.len(), expect.len());
        }
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 0.5 * applied as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}
