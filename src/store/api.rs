//! The [`Store`] trait: persistence for the engine, in the domain's words, so that the engine
//! never knows which backend it holds (see `select` for where one is chosen).

use std::collections::HashMap;

use super::audit_report::AuditReport;
use super::confirmations::{ConfirmOp, ConfirmOutcome, TokenConfirmation};
use super::delay_histograms::DelayHistograms;
use super::error::StoreFuture;
use super::halts::Halt;
use super::health::StoreHealth;
use super::records::{Decision, EpochSpec, HistoryPoint};
use super::replica::ReplicaReport;
use super::sticky_cache::StickyCacheStats;
use super::types::{
    ArmCounters, Epoch, EpochInfo, RewardOp, RewardOutcome, StickyRecord, Tally, TokenCreditPage,
};

/// Persistence for the engine. All writes are durable when their future resolves.
pub trait Store: Send + Sync + 'static {
    /// The unit's sticky assignment, if any. Resolves only once that record is durable, so a
    /// caller never serves an assignment that a crash could still take back.
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>>;

    /// What this replica knows of the unit's sticky record without a round trip (see
    /// [`StickyLookup`]). The default, for a backend whose [`Store::sticky`] is served from
    /// memory anyway (sled), is [`StickyLookup::Read`]: ask `sticky`.
    fn sticky_cached(&self, _epoch: &Epoch, _unit: &str) -> StickyLookup {
        StickyLookup::Read
    }

    /// Inserts the assignment unless the unit already has one (set-if-absent), counting one
    /// exposure of its variant (raw, decayed and expected, see [`Tally`]) in the same atomic
    /// write. Resolves to the record that holds after the call and whether it was this call's;
    /// a call that lost changes nothing.
    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)>;

    /// Re-assigns `unit` from `from_variant` (a retired variant) to `record.variant` if, and
    /// only if, its current record still names `from_variant`: a compare-and-set, so among
    /// racing re-assignments of one unit exactly one wins.
    ///
    /// The winner counts one exposure of the new variant (raw, decayed and expected, see
    /// [`Tally`]) in the same atomic write, exactly like a winning `insert_sticky`, and the
    /// new record starts with `reward: None` (any reward in `record` is ignored): the new
    /// assignment can earn its own reward once. The retired arm's counters keep the old
    /// exposure and any reward credited to the old assignment; history is not rewritten.
    ///
    /// Resolves, once durable, to `Some((record that holds, whether this call wrote it))`. A
    /// unit whose record names another variant is left alone (`Some((its record, false))`).
    /// A unit with no record resolves to `None`: there is nothing to re-assign, and a fresh
    /// assignment is `insert_sticky`'s job, so the caller decides rather than the store.
    fn reassign_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        from_variant: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<Option<(StickyRecord, bool)>>;

    /// Queues one per-request exposure, folded into the arm's counters at the next group
    /// commit. Never blocks. Returns false, queuing nothing, while the store is not writable:
    /// the caller must then promise nothing for it (no token). A queued exposure whose commit
    /// fails is kept and counted once the store recovers; it is lost only if the process
    /// ends first (see the README's Durability section).
    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) -> bool;

    /// Applies rewards in order; one outcome per op. Event ids, the at-most-once marks and the
    /// counters change in one atomic, durable write.
    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>>;

    /// Confirms per-request tokens of `exposure: on_render` experiments in order; one outcome
    /// per op (see `rules::judge_confirmation`). Each confirmation mark and the exposure it
    /// counts (raw, decayed, expected, and the arm's per-request count) change in one atomic,
    /// durable write.
    fn confirm_tokens(&self, ops: Vec<ConfirmOp>) -> StoreFuture<Vec<ConfirmOutcome>>;

    /// Up to `limit` confirmation marks of the epoch still retained, by assignment id after
    /// `after_id`, paginated like [`Store::scan_token_credits`]. Resolves only once every
    /// returned mark is durable.
    fn scan_token_confirmations(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenConfirmation>>;

    /// Current durable counters of every arm seen in the epoch, by variant id.
    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>>;

    /// Every arm's delay histograms in the epoch (see `delay_histograms`), by variant id; an
    /// arm without any (an epoch written by a build that kept none) is absent. Written in the
    /// same atomic steps as the counters, so they never count what the counters do not.
    fn delay_histograms(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, DelayHistograms>>;

    /// The epoch's durable start time and decision (defaults for an epoch never written).
    fn epoch_info(&self, epoch: &Epoch) -> StoreFuture<EpochInfo>;

    /// Records the epoch's stopping decision unless it has one: the first write wins forever,
    /// so a decision is never silently reversed. Resolves, once durable, to the decision that
    /// holds.
    fn record_decision(&self, epoch: &Epoch, decision: Decision) -> StoreFuture<Decision>;

    /// Records a guardrail halt unless the epoch holds one for the same metric and arm: the
    /// first write wins forever (see `halts`), so a halt is never silently undone. Resolves,
    /// once durable, to the halt that holds.
    fn record_halt(&self, epoch: &Epoch, halt: Halt) -> StoreFuture<Halt>;

    /// Every guardrail halt recorded in the epoch, by metric then arm. Resolves only once
    /// every returned halt is durable.
    fn halts(&self, epoch: &Epoch) -> StoreFuture<Vec<Halt>>;

    /// Stores one history point of the epoch, replacing any point with the same `at_ms`.
    /// Resolves once durable.
    fn append_history(&self, epoch: &Epoch, point: HistoryPoint) -> StoreFuture<()>;

    /// Up to `limit` history points at or after `since_ms`, oldest first. Resolves only once
    /// every returned point is durable.
    fn history(&self, epoch: &Epoch, since_ms: u64, limit: usize)
    -> StoreFuture<Vec<HistoryPoint>>;

    /// Up to `limit` history points at or after `since_ms`, newest first: the latest points
    /// of a long history without reading all of it. Resolves only once every returned point is
    /// durable.
    fn history_newest_first(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<HistoryPoint>>;

    /// Stores the spec the epoch is served under (see [`EpochSpec`]), replacing the one stored
    /// before. Resolves once durable.
    fn record_epoch_spec(&self, epoch: &Epoch, spec: EpochSpec) -> StoreFuture<()>;

    /// The spec last stored for the epoch; `None` for an epoch never served by a build that
    /// stores them. Resolves only once the returned record is durable.
    fn epoch_spec(&self, epoch: &Epoch) -> StoreFuture<Option<EpochSpec>>;

    /// Up to `limit` sticky assignments of the epoch whose unit sorts after `after_unit` (byte
    /// order of the UTF-8 unit; `None`: from the first), in that order: one page of an export.
    /// Pass the last unit of a page to get the next; a short page is the last. Resolves only
    /// once every returned record is durable, like [`Store::sticky`].
    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>>;

    /// Up to `limit` token credit marks of the epoch still retained, from the start (`after`
    /// `None`) or from the `next` cursor of the previous page, in the backend's order; the
    /// page's `next` is `None` once no mark is left. Paging through returns every mark
    /// retained throughout exactly once. Resolves only once every returned mark is durable.
    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after: Option<String>,
        limit: usize,
    ) -> StoreFuture<TokenCreditPage>;

    /// Removes event ids, token marks and confirmation marks whose retention passed `now_ms`.
    /// Returns how many.
    fn expire(&self, now_ms: u64) -> StoreFuture<u64>;

    /// A named secret kept with the data (e.g. the token key), created with `make` on first use.
    /// Every caller, on every replica sharing the store, gets the same bytes: if two create it
    /// at once, one creation wins and both answer it. Never readable by other local users: the
    /// sled backend keeps it in its own 0600 file.
    fn secret(&self, name: &str, make: SecretMaker) -> StoreFuture<Vec<u8>>;

    /// What an operator sizing the store needs: commits so far, the durable position and the
    /// backend's own figures. Cheap (counters only), so it can be polled.
    fn stats(&self) -> StoreStats;

    /// Recomputes every arm's counters from the stored records and compares them with the
    /// stored counters ("counters always equal what the records imply", after any crash). A
    /// full scan, for operators (`banditd audit`) and tests; it sees a consistent store (writes
    /// wait or are excluded while it runs).
    fn audit(&self) -> StoreFuture<AuditReport>;

    /// Whether writes reach the disk now. Cheap enough for every request (one atomic load).
    fn writable(&self) -> bool;

    /// Whether writes reach the disk, why not while they do not, and the failure episodes
    /// so far (for `/readyz` and operators).
    fn health(&self) -> StoreHealth;

    /// Publishes this process's report to every replica sharing the store, replacing its
    /// previous one (same `id`), live until `expires_ms` (Unix ms) unless announced again.
    /// Not durable: a report is refreshed every few seconds, and one lost in a crash is only
    /// missing until the next.
    fn announce(&self, report: ReplicaReport, expires_ms: u64) -> StoreFuture<()>;

    /// Removes the report of replica `id` (a replica that stops cleanly), so it drops out at
    /// once instead of when it expires.
    fn withdraw(&self, id: &str) -> StoreFuture<()>;

    /// The reports of every live replica sharing the store (expiry after `now_ms`), by id.
    /// Expired ones are never returned, and a backend may delete them while reading. The
    /// embedded store is one process, so it answers only that process's own report.
    fn replicas(&self, now_ms: u64) -> StoreFuture<Vec<ReplicaReport>>;

    /// Makes everything acknowledged so far durable and stops the writer.
    fn shutdown(&self) -> StoreFuture<()>;
}

/// What [`Store::sticky_cached`] knows of a unit's sticky record.
#[derive(Debug, Clone, PartialEq)]
pub enum StickyLookup {
    /// The unit's record, from the replica's memory: no round trip.
    Known(StickyRecord),
    /// Not known here, and finding out would cost a round trip that [`Store::insert_sticky`]
    /// makes anyway: the insert is set-if-absent and answers the record the unit already
    /// holds, if any. A caller about to store a new assignment inserts at once (one round trip
    /// for a new unit, not two); any other caller asks [`Store::sticky`].
    Unseen,
    /// Ask [`Store::sticky`].
    Read,
}

/// Creates a secret's bytes the first time it is asked for (see [`Store::secret`]).
pub type SecretMaker = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// Counters of a running store, since it was opened: a few figures every backend has, and the
/// backend's own in [`BackendStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// Atomic durable writes made (sled: group commits, each one batch and one fsync; a
    /// backend that batches requests into one round trip counts the round trips).
    pub commits: u64,
    /// A position that only grows, as of the last write known to be durable (sled: the
    /// sequence number of the last commit on disk).
    pub durable_position: u64,
    pub backend: BackendStats,
}

