//! [`SledStore`]: the embedded default backend. Writes go to one writer thread that group-
//! commits them (see `writer`); reads of sticky assignments are answered from the in-memory
//! table of every durable record (see `sticky_table`), without the channel or sled; other
//! reads go straight to sled, and wait only if a record's commit has not reached the disk yet.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::api::{BackendStats, SecretMaker, Store, StoreStats, TableBytes};
use super::audit;
use super::audit_report::AuditReport;
use super::codec;
use super::command::AuditReply;
use super::command::Command;
use super::confirmations::{ConfirmOp, ConfirmOutcome, TokenConfirmation};
use super::delay_histograms::DelayHistograms;
use super::error::{StoreError, StoreFuture};
use super::exposures::{ExposedArm, PendingExposure};
use super::halts::Halt;
use super::health::StoreHealth;
use super::keys::{self, KIND_STICKY};
use super::mark_log;
use super::records::{Decision, EpochSpec, HistoryPoint};
use super::replica::{LocalReplica, ReplicaReport};
use super::reward_digests::{KeyDigest, RewardDigests};
use super::scan;
use super::secret_file;
use super::shared::Shared;
use super::sticky_cache::StickyCacheStats;
use super::types::{
    ArmCounters, Epoch, EpochInfo, RewardOp, RewardOutcome, StickyRecord, Tally, TokenCreditPage,
};

#[path = "sled_open.rs"]
mod open;
pub use open::{DEFAULT_PAGE_CACHE_MB, StoreOptions};
#[path = "sled_await.rs"]
mod waiting;
use waiting::ready;

/// The embedded store: one sled database in a directory, one writer thread.
pub struct SledStore {
    /// The data dir, where the secret files live next to sled's (see `secret_file`).
    dir: PathBuf,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    replica: LocalReplica,
    /// Seals the event log's generations into files a restart reads (`sealed_log`); stopped
    /// before the writer, so that it lets the database go first.
    pub(super) sealer: Mutex<Option<super::sealed_log::Sealer>>,
}

impl SledStore {
    /// Lookups of the sticky table since open (a miss is a unit with no assignment), and
    /// the units it holds.
    pub fn sticky_cache_stats(&self) -> StickyCacheStats {
        self.shared.sticky.load().stats()
    }

    /// Test hook: the open database, for tests that look at what a commit wrote.
    #[cfg(test)]
    pub(crate) fn raw(&self) -> super::shared::DbRef {
        self.shared.sled().expect("the store is open")
    }

    /// Test hook: see `ExportIndexes::tail_for_tests`.
    #[cfg(test)]
    pub(crate) fn export_index_for_tests(&self, epoch: &Epoch) -> (u64, bool) {
        self.shared.export_indexes.tail_for_tests(epoch)
    }

    /// Test hook: the commits and reopens to fail next (see `recovery::Faults`).
    #[cfg(test)]
    pub(crate) fn inject_faults(&self, faults: super::recovery::Faults) {
        *self
            .shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// How many group commits (each one fsync) this handle's writer has made.
    pub fn flush_count(&self) -> u64 {
        self.shared.flush_count.load(Ordering::Relaxed)
    }

    /// [`Store::audit`] for callers outside an async runtime (tests, the chaos driver): the
    /// same report, blocking the calling thread. Runs on the writer thread between commits, so
    /// it sees a consistent store while writes pause; after shutdown it reads the database
    /// directly.
    pub fn audit(&self) -> Result<AuditReport, StoreError> {
        let (reply, answer) = mpsc::channel();
        let command = Command::Audit {
            reply: AuditReply::Blocking(reply),
        };
        if self.commands.send(command).is_ok()
            && let Ok(report) = answer.recv()
        {
            return report;
        }
        // The writer is gone, so nothing writes any more.
        audit::audit(&self.shared.sled()?.db)
    }
}

impl Store for SledStore {
    /// The table holds every durable record and nothing else (see `sticky_table`), so it
    /// answers at once. Its record can be older than one whose commit is still in flight:
    /// that commit has not been acknowledged, so the durable record is what a read just before
    /// it would see.
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>> {
        let table = self.shared.sticky.load();
        ready(Ok(keys::with_epoch_key(KIND_STICKY, epoch, unit, |key| {
            table.get(key)
        })))
    }

