//! The Redis store on a real three-node Redis Cluster that each test starts (see the harness):
//! the store contract, and the layout's promise that a hot experiment spreads over nodes.

use std::sync::{Arc, Mutex};

use super::tests::harness::{RedisCluster, RedisServer};
use super::*;
use crate::store::contract::Backend;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

fn open_on(cluster: &RedisCluster) -> RedisStore {
    RedisStore::open(RedisOptions {
        url: cluster.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 1000,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    })
    .expect("redis store opens on the cluster")
}

/// A Redis store on its own cluster. `reopen` shuts the store down, kills every node with
/// SIGKILL and restarts them from their AOF, then opens a new store.
struct ClusterBackend {
    store: Option<RedisStore>,
    cluster: Arc<Mutex<RedisCluster>>,
}

impl Backend for ClusterBackend {
    type Store = RedisStore;

    async fn open() -> Self {
        let cluster = RedisCluster::start();
        ClusterBackend {
            store: Some(open_on(&cluster)),
            cluster: Arc::new(Mutex::new(cluster)),
        }
    }

    fn store(&self) -> &RedisStore {
        self.store.as_ref().expect("a store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown().await.expect("clean shutdown");
        }
        let mut cluster = self.cluster.lock().expect("cluster lock");
        cluster.kill();
        cluster.restart();
        self.store = Some(open_on(&cluster));
    }

    /// Every node goes away (SIGKILL) and comes back from its AOF 300 ms later.
    fn fail_next_commits(&self, _commits: u32) -> bool {
        self.cluster.lock().expect("cluster lock").kill();
        let cluster = self.cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            cluster.lock().expect("cluster lock").restart();
        });
        true
    }
}

mod contract {
    crate::store_contract_tests!(super::ClusterBackend);
}

/// The keys of one epoch, by node.
fn keys_by_node(cluster: &RedisCluster, pattern: &str) -> Vec<usize> {
    cluster
        .nodes
        .iter()
        .map(|node| {
            node.cli(&["--scan", "--pattern", pattern])
                .lines()
                .filter(|line| !line.is_empty())
                .count()
        })
        .collect()
}

