//! How a [`SledStore`] call waits for the writer: a write sends its command and awaits the
//! answer the writer gives once the commit is durable; a read that found a record of a commit
//! still in flight waits for that commit. A child of `sled`, so the handle's fields stay
//! private to the two.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::SledStore;
use crate::store::command::Command;
use crate::store::error::{StoreError, StoreFuture};
use crate::store::shared::Shared;

impl SledStore {
    pub(super) fn await_reply<T: Send + 'static>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> StoreFuture<T> {
        // While the store fails, a write is refused at once instead of waiting in the queue.
        if !self.shared.health.writable() {
            return ready(Err(self.shared.health.unavailable()));
        }
        if self.commands.send(command).is_err() {
            return ready(Err(self.shared.stopped_error()));
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(shared.stopped_error())) })
    }

    fn is_durable(&self, seq: u64) -> bool {
        seq <= self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Reads with `read` from the current database, which answers a value and the newest
    /// commit among the records it read; answers once that commit is durable. If the database
    /// is reopened meanwhile (a commit failed), reads again: what it read may have belonged to
    /// the failed batch, which the reopened database no longer holds.
    pub(super) fn read_durable<T, F>(&self, read: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: Fn(&Shared) -> Result<(T, u64), StoreError> + Send + 'static,
    {
        let generation = self.shared.generation();
        let (value, seq) = match read_applied(&self.shared, &read) {
            Ok((value, seq)) if self.is_durable(seq) => return ready(Ok(value)),
            Ok(read) => read,
            Err(error) => return ready(Err(error)),
        };
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (mut value, mut seq, mut generation) = (value, seq, generation);
            while !wait_durable(&shared, seq, generation).await? {
                generation = shared.generation();
                (value, seq) = read_applied(&shared, &read)?;
                if seq <= shared.durable_seq.load(Ordering::Acquire) {
                    break;
                }
            }
            Ok(value)
        })
    }
}

/// Runs a read of sled with no commit half applied (see `Shared::apply_lock`).
fn read_applied<T>(
    shared: &Shared,
    read: &impl Fn(&Shared) -> Result<(T, u64), StoreError>,
) -> Result<(T, u64), StoreError> {
    let _applied = shared
        .apply_lock
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    read(shared)
}

pub(super) fn ready<T: Send + 'static>(result: Result<T, StoreError>) -> StoreFuture<T> {
    Box::pin(std::future::ready(result))
}

/// Resolves to true once commit `seq` is on disk, to false if the database was reopened
/// first (the caller reads again); fails if the writer stopped before either.
async fn wait_durable(shared: &Shared, seq: u64, generation: u64) -> Result<bool, StoreError> {
    let mut marks = shared.durable_rx.clone();
    let mark = marks
        .wait_for(|mark| mark.seq >= seq || mark.generation != generation)
        .await
        .map(|mark| *mark);
    match mark {
        Ok(mark) => Ok(mark.generation == generation),
        Err(_) if shared.generation() != generation => Ok(false),
        Err(_) if shared.durable_seq.load(Ordering::Acquire) >= seq => Ok(true),
        Err(_) => Err(shared.stopped_error()),
    }
}
