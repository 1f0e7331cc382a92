//! The Redis store against the store contract (`store::contract`), on a real `redis-server`
//! per test (AOF on, `appendfsync always`): with Functions (the `apply` library by `FCALL`)
//! and, in `by_evalsha`, on a server without them (the same library by `EVALSHA`).

use std::sync::{Arc, Mutex};

use super::tests::harness::RedisServer;
use super::*;
use crate::store::contract::Backend;

/// A Redis store on its own server (`FUNCTIONS`: with Redis Functions, or without them as
/// before Redis 7.0). `reopen` shuts the store down, kills the server with SIGKILL and
/// restarts it from its AOF, then opens a new store: a restart of everything.
struct RedisBackend<const FUNCTIONS: bool> {
    store: Option<RedisStore>,
    server: Arc<Mutex<RedisServer>>,
}

fn open_on(server: &RedisServer) -> RedisStore {
    RedisStore::open(RedisOptions {
        url: server.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 1000,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    })
    .expect("redis store opens")
}

impl<const FUNCTIONS: bool> Backend for RedisBackend<FUNCTIONS> {
    type Store = RedisStore;

    async fn open() -> Self {
        let server = if FUNCTIONS {
            RedisServer::start()
        } else {
            super::scripts_tests::server_without_functions()
        };
        RedisBackend {
            store: Some(open_on(&server)),
            server: Arc::new(Mutex::new(server)),
        }
    }

    fn store(&self) -> &RedisStore {
        self.store.as_ref().expect("a store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown().await.expect("clean shutdown");
        }
        let mut server = self.server.lock().expect("server lock");
        server.restart();
        self.store = Some(open_on(&server));
    }

    /// Redis goes away (SIGKILL) and comes back from its AOF 300 ms later, whatever the
    /// store does: the next commits fail as an unreachable server makes them fail.
    fn fail_next_commits(&self, _commits: u32) -> bool {
        self.server.lock().expect("server lock").kill();
        let server = self.server.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            server.lock().expect("server lock").restart();
        });
        true
    }
}

crate::store_contract_tests!(RedisBackend<true>);

mod by_evalsha {
    use super::RedisBackend;

    crate::store_contract_tests!(RedisBackend<false>);
}