#[test]
fn a_hot_experiments_keys_spread_over_more_than_one_node() {
    let cluster = RedisCluster::start();
    let store = open_on(&cluster);
    block_on(async {
        for i in 0..64 {
            let unit = format!("u{i}");
            store
                .insert_sticky(&epoch(), &unit, record("a", T0_MS), tests::tally(T0_MS))
                .await
                .unwrap();
            let reward = unit_reward(&format!("e{i}"), &unit, 1.0, T0_MS + 1);
            let outcome = store.apply_rewards(vec![reward]).await.unwrap();
            assert!(matches!(outcome[..], [RewardOutcome::Applied { .. }]));
        }
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(
            (counters["a"].exposures, counters["a"].reward_sum),
            (64, 64.0)
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
    let records = keys_by_node(&cluster, "{bd:homepage-headline:1:*}:r");
    assert_eq!(records.iter().sum::<usize>(), layout::SHARDS as usize);
    assert!(
        records.iter().filter(|&&keys| keys > 0).count() >= 2,
        "one experiment's sticky records sit on one node: {records:?}"
    );
    // One directory per event-id shard that got an id (64 ids fill all 8).
    let event_ids = keys_by_node(&cluster, "{bd:homepage-headline:e*}:d");
    assert_eq!(event_ids.iter().sum::<usize>(), layout::SHARDS as usize);
    assert!(
        event_ids.iter().filter(|&&keys| keys > 0).count() >= 2,
        "event ids sit on one node: {event_ids:?}"
    );
}

#[test]
fn a_plain_url_to_a_cluster_node_is_refused_with_the_cluster_form_named() {
    let cluster = RedisCluster::start();
    let node: &RedisServer = &cluster.nodes[0];
    let refused = RedisStore::open(RedisOptions {
        url: node.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 0,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    });
    match refused {
        Err(StoreError::Incompatible(why)) => assert!(why.contains("redis+cluster://"), "{why}"),
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a Cluster node behind a redis:// URL is refused"),
    }
}

/// A claim whose replica died between claiming the id and applying the reward is finished by
/// the next replica that meets it: the reward is applied once, under the dead replica's
/// claim, and the retry is a duplicate.
#[test]
fn a_claim_left_pending_by_a_dead_replica_is_finished_once_by_the_next() {
    let cluster = RedisCluster::start();
    let store = open_on(&cluster);
    block_on(async {
        store
            .insert_sticky(&epoch(), "u1", record("a", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
        // What a replica leaves behind when it dies right after claim.lua.
        let op = unit_reward("orphan", "u1", 1.0, T0_MS + 1);
        let reward = call::Reward::of(&op);
        let pending = format!("Pdead:1\t{}", reward.encode());
        let shard = layout::shard_of(&op.event_id);
        let key = layout::event_dir_key(&op.epoch.experiment, shard);
        let mut connection = store.shared.link.get();
        let () = redis::cmd("HSET")
            .arg(&key)
            .arg(&op.event_id)
            .arg(&pending)
            .query_async(&mut connection)
            .await
            .unwrap();
        // The retry names another unit: it must not be applied, the orphan must be.
        let retry = unit_reward("orphan", "u2", 1.0, T0_MS + 2);
        store
            .insert_sticky(&epoch(), "u2", record("b", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
        let outcomes = store.apply_rewards(vec![retry.clone()]).await.unwrap();
        assert_eq!(outcomes, vec![RewardOutcome::Duplicate]);
        assert_eq!(
            store.sticky(&epoch(), "u1").await.unwrap().unwrap().reward,
            Some(1.0),
            "the dead replica's reward is applied"
        );
        assert_eq!(
            store.sticky(&epoch(), "u2").await.unwrap().unwrap().reward,
            None
        );
        let held: String = redis::cmd("HGET")
            .arg(&key)
            .arg(&op.event_id)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(
            held,
            format!("A{}", reward.retain_ms()),
            "the claim is settled"
        );
        assert_eq!(
            store.apply_rewards(vec![retry]).await.unwrap(),
            vec![RewardOutcome::Duplicate]
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.0);
        assert!(counters.get("b").is_none_or(|arm| arm.reward_sum == 0.0));
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// Two replicas receive the same event ids at once, each naming another unit (in other
/// shards, so other slots and nodes): each id is applied once, to one of the two units.
#[test]
fn one_id_naming_different_units_on_two_replicas_is_applied_once() {
    let cluster = RedisCluster::start();
    let (a, b) = (open_on(&cluster), open_on(&cluster));
    block_on(async {
        for i in 0..40 {
            for unit in [format!("a{i}"), format!("b{i}")] {
                a.insert_sticky(&epoch(), &unit, record("a", T0_MS), tests::tally(T0_MS))
                    .await
                    .unwrap();
            }
        }
        let racing = (0..40).flat_map(|i| {
            let id = format!("shared-{i}");
            [
                a.apply_rewards(vec![unit_reward(&id, &format!("a{i}"), 1.0, T0_MS + 1)]),
                b.apply_rewards(vec![unit_reward(&id, &format!("b{i}"), 1.0, T0_MS + 1)]),
            ]
        });
        let outcomes: Vec<RewardOutcome> = futures_util::future::join_all(racing)
            .await
            .into_iter()
            .flat_map(|answer| answer.expect("rewards acknowledged"))
            .collect();
        for pair in outcomes.chunks(2) {
            let applied = pair
                .iter()
                .filter(|o| matches!(o, RewardOutcome::Applied { .. }))
                .count();
            assert_eq!(applied, 1, "{pair:?}");
            assert!(pair.contains(&RewardOutcome::Duplicate), "{pair:?}");
        }
        let counters = a.counters(&epoch()).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 40.0);
        assert!(a.audit().await.unwrap().is_clean());
    });
}

/// A replica that died between counting in a new epoch and fixing its start leaves only the
/// shard's first-write time: the next reader fixes the start from it, once.
#[test]
fn a_start_left_unfixed_by_a_dead_replica_is_fixed_by_the_next_reader() {
    let cluster = RedisCluster::start();
    let store = open_on(&cluster);
    block_on(async {
        let mut connection = store.shared.link.get();
        for (shard, first) in [(3, T0_MS + 9), (5, T0_MS + 4)] {
            let () = redis::cmd("HSET")
                .arg(layout::ShardKeys::of(&epoch(), shard).arms)
                .arg("s")
                .arg(first)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        let info = store.epoch_info(&epoch()).await.unwrap();
        assert_eq!(info.started_ms, Some(T0_MS + 4), "the earliest shard's");
        let held: Option<u64> = redis::cmd("HGET")
            .arg(layout::info_key(&epoch()))
            .arg("start")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(held, Some(T0_MS + 4), "fixed in the epoch's facts");
        store
            .insert_sticky(&epoch(), "late", record("a", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
        assert_eq!(
            store.epoch_info(&epoch()).await.unwrap().started_ms,
            Some(T0_MS + 4),
            "an earlier write later does not move it"
        );
    });
}
