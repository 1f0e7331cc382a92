//! Event ids applied on a single primary are kept as keyed 8-byte digests in one set per
//! event-id shard, with one digest list per hour of retention ends (`layout::event_digest_key`):
//! the key is the deployment's, every replica digests alike, and ids the previous layout kept
//! in the directory stay duplicates until the sweep forgets them.

use redis::Commands;

use super::call::Reward;
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::event_ids::{DIGEST_KEY_LEN, Digester};
use crate::store::test_support::{
    DAY_MS, T0_MS, assert_all_applied, block_on, epoch, record, unit_reward,
};

fn assign(store: &RedisStore, units: &[&str]) {
    block_on(async {
        for unit in units {
            store
                .insert_sticky(&epoch(), unit, record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
    });
}

#[test]
fn an_applied_id_is_kept_as_its_deployments_keyed_digest_in_its_hours_list() {
    let server = RedisServer::start();
    let store = open(&server);
    assign(&store, &["u1", "u2"]);
    let ops = vec![
        unit_reward("event-1", "u1", 1.0, T0_MS + 1),
        unit_reward("event-2", "u2", 0.5, T0_MS + 1),
    ];
    let outcomes = block_on(store.apply_rewards(ops.clone())).unwrap();
    assert_all_applied(&outcomes);
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let secret: Vec<u8> = raw
        .get(layout::secret_key(layout::EVENT_DIGEST_SECRET))
        .unwrap();
    let key: [u8; DIGEST_KEY_LEN] = secret.as_slice().try_into().expect("a 16-byte key");
    let digester = Digester::new(key);
    for op in &ops {
        let shard = layout::shard_of(&op.event_id);
        let digest = digester
            .digest(&op.epoch.experiment, &op.event_id)
            .to_le_bytes();
        let kept: bool = raw
            .sismember(
                layout::event_digest_key(&op.epoch.experiment, shard),
                &digest[..],
            )
            .unwrap();
        assert!(kept, "{} is kept as its digest", op.event_id);
        let list = layout::event_digest_list_key(
            &op.epoch.experiment,
            shard,
            Reward::of(op).list_end_ms(),
        );
        let listed: Vec<u8> = raw.get(&list).unwrap();
        assert!(listed.chunks(8).any(|chunk| chunk == digest), "{list}");
        let exists: bool = raw
            .exists(layout::event_dir_key(&op.epoch.experiment, shard))
            .unwrap();
        assert!(!exists, "nothing of the id in the directory");
    }
    // Another replica (a process of its own) reads the same key: both ids are duplicates there.
    let other = open(&server);
    let retried = block_on(other.apply_rewards(ops)).unwrap();
    assert_eq!(retried, vec![RewardOutcome::Duplicate; 2]);
    assert_eq!(block_on(store.audit()).unwrap().event_ids, 2);
}

#[test]
fn ids_the_previous_layout_kept_in_the_directory_stay_duplicates_until_swept() {
    let server = RedisServer::start();
    let store = open(&server);
    assign(&store, &["u1", "u2"]);
    // What the previous layout's one-call reward left for an applied id: its directory field
    // `A<retention end>` and its entry in the list of its retention's hour.
    let old = unit_reward("old", "u1", 1.0, T0_MS + 1);
    let reward = Reward::of(&old);
    let experiment = &old.epoch.experiment;
    let shard = layout::shard_of("old");
    let dir = layout::event_dir_key(experiment, shard);
    let list = layout::event_list_key(experiment, shard, reward.list_end_ms());
    server.cli(&["HSET", &dir, "old", &format!("A{}", reward.retain_ms())]);
    server.cli(&["RPUSH", &list, "old"]);
    let index = layout::event_index_key(experiment, shard);
    server.cli(&["ZADD", &index, &reward.list_end_ms().to_string(), &list]);

    let outcomes = block_on(store.apply_rewards(vec![
        unit_reward("old", "u2", 1.0, T0_MS + 2),
        unit_reward("new", "u2", 1.0, T0_MS + 2),
        unit_reward("new", "u2", 1.0, T0_MS + 2),
    ]))
    .unwrap();
    assert_eq!(
        outcomes,
        vec![
            RewardOutcome::Duplicate,
            RewardOutcome::Applied {
                variant: "a".to_owned()
            },
            RewardOutcome::Duplicate,
        ]
    );
    let digests = layout::event_digest_key(experiment, layout::shard_of("new"));
    assert_eq!(server.cli(&["SCARD", &digests]), "1");
    assert_eq!(block_on(store.audit()).unwrap().event_ids, 2);
    // Kept the window, then both forgotten: the old id's field and the new id's digest.
    assert_eq!(block_on(store.expire(T0_MS + 7 * DAY_MS)).unwrap(), 0);
    assert_eq!(block_on(store.expire(T0_MS + 8 * DAY_MS)).unwrap(), 2);
    assert_eq!(server.cli(&["EXISTS", &dir, &list, &digests]), "0");
    let fresh =
        block_on(store.apply_rewards(vec![unit_reward("old", "u2", 1.0, T0_MS + 8 * DAY_MS)]))
            .unwrap();
    assert_eq!(fresh, vec![RewardOutcome::OutsideWindow], "judged afresh");
}

#[test]
fn a_digest_key_that_is_not_sixteen_bytes_fails_the_rewards_without_applying_them() {
    let server = RedisServer::start();
    let store = open(&server);
    assign(&store, &["u1"]);
    server.cli(&[
        "SET",
        &layout::secret_key(layout::EVENT_DIGEST_SECRET),
        "short",
    ]);
    let result = block_on(store.apply_rewards(vec![unit_reward("e", "u1", 1.0, T0_MS + 1)]));
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    assert_eq!(
        block_on(store.counters(&epoch())).unwrap()["a"].reward_sum,
        0.0
    );
}
