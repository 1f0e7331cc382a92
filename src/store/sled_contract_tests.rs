//! The sled store against the store contract (`contract`).

use super::*;
use crate::store::contract::Backend;

/// A sled store in its own temp dir; `reopen` shuts it down and opens the same dir again.
struct SledBackend {
    store: Option<SledStore>,
    dir: tempfile::TempDir,
}

impl Backend for SledBackend {
    type Store = SledStore;

    async fn open() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path()).expect("store opens");
        SledBackend {
            store: Some(store),
            dir,
        }
    }

    fn store(&self) -> &SledStore {
        self.store.as_ref().expect("a store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.shutdown().await.expect("clean shutdown");
            // Dropping joins the writer thread, which releases the directory lock.
            drop(store);
        }
        self.store = Some(SledStore::open(self.dir.path()).expect("store reopens"));
    }

    fn fail_next_commits(&self, commits: u32) -> bool {
        self.store().inject_faults(crate::store::recovery::Faults {
            fail_before_apply: commits,
            ..Default::default()
        });
        true
    }
}

crate::store_contract_tests!(SledBackend);
