//! The store's error and its future type, used by every backend and every layer under them.

use std::future::Future;
use std::pin::Pin;

/// A store operation in flight. Boxed so that the trait stays object-safe (`Arc<dyn Store>`).
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A failure of the storage layer itself (never caused by request content).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("store is shutting down")]
    Closed,
    /// Writes do not reach the disk now (a failure episode, see [`Store::health`]); nothing of
    /// the request was applied. The store recovers by itself once the disk accepts writes.
    #[error("store is not accepting writes: {0}")]
    Unavailable(String),
    /// The directory holds a store this build cannot read (another layout version).
    #[error("{0}")]
    Incompatible(String),
}