/// The figures only one backend has.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendStats {
    /// The embedded store: how well the cache of durable sticky records serves the traffic,
    /// and what its in-memory tables hold.
    Sled {
        sticky_cache: StickyCacheStats,
        tables: TableBytes,
    },
    /// Redis: the replica's cache of known sticky units, and how stale the counters of
    /// per-request exposures may be (they are aggregated in the replica and written at least
    /// this often).
    Redis {
        sticky_cache: StickyCacheStats,
        exposure_flush_ms: u64,
        commits: RedisCommitStats,
    },
}

/// Redis only: which way the replica's group commits went. A replica applies a commit of unit
/// rewards as an optimistic transaction of plain commands when it can, and falls back to the
/// script when a watched key changed (another replica wrote the same shards: replicas that
/// ingest into the same experiment at once conflict) or when Redis discarded the transaction
/// (a command refused while queued: out of memory, a demoted primary, an ACL); each fallback
/// backs the transaction off for a while. The gather is the commit's wait for the requests the
/// last one answered. Exposed so that an operator can see why bulk ingest is slower than one
/// replica alone measured (conflicts), or that Redis refuses writes (discards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RedisCommitStats {
    /// Commits applied by a transaction.
    pub transactions_applied: u64,
    /// Transactions not run because a watched key changed (another replica wrote the same
    /// shards); the script applied those commits.
    pub transaction_conflicts: u64,
    /// Transactions Redis discarded (`EXECABORT`: a command refused while queued, such as out
    /// of memory or a demoted primary); the script applied those commits.
    pub transactions_discarded: u64,
    /// Commits whose close the gather delayed, and their waits in total (µs).
    pub gather_delayed: u64,
    pub gather_waited_us: u64,
    /// Times the gather paused because its waits kept ending short of their count.
    pub gather_pauses: u64,
}

/// Heap bytes of the embedded store's in-memory tables: every durable sticky assignment and
/// every kept event-id digest lives in memory (see `sticky_table` and `event_ids`), so the
/// store's memory grows with the units and ids it keeps, by design. Exposed so that an
/// operator can size a node from live figures and so that a soak can tell that growth from a
/// leak (`benches/load/soak.sh`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableBytes {
    /// The sticky table: its slots, the side table of credited rewards, the spill set.
    pub sticky_units: u64,
    /// The kept event-id (and token credit mark) digests, as of the last commit.
    pub event_ids: u64,
}

impl BackendStats {
    /// The backend's name, as `GET /v1/admin/store` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            BackendStats::Sled { .. } => "sled",
            BackendStats::Redis { .. } => "redis",
        }
    }
}
