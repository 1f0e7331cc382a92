//! Op `B` names each reward's unit and id by their places in ops `P` and `Q`, its amount and
//! timestamp as doubles, what a run shares once, and answers with one string of a byte per
//! reward (`call_direct.rs`, `judge_packed` in `apply_rewards.lua`, `direct::Reply`).

use super::direct::{Answer, Reply};
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};
use crate::store::{RewardOp, RewardOutcome, StickyRecord};
use std::collections::HashMap;

#[test]
fn a_reply_of_op_b_is_read_as_a_byte_per_reward_and_the_credited_variants() {
    let applied = |variant: &str| {
        Some(Answer::Outcome(RewardOutcome::Applied {
            variant: variant.to_owned(),
        }))
    };
    let mut bytes = vec![b'D', 128, 129, b'N', b'F', b'P', b'O', b'B', b'R', 128];
    bytes.extend(b"bold\tcontrol\t");
    let reply = Reply::read(&bytes, 10).expect("a reply of ten rewards");
    let answers: Vec<Option<Answer>> = (0..11).map(|at| reply.answer(at)).collect();
    assert_eq!(
        answers,
        vec![
            Some(Answer::Outcome(RewardOutcome::Duplicate)),
            applied("bold"),
            applied("control"),
            Some(Answer::Outcome(RewardOutcome::UnitNotAssigned)),
            Some(Answer::Fallback),
            Some(Answer::Outcome(RewardOutcome::AlreadyRewarded)),
            Some(Answer::Outcome(RewardOutcome::OutsideWindow)),
            Some(Answer::Outcome(RewardOutcome::TimestampBeforeAssignment)),
            Some(Answer::Outcome(RewardOutcome::NotConfirmed)),
            applied("bold"),
            None,
        ]
    );
    // Without credited variants: the bytes alone.
    let reply = Reply::read(b"DN", 2).expect("two refusals");
    assert_eq!(
        reply.answer(1),
        Some(Answer::Outcome(RewardOutcome::UnitNotAssigned))
    );
    // What is not a reply: too short, names not ended by a tab; a byte that means nothing.
    assert!(Reply::read(b"D", 2).is_none());
    assert!(Reply::read(b"\x80bold", 1).is_none());
    let reply = Reply::read(b"\x81A?bold\t", 3).expect("three bytes and a name");
    assert_eq!(
        (reply.answer(0), reply.answer(1), reply.answer(2)),
        (None, None, None)
    );
}

/// Names of the first shard (`layout::shard_of`) `shard`, in order.
fn names_in(prefix: &str, shard: u32, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|name| layout::shard_of(name) == shard)
        .take(count)
        .collect()
}

/// More units of one records shard than one op `P` takes (512) and more ids of one id shard
/// than one `SMISMEMBER` of op `Q` (512), each reward with its own amount, in several runs
/// (arrival times), some dated before their assignment: every reward credits its own unit
/// with its own amount, under the variant its record holds, and is answered in order.
#[test]
fn a_call_of_many_units_and_ids_per_shard_credits_each_reward_to_its_own_unit() {
    let server = RedisServer::start();
    let store = open(&server);
    let count = 1_100;
    let units = names_in("unit-", 0, count);
    let ids = names_in("id-", 3, count);
    let variants = ["a", "b", "c"];
    block_on(async {
        let inserts = units.iter().enumerate().map(|(i, unit)| {
            store.insert_sticky(&epoch(), unit, record(variants[i % 3], T0_MS), tally(T0_MS))
        });
        for result in futures_util::future::join_all(inserts).await {
            assert!(result.unwrap().1, "a new unit");
        }
        let amount = |i: usize| f64::from(u32::try_from(i % 997).unwrap()) / 1000.0;
        let ops: Vec<RewardOp> = (0..count)
            .map(|i| {
                let mut op = unit_reward(
                    &ids[i],
                    &units[i],
                    amount(i),
                    T0_MS + 10 + u64::try_from(i / 300).unwrap(),
                );
                if i % 7 == 3 {
                    op.occurred_ms = Some(T0_MS - 10 * 60_000);
                } else if i % 7 == 5 {
                    op.occurred_ms = Some(T0_MS + 1);
                }
                op
            })
            .collect();
        let outcomes = store.apply_rewards(ops).await.unwrap();
        let mut sums = HashMap::new();
        for (i, outcome) in outcomes.iter().enumerate() {
            let want = if i % 7 == 3 {
                RewardOutcome::TimestampBeforeAssignment
            } else {
                *sums.entry(variants[i % 3]).or_insert(0.0) += amount(i);
                RewardOutcome::Applied {
                    variant: variants[i % 3].to_owned(),
                }
            };
            assert_eq!(*outcome, want, "reward {i}");
        }
        assert_eq!(outcomes.len(), count);
        let records: HashMap<String, StickyRecord> = store
            .scan_sticky(&epoch(), None, 2 * count)
            .await
            .unwrap()
            .into_iter()
            .collect();
        for (i, unit) in units.iter().enumerate() {
            let held = &records[unit];
            let want = (i % 7 != 3).then(|| amount(i));
            assert_eq!(held.reward, want, "{unit}'s reward");
            assert_eq!(held.variant, variants[i % 3]);
        }
        let counters = store.counters(&epoch()).await.unwrap();
        for variant in variants {
            assert!((counters[variant].reward_sum - sums[variant]).abs() < 1e-9);
        }
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// A unit reward switches only its shard's records keys (`judge_packed`): a token reward
/// after it, in that unit's shard, still takes its own shard's marks, not those of the shard
/// the call's last token was in, so its assignment is credited once.
#[test]
fn a_token_after_a_unit_reward_of_its_shard_keeps_its_mark_in_its_own_shard() {
    use crate::store::test_support::token_reward;
    let server = RedisServer::start();
    let store = open(&server);
    let unit = &names_in("unit-", 1, 1)[0];
    let (here, elsewhere) = (&names_in("as-", 1, 1)[0], &names_in("as-", 2, 1)[0]);
    block_on(async {
        store
            .insert_sticky(&epoch(), unit, record("a", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        let outcomes = store
            .apply_rewards(vec![
                token_reward("e1", elsewhere, "a", T0_MS, 1.0, T0_MS + 1),
                unit_reward("e2", unit, 1.0, T0_MS + 1),
                token_reward("e3", here, "a", T0_MS, 1.0, T0_MS + 1),
            ])
            .await
            .unwrap();
        let applied = RewardOutcome::Applied {
            variant: "a".to_owned(),
        };
        assert_eq!(outcomes, vec![applied.clone(), applied.clone(), applied]);
        let marks = |shard| server.cli(&["ZCARD", &layout::ShardKeys::of(&epoch(), shard).marks]);
        assert_eq!((marks(1), marks(2)), ("1".to_owned(), "1".to_owned()));
        let again = store
            .apply_rewards(vec![token_reward("e4", here, "a", T0_MS, 1.0, T0_MS + 2)])
            .await
            .unwrap();
        assert_eq!(again, vec![RewardOutcome::AlreadyRewarded]);
        assert!(store.audit().await.unwrap().is_clean());
    });
}
