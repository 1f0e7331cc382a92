//! What a replica knows of its unit rewards' records before their call (`direct`): its
//! cache's record, or, for a unit its cache does not hold (a bulk ingest's rewards, hours
//! after their assignments, mostly), the stored record read just before the call, one
//! pipelined `HMGET` per records shard. The call is sent after this read, in series: one
//! commit is in flight at a time, so the read is a round trip more per commit.
//!
//! Why read at all, when the script reads the records anyway: a reward judged here goes as
//! op `B`'s kind `V` and costs Redis ~27% fewer instructions (`call_judged`); a record read
//! here that changes before the call (another replica's reward or re-assignment) is found by
//! the script, which then judges the reward itself. Nothing read here is trusted.

use super::Shared;
use super::layout::ShardKeys;
use super::rewards::{Job, OpRef};
use crate::store::{Epoch, RewardTarget, StickyRecord};

/// What is known of one reward's record (per op of `open`, in order).
pub enum Held {
    /// A token reward, or the fast path is off, or the read failed.
    Nothing,
    Cached(StickyRecord),
    /// The stored record's text (None: no record).
    Fetched(Option<String>),
}

impl Held {
    pub fn known(&self) -> super::call::Known<'_> {
        use super::call::Known;
        match self {
            Held::Nothing => Known::Nothing,
            Held::Cached(record) => Known::Cached(record),
            Held::Fetched(text) => Known::Fetched(text.as_deref()),
        }
    }
}

/// One records shard's units to read, and where each goes in the answer.
struct ShardRead<'a> {
    epoch: &'a Epoch,
    shard: u32,
    units: Vec<&'a str>,
    at: Vec<usize>,
}

/// What the replica knows of each of `open`'s records: the cache's, else the stored one
/// (read here, in series with the call that follows). With the fast path off
/// (`Shared::judge_rewards`), the cache's alone, as op `B`'s kind `U` has used it.
pub async fn fetch(shared: &Shared, jobs: &[Job], open: &[OpRef]) -> Vec<Held> {
    let judge = shared.judges_rewards();
    let mut held = Vec::with_capacity(open.len());
    let mut reads: Vec<ShardRead<'_>> = Vec::new();
    let mut last = usize::MAX;
    for (index, &(job, at)) in open.iter().enumerate() {
        let op = &jobs[job].ops[at];
        let RewardTarget::Unit(unit) = &op.target else {
            held.push(Held::Nothing);
            continue;
        };
        if let Some(record) = shared.cache.get(&op.epoch, unit) {
            held.push(Held::Cached(record));
            continue;
        }
        held.push(Held::Nothing);
        if !judge {
            continue;
        }
        let shard = super::layout::shard_of(unit);
        let found = match reads.get(last) {
            Some(read) if read.shard == shard && *read.epoch == op.epoch => last,
            _ => match reads
                .iter()
                .position(|read| read.shard == shard && *read.epoch == op.epoch)
            {
                Some(found) => found,
                None => {
                    reads.push(ShardRead {
                        epoch: &op.epoch,
                        shard,
                        units: Vec::new(),
                        at: Vec::new(),
                    });
                    reads.len() - 1
                }
            },
        };
        last = found;
        reads[found].units.push(unit);
        reads[found].at.push(index);
    }
    if reads.is_empty() {
        return held;
    }
    let mut pipe = redis::pipe();
    for read in &reads {
        pipe.cmd("HMGET")
            .arg(ShardKeys::of(read.epoch, read.shard).records)
            .arg(&read.units);
    }
    let answers: Vec<Vec<Option<String>>> = match pipe.query_async(&mut shared.link.get()).await {
        Ok(answers) => answers,
        // The call that follows reads the records itself: without them it is today's call.
        Err(_) => return held,
    };
    #[cfg(test)]
    shared.after_judged_read();
    for (read, records) in reads.iter().zip(answers) {
        for (&index, record) in read.at.iter().zip(records) {
            held[index] = Held::Fetched(record);
        }
    }
    held
}
