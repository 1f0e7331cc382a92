//! The writer's view of the store while it builds one group commit: sled state, overlaid by
//! the batch's pending changes, overlaid by the current request's own changes.
//!
//! Two layers because the two scopes commit differently: the batch is written as one sled
//! batch (so set-if-absent and event-id dedup must see earlier requests of the same batch), and
//! a request is all-or-nothing inside it (if a request hits a corrupt record half-way, its
//! earlier changes are dropped and the other requests of the batch still commit).

use std::ops::Bound;

use super::error::StoreError;
use super::event_ids::PendingIds;
use super::expiry_index::PendingExpiries;
use super::keys::{self, KIND_EXPIRY, KIND_STICKY, io};
use super::mark_log::{self, PendingMark, PendingMarks};
use super::state::{ArmMap, ArmState, ArmStates, DurableState, EpochMap, KeyValue, WriteMap};
pub use super::sticky_writes::{StickyWrite, StickyWrites};
use super::types::{Epoch, EpochInfo, StickyRecord};

/// The pending changes of one group commit.
#[derive(Debug, Default)]
pub struct BatchState {
    /// Sequence number this commit will have once durable.
    pub seq: u64,
    pub writes: WriteMap,
    /// The sticky records the batch wrote, typed: the commit hands them to the unit log and
    /// the table as they are, with no encoding to decode again.
    pub sticky: StickyWrites,
    pub arms: ArmMap,
    pub epochs: EpochMap,
    pub expired_through: u64,
    /// Retained records the batch created, written into index values at commit.
    pub expiries: PendingExpiries,
    /// Event ids the batch applied or expired, written into the event log at commit.
    pub event_ids: PendingIds,
    /// Token credit marks the batch wrote, into the mark log and event log at commit.
    pub marks: PendingMarks,
}

impl BatchState {
    pub fn new(seq: u64, expired_through: u64) -> Self {
        BatchState {
            seq,
            expired_through,
            ..BatchState::default()
        }
    }

    /// Folds one request's changes in, after the request succeeded.
    pub fn merge(&mut self, changes: TxnChanges) {
        // A bulk reward request is usually alone in its batch: take its map whole rather than
        // re-inserting thousands of keys.
        if self.writes.is_empty() {
            self.writes = changes.writes;
        } else {
            self.writes.extend(changes.writes);
        }
        if self.sticky.is_empty() {
            self.sticky = changes.sticky;
        } else {
            self.sticky.extend(changes.sticky);
        }
        self.expiries.append(changes.expiries);
        self.event_ids.append(changes.event_ids);
        self.marks.append(changes.marks);
        for (epoch, arms) in changes.arms {
            self.arms.entry(epoch).or_default().extend(arms);
        }
        self.epochs.extend(changes.epochs);
        self.expired_through = self.expired_through.max(changes.expired_through);
    }
}

/// One request's changes, ready to merge into the batch.
#[derive(Debug)]
pub struct TxnChanges {
    writes: WriteMap,
    sticky: StickyWrites,
    arms: ArmMap,
    epochs: EpochMap,
    expired_through: u64,
    expiries: PendingExpiries,
    event_ids: PendingIds,
    marks: PendingMarks,
}

/// One epoch's arms as a request changes them ([`Txn::epoch_arms`]).
pub struct EpochArms<'t> {
    /// This request's layer.
    arms: &'t mut ArmStates,
    /// The batch's and the durable state's, read to copy an arm up on its first change.
    below: [Option<&'t ArmStates>; 2],
}

impl EpochArms<'_> {
    /// Changes the arm's state in this request's layer, starting from the state the layers
    /// below hold (or a fresh one) on its first change.
    pub fn update(&mut self, variant: &str, change: impl FnOnce(&mut ArmState)) {
        if let Some(state) = self.arms.get_mut(variant) {
            change(state);
            return;
        }
        let mut state = self
            .below
            .iter()
            .find_map(|layer| layer.and_then(|arms| arms.get(variant)))
            .copied()
            .unwrap_or_default();
        change(&mut state);
        self.arms.insert(variant.to_owned(), state);
    }
}

