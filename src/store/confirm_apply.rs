//! The sled side of per-request token confirmations (`confirmations`): the mark's encoding,
//! the write a confirmation makes (evaluated by the writer thread against a [`Txn`], like
//! every write in `apply`), and the lookups rewards and exports need. What each confirmation
//! decides is `rules::judge_confirmation`.

use super::confirmations::{ConfirmOp, ConfirmOutcome, TokenConfirmation};
use super::error::StoreError;
use super::keys::{self, KIND_CONFIRM_MARK, put_varint, take_varint, utf8};
use super::overlay::Txn;
use super::rules;
use super::types::Epoch;

/// Layout: retained_until_ms varint · issued_ms varint · propensity f64 · confirmed_ms varint ·
/// variant (rest).
pub fn encode_mark(mark: &TokenConfirmation) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + mark.variant.len());
    put_varint(&mut out, mark.retained_until_ms);
    put_varint(&mut out, mark.issued_ms);
    out.extend_from_slice(&mark.propensity.to_be_bytes());
    put_varint(&mut out, mark.confirmed_ms);
    out.extend_from_slice(mark.variant.as_bytes());
    out
}

/// Inverse of [`encode_mark`], for the mark of `assignment_id`.
pub fn decode_mark(assignment_id: &str, bytes: &[u8]) -> Result<TokenConfirmation, StoreError> {
    let (retained_until_ms, rest) = take_varint(bytes)?;
    let (issued_ms, rest) = take_varint(rest)?;
    let Some((propensity, rest)) = rest.split_first_chunk::<8>() else {
        return Err(keys::corrupt("confirmation mark is truncated"));
    };
    let (confirmed_ms, rest) = take_varint(rest)?;
    Ok(TokenConfirmation {
        assignment_id: assignment_id.to_owned(),
        variant: utf8(rest, "confirmed variant id")?,
        issued_ms,
        propensity: f64::from_be_bytes(*propensity),
        confirmed_ms,
        retained_until_ms,
    })
}

/// The key of one assignment's confirmation mark.
pub fn mark_key(epoch: &Epoch, assignment_id: &str) -> Vec<u8> {
    keys::epoch_key(KIND_CONFIRM_MARK, epoch, assignment_id)
}

/// Whether the token assignment `assignment_id` of `epoch` was confirmed (its mark is held).
pub fn is_confirmed(txn: &Txn<'_>, epoch: &Epoch, assignment_id: &str) -> Result<bool, StoreError> {
    Ok(txn.get(&mark_key(epoch, assignment_id))?.is_some())
}

/// Applies confirmations in order, each seeing the ones before it.
pub fn confirm_tokens(
    txn: &mut Txn<'_>,
    ops: &[ConfirmOp],
) -> Result<Vec<ConfirmOutcome>, StoreError> {
    ops.iter().map(|op| confirm_token(txn, op)).collect()
}

/// Reads what `rules::judge_confirmation` needs and writes what it decides: the mark (listed in
/// the expiry index) and one per-request exposure of the token's variant, in one request, so
/// the audit's "counters = records" holds (a confirmed exposure is a per-request exposure).
fn confirm_token(txn: &mut Txn<'_>, op: &ConfirmOp) -> Result<ConfirmOutcome, StoreError> {
    let key = mark_key(&op.epoch, &op.assignment_id);
    let marked = txn.get(&key)?.is_some();
    let retained_until_ms = match rules::judge_confirmation(op, marked, txn.expired_through()) {
        Ok(until) => until,
        Err(outcome) => return Ok(outcome),
    };
    let mark = TokenConfirmation {
        assignment_id: op.assignment_id.clone(),
        variant: op.variant.clone(),
        issued_ms: op.issued_ms,
        propensity: op.propensity,
        confirmed_ms: op.now_ms,
        retained_until_ms,
    };
    txn.index_expiry(&key, retained_until_ms);
    txn.put(key, encode_mark(&mark));
    super::apply::count_exposures(txn, &op.epoch, &op.variant, &op.tally, 1)?;
    Ok(ConfirmOutcome::Confirmed)
}

/// Up to `limit` confirmation marks of `epoch` after assignment id `after`, as sled holds them
/// now (the caller waits for `scan::applied_seq`, as for token credit marks).
pub fn mark_page(
    db: &sled::Db,
    epoch: &Epoch,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<TokenConfirmation>, StoreError> {
    super::scan::epoch_range(db, KIND_CONFIRM_MARK, epoch, after)
        .take(limit)
        .map(|item| {
            let (assignment_id, value) = item?;
            decode_mark(&assignment_id, &value)
        })
        .collect()
}

/// The deadline a stored mark holds (for the expiry sweep and the audit).
pub fn stored_deadline(bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(take_varint(bytes)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_mark_round_trips_and_a_truncated_one_is_corrupt() {
        let mark = TokenConfirmation {
            assignment_id: "as-1".to_owned(),
            variant: "bold".to_owned(),
            issued_ms: 1_700_000_000_000,
            propensity: 0.1 + 0.2,
            confirmed_ms: 1_700_000_000_250,
            retained_until_ms: 1_700_700_000_000,
        };
        let bytes = encode_mark(&mark);
        assert_eq!(decode_mark("as-1", &bytes).unwrap(), mark);
        assert_eq!(stored_deadline(&bytes).unwrap(), mark.retained_until_ms);
        assert!(decode_mark("as-1", &bytes[..6]).is_err());
    }

    #[test]
    fn codec_and_mark_layouts_do_not_collide_with_token_marks() {
        // A confirmation mark lives under its own kind byte, beside the credit marks.
        let epoch = Epoch {
            experiment: "e".to_owned(),
            revision: 1,
        };
        assert_ne!(
            mark_key(&epoch, "a1"),
            keys::epoch_key(keys::KIND_TOKEN_MARK, &epoch, "a1")
        );
    }
}
