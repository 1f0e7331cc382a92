//! Backend selection, once, at startup: everything after [`open`] holds an `Arc<dyn Store>`
//! and never asks which backend it is (the admin stats route reads [`super::BackendStats`]).

use std::path::PathBuf;
use std::sync::Arc;

use super::api::Store;
use super::error::StoreError;
use super::redis::{RedisOptions, RedisStore};
use super::sled::{SledStore, StoreOptions};

/// Which backend to open, and where.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded store in a data dir (`banditd serve --data-dir`): one process owns it.
    Sled { dir: PathBuf, options: StoreOptions },
    /// Redis shared by many replicas (`banditd serve --redis URL`).
    Redis(RedisOptions),
}

/// Opens the configured backend. Async so that a networked backend can connect (and check
/// the server) before the first request; the sled store opens on the calling thread.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sled { dir, options } => Ok(Arc::new(SledStore::open_with(dir, *options)?)),
        StoreConfig::Redis(options) => Ok(Arc::new(RedisStore::open(options.clone())?)),
    }
}