/// A stored value as a request sees it: borrowed from a pending layer, or sled's own
/// reference-counted buffer. Neither copies, so reading a record on the hot path allocates
/// nothing.
pub enum Stored<'a> {
    Pending(&'a [u8]),
    Sled(sled::IVec),
}

impl std::ops::Deref for Stored<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Stored::Pending(bytes) => bytes,
            Stored::Sled(bytes) => bytes,
        }
    }
}

/// A request's view of sled's values (not its sticky records, arms or epochs): its own
/// pending writes, then the batch's, then sled.
pub struct Reads<'a> {
    db: &'a sled::Db,
    writes: &'a WriteMap,
    batch: &'a WriteMap,
}

impl<'a> Reads<'a> {
    fn new(db: &'a sled::Db, writes: &'a WriteMap, batch: &'a BatchState) -> Self {
        let batch = &batch.writes;
        Reads { db, writes, batch }
    }

    /// The value under `key` as the request sees it ([`Txn::get`]).
    pub fn get(&self, key: &[u8]) -> Result<Option<Stored<'a>>, StoreError> {
        if let Some(value) = self.writes.get(key).or_else(|| self.batch.get(key)) {
            return Ok(value.as_deref().map(Stored::Pending));
        }
        Ok(self.db.get(key).map_err(io)?.map(Stored::Sled))
    }
}

/// A request's read-write view. Reads fall through request → batch → durable state / sled.
pub struct Txn<'a> {
    db: &'a sled::Db,
    durable: &'a DurableState,
    batch: &'a BatchState,
    writes: WriteMap,
    sticky: StickyWrites,
    arms: ArmMap,
    epochs: EpochMap,
    expired_through: u64,
    expiries: PendingExpiries,
    event_ids: PendingIds,
    marks: PendingMarks,
    /// Cohort bins this request counts in, summed here and written at `finish`.
    cohorts: Vec<PendingCohort>,
}

/// A cohort bin a request counts exposures in (`sled_delay::count_cohort`): its key and its
/// count, the value read once plus this request's exposures. Integer sums, so the value
/// written is the one a write per count gave.
struct PendingCohort {
    epoch: Epoch,
    variant: String,
    bin: u64,
    key: Vec<u8>,
    count: u64,
}

impl<'a> Txn<'a> {
    pub fn new(db: &'a sled::Db, durable: &'a DurableState, batch: &'a BatchState) -> Self {
        Txn {
            db,
            durable,
            batch,
            writes: WriteMap::new(),
            sticky: StickyWrites::default(),
            arms: ArmMap::default(),
            epochs: EpochMap::default(),
            expired_through: batch.expired_through,
            expiries: PendingExpiries::default(),
            event_ids: PendingIds::default(),
            marks: PendingMarks::default(),
            cohorts: Vec::new(),
        }
    }

    /// The sequence number of the commit this request will be part of.
    pub fn seq(&self) -> u64 {
        self.batch.seq
    }

    /// The highest `now_ms` any `expire` has used, this request included.
    pub fn expired_through(&self) -> u64 {
        self.expired_through
    }

    pub fn set_expired_through(&mut self, now_ms: u64) {
        self.expired_through = self.expired_through.max(now_ms);
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Stored<'_>>, StoreError> {
        self.reads().get(key)
    }

