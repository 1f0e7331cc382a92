//! Guardrail halts: the durable record that an arm was stopped because it harmed a guardrail
//! metric (`guardrails:` in the spec, `stats::guardrail` for the test). One record per epoch,
//! metric and arm; the first one written holds forever (like the stopping decision), so a
//! halt is never undone by a later, calmer look at the data: only a reviewed spec edit
//! (`resume_after_halt` on the variant) lets the arm back in, and it names the halt it
//! overrides.
//!
//! Every backend stores a halt as the compact JSON of [`Halt`] (sled: `KIND_HALT` records;
//! Redis: one field per metric and arm of the epoch's halts hash).

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::keys::{self, KIND_HALT, io, put_varint, take_varint};
use super::overlay::Txn;
use super::records::f64_or_nan;
use super::types::Epoch;

/// Why an arm was halted, with the numbers that justified it at that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Halt {
    /// The guardrail metric the arm harmed.
    pub metric: String,
    /// The halted arm.
    pub variant: String,
    /// The arm it was compared with (`against`, by default the `default_variant`).
    pub against: String,
    /// The engine's clock when the halt was decided; a `resume_after_halt` names it.
    pub halted_ms: u64,
    /// `lower_is_better` or `higher_is_better`.
    pub direction: String,
    /// The guardrail's δ: the relative worsening tolerated.
    pub max_relative_change: f64,
    /// The guardrail's `confidence`: the halt needed `prob_worse` at least this.
    pub confidence: f64,
    /// P(the arm's rate is worse than the comparison's by more than δ) at the halt.
    #[serde(deserialize_with = "f64_or_nan")]
    pub prob_worse: f64,
    /// Exposures of the arm and of the comparison arm at the halt.
    pub exposures: u64,
    pub against_exposures: u64,
    /// Guardrail events counted for the arm and for the comparison arm at the halt.
    #[serde(deserialize_with = "f64_or_nan")]
    pub events: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub against_events: f64,
    /// The Beta posteriors of the two guardrail rates the test compared.
    pub posterior: [f64; 2],
    pub against_posterior: [f64; 2],
}

/// The name a halt is kept under within its epoch: one per metric and arm. Metric and variant
/// ids are `[a-z0-9-_]`, so `/` cannot occur in either and the name is unambiguous.
pub fn halt_name(metric: &str, variant: &str) -> String {
    format!("{metric}/{variant}")
}

/// First write wins, per metric and arm: the halt that holds after `proposed` is offered, and
/// whether it is `proposed` (to be written).
pub fn settle_halt(held: Option<Halt>, proposed: Halt) -> (Halt, bool) {
    match held {
        Some(held) => (held, false),
        None => (proposed, true),
    }
}

/// sled: the halt as stored, `seq` the commit that wrote it (varint) then its JSON, so a
/// reader can wait until it is durable.
fn encode(halt: &Halt, seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, seq);
    out.extend_from_slice(&super::codec::json_bytes(halt));
    out
}

fn decode(bytes: &[u8]) -> Result<(Halt, u64), StoreError> {
    let (seq, rest) = take_varint(bytes)?;
    let halt = serde_json::from_slice(rest).map_err(|error| {
        keys::corrupt(&format!(
            "guardrail halt is not what this build writes: {error}"
        ))
    })?;
    Ok((halt, seq))
}

/// sled, in the writer's request: writes `proposed` unless a halt of its metric and arm is
/// held (see [`settle_halt`]); answers the one that holds.
pub(super) fn record_in_txn(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    proposed: Halt,
) -> Result<Halt, StoreError> {
    let key = keys::epoch_key(
        KIND_HALT,
        epoch,
        &halt_name(&proposed.metric, &proposed.variant),
    );
    let held = match txn.get(&key)? {
        Some(bytes) => Some(decode(&bytes)?.0),
        None => None,
    };
    let (halt, won) = settle_halt(held, proposed);
    if won {
        let value = encode(&halt, txn.seq());
        txn.put(key, value);
    }
    Ok(halt)
}

/// sled: every halt of the epoch as sled holds it now, and the newest commit among them.
pub(super) fn scan(db: &sled::Db, epoch: &Epoch) -> Result<(Vec<Halt>, u64), StoreError> {
    let prefix = keys::epoch_key(KIND_HALT, epoch, "");
    let mut halts = Vec::new();
    let mut newest = 0;
    for item in db.scan_prefix(&prefix) {
        let (_, value) = item.map_err(io)?;
        let (halt, seq) = decode(&value)?;
        newest = newest.max(seq);
        halts.push(halt);
    }
    Ok((halts, newest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::halt;

    #[test]
    fn the_first_halt_of_a_metric_and_arm_holds_against_later_ones() {
        let first = halt("refunds", "bold", 10);
        let (held, won) = settle_halt(None, first.clone());
        assert!(won);
        assert_eq!(held, first);
        let (held, won) = settle_halt(Some(first.clone()), halt("refunds", "bold", 99));
        assert!(!won);
        assert_eq!(held.halted_ms, 10);
    }

    #[test]
    fn halts_round_trip_through_json_with_non_finite_numbers_as_nan() {
        let mut record = halt("refunds", "bold", 10);
        record.prob_worse = f64::NAN;
        let text = serde_json::to_string(&record).unwrap();
        let back: Halt = serde_json::from_str(&text).unwrap();
        assert!(back.prob_worse.is_nan());
        assert_eq!(back.variant, "bold");
    }

    #[test]
    fn halt_names_keep_metric_and_arm_apart() {
        assert_eq!(halt_name("refunds", "bold"), "refunds/bold");
        assert_ne!(halt_name("a-b", "c"), halt_name("a", "b-c"));
    }
}
