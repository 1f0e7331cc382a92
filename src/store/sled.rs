//! [`SledStore`]: the embedded default backend. Writes go to one writer thread that group-
//! commits them (see `writer`); reads of sticky assignments are answered from the in-memory
//! cache of durable records (see `sticky_cache`), else straight from sled, without the channel
//! or a lock, and wait only if the record's commit has not reached the disk yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use tokio::sync::{oneshot, watch};

use super::audit::{self, AuditReport};
use super::codec;
use super::data_dir;
use super::exposures::PendingExposure;
use super::keys::{self, KIND_STICKY};
use super::load;
use super::overlay::io;
use super::scan;
use super::secret_file;
use super::sticky_cache::{DEFAULT_STICKY_CACHE_ENTRIES, StickyCache, StickyCacheStats};
use super::writer::{Command, ExposedArm, Shared, Writer};
use super::{
    ArmCounters, Epoch, EpochInfo, RewardOp, RewardOutcome, StickyRecord, Store, StoreError,
    StoreFuture, StoreStats, Tally, TokenCredit,
};

/// Default of [`StoreOptions::page_cache_mb`]. sled's own default (1 GiB) let a server under
/// a steady mixed load grow by ~50 MiB a minute without levelling off (`run.sh --soak`).
pub const DEFAULT_PAGE_CACHE_MB: u64 = 32;

/// How a [`SledStore`] is opened, beyond its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most durable sticky records kept in memory for `sticky()`; 0 reads sled every time.
    pub sticky_cache_entries: usize,
    /// sled's page cache, in MiB. sled treats it as a soft limit and its real memory use runs
    /// several times higher, so the default is small: the sticky cache serves the hot reads,
    /// and the OS page cache still holds the files.
    pub page_cache_mb: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sticky_cache_entries: DEFAULT_STICKY_CACHE_ENTRIES,
            page_cache_mb: DEFAULT_PAGE_CACHE_MB,
        }
    }
}

