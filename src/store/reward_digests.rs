//! The keyed digests a run of rewards needs, made by the store handle on the caller's thread
//! (`SledStore::apply_rewards`) and carried to the writer in `Command::ApplyRewards`.
//!
//! The writer is one thread and bounds bulk ingest; each reward cost it a SipHash of the event
//! id (at-most-once, `event_ids`) and, for a unit, of the unit's sticky key (the sticky table's
//! slot, `sticky_table`) three times: for its prefetch, its read, and the table's update at
//! commit. None of that needs anything the writer owns but the digest key, so the handle
//! hashes once per op and the writer uses what it is given.
//!
//! The digests carry the [`Digester`] that made them. The key is fixed for a store's life (it
//! is made once and kept in sled, `event_log::digester`), but the writer checks it anyway
//! against its own before using any carried digest ([`RewardDigests::for_writer`]): a handle
//! that read the table of an earlier open, or a future path that replaces the key, costs a
//! recompute, never a wrong digest.

use super::event_ids::Digester;
use super::keys::{self, KIND_STICKY};
use super::types::{RewardOp, RewardTarget};

/// The digests of one op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpDigests {
    /// The digest of (experiment, event id): `Digester::digest`.
    pub event_id: u64,
    /// A unit target's sticky key (`keys::epoch_key(KIND_STICKY, ..)`) and its digest
    /// (`Digester::digest_bytes`); none for a token.
    pub sticky: Option<(Vec<u8>, u64)>,
}

/// The digests of a run of ops, one [`OpDigests`] per op in order, and the key they were made
/// with.
#[derive(Debug, Clone)]
pub struct RewardDigests {
    digester: Digester,
    ops: Vec<OpDigests>,
}

impl RewardDigests {
    /// Digests every op of `ops` with `digester`.
    pub fn of(digester: Digester, ops: &[RewardOp]) -> Self {
        RewardDigests {
            digester,
            ops: digest_ops(&digester, &digester, ops),
        }
    }

    /// Test hook: digests that claim `digester` whatever made them, to show what a writer
    /// trusting them would do.
    #[cfg(test)]
    pub fn forged(digester: Digester, ops: Vec<OpDigests>) -> Self {
        RewardDigests { digester, ops }
    }

    /// The per-op digests, if they were made for exactly `ops` with the writer's keys (the
    /// event ids' `events` and the sticky table's `sticky`, one key in every store);
    /// otherwise made again here with those.
    pub fn for_writer(
        self,
        events: &Digester,
        sticky: &Digester,
        ops: &[RewardOp],
    ) -> Vec<OpDigests> {
        if self.digester == *events && self.digester == *sticky && self.ops.len() == ops.len() {
            self.ops
        } else {
            digest_ops(events, sticky, ops)
        }
    }
}

/// Each op's event id digested with `events`, and its unit's sticky key with `sticky`.
fn digest_ops(events: &Digester, sticky: &Digester, ops: &[RewardOp]) -> Vec<OpDigests> {
    ops.iter()
        .map(|op| OpDigests {
            event_id: events.digest(&op.epoch.experiment, &op.event_id),
            sticky: match &op.target {
                RewardTarget::Unit(unit) => {
                    let key = keys::epoch_key(KIND_STICKY, &op.epoch, unit);
                    let digest = sticky.digest_bytes(&key);
                    Some((key, digest))
                }
                RewardTarget::Token { .. } => None,
            },
        })
        .collect()
}

/// A new unit's sticky-key digest, made by the handle for its own lookup
/// (`SledStore::insert_sticky`) and carried in `Command::InsertSticky`, so that the writer's
/// read and write of the unit do not hash the key again.
#[derive(Debug, Clone, Copy)]
pub struct KeyDigest {
    digester: Digester,
    digest: u64,
}

impl KeyDigest {
    /// `digest`: the key's, made with `digester`.
    pub fn new(digester: Digester, digest: u64) -> Self {
        KeyDigest { digester, digest }
    }

    /// The digest, if made with the sticky table's `sticky` key; otherwise made again with
    /// it from `key`.
    pub fn for_writer(self, sticky: &Digester, key: &[u8]) -> u64 {
        if self.digester == *sticky {
            self.digest
        } else {
            sticky.digest_bytes(key)
        }
    }
}

#[cfg(test)]
#[path = "reward_digests_tests.rs"]
mod tests;
