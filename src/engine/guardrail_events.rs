//! Guardrail events on their way to the store: which metric an event names, and the unit
//! targets resolved to the assignment they count for (see `store::guardrail_events` for how
//! the store keeps them, under the reward rules).

use super::live::LiveExperiment;
use super::{Engine, EngineError};
use crate::spec::PRIMARY_METRIC;
use crate::store::guardrail_events::guardrail_target;
use crate::store::{Epoch, RewardOp, RewardOutcome, RewardTarget};

/// The guardrail metric an event counts for: `None` for the primary reward (no `metric`, or
/// `reward`), the metric's name for one of the experiment's guardrails, and a refusal that
/// names the metric and the experiment otherwise.
pub(super) fn metric_of<'a>(
    live: &'a LiveExperiment,
    metric: Option<&str>,
) -> Result<Option<&'a str>, String> {
    let Some(metric) = metric.filter(|m| *m != PRIMARY_METRIC) else {
        return Ok(None);
    };
    if let Some(guardrail) = live
        .spec
        .guardrails
        .iter()
        .find(|g| g.metric.as_str() == metric)
    {
        return Ok(Some(guardrail.metric.as_str()));
    }
    let known: Vec<String> = live
        .spec
        .guardrails
        .iter()
        .map(|g| format!("'{}'", g.metric))
        .collect();
    let known = if known.is_empty() {
        "it has no guardrails".to_owned()
    } else {
        format!("its guardrails are {}", known.join(", "))
    };
    Err(format!(
        "metric {} is not a guardrail of experiment '{}'; {known} (omit `metric`, or send \
         `reward`, for the primary reward)",
        crate::spec::quoted(metric),
        live.spec.id
    ))
}

impl Engine {
    /// Applies `ops` in one durable store write. A guardrail event of a unit (`main[i]` is
    /// the experiment's epoch) is first resolved to the unit's assignment in that epoch: a
    /// unit with none is `UnitNotAssigned` without reaching the store.
    pub(super) async fn apply_ops(
        &self,
        ops: Vec<RewardOp>,
        main: Vec<Option<Epoch>>,
    ) -> Result<Vec<RewardOutcome>, EngineError> {
        // No guardrail event of a unit (a batch of rewards): nothing to resolve, and no
        // `join_all` of one future per event (past 30 futures it polls them through a
        // `FuturesOrdered`, a task allocation per event).
        if main.iter().all(Option::is_none) {
            if ops.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(self.store.apply_rewards(ops).await?);
        }
        let lookups = ops.iter().zip(&main).map(|(op, main)| async move {
            match (&op.target, main) {
                (RewardTarget::Unit(unit), Some(epoch)) => {
                    Some(self.store.sticky(epoch, unit).await)
                }
                _ => None,
            }
        });
        let found = futures_util::future::join_all(lookups).await;
        let mut decided: Vec<Option<RewardOutcome>> = Vec::with_capacity(ops.len());
        let mut sent = Vec::with_capacity(ops.len());
        for (mut op, found) in ops.into_iter().zip(found) {
            match found {
                None => {
                    decided.push(None);
                    sent.push(op);
                }
                Some(record) => match (record?, &op.target) {
                    (Some(record), RewardTarget::Unit(unit)) => {
                        op.target = guardrail_target(unit, &record);
                        decided.push(None);
                        sent.push(op);
                    }
                    _ => decided.push(Some(RewardOutcome::UnitNotAssigned)),
                },
            }
        }
        let mut applied = if sent.is_empty() {
            Vec::new()
        } else {
            self.store.apply_rewards(sent).await?
        }
        .into_iter();
        Ok(decided
            .into_iter()
            .map(|outcome| {
                outcome
                    .or_else(|| applied.next())
                    .unwrap_or(RewardOutcome::UnitNotAssigned)
            })
            .collect())
    }
}
