//! The single writer thread of the sled store: group commit.
//!
//! Every write goes through one channel to one thread. The thread blocks for the first
//! command, drains whatever else queued meanwhile (up to [`MAX_BATCH_WEIGHT`]), evaluates the
//! commands serially against sled plus the batch's own pending changes, writes them as ONE
//! atomic batch, makes it durable in the redo log (`wal`: one write, one `fdatasync`), applies
//! it to sled, and only then publishes counters and answers the callers.
//! While one fsync runs, new requests queue up and share the next one: throughput grows with
//! concurrency instead of being capped at one request per fsync.
//!
//! One thread also makes set-if-absent and event-id dedup exact without locks: nothing else
//! ever writes.
//!
//! A failed commit does not stop the thread: its callers get the error, nothing of it is
//! published, and the thread reopens the store until the disk takes writes again (`recovery`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use super::apply::RewardRun;
use super::audit;
use super::codec;
use super::command::{AuditReply, Deferred, Reply};
use super::command::{Command, refuse};
use super::disk::OpenDb;
use super::error::StoreError;
use super::event_log;
use super::expiry_index;
use super::exposures::ExposureGroups;
use super::keys::{self, KIND_ARM, KIND_FOLDED, KIND_MOVED_AWAY, KIND_PER_REQUEST};
use super::mark_log;
use super::overlay::{BatchState, StickyWrite, Txn};
use super::state::{ArmMap, CounterMap, EpochMap};
use super::types::StickyRecord;
use super::unit_log::{self, CompactionPass, CompactionStep, LogWriter};
use super::wal::RedoBatch;
use super::wave::{self, linger_for_exposures};
use super::writer_apply::{Run, Step};
use super::writer_state::{FailedCommit, Writer};

/// Most work one group commit takes on (one per insert or exposure, one per reward op, the
/// removal limit per expire). Bounds more than the fsync: the writer holds the store's apply
/// lock while it applies a commit to sled (`wal::Wal::apply_last`), and every sled read waits
/// for it (the sticky table's reads do not). Measured on the dev disk (debug build, when this
/// was sled's own batch lock): fsync 0.1–2 ms, apply ~20 µs per key, so a 1000-op reward commit
/// (4000 keys) stalls those readers for ~80 ms in debug, several times less in release. A
/// single request bigger than this is still one commit (requests are atomic).
pub const MAX_BATCH_WEIGHT: usize = 1024;

/// What ends a batch early.
pub(super) enum Barrier {
    Audit(AuditReply),
    Shutdown(Reply<()>),
}