/// The embedded store: one sled database in a directory, one writer thread.
pub struct SledStore {
    /// The data dir, where the secret files live next to sled's (see `secret_file`).
    dir: PathBuf,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir` with the default [`StoreOptions`] and
    /// starts its writer thread.
    ///
    /// Startup reads only the per-arm counters, the epoch records and two meta values, never
    /// the assignments or the history, so it takes the same time for ten units as for ten
    /// million. The sticky cache starts empty and warms up as units are read or written.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(dir, StoreOptions::default())
    }

    /// As [`SledStore::open`], with explicit options.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<SledStore, StoreError> {
        data_dir::prepare(dir)?;
        let db = open_db(dir, options.page_cache_mb)?;
        load::check_format(&db, dir)?;
        secret_file::migrate_from_sled(&db, dir)?;
        let (durable, last_seq, expired_through) = load::load(&db)?;
        let (durable_tx, durable_rx) = watch::channel(last_seq);
        // sled keeps its whole log in one file, `db`, created by the open above.
        let log_path = dir.join("db");
        let log_file = std::fs::File::open(&log_path).map_err(|error| {
            StoreError::Io(format!(
                "cannot open {} to sync it: {error}",
                log_path.display()
            ))
        })?;
        let shared = Arc::new(Shared {
            db,
            log_file,
            #[cfg(test)]
            data_sync_count: AtomicU64::new(0),
            // Everything on disk at open is durable: a record's commit wrote the sequence
            // number in the same atomic batch.
            durable_seq: AtomicU64::new(last_seq),
            durable_rx,
            counters: ArcSwap::from_pointee(load::counter_view(&durable.arms)),
            epochs: ArcSwap::from_pointee(durable.epochs.clone()),
            flush_count: AtomicU64::new(0),
            pending_exposures: Mutex::new(Vec::new()),
            failure: OnceLock::new(),
            sticky_cache: StickyCache::new(options.sticky_cache_entries),
            #[cfg(test)]
            flush_gate: Mutex::new(()),
        });
        let (commands, receiver) = mpsc::channel();
        let writer = Writer::new(
            Arc::clone(&shared),
            durable_tx,
            durable,
            last_seq,
            expired_through,
        );
        let handle = std::thread::Builder::new()
            .name("banditd-store-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|error| StoreError::Io(format!("cannot start the store writer: {error}")))?;
        Ok(SledStore {
            dir: dir.to_owned(),
            shared,
            commands,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Hits, misses and fill of the sticky cache since open.
    pub fn sticky_cache_stats(&self) -> StickyCacheStats {
        self.shared.sticky_cache.stats()
    }

    /// How many group commits (each one fsync) this handle's writer has made.
    pub fn flush_count(&self) -> u64 {
        self.shared.flush_count.load(Ordering::Relaxed)
    }

    /// Recomputes every arm's counters from the records and compares (see `audit`). Runs on
    /// the writer thread between commits, so it sees a consistent store while writes pause;
    /// after shutdown it reads the database directly. Blocks the calling thread.
    pub fn audit(&self) -> Result<AuditReport, StoreError> {
        let (reply, answer) = mpsc::channel();
        if self.commands.send(Command::Audit { reply }).is_ok()
            && let Ok(report) = answer.recv()
        {
            return report;
        }
        // The writer is gone, so nothing writes any more.
        audit::audit(&self.shared.db)
    }

    fn await_reply<T: Send + 'static>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> StoreFuture<T> {
        if self.commands.send(command).is_err() {
            return ready(Err(self.shared.stopped_error()));
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(shared.stopped_error())) })
    }

    /// The unit's record as sled holds it now, durable or not.
    fn stored_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
    ) -> Result<Option<codec::StoredSticky>, StoreError> {
        self.read_sticky(keys::epoch_key(KIND_STICKY, epoch, unit))
    }

    /// The record under sticky `key` as sled holds it now, durable or not; a record that was
    /// durable before the read started also goes into the cache. `durable_seq` is loaded
    /// before the sled read: that order is what makes the fill safe (see `sticky_cache`).
    fn read_sticky(&self, key: Vec<u8>) -> Result<Option<codec::StoredSticky>, StoreError> {
        let read_after_seq = self.shared.durable_seq.load(Ordering::Acquire);
        let Some(bytes) = self.shared.db.get(&key).map_err(io)? else {
            return Ok(None);
        };
        let stored = codec::decode_sticky(&bytes)?;
        self.shared.sticky_cache.fill(key, &stored, read_after_seq);
        Ok(Some(stored))
    }

    /// The epoch's history points as sled holds them now, and the newest commit among them.
    fn stored_history(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, serde_json::Value)>, u64), StoreError> {
        let range = keys::history_key(epoch, since_ms)..=keys::history_key(epoch, u64::MAX);
        let mut points = Vec::new();
        let mut newest_seq = 0;
        for item in self.shared.db.range(range).take(limit) {
            let (key, value) = item.map_err(io)?;
            let (_, at_ms) = keys::parse_history_key(&key)?;
            let (point, seq) = codec::decode_history(&value)?;
            newest_seq = newest_seq.max(seq);
            points.push((at_ms, point));
        }
        Ok((points, newest_seq))
    }

    fn is_durable(&self, seq: u64) -> bool {
        seq <= self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Answers `value` at once if commit `seq` is on disk, else once it is.
    fn once_durable<T: Send + 'static>(&self, seq: u64, value: T) -> StoreFuture<T> {
        if self.is_durable(seq) {
            return ready(Ok(value));
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            wait_durable(shared, seq).await?;
            Ok(value)
        })
    }
}

/// How long `open` waits for the directory lock of a store that is still closing.
const OPEN_LOCK_WAIT_MS: u64 = 1000;

/// Opens sled, waiting briefly for the directory lock. sled 0.34 releases its lock from
/// background I/O threads some milliseconds after the last handle is dropped (sled issues
/// #1234, #1289), so an in-process reopen can race it. A lock held longer than
/// [`OPEN_LOCK_WAIT_MS`] belongs to another live store, and that is a clear error.
pub(super) fn open_db(dir: &Path, page_cache_mb: u64) -> Result<::sled::Db, StoreError> {
    // Every commit fsyncs explicitly; sled's periodic background flush would only add I/O.
    let config = ::sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(page_cache_mb.saturating_mul(1024 * 1024));
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(OPEN_LOCK_WAIT_MS);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled 0.34.7 reports lock contention only through this message (config.rs).
            Err(::sled::Error::Io(error))
                if error.to_string().starts_with("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Io(format!(
                        "store directory {} is in use by another running store ({error})",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => return Err(io(error)),
        }
    }
}

fn ready<T: Send + 'static>(result: Result<T, StoreError>) -> StoreFuture<T> {
    Box::pin(std::future::ready(result))
}

/// Resolves once commit `seq` is on disk; fails if the writer stopped before that.
async fn wait_durable(shared: Arc<Shared>, seq: u64) -> Result<(), StoreError> {
    let mut durable = shared.durable_rx.clone();
    let reached = durable
        .wait_for(|&durable_seq| durable_seq >= seq)
        .await
        .is_ok();
    if reached || shared.durable_seq.load(Ordering::Acquire) >= seq {
        Ok(())
    } else {
        Err(shared.stopped_error())
    }
}

impl Store for SledStore {
    /// Every cached record is on disk (see `sticky_cache`), so a hit answers at once. A hit
    /// can be older than a record whose commit is still in flight: that commit has not been
    /// acknowledged, so answering the durable record is what a read just before it would see.
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>> {
        let key = keys::epoch_key(KIND_STICKY, epoch, unit);
        if let Some(record) = self.shared.sticky_cache.get(&key) {
            return ready(Ok(Some(record)));
        }
        match self.read_sticky(key) {
            Ok(Some(stored)) if !self.is_durable(stored.seq) => {
                let shared = Arc::clone(&self.shared);
                Box::pin(async move {
                    wait_durable(shared, stored.seq).await?;
                    Ok(Some(stored.record))
                })
            }
            Ok(stored) => ready(Ok(stored.map(|stored| stored.record))),
            Err(error) => ready(Err(error)),
        }
    }

    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)> {
        // A cached record is durable and the answer as of now: set-if-absent never replaces
        // it (only a later re-assignment can), so it can answer without the writer. Callers
        // have just read `sticky()` and found nothing, so sled is not read again here: the
        // writer's set-if-absent reads it anyway, and answers a record that appeared meanwhile.
        let key = keys::epoch_key(KIND_STICKY, epoch, unit);
        if let Some(cached) = self.shared.sticky_cache.peek(&key) {
            return ready(Ok((cached, false)));
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::InsertSticky {
            epoch: epoch.clone(),
            unit: unit.to_owned(),
            record,
            tally,
            reply,
        };
        self.await_reply(command, answer)
    }

    fn reassign_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        from_variant: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<Option<(StickyRecord, bool)>> {
        // A durable record on another variant already lost the compare-and-set (racing callers
        // after the winner's commit land here), so it can answer without the writer.
        match self.stored_sticky(epoch, unit) {
            Ok(Some(stored))
                if self.is_durable(stored.seq) && stored.record.variant != from_variant =>
            {
                return ready(Ok(Some((stored.record, false))));
            }
            Err(error) => return ready(Err(error)),
            Ok(_) => {}
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::ReassignSticky {
            epoch: epoch.clone(),
            unit: unit.to_owned(),
            from_variant: from_variant.to_owned(),
            record,
            tally,
            reply,
        };
        self.await_reply(command, answer)
    }

    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) {
        if self.shared.failure.get().is_some() {
            tracing::debug!(experiment = %epoch.experiment, "exposure not counted: store stopped");
            return;
        }
        let exposure = PendingExposure {
            epoch: epoch.clone(),
            arm: ExposedArm::of(variant, &tally),
            tally,
        };
        let first = {
            let mut pending = self
                .shared
                .pending_exposures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(exposure);
            pending.len() == 1
        };
        if first && self.commands.send(Command::WakeForExposures).is_err() {
            tracing::debug!(experiment = %epoch.experiment, "exposure not counted: store stopped");
        }
    }

    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>> {
        if ops.is_empty() {
            return ready(Ok(Vec::new()));
        }
        let (reply, answer) = oneshot::channel();
        self.await_reply(Command::ApplyRewards { ops, reply }, answer)
    }

    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>> {
        let published = self.shared.counters.load();
        let arms = published
            .get(epoch)
            .map(|arms| HashMap::clone(arms))
            .unwrap_or_default();
        ready(Ok(arms))
    }

    fn epoch_info(&self, epoch: &Epoch) -> StoreFuture<EpochInfo> {
        let info = self
            .shared
            .epochs
            .load()
            .get(epoch)
            .cloned()
            .unwrap_or_default();
        ready(Ok(info))
    }

    fn record_decision(
        &self,
        epoch: &Epoch,
        decision: serde_json::Value,
    ) -> StoreFuture<serde_json::Value> {
        // A published decision is durable and final, so it can answer without the writer.
        if let Some(held) = self
            .shared
            .epochs
            .load()
            .get(epoch)
            .and_then(|info| info.decision.clone())
        {
            return ready(Ok(held));
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::RecordDecision {
            epoch: epoch.clone(),
            decision,
            reply,
        };
        self.await_reply(command, answer)
    }

    fn append_history(
        &self,
        epoch: &Epoch,
        at_ms: u64,
        point: serde_json::Value,
    ) -> StoreFuture<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::AppendHistory {
            epoch: epoch.clone(),
            at_ms,
            point_json: codec::json_bytes(&point),
            reply,
        };
        self.await_reply(command, answer)
    }

    /// A range scan straight on sled, like `sticky()`: if a returned point's commit has not
    /// reached the disk yet, the answer waits for it.
    fn history(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<(u64, serde_json::Value)>> {
        match self.stored_history(epoch, since_ms, limit) {
            Ok((points, newest_seq)) if !self.is_durable(newest_seq) => {
                let shared = Arc::clone(&self.shared);
                Box::pin(async move {
                    wait_durable(shared, newest_seq).await?;
                    Ok(points)
                })
            }
            Ok((points, _)) => ready(Ok(points)),
            Err(error) => ready(Err(error)),
        }
    }

    /// A range scan straight on sled; waits for the newest commit among the page's records.
    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>> {
        match scan::sticky_page(&self.shared.db, epoch, after_unit.as_deref(), limit) {
            Ok((records, newest_seq)) => self.once_durable(newest_seq, records),
            Err(error) => ready(Err(error)),
        }
    }

    /// A range scan straight on sled. Marks record no commit number, so the page waits for
    /// the last commit applied when the scan ended (at most one fsync away).
    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenCredit>> {
        let page = scan::token_mark_page(&self.shared.db, epoch, after_id.as_deref(), limit)
            .and_then(|credits| Ok((credits, scan::applied_seq(&self.shared.db)?)));
        match page {
            Ok((credits, applied_seq)) => self.once_durable(applied_seq, credits),
            Err(error) => ready(Err(error)),
        }
    }

    fn expire(&self, now_ms: u64) -> StoreFuture<u64> {
        let (reply, answer) = oneshot::channel();
        self.await_reply(
            Command::Expire {
                now_ms,
                removed_before: 0,
                reply,
            },
            answer,
        )
    }

    /// Kept in its own 0600 file, never in sled's log (see `secret_file`).
    fn secret(&self, name: &str, make: &mut dyn FnMut() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
        secret_file::read_or_create(&self.dir, name, make)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            group_commits: self.flush_count(),
            durable_seq: self.shared.durable_seq.load(Ordering::Acquire),
            sticky_cache: self.sticky_cache_stats(),
        }
    }

    fn shutdown(&self) -> StoreFuture<()> {
        let (reply, answer) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let sent = self.commands.send(Command::Shutdown { reply }).is_ok();
        Box::pin(async move {
            if sent && let Ok(result) = answer.await {
                return result;
            }
            // Already stopped: fine after an earlier shutdown, an error after a failure.
            match shared.failure.get() {
                Some(failure) => Err(failure.clone()),
                None => Ok(()),
            }
        })
    }
}

impl Drop for SledStore {
    /// Best effort: commits what is queued and waits for the writer, so that the database is
    /// closed (and its directory lock released) when the handle is gone.
    fn drop(&mut self) {
        let (reply, _answer) = oneshot::channel();
        let _ = self.commands.send(Command::Shutdown { reply });
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

#[cfg(test)]
#[path = "sled_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sled_durability_tests.rs"]
mod durability_tests;

#[cfg(test)]
#[path = "sled_stats_tests.rs"]
mod stats_tests;

#[cfg(test)]
#[path = "sled_reassign_tests.rs"]
mod reassign_tests;

#[cfg(test)]
#[path = "sled_scan_tests.rs"]
mod scan_tests;

#[cfg(test)]
#[path = "sled_cache_tests.rs"]
mod cache_tests;

#[cfg(test)]
#[path = "sled_sync_tests.rs"]
mod sync_tests;
