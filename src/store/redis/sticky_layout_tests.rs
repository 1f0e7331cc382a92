//! Sticky records as fields of a hash per shard (`layout`, `<tag>:r`) with a unit index for
//! exports (`<tag>:n`): records of the earlier layout (members `unit \0 record` of `<tag>:u`)
//! stay readable, keep first-write-wins, are credited at most once, move to the hash when
//! rewritten, and page in unit order among the new ones.

use super::layout::ShardKeys;
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

/// Rewrites `unit`'s record as the earlier layout kept it: out of the hash, the index and the
/// list of units not yet indexed, a member `unit \0 record` of the shard's sorted set.
fn move_to_earlier_layout(raw: &mut redis::Connection, unit: &str) {
    let keys = ShardKeys::of(&epoch(), layout::shard_of(unit));
    let value: String = redis::cmd("HGET")
        .arg(&keys.records)
        .arg(unit)
        .query(raw)
        .unwrap();
    let _: () = redis::pipe()
        .hdel(&keys.records, unit)
        .ignore()
        .zrem(&keys.units, unit)
        .ignore()
        .lrem(&keys.pending, 0, unit)
        .ignore()
        .zadd(&keys.sticky, format!("{unit}\0{value}"), 0)
        .ignore()
        .query(raw)
        .unwrap();
}

#[test]
fn records_of_the_earlier_layout_are_found_credited_once_moved_and_exported_in_order() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let units = ["u1", "u2", "u3", "u4", "u5", "u6"];
    block_on(async {
        let writer = open(&server);
        for (i, unit) in units.iter().enumerate() {
            let variant = if i % 2 == 0 { "bold" } else { "control" };
            writer
                .insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
    });
    for unit in ["u1", "u3", "u5"] {
        move_to_earlier_layout(&mut raw, unit);
    }
    // A replica that has not seen them (no cached records).
    let store = open(&server);
    block_on(async {
        let held = store.sticky(&epoch(), "u3").await.unwrap().unwrap();
        assert_eq!(held.variant, "bold");
        // First write wins over an old record too.
        let (kept, new) = store
            .insert_sticky(
                &epoch(),
                "u5",
                record("control", T0_MS + 5),
                tally(T0_MS + 5),
            )
            .await
            .unwrap();
        assert!(!new, "u5 already had a record");
        assert_eq!(kept.variant, "bold");

        let mut exported = Vec::new();
        let mut after = None;
        loop {
            let page = store.scan_sticky(&epoch(), after.clone(), 2).await.unwrap();
            let last = page.last().map(|(unit, _)| unit.clone());
            exported.extend(page.into_iter().map(|(unit, held)| (unit, held.variant)));
            if last.is_none() {
                break;
            }
            after = last;
        }
        let expected: Vec<(String, String)> = units
            .iter()
            .enumerate()
            .map(|(i, unit)| {
                let variant = if i % 2 == 0 { "bold" } else { "control" };
                (unit.to_string(), variant.to_owned())
            })
            .collect();
        assert_eq!(exported, expected);

        let outcomes = store
            .apply_rewards(vec![
                unit_reward("e1", "u1", 1.0, T0_MS + 10),
                unit_reward("e2", "u2", 0.5, T0_MS + 10),
            ])
            .await
            .unwrap();
        assert!(
            outcomes
                .iter()
                .all(|outcome| matches!(outcome, RewardOutcome::Applied { .. })),
            "{outcomes:?}"
        );
        // A second reward of the moved record is refused: it was credited once.
        let again = store
            .apply_rewards(vec![unit_reward("e3", "u1", 1.0, T0_MS + 20)])
            .await
            .unwrap();
        assert_eq!(again, vec![RewardOutcome::AlreadyRewarded]);
        assert_eq!(
            store.sticky(&epoch(), "u1").await.unwrap().unwrap().reward,
            Some(1.0)
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 1.0);
        assert_eq!(counters["control"].reward_sum, 0.5);
        let report = store.audit().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.sticky_records, units.len() as u64);
    });
    // The credited record left the earlier layout for the hash and the index.
    let keys = ShardKeys::of(&epoch(), layout::shard_of("u1"));
    assert_eq!(server.cli(&["HEXISTS", &keys.records, "u1"]).trim(), "1");
    assert_eq!(server.cli(&["ZSCORE", &keys.units, "u1"]).trim(), "0");
    let left: Vec<String> = redis::cmd("ZRANGEBYLEX")
        .arg(&keys.sticky)
        .arg("[u1\0")
        .arg("(u1\x01")
        .query(&mut raw)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
