//! The typed epoch facts the store keeps for the engine: the stopping decision and the history
//! points. Every backend stores them as the compact JSON of these types.
//!
//! Fields are declared in alphabetical order on purpose: the engine built both as
//! `serde_json::json!` maps before, which serialise sorted by key, so a record written now has
//! the same bytes as one written then, and old data dirs read unchanged (no format-mark bump).
//! Non-finite numbers serialise as JSON `null` (serde_json's rule, and `json!`'s before), so
//! every float reads `null` back as NaN instead of refusing the record.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// An epoch's stopping decision: the winner, when, the numbers that justified it and the rule
/// that was applied. Recorded once (first write wins, forever; see [`super::Store::record_decision`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// The engine's clock when the rule declared the winner.
    pub decided_ms: u64,
    /// The winner's expected loss at that moment.
    #[serde(deserialize_with = "f64_or_nan")]
    pub expected_loss: f64,
    /// Exposures of every arm of the spec at that moment, by variant id.
    pub exposures: BTreeMap<String, u64>,
    /// The winner's P(best) at that moment.
    #[serde(deserialize_with = "f64_or_nan")]
    pub prob_best: f64,
    /// The experiment's `stopping:` rule as it was applied.
    pub rule: DecisionRule,
    /// The declared winner.
    pub variant: String,
}

/// The `stopping:` rule a [`Decision`] applied (every field absent when the spec had none).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionRule {
    pub max_expected_loss: Option<f64>,
    /// The spec's `min_duration`, as the analyst wrote it (e.g. `7d`).
    pub min_duration: Option<String>,
    pub min_exposures: Option<u64>,
    /// `exploit` or `report`.
    pub on_winner: Option<String>,
    pub prob_best: Option<f64>,
}

/// One snapshot of an epoch's arms, stored per history interval. The time is the point's
/// identity: storing another point at the same `at_ms` replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryPoint {
    pub at_ms: u64,
    pub arms: Vec<HistoryArm>,
}

/// One arm of a [`HistoryPoint`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryArm {
    /// `null` where none was computed (a retired arm).
    #[serde(deserialize_with = "f64_or_nan")]
    #[schema(value_type = Option<f64>)]
    pub expected_loss: f64,
    pub exposures: u64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub posterior_mean: f64,
    /// `null` where none was computed (a retired arm; points stored by earlier builds say 0).
    #[serde(deserialize_with = "f64_or_nan")]
    #[schema(value_type = Option<f64>)]
    pub prob_best: f64,
    /// R: summed rewards.
    #[serde(deserialize_with = "f64_or_nan")]
    pub rewards: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub traffic_share: f64,
    pub variant: String,
}

/// The spec an epoch was served under, kept by the store so that the epoch's numbers can be
/// recomputed as they were after the folder moved on: a revision bump leaves an earlier
/// revision with its own variants, priors and stopping rule, and a retired arm keeps the prior
/// it was counted under. Written by the engine at every load that changes it (last write wins:
/// within an epoch only compatible edits happen, and they apply to the whole epoch's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSpec {
    /// The experiment document last served in the epoch, as `Experiment::to_document` writes
    /// it (the engine reads it back with `spec::parse_experiment`: one reader, one set of
    /// rules).
    pub document: serde_json::Value,
    /// The prior every variant served in the epoch was last counted under, by variant id:
    /// its own, else the experiment's at that time. Variants the document no longer lists
    /// (retired ones) keep theirs here.
    pub priors: BTreeMap<String, ArmPrior>,
}

/// Beta prior parameters of one arm, as an [`EpochSpec`] keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmPrior {
    pub alpha: f64,
    pub beta: f64,
}

/// What a backend stores of a [`HistoryPoint`]: the arms only, since the time is in the key.
#[derive(Serialize)]
pub(crate) struct StoredHistoryRef<'a> {
    pub arms: &'a [HistoryArm],
}

/// Inverse of [`StoredHistoryRef`].
#[derive(Deserialize)]
pub(crate) struct StoredHistory {
    pub arms: Vec<HistoryArm>,
}

pub(super) fn f64_or_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            decided_ms: 1_700_000_000_000,
            expected_loss: 0.0004,
            exposures: [("bold".to_owned(), 900), ("control".to_owned(), 880)].into(),
            prob_best: 0.97,
            rule: DecisionRule {
                max_expected_loss: Some(0.001),
                min_duration: Some("7d".to_owned()),
                min_exposures: Some(100),
                on_winner: Some("exploit".to_owned()),
                prob_best: Some(0.95),
            },
            variant: "bold".to_owned(),
        }
    }

    #[test]
    fn a_decision_has_the_bytes_the_untyped_engine_wrote() {
        // What `engine::refresh` built with `json!` before the store was typed.
        let untyped = serde_json::json!({
            "variant": "bold",
            "decided_ms": 1_700_000_000_000u64,
            "prob_best": 0.97,
            "expected_loss": 0.0004,
            "exposures": {"control": 880, "bold": 900},
            "rule": {
                "prob_best": 0.95,
                "max_expected_loss": 0.001,
                "min_exposures": 100,
                "min_duration": "7d",
                "on_winner": "exploit",
            },
        });
        let typed = serde_json::to_vec(&decision()).unwrap();
        assert_eq!(typed, untyped.to_string().into_bytes());
        assert_eq!(
            serde_json::from_slice::<Decision>(&typed).unwrap(),
            decision()
        );
    }

    #[test]
    fn a_history_point_has_the_bytes_the_untyped_engine_wrote() {
        let untyped = serde_json::json!({"arms": [{
            "variant": "a",
            "exposures": 10,
            "rewards": 2.5,
            "posterior_mean": 0.25,
            "prob_best": 0.5,
            "expected_loss": f64::NAN,
            "traffic_share": 0.5,
        }]});
        let arms = vec![HistoryArm {
            expected_loss: f64::NAN,
            exposures: 10,
            posterior_mean: 0.25,
            prob_best: 0.5,
            rewards: 2.5,
            traffic_share: 0.5,
            variant: "a".to_owned(),
        }];
        let typed = serde_json::to_vec(&StoredHistoryRef { arms: &arms }).unwrap();
        assert_eq!(typed, untyped.to_string().into_bytes());
        let read: StoredHistory = serde_json::from_slice(&typed).unwrap();
        assert!(
            read.arms[0].expected_loss.is_nan(),
            "null reads back as NaN"
        );
        assert_eq!(read.arms[0].variant, "a");
    }
}