    /// The sticky table holds every unit's record (it is what [`Store::sticky`] answers
    /// from), so the answer needs no future: a miss is a unit with no record, and the insert
    /// that follows answers a record that appears meanwhile.
    fn sticky_cached(&self, epoch: &Epoch, unit: &str) -> super::StickyLookup {
        let table = self.shared.sticky.load();
        match keys::with_epoch_key(KIND_STICKY, epoch, unit, |key| table.get(key)) {
            Some(record) => super::StickyLookup::Known(record),
            None => super::StickyLookup::Unseen,
        }
    }

    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)> {
        // A durable record is the answer as of now: set-if-absent never replaces it (only a
        // later re-assignment can), so it can answer without the writer, which answers a
        // record that appears meanwhile.
        // The key's digest is made once, here: the writer is given it (`reward_digests`).
        let key = keys::epoch_key(KIND_STICKY, epoch, unit);
        let table = self.shared.sticky.load();
        let digest = table.digest(&key);
        if let Some(held) = table.peek_digest(digest) {
            return ready(Ok((held, false)));
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::InsertSticky {
            epoch: epoch.clone(),
            key,
            digest: KeyDigest::new(table.digester(), digest),
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
        let key = keys::epoch_key(KIND_STICKY, epoch, unit);
        if let Some(held) = self.shared.sticky.load().peek(&key)
            && held.variant != from_variant
        {
            return ready(Ok(Some((held, false))));
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

    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) -> bool {
        if !self.shared.health.writable() {
            return false;
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
        // Only a store that was shut down has no writer to wake; nothing counts it then.
        !(first && self.commands.send(Command::WakeForExposures).is_err())
    }

    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>> {
        if ops.is_empty() {
            return ready(Ok(Vec::new()));
        }
        // Hashed here, on the caller's thread, not on the writer's (`reward_digests`).
        let digests = RewardDigests::of(self.shared.sticky.load().digester(), &ops);
        let (reply, answer) = oneshot::channel();
        let command = Command::ApplyRewards {
            ops,
            digests,
            reply,
        };
        self.await_reply(command, answer)
    }

    fn confirm_tokens(&self, ops: Vec<ConfirmOp>) -> StoreFuture<Vec<ConfirmOutcome>> {
        if ops.is_empty() {
            return ready(Ok(Vec::new()));
        }
        let (reply, answer) = oneshot::channel();
        self.await_reply(Command::ConfirmTokens { ops, reply }, answer)
    }

    fn scan_token_confirmations(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenConfirmation>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| {
            let db = shared.sled()?;
            let marks = super::confirm_apply::mark_page(&db, &epoch, after_id.as_deref(), limit)?;
            Ok((marks, scan::applied_seq(&db)?))
        })
    }

    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>> {
        let published = self.shared.counters.load();
        let arms = published
            .get(epoch)
            .map(|arms| HashMap::clone(arms))
            .unwrap_or_default();
        ready(Ok(arms))
    }

    /// A range scan straight on sled, answered once the last commit applied is durable.
    fn delay_histograms(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, DelayHistograms>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| {
            let db = shared.sled()?;
            Ok((
                super::sled_delay::read(&db, &epoch)?,
                scan::applied_seq(&db)?,
            ))
        })
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

    fn record_decision(&self, epoch: &Epoch, decision: Decision) -> StoreFuture<Decision> {
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

    fn record_halt(&self, epoch: &Epoch, halt: Halt) -> StoreFuture<Halt> {
        let (reply, answer) = oneshot::channel();
        let command = Command::RecordHalt {
            epoch: epoch.clone(),
            halt,
            reply,
        };
        self.await_reply(command, answer)
    }

    /// A range scan straight on sled; waits for the newest commit among the halts.
    fn halts(&self, epoch: &Epoch) -> StoreFuture<Vec<Halt>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| super::halts::scan(&shared.sled()?.db, &epoch))
    }

    fn append_history(&self, epoch: &Epoch, point: HistoryPoint) -> StoreFuture<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::AppendHistory {
            epoch: epoch.clone(),
            at_ms: point.at_ms,
            point_json: codec::history_json(&point),
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
    ) -> StoreFuture<Vec<HistoryPoint>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| {
            scan::history_page(&shared.sled()?.db, &epoch, since_ms, limit, false)
        })
    }