impl Writer {
    /// Runs until shut down or until every store handle is gone. A failed commit does not
    /// stop it: its callers get the error and `recover` reopens the store (see `recovery`).
    ///
    /// A batch of nothing but per-request exposures waits up to [`wave::EXPOSURE_LINGER_MS`] for
    /// more work before it commits: nobody waits for those (they are fire-and-forget), so
    /// folding a few milliseconds of them into one commit saves an fsync per wake-up under
    /// per-request load. Any command somebody waits for ends the wait at once.
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            let first = match self.carry.pop_front() {
                Some(command) => command,
                None => match self.wait_for_command(&commands) {
                    Some(command) => command,
                    // Every handle is gone; everything sent was processed.
                    None => return,
                },
            };
            let mut batch = vec![first];
            let mut weight = batch[0].weight();
            while weight < MAX_BATCH_WEIGHT
                && !matches!(
                    batch.last(),
                    Some(Command::Audit { .. } | Command::Shutdown { .. })
                )
            {
                match self
                    .carry
                    .pop_front()
                    .map(Ok)
                    .unwrap_or_else(|| commands.try_recv())
                {
                    Ok(command) => {
                        weight += command.weight();
                        batch.push(command);
                    }
                    Err(_) => break,
                }
            }
            if self.carry.is_empty() {
                self.gather_rest_of_wave(&mut batch, &mut weight, &commands);
                linger_for_exposures(&mut batch, &mut weight, &commands);
            }
            self.previous_waited_for = wave::waited_for(&batch);
            // Every batch takes all waiting exposures, and those a failed commit left.
            let pending = std::mem::take(
                &mut *self
                    .shared
                    .pending_exposures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let mut exposures = std::mem::take(&mut self.unfolded);
            exposures.extend(pending);
            if exposures.is_empty() && batch.iter().all(|c| matches!(c, Command::WakeForExposures))
            {
                continue; // a wake-up whose exposures an earlier batch already took
            }
            let stopping = matches!(batch.last(), Some(Command::Shutdown { .. }));
            let Some(open) = self.open.clone() else {
                // Not reached: `recover` returns with a database or ends the thread.
                self.unfolded = exposures;
                for command in batch {
                    refuse(command, &self.shared.health.unavailable());
                }
                continue;
            };
            let (barrier, failed) = self.process(&open, &exposures, batch, stopping);
            // The failed database must not outlive the recovery's reopen.
            drop(open);
            if let Some(failed) = failed {
                self.unfolded = exposures;
                let unavailable = StoreError::Unavailable(failed.cause.to_string());
                match barrier {
                    Some(Barrier::Audit(reply)) => reply.send(Err(unavailable)),
                    Some(Barrier::Shutdown(reply)) => {
                        let _ = reply.send(Err(unavailable));
                        return;
                    }
                    None => {}
                }
                if !self.recover(&failed, &commands) {
                    return;
                }
                continue;
            }
            match barrier {
                Some(Barrier::Audit(reply)) => {
                    let report = self.open.as_ref().map_or_else(
                        || Err(self.shared.health.unavailable()),
                        |open| audit::audit(&open.db),
                    );
                    reply.send(report);
                }
                Some(Barrier::Shutdown(reply)) => {
                    if let Some(open) = &self.open {
                        super::size_hint::keep_at_shutdown(&open.db, &self.durable);
                    }
                    let _ = reply.send(Ok(()));
                    return;
                }
                None => {}
            }
        }
    }

    /// The next command; while the redo log holds records no checkpoint has covered, waits at
    /// most until they are due (`wal::CHECKPOINT_AGE_MS`) and starts the checkpoint then, so
    /// that an idle server's log and sled's dirty pages do not wait for the next write.
    /// `None` once every handle is gone.
    fn wait_for_command(&mut self, commands: &mpsc::Receiver<Command>) -> Option<Command> {
        loop {
            let Some(due_in) = self.wal.checkpoint_due_in() else {
                return commands.recv().ok();
            };
            match commands.recv_timeout(due_in) {
                Ok(command) => return Some(command),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(open) = self.open.clone() {
                        self.wal.after_commit(&open);
                    }
                }
            }
        }
    }

    /// Evaluates one batch, commits it, answers its callers; returns its barrier command.
    /// A failed commit answers every caller with the error and resumes nothing it carried.
    fn process(
        &mut self,
        open: &Arc<OpenDb>,
        exposures: &ExposureGroups,
        commands: Vec<Command>,
        stopping: bool,
    ) -> (Option<Barrier>, Option<FailedCommit>) {
        // One span per group commit (debug: free unless a layer wants it, see `telemetry`).
        let _commit = tracing::debug_span!(
            "store.commit",
            seq = self.last_seq + 1,
            batch = commands.len()
        )
        .entered();
        if let Some(metrics) = crate::metrics::get() {
            metrics
                .store_commit_batch_size
                .observe(commands.len() as f64);
        }
        let mut state = BatchState::new(self.last_seq + 1, self.expired_through);
        let mut deferred: Vec<Deferred> = Vec::with_capacity(commands.len());
        let mut continued: Vec<Command> = Vec::new();
        let mut barrier = None;
        if !exposures.is_empty() {
            let mut txn = Txn::new(&open.db, &self.durable, &state);
            match exposures.apply(&mut txn) {
                Ok(()) => state.merge(txn.finish()),
                Err(error) => tracing::error!(
                    %error,
                    "per-request exposures not counted: a delay histogram record is unreadable"
                ),
            }
        }
        let mut commands = commands.into_iter().peekable();
        while let Some(command) = commands.next() {
            let mut txn = Txn::new(&open.db, &self.durable, &state);
            let mut step = Step {
                stopping,
                continued: &mut continued,
                barrier: &mut barrier,
                rewards: RewardRun::default(),
            };
            // Whether the request's changes join the batch, and how to answer it afterwards.
            let run = Run::of(&command);
            let (mut succeeded, answer) = step.apply(&mut txn, command);
            deferred.extend(answer);
            // A run of new units, or of single-event requests, shares the first one's txn: a
            // failing one changes nothing (`writer_apply`), so the run's others still commit,
            // and what they count is summed in place instead of merged once per request.
            while let Some(run) = run
                && let Some(next) = commands.next_if(|next| Run::of(next) == Some(run))
            {
                let (applied, answer) = step.apply(&mut txn, next);
                succeeded |= applied;
                deferred.extend(answer);
            }
            // A failed request's changes are dropped with its txn; the others still commit.
            if succeeded {
                step.rewards.finish(&mut txn);
                let changes = txn.finish();
                state.merge(changes);
            }
        }
        let seq = state.seq;
        let failed = self
            .commit(open, state)
            .err()
            .map(|cause| FailedCommit { seq, cause });
        if let Some(failed) = &failed {
            if let Some(metrics) = crate::metrics::get() {
                metrics.store_commit_failures.inc();
            }
            // Before anybody hears of the failure, so that nobody who has can still read the
            // failed batch or find the store writable.
            self.begin_episode(failed);
        }
        // Callers learn that nothing of their request was acknowledged; the cause is logged
        // once per episode by `begin_episode`, not once per request.
        let failure = failed
            .as_ref()
            .map(|failed| StoreError::Unavailable(failed.cause.to_string()));
        for answer in deferred {
            answer.answer(failure.as_ref());
        }
        if failure.is_none() {
            // Answered first: the log's room and checkpoints wait for nobody.
            self.wal.after_commit(open);
        }
        match &failure {
            None => self.carry.extend(continued),
            Some(error) => {
                for command in continued {
                    refuse(command, error);
                }
            }
        }
        (barrier, failed)
    }

    /// Writes the batch to the redo log and sled, then publishes. On failure nothing is
    /// published: the batch may sit applied in `open`'s memory, which is why the writer then
    /// drops that database and reopens the directory (see `recovery`).
    fn commit(&mut self, open: &OpenDb, state: BatchState) -> Result<(), StoreError> {
        let expiry_moved = state.expired_through != self.expired_through;
        if state.writes.is_empty()
            && state.sticky.is_empty()
            && state.arms.is_empty()
            && state.epochs.is_empty()
            && state.expiries.is_empty()
            && state.event_ids.is_empty()
            && state.marks.is_empty()
            && !expiry_moved
        {
            return Ok(());
        }
        // Compaction first: its entries are the durable state before this commit, so the
        // commit's own entries must replay after them (see `unit_log`).
        let mut log = LogWriter::new(state.seq);
        let step = self.compaction_step(open, state.seq, &mut log)?;
        let mut batch = self.wal.batch();
        for key in &step.removed_values {
            batch.remove(key.as_slice());
        }
        let sticky = state.sticky.into_epoch_runs();
        for write in &sticky {
            log.push_record(&write.key, write.record.as_ref())?;
        }
        let sticky_writes = sticky_writes(sticky);
        for (key, value) in state.writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        let log_entries =
            (self.durable.unit_log_entries + log.entries()).saturating_sub(step.entries_read);
        for (key, value) in log.finish() {
            batch.insert(key, value);
        }
        for (key, value) in expiry_index::index_values(state.seq, &state.expiries) {
            batch.insert(key, value);
        }
        for (key, value) in event_log::log_values(state.seq, &state.event_ids.added) {
            batch.insert(key, value);
        }
        for (key, value) in mark_log::log_values(state.seq, &state.marks) {
            batch.insert(key, value);
        }
        for (epoch, arms) in &state.arms {
            for (variant, arm) in arms {
                let before = self
                    .durable
                    .arms
                    .get(epoch)
                    .and_then(|old| old.get(variant))
                    .copied()
                    .unwrap_or_default();
                if arm.counters != before.counters || before == Default::default() {
                    batch.insert(
                        keys::epoch_key(KIND_ARM, epoch, variant),
                        codec::encode_arm(&arm.counters),
                    );
                }
                if arm.per_request != before.per_request {
                    let value = codec::encode_u64(arm.per_request).to_vec();
                    batch.insert(keys::epoch_key(KIND_PER_REQUEST, epoch, variant), value);
                }
                if arm.folded_reward.to_bits() != before.folded_reward.to_bits() {
                    let value = codec::encode_f64(arm.folded_reward).to_vec();
                    batch.insert(keys::epoch_key(KIND_FOLDED, epoch, variant), value);
                }
                if arm.moved_away != before.moved_away {
                    let value = codec::encode_moved_away(&arm.moved_away);
                    batch.insert(keys::epoch_key(KIND_MOVED_AWAY, epoch, variant), value);
                }
            }
        }
        for (epoch, info) in &state.epochs {
            batch.insert(keys::epoch_info_key(epoch), codec::encode_epoch_info(info));
        }
        // Only when it moved: the key holds the last value written, which is the one in
        // memory until it moves again, and a commit without expiry saves a sled key.
        if expiry_moved {
            batch.insert(
                keys::META_EXPIRED_THROUGH,
                codec::encode_u64(state.expired_through),
            );
        }
        // Last: sled is given the commit op by op, and a sled that holds this seq holds all
        // of the commit (`wal::Wal::apply_last`).
        batch.insert(keys::META_SEQ, codec::encode_u64(state.seq));

        self.write(open, state.seq, batch)?;
        // On disk now; applied before `durable_seq` moves, so a reader that sees this commit's
        // number finds its records (see `sticky_table`).
        self.durable.sticky.apply(&sticky_writes);
        self.durable.unit_log_entries = log_entries;
        self.compaction = step.next.map(|next| CompactionPass {
            next,
            before_seq: self
                .compaction
                .as_ref()
                .map_or(state.seq, |pass| pass.before_seq),
        });

        self.durable.event_ids.apply(&state.event_ids);
        for mark in &state.marks.marks {
            self.durable.event_ids.kept.insert(mark.digest);
        }
        self.shared.flush_count.fetch_add(1, Ordering::Relaxed);
        let id_bytes = self.durable.event_ids.kept.heap_bytes() as u64;
        self.shared
            .event_id_bytes
            .store(id_bytes, Ordering::Relaxed);
        self.last_seq = state.seq;
        self.expired_through = state.expired_through;
        self.shared.durable_seq.store(state.seq, Ordering::Release);
        self.durable_tx.send_modify(|mark| mark.seq = state.seq);
        self.publish(state.arms);
        self.publish_epochs(state.epochs);
        Ok(())
    }

    /// Makes the batch durable in the redo log (one `pwrite`, one `fdatasync`: `wal`), then
    /// applies it to sled, which is flushed only at checkpoints (`wal_checkpoint`); a batch too
    /// big to gain from the log goes to sled as one batch and sled's flush instead
    /// (`wal_through_sled`).
    fn write(&mut self, open: &OpenDb, seq: u64, batch: RedoBatch) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            self.shared.faults_before_apply()?;
            self.wal.fault = self.shared.faults_for_log();
            self.shared.faults_for_checkpoint(open);
        }
        let started = std::time::Instant::now();
        if self.wal.commits_through_sled(&batch) {
            // Too big to gain from the log: sled's flush makes it durable (`wal_through_sled`).
            self.wal
                .commit_through_sled(open, seq, batch, &self.shared.apply_lock)?;
            #[cfg(test)]
            self.shared.data_sync_count.fetch_add(1, Ordering::Relaxed);
        } else {
            self.wal.append(seq, batch)?;
            if let Some(metrics) = crate::metrics::get() {
                metrics
                    .store_fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            #[cfg(test)]
            self.shared.data_sync_count.fetch_add(1, Ordering::Relaxed);
            self.wal.apply_last(&open.db, &self.shared.apply_lock)?;
        }
        #[cfg(test)]
        let _gate = self
            .shared
            .flush_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[cfg(test)]
        self.shared.faults_after_sync()?;
        if let Some(metrics) = crate::metrics::get() {
            metrics
                .store_commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Makes the committed epoch records authoritative and visible to `epoch_info()`.
    fn publish_epochs(&mut self, changed: EpochMap) {
        if changed.is_empty() {
            return;
        }
        self.durable.epochs.extend(changed);
        self.shared
            .epochs
            .store(Arc::new(self.durable.epochs.clone()));
    }

    /// Makes the committed arm states authoritative and visible to `counters()`.
    fn publish(&mut self, changed: ArmMap) {
        if changed.is_empty() {
            return;
        }
        let mut published = CounterMap::clone(&self.shared.counters.load());
        for (epoch, arms) in changed {
            let durable = self.durable.arms.entry(epoch.clone()).or_default();
            durable.extend(arms);
            let view = durable
                .iter()
                .map(|(variant, arm)| (variant.clone(), arm.counters))
                .collect();
            published.insert(epoch, Arc::new(view));
        }
        self.shared.counters.store(Arc::new(published));
    }
}

impl Writer {
    /// One step of the unit log's compaction pass, starting a pass when the log's superseded
    /// entries outnumber half the table's units plus `compact_min_entries` (see `unit_log`). A commit
    /// whose pass is over or never started gets an empty step.
    fn compaction_step(
        &mut self,
        open: &OpenDb,
        seq: u64,
        log: &mut LogWriter,
    ) -> Result<CompactionStep, StoreError> {
        let entries = self.durable.unit_log_entries;
        // Superseded entries are at most all of them: below the floor no pass can start, and
        // the table's size (a read lock per shard) is not asked for on every commit.
        if self.compaction.is_none() && entries > self.compact_min_entries {
            self.start_compaction_if_due(entries, seq);
        }
        match &self.compaction {
            Some(pass) => unit_log::compact_step(&open.db, &self.durable.sticky, pass, log),
            None => Ok(CompactionStep::default()),
        }
    }

    fn start_compaction_if_due(&mut self, entries: u64, seq: u64) {
        let units = self.durable.sticky.len() as u64;
        if entries.saturating_sub(units) > (units / 2).saturating_add(self.compact_min_entries) {
            tracing::info!(log_entries = entries, units, "compacting the unit log");
            self.compaction = Some(CompactionPass::new(seq));
        }
    }
}

/// The sticky records a commit writes, by digest (`None`: removed), for the table once the
/// commit is durable: the overlay kept them typed, so the table is told exactly what the log
/// entries say, with the digest each write carries (`overlay::StickyWrite`).
fn sticky_writes(writes: Vec<StickyWrite>) -> Vec<(u64, Option<StickyRecord>)> {
    writes
        .into_iter()
        .map(|write| (write.digest, write.record))
        .collect()
}
