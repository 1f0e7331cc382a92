//! Paginated range scans over one epoch's records, for exports and the history route: history
//! points (sticky assignments page through `export_index`, token credit marks through
//! `mark_log::page`), in key order, resumable after the last key of the previous page.
//!
//! Pages read sled directly (not through the writer), so an export of millions of units never
//! stalls assignment traffic behind a long read. Durability is the caller's half of the job:
//! each page reports the newest commit it may contain, and `SledStore` answers only once that
//! commit is on disk (the rule `sticky()` and `history()` follow).

use super::codec;
use super::error::StoreError;
use super::keys::{self, io};
use super::records::{EpochSpec, HistoryPoint};
use super::types::Epoch;

/// The records of `kind` in `epoch` whose tail sorts strictly after `after`, in key order.
/// Every key of one epoch and kind shares the `(kind, epoch)` prefix (see `keys`), so this is
/// one contiguous range of the tree.
pub(super) fn epoch_range<'a>(
    db: &'a sled::Db,
    kind: u8,
    epoch: &Epoch,
    after: Option<&str>,
) -> impl Iterator<Item = Result<(String, sled::IVec), StoreError>> + 'a {
    let prefix = keys::epoch_key(kind, epoch, "");
    let items = match after {
        None => db.scan_prefix(&prefix),
        Some(tail) => {
            let start = keys::epoch_key(kind, epoch, tail);
            db.range((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
        }
    };
    items
        .take_while(move |item| match item {
            Ok((key, _)) => key.starts_with(&prefix),
            // Surface the error rather than ending the page silently.
            Err(_) => true,
        })
        .map(|item| {
            let (key, value) = item.map_err(io)?;
            let (_, _, tail) = keys::parse_epoch_key(&key)?;
            Ok((tail, value))
        })
}

/// The sequence number of the last group commit applied to sled (durable or not yet). Every
/// commit writes it in its own atomic batch, so a read made after a scan is at least the
/// commit of every record that scan saw: once it is durable, so is the whole page.
pub fn applied_seq(db: &sled::Db) -> Result<u64, StoreError> {
    match db.get(keys::META_SEQ).map_err(io)? {
        Some(value) => codec::decode_u64(&value, "commit sequence number"),
        None => Ok(0),
    }
}

/// Up to `limit` of the epoch's history points at or after `since_ms` as sled holds them now
/// (oldest first, or newest first), and the newest commit among them.
pub fn history_page(
    db: &sled::Db,
    epoch: &Epoch,
    since_ms: u64,
    limit: usize,
    newest_first: bool,
) -> Result<(Vec<HistoryPoint>, u64), StoreError> {
    let range = db.range(keys::history_key(epoch, since_ms)..=keys::history_key(epoch, u64::MAX));
    let items: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if newest_first {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut points = Vec::new();
    let mut newest_seq = 0;
    for item in items.take(limit) {
        let (key, value) = item.map_err(io)?;
        let (_, at_ms) = keys::parse_history_key(&key)?;
        let (arms, seq) = codec::decode_history(&value)?;
        newest_seq = newest_seq.max(seq);
        points.push(HistoryPoint { at_ms, arms });
    }
    Ok((points, newest_seq))
}

/// The epoch's spec as sled holds it now, and the commit that wrote it (0 for none).
pub fn epoch_spec(db: &sled::Db, epoch: &Epoch) -> Result<(Option<EpochSpec>, u64), StoreError> {
    match db.get(keys::epoch_spec_key(epoch)).map_err(io)? {
        Some(value) => {
            let (spec, seq) = codec::decode_epoch_spec(&value)?;
            Ok((Some(spec), seq))
        }
        None => Ok((None, 0)),
    }
}
