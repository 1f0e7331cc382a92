//! Persistence behind one interface: sticky assignments, applied event ids, per-arm counters
//! (raw, decayed and expected), each epoch's start and stopping decision, and its history.
//!
//! The engine only sees [`Store`]; `sled` is the embedded default, and a Redis backend can
//! implement the same trait for many replicas. Writes return futures that resolve only once the
//! write is durable (group commit: many requests share one flush).

mod api;
mod apply;
mod audit;
mod audit_report;
mod cache_hint;
mod codec;
mod command;
mod confirm_apply;
mod confirmations;
#[cfg(test)]
pub mod contract;
mod data_dir;
mod decay;
pub mod delay_histograms;
mod digest_build;
mod digest_table;
mod disk;
mod error;
mod event_ids;
mod event_log;
mod expiry;
mod expiry_index;
mod export_index;
mod exposures;
mod generations;
pub mod guardrail_events;
mod halts;
mod health;
mod keys;
mod load;
mod mark_log;
mod migrate;
mod overlay;
mod records;
pub(crate) mod recovery;
mod redis;
mod replica;
mod reward_digests;
#[cfg(test)]
pub mod rule_cases;
pub mod rules;
mod scan;
mod sealed_log;
mod secret_file;
mod select;
mod shared;
mod size_hint;
mod sled;
mod sled_delay;
mod state;
mod sticky_cache;
mod sticky_slots;
mod sticky_table;
mod sticky_writes;
mod table_memory;
#[cfg(test)]
pub(crate) mod test_support;
mod thread_policy;
mod types;
mod unit_log;
mod unit_log_entry;
mod wal;
mod wal_checkpoint;
mod wal_replay;
mod wal_segment;
mod wal_through_sled;
mod wave;
mod writer;
mod writer_apply;
mod writer_state;

pub use self::api::StickyLookup;
pub use self::api::{BackendStats, RedisCommitStats, SecretMaker, Store, StoreStats, TableBytes};
pub use self::audit_report::{AuditReport, CounterMismatch, DelayMismatch, ExpectationMismatch};
pub use self::confirmations::{ConfirmOp, ConfirmOutcome, TokenConfirmation};
pub use self::delay_histograms::DelayHistograms;
/// The sled segment size a data dir must be opened with (tools that open it raw need it).
pub use self::disk::segment_size as sled_segment_size;
pub use self::error::{StoreError, StoreFuture};
/// The set of kept event-id digests and the allocator of the big tables, for the bench that
/// compares the set with the `hashbrown` table it replaced (`benches/digest_table.rs`).
pub use self::event_ids::DigestSet;
pub use self::expiry_index::MAX_RETENTION_LAG_MS;
pub use self::halts::{Halt, halt_name};
pub use self::health::{FailureEpisode, StoreHealth};
pub use self::records::{ArmPrior, Decision, DecisionRule, EpochSpec, HistoryArm, HistoryPoint};
pub use self::recovery::{RECOVERY_BACKOFF_MAX_MS, RECOVERY_BACKOFF_MIN_MS};
pub use self::redis::CommitGather;
pub use self::redis::ReplicaWait;
pub use self::redis::{EXPOSURE_FLUSH_EVERY_MS, RedisOptions, RedisStore, RedisUrlError};
pub use self::replica::ReplicaReport;
pub use self::rules::{MAX_CLOCK_SKEW_MS, TOKEN_MARK_SLACK_MS};
pub use self::select::{StoreConfig, open};
pub use self::sled::{DEFAULT_PAGE_CACHE_MB, SledStore, StoreOptions};
pub use self::sticky_cache::{DEFAULT_STICKY_CACHE_ENTRIES, StickyCacheStats};
pub use self::table_memory::TableMemory;
pub use self::types::{
    ArmCounters, Epoch, EpochInfo, RewardOp, RewardOutcome, RewardTarget, StickyRecord, Tally,
    TokenCredit, TokenCreditPage,
};
pub use self::unit_log::DEFAULT_COMPACT_MIN_ENTRIES;
pub use self::wal::{DEFAULT_CHECKPOINT_BYTES, DEFAULT_SLED_COMMIT_BYTES};