    fn history_newest_first(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<HistoryPoint>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| {
            scan::history_page(&shared.sled()?.db, &epoch, since_ms, limit, true)
        })
    }

    fn record_epoch_spec(&self, epoch: &Epoch, spec: EpochSpec) -> StoreFuture<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::RecordEpochSpec {
            epoch: epoch.clone(),
            spec_json: codec::json_bytes(&spec),
            reply,
        };
        self.await_reply(command, answer)
    }

    /// A point read straight on sled, like `history()`.
    fn epoch_spec(&self, epoch: &Epoch) -> StoreFuture<Option<EpochSpec>> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| scan::epoch_spec(&shared.sled()?.db, &epoch))
    }

    /// A range scan straight on sled; waits for the newest commit among the page's records.
    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>> {
        let epoch = epoch.clone();
        // The table holds durable records only, so the page needs no wait (see `export_index`).
        self.read_durable(move |shared| {
            let db = shared.sled()?;
            let table = shared.sticky.load();
            let page =
                shared
                    .export_indexes
                    .page(&db.db, &table, &epoch, after_unit.as_deref(), limit)?;
            Ok((page, 0))
        })
    }

    /// Ranges straight on sled's mark log (`mark_log::page`). Marks record no commit number,
    /// so the page waits for the last commit applied when the scan ended (at most one fsync
    /// away).
    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after: Option<String>,
        limit: usize,
    ) -> StoreFuture<TokenCreditPage> {
        let epoch = epoch.clone();
        self.read_durable(move |shared| {
            let db = shared.sled()?;
            let (credits, next) = mark_log::page(&db, &epoch, after.as_deref(), limit)?;
            Ok((TokenCreditPage { credits, next }, scan::applied_seq(&db)?))
        })
    }

    fn expire(&self, now_ms: u64) -> StoreFuture<u64> {
        // The sweep runs every minute: an export index nobody reads any more goes with it.
        self.shared.export_indexes.drop_idle();
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

    /// Kept in its own 0600 file, never in sled's log (see `secret_file`). One small file
    /// read (or an exclusive create) on the calling thread: it is asked for once, at startup.
    fn secret(&self, name: &str, make: SecretMaker) -> StoreFuture<Vec<u8>> {
        let mut make = Some(make);
        let mut once = move || make.take().map(|make| make()).unwrap_or_default();
        ready(secret_file::read_or_create(&self.dir, name, &mut once))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.flush_count(),
            durable_position: self.shared.durable_seq.load(Ordering::Acquire),
            backend: BackendStats::Sled {
                sticky_cache: self.sticky_cache_stats(),
                tables: TableBytes {
                    sticky_units: self.shared.sticky.load().heap_bytes() as u64,
                    event_ids: self.shared.event_id_bytes.load(Ordering::Relaxed),
                },
            },
        }
    }

    fn audit(&self) -> StoreFuture<AuditReport> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Audit {
            reply: AuditReply::Async(reply),
        };
        if self.commands.send(command).is_err() {
            // The writer is gone, so nothing writes any more.
            return ready(self.shared.sled().and_then(|open| audit::audit(&open.db)));
        }
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            match answer.await {
                Ok(report) => report,
                Err(_) => audit::audit(&shared.sled()?.db),
            }
        })
    }

    fn writable(&self) -> bool {
        self.shared.health.writable()
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.snapshot()
    }

    fn announce(&self, report: ReplicaReport, expires_ms: u64) -> StoreFuture<()> {
        self.replica.announce(report, expires_ms);
        Box::pin(async { Ok(()) })
    }

    fn withdraw(&self, id: &str) -> StoreFuture<()> {
        self.replica.withdraw(id);
        Box::pin(async { Ok(()) })
    }

    fn replicas(&self, now_ms: u64) -> StoreFuture<Vec<ReplicaReport>> {
        let live = self.replica.live(now_ms);
        Box::pin(async move { Ok(live) })
    }

    fn shutdown(&self) -> StoreFuture<()> {
        let (reply, answer) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let sent = self.commands.send(Command::Shutdown { reply }).is_ok();
        Box::pin(async move {
            if sent && let Ok(result) = answer.await {
                return result;
            }
            // Already stopped: fine after an earlier shutdown, an error while failing.
            match shared.stopped_error() {
                StoreError::Closed => Ok(()),
                failing => Err(failing),
            }
        })
    }
}

impl Drop for SledStore {
    /// Best effort: commits what is queued and waits for the writer, so that the database is
    /// closed (and its directory lock released) when the handle is gone.
    fn drop(&mut self) {
        if let Some(mut sealer) = self
            .sealer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            sealer.stop();
        }
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

#[cfg(test)]
#[path = "sled_failure_tests.rs"]
mod failure_tests;

#[cfg(test)]
#[path = "writer_apply_tests.rs"]
mod writer_apply_tests;

#[cfg(test)]
#[path = "wal_through_sled_tests.rs"]
mod through_sled_tests;

#[cfg(test)]
#[path = "sled_contract_tests.rs"]
mod contract_tests;