    /// The request's view of sled's values alone ([`Reads`]).
    pub fn reads(&self) -> Reads<'_> {
        Reads::new(self.db, &self.writes, self.batch)
    }

    /// The key's value in the request or batch layer: `Some(None)` for a pending removal,
    /// `None` if neither layer touched the key.
    fn pending(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.writes.get(key).or_else(|| self.batch.writes.get(key))
    }

    /// Writes a sled value; a sticky record goes through [`Txn::put_sticky`] instead.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        debug_assert_ne!(key.first(), Some(&KIND_STICKY), "sticky records are typed");
        self.writes.insert(key, Some(value));
    }

    /// The digest of sticky `key` (`keys::epoch_key(KIND_STICKY, ..)`) in the sticky table
    /// (`StickyTable::digest`), which the reads and writes of its record take.
    pub fn sticky_digest(&self, key: &[u8]) -> u64 {
        self.durable.sticky.digest(key)
    }

    /// Writes the unit's sticky record under `key`, whose digest is `digest`
    /// ([`Txn::sticky_digest`]), stamped with this commit's sequence number when the commit
    /// logs it.
    pub fn put_sticky(&mut self, key: Vec<u8>, digest: u64, record: StickyRecord) {
        self.sticky.insert(key, digest, Some(record));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The sticky record under `key`, whose digest is `digest` ([`Txn::sticky_digest`]), as
    /// this request sees it: the request's and the batch's pending writes, else the durable
    /// table (never sled: see `sticky_table`).
    pub fn sticky(&self, key: &[u8], digest: u64) -> Option<StickyRecord> {
        let pending = self.sticky.get(key, digest);
        match pending.or_else(|| self.batch.sticky.get(key, digest)) {
            Some(pending) => pending.record.clone(),
            None => self.durable.sticky.peek_digest(digest),
        }
    }

    /// Reads the sticky record under `key` as [`Txn::sticky`] does and writes what `decide`
    /// returns for it (nothing for `None`): a key this request wrote before is changed in
    /// place, found by its digest (`sticky_writes`). `digest` is the key's in the sticky table
    /// (`StickyTable::digest`), made by the caller: the writer does not hash it again, and every
    /// read and write of the key must be given that same digest.
    ///
    /// `decide` also gets the request's view of sled's values ([`Reads`]): a reward reads its
    /// delay bin there before its record is written, so that a reward whose read fails writes
    /// nothing (`apply::RewardRun`). Inlined into its one caller: called out of line once the
    /// decision grew, it cost a bulk event ~170 more writer instructions
    /// (`benches/load/results/writer16-2026-12-01-s16.md`).
    #[inline(always)]
    pub fn update_sticky<T>(
        &mut self,
        key: Vec<u8>,
        digest: u64,
        decide: impl FnOnce(Option<StickyRecord>, &Reads<'_>) -> (Option<StickyRecord>, T),
    ) -> T {
        let reads = Reads::new(self.db, &self.writes, self.batch);
        if let Some(pending) = self.sticky.record_mut(&key, digest) {
            let (write, decided) = decide(pending.clone(), &reads);
            if let Some(record) = write {
                *pending = Some(record);
            }
            return decided;
        }
        let held = match self.batch.sticky.get(&key, digest) {
            Some(pending) => pending.record.clone(),
            None => self.durable.sticky.peek_digest(digest),
        };
        let (write, decided) = decide(held, &reads);
        if let Some(record) = write {
            self.sticky.insert(key, digest, Some(record));
        }
        decided
    }

    /// Makes room in this request's layer for `rewards` more rewards, each at most a sticky
    /// write and an event id (`apply::RewardRun`): grown from empty, a bulk request's layer
    /// was copied or rehashed ~10 times over.
    pub fn reserve_rewards(&mut self, rewards: usize) {
        self.sticky.reserve(rewards);
        self.event_ids.reserve(rewards);
    }

    /// Starts loading the durable table's slots of the sticky key whose digest is `digest`
    /// into the cache, so that its read a few events later does not wait for memory
    /// (`apply::RewardRun`).
    pub fn prefetch_sticky(&self, digest: u64) {
        self.durable.sticky.prefetch_digest(digest);
    }

    /// The digest keys of the event ids and of the sticky table (one key in every store:
    /// both are given the one `event_log::digester` reads when the store opens, `load::load`).
    pub fn digesters(&self) -> (super::event_ids::Digester, super::event_ids::Digester) {
        (
            self.durable.event_ids.digester,
            self.durable.sticky.digester(),
        )
    }

    /// Lists `record_key` (an event id or token mark this request writes) in the expiry index
    /// of the commit, due at `deadline_ms`. Dropped with the request if it fails.
    pub fn index_expiry(&mut self, record_key: &[u8], deadline_ms: u64) {
        self.expiries.push(record_key, deadline_ms);
    }

    /// Whether the event id with this digest is applied, as this request sees it.
    pub fn event_id_seen(&self, digest: u64) -> bool {
        self.event_ids
            .seen(digest)
            .or_else(|| self.batch.event_ids.seen(digest))
            .unwrap_or_else(|| self.durable.event_ids.kept.contains(digest))
    }

    /// Applies an event id, kept in the generation due at `due_ms` (see `event_log`).
    pub fn add_event_id(&mut self, due_ms: u64, digest: u64) {
        self.event_ids.add(due_ms, digest);
    }

    /// The digest of the credit mark of token `assignment_id` in `epoch` (see `mark_log`).
    pub fn token_mark_digest(&self, epoch: &Epoch, assignment_id: &str) -> u64 {
        mark_log::mark_digest(&self.durable.event_ids.digester, epoch, assignment_id)
    }

    /// Whether the token whose mark has this digest is credited, as this request sees it:
    /// marked by this request or the batch, else kept in the set (and not expired here).
    pub fn token_marked(&self, digest: u64) -> bool {
        self.marks.contains(digest)
            || self.batch.marks.contains(digest)
            || self.event_id_seen(digest)
    }

    /// Credits a token: its mark is written with the commit (`mark_log::log_values`) and its
    /// digest enters the set once the commit is durable.
    pub fn add_token_mark(&mut self, mark: PendingMark) {
        self.marks.push(mark);
    }

    /// Forgets an event id whose generation expired.
    pub fn remove_event_id(&mut self, digest: u64) {
        self.event_ids.remove(digest);
    }

    /// The arm's state as this request sees it (what [`Txn::update_arm`] starts from).
    pub fn arm(&self, epoch: &Epoch, variant: &str) -> ArmState {
        [&self.arms, &self.batch.arms, &self.durable.arms]
            .into_iter()
            .find_map(|layer| layer.get(epoch).and_then(|arms| arms.get(variant)))
            .copied()
            .unwrap_or_default()
    }

    /// Changes the arm's state (copying it into this request's layer first): one
    /// [`EpochArms::update`]. A caller changing several arms of one epoch takes
    /// [`Txn::epoch_arms`] once instead.
    pub fn update_arm(&mut self, epoch: &Epoch, variant: &str, change: impl FnOnce(&mut ArmState)) {
        self.epoch_arms(epoch).update(variant, change);
    }

    /// Adds `n` to the cohort bin `bin` of the epoch's `variant`. The bin's key and value come
    /// from `read` on its first count in this request (the only step that can fail, before
    /// anything changes), from this request's sum after that: a run of new units (`writer_apply`)
    /// built the bin's key, searched the request's writes twice and encoded the value again
    /// per unit, ~975 writer instructions besides the bin's one read from sled per commit; a
    /// unit after the first in a run now costs ~400 here
    /// (`benches/load/results/writer9-2026-12-01-s14.md`). Nothing reads a cohort bin through
    /// the txn but this, so the bins wait in the request's layer until `finish`.
    pub fn add_to_cohort(
        &mut self,
        epoch: &Epoch,
        variant: &str,
        bin: u64,
        n: u64,
        read: impl FnOnce(&Self) -> Result<(Vec<u8>, u64), StoreError>,
    ) -> Result<(), StoreError> {
        let held = self.cohorts.iter_mut().find(|cohort| {
            cohort.bin == bin && cohort.variant == variant && cohort.epoch == *epoch
        });
        if let Some(cohort) = held {
            cohort.count = cohort.count.saturating_add(n);
            return Ok(());
        }
        let (key, held) = read(self)?;
        self.cohorts.push(PendingCohort {
            epoch: epoch.clone(),
            variant: variant.to_owned(),
            bin,
            key,
            count: held.saturating_add(n),
        });
        Ok(())
    }

    /// The epoch's arms in this request's layer, found once for several [`EpochArms::update`]s:
    /// a new unit updates every arm of its allocation, and [`Txn::update_arm`] hashed the
    /// epoch again for each (`apply::count_exposures`).
    pub fn epoch_arms(&mut self, epoch: &Epoch) -> EpochArms<'_> {
        if !self.arms.contains_key(epoch) {
            let arms = ArmStates::with_capacity_and_hasher(4, Default::default());
            self.arms.insert(epoch.clone(), arms);
        }
        let below = [self.batch.arms.get(epoch), self.durable.arms.get(epoch)];
        let arms = self
            .arms
            .get_mut(epoch)
            .expect("the epoch's layer was inserted above");
        EpochArms { arms, below }
    }

    /// The epoch's record as this request sees it (`None` if it has none yet).
    pub fn epoch_info(&self, epoch: &Epoch) -> Option<&EpochInfo> {
        [&self.epochs, &self.batch.epochs, &self.durable.epochs]
            .into_iter()
            .find_map(|layer| layer.get(epoch))
    }

    /// Changes the epoch's record (copying it into this request's layer first).
    pub fn update_epoch(&mut self, epoch: &Epoch, change: impl FnOnce(&mut EpochInfo)) {
        if let Some(info) = self.epochs.get_mut(epoch) {
            change(info);
            return;
        }
        let mut info = self.epoch_info(epoch).cloned().unwrap_or_default();
        change(&mut info);
        self.epochs.insert(epoch.clone(), info);
    }

    /// The first expiry-index value due at `now_ms` (due time <= now) whose key sorts after
    /// `after`, as this request sees it: an earlier request of the batch may have removed or
    /// rewritten values that sled still holds.
    pub fn next_due_index_value(
        &self,
        now_ms: u64,
        after: Option<&[u8]>,
    ) -> Result<Option<KeyValue>, StoreError> {
        self.next_value_in(&[KIND_EXPIRY], &keys::due_end(KIND_EXPIRY, now_ms), after)
    }

    /// The first value with a key in `start..end` that sorts after `after`, as this request
    /// sees it (pending removals and rewrites of the request and the batch included).
    pub fn next_value_in(
        &self,
        start: &[u8],
        end: &[u8],
        after: Option<&[u8]>,
    ) -> Result<Option<KeyValue>, StoreError> {
        let lower = match after {
            Some(key) => Bound::Excluded(key.to_vec()),
            None => Bound::Included(start.to_vec()),
        };
        let range = (lower, Bound::Excluded(end.to_vec()));
        let mut first: Option<(&Vec<u8>, &Vec<u8>)> = None;
        for layer in [&self.writes, &self.batch.writes] {
            let live = layer
                .range(range.clone())
                .find_map(|(key, _)| match self.pending(key) {
                    Some(Some(value)) => Some((key, value)),
                    _ => None,
                });
            if let Some((key, value)) = live
                && first.is_none_or(|(earliest, _)| key < earliest)
            {
                first = Some((key, value));
            }
        }
        for item in self.db.range(range) {
            let (key, value) = item.map_err(io)?;
            if first.is_some_and(|(earliest, _)| earliest.as_slice() <= &*key) {
                break;
            }
            match self.pending(&key) {
                // Removed by this batch; a rewritten value is among the layers' candidates.
                Some(_) => continue,
                None => return Ok(Some((key.to_vec(), value.to_vec()))),
            }
        }
        Ok(first.map(|(key, value)| (key.clone(), value.clone())))
    }

    pub fn finish(mut self) -> TxnChanges {
        for cohort in self.cohorts {
            let value = super::codec::encode_u64(cohort.count).to_vec();
            self.writes.insert(cohort.key, Some(value));
        }
        TxnChanges {
            writes: self.writes,
            sticky: self.sticky,
            arms: self.arms,
            epochs: self.epochs,
            expired_through: self.expired_through,
            expiries: self.expiries,
            event_ids: self.event_ids,
            marks: self.marks,
        }
    }
}

#[cfg(test)]
#[path = "overlay_tests.rs"]
mod tests;
