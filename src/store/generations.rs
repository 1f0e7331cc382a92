//! The expire walk of the logs kept in whole generations (`event_log`, `mark_log`): their
//! keys start with `kind · generation due time`, so everything due at `now_ms` is one key
//! range, walked in key order and deleted a value at a time while the pass's budget lasts.
//! What a value holds, and what its expiry undoes, is the log's own (`expire_value` below).

use super::error::StoreError;
use super::keys;
use super::overlay::Txn;

/// Entries of a log value that cost an expire pass one unit of its budget, on top of one unit
/// per value. The budget bounds the sled keys one commit removes (`writer::MAX_BATCH_WEIGHT`);
/// a log value is one key whatever it holds, and its entries only leave memory, so a pass takes
/// ~200 full values (~52,000 ids) rather than 4 values (1,024 ids): an hour of 50,000 events a
/// second expires in ~3,500 commits instead of ~175,000.
pub const ENTRIES_PER_BUDGET_UNIT: usize = 64;

/// Deletes the values of log `kind` whose generation is due at `now_ms`, in key order, while
/// `budget` lasts (one unit per value plus one per [`ENTRIES_PER_BUDGET_UNIT`] entries; whole
/// values only, so a pass may go one value past it). `expire_value` undoes what one value
/// recorded (its key and bytes given) and answers how many entries it held. Answers the
/// entries removed and whether the pass got through everything due.
pub fn expire_due(
    txn: &mut Txn<'_>,
    kind: u8,
    now_ms: u64,
    budget: &mut usize,
    mut expire_value: impl FnMut(&mut Txn<'_>, &[u8], &[u8]) -> Result<usize, StoreError>,
) -> Result<(u64, bool), StoreError> {
    let mut removed = 0;
    let mut after: Option<Vec<u8>> = None;
    let start = [kind];
    let end = keys::due_end(kind, now_ms);
    while let Some((key, value)) = txn.next_value_in(&start, &end, after.as_deref())? {
        if *budget == 0 {
            return Ok((removed, false));
        }
        let entries = expire_value(txn, &key, &value)?;
        removed += entries as u64;
        *budget = budget.saturating_sub(1 + entries / ENTRIES_PER_BUDGET_UNIT);
        txn.remove(key.clone());
        after = Some(key);
    }
    Ok((removed, true))
}
