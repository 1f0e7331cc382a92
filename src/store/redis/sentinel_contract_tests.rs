//! The Redis store against the store contract (`store::contract`) through a real Sentinel:
//! a primary, its replica and one Sentinel per test, the store opened by a
//! `redis+sentinel://` URL, so every contract rule is checked on the connection Sentinel mode
//! builds. The Sentinel waits 30 s before it calls the primary down, so the restarts below
//! are restarts, not failovers (those are in `sentinel_tests.rs`).

use std::sync::{Arc, Mutex};

use super::tests::harness::{RedisSentinel, SentinelSetup};
use super::*;
use crate::store::contract::Backend;

fn open_on(redis: &RedisSentinel) -> RedisStore {
    RedisStore::open(RedisOptions {
        url: redis.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 1000,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    })
    .expect("redis store opens through the Sentinel")
}

/// A Redis store found through a Sentinel. `reopen` shuts the store down, kills the primary
/// with SIGKILL and restarts it from its AOF, then opens a new store through the Sentinel.
struct SentinelBackend {
    store: Option<RedisStore>,
    redis: Arc<Mutex<RedisSentinel>>,
}

impl Backend for SentinelBackend {
    type Store = RedisStore;

    async fn open() -> Self {
        let redis = RedisSentinel::start_with(&SentinelSetup {
            down_after_ms: 30_000,
            ..SentinelSetup::default()
        });
        SentinelBackend {
            store: Some(open_on(&redis)),
            redis: Arc::new(Mutex::new(redis)),
        }
    }

    fn store(&self) -> &RedisStore {
        self.store.as_ref().expect("a store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown().await.expect("clean shutdown");
        }
        let mut redis = self.redis.lock().expect("redis lock");
        redis.primary.restart();
        self.store = Some(open_on(&redis));
    }

    /// The primary goes away (SIGKILL) and comes back from its AOF 300 ms later: the next
    /// commits fail as an unreachable primary makes them fail, and the store, asking the
    /// Sentinel again, finds the same primary back.
    fn fail_next_commits(&self, _commits: u32) -> bool {
        self.redis.lock().expect("redis lock").primary.kill();
        let redis = self.redis.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            redis.lock().expect("redis lock").primary.restart();
        });
        true
    }
}

crate::store_contract_tests!(SentinelBackend);
