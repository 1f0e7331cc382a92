//! Rebuilding posterior snapshots from durable state, and acting on the stopping rule.
//!
//! A winner is declared here, the first time a rebuilt snapshot's verdict says so: the
//! decision (time, winner, the numbers that justified it, the rule) is written durably before
//! anybody acts on it, the store keeps the first decision forever, and it is logged.

use std::sync::Arc;

use super::live::{LiveExperiment, Snapshot};
use super::{Engine, EngineError};
use crate::store::{Decision, DecisionRule};

impl Engine {
    /// A snapshot of `live` built from the store's durable state now, installed for the
    /// assign path. Records a stopping decision if the rule declares one.
    pub(crate) async fn rebuild(
        &self,
        live: &LiveExperiment,
        now_ms: u64,
    ) -> Result<Arc<Snapshot>, EngineError> {
        let counters = self.store.counters(&live.epoch).await?;
        let info = self.store.epoch_info(&live.epoch).await?;
        let histograms = self.delay_histograms(live).await?;
        let build = |info| {
            Snapshot::build_delayed(
                &live.spec,
                &live.retired,
                &counters,
                histograms.as_ref().map(|h| (h, Some(&live.delay_laws))),
                info,
                now_ms,
            )
        };
        let mut snapshot = build(info);
        let halts = self.check_guardrails(live, &snapshot, now_ms).await?;
        // A halted arm is never declared the winner: it would be exploited.
        if let Some((arm, prob_best, expected_loss)) = snapshot
            .new_winner(&live.spec)
            .filter(|(arm, ..)| !super::halts::stops(&live.spec, &halts, *arm))
        {
            let decision =
                self.decision_record(live, &snapshot, arm, prob_best, expected_loss, now_ms);
            let held = self.store.record_decision(&live.epoch, decision).await?;
            tracing::info!(
                experiment = %live.epoch.experiment,
                revision = live.epoch.revision,
                winner = %held.variant,
                decided_ms = held.decided_ms,
                "stopping rule declared a winner"
            );
            let mut info = snapshot.info.clone();
            info.decision = Some(held);
            snapshot = build(info);
        }
        super::halts::apply(live, &mut snapshot, halts);
        self.note_conclusion(live, &snapshot, now_ms).await?;
        let snapshot = Arc::new(snapshot);
        live.install(snapshot.clone());
        Ok(snapshot)
    }

    /// The epoch's delay histograms, unless `reward.delay` is `off` (then they are not read).
    async fn delay_histograms(
        &self,
        live: &LiveExperiment,
    ) -> Result<Option<std::collections::HashMap<String, crate::store::DelayHistograms>>, EngineError>
    {
        if live.spec.reward.delay.base().is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.delay_histograms(&live.epoch).await?))
    }

    /// Rebuilds the snapshot if it is stale and nobody else is on it. A store failure keeps
    /// the old snapshot: allocation degrades to slightly stale, not down.
    pub(crate) async fn refresh_if_stale(&self, live: &LiveExperiment, now_ms: u64) {
        if !live.claim_refresh(now_ms) {
            return;
        }
        if let Err(error) = self.rebuild(live, now_ms).await {
            tracing::warn!(experiment = %live.epoch.experiment, %error, "snapshot refresh failed");
            live.abandon_refresh();
        }
    }

    fn decision_record(
        &self,
        live: &LiveExperiment,
        snapshot: &Snapshot,
        arm: usize,
        prob_best: f64,
        expected_loss: f64,
        now_ms: u64,
    ) -> Decision {
        let spec = &live.spec;
        let rule = spec.stopping.as_ref();
        let exposures = spec
            .variants
            .iter()
            .zip(&snapshot.counters)
            .map(|(v, c)| (v.id.as_str().to_owned(), c.exposures))
            .collect();
        Decision {
            // `arm` comes from the verdict over the spec's own arms, so it names a variant.
            variant: spec
                .variants
                .get(arm)
                .map(|v| v.id.as_str().to_owned())
                .unwrap_or_default(),
            decided_ms: now_ms,
            prob_best,
            expected_loss,
            exposures,
            rule: DecisionRule {
                prob_best: rule.map(|r| r.prob_best),
                max_expected_loss: rule.map(|r| r.max_expected_loss),
                min_exposures: rule.map(|r| r.min_exposures),
                min_duration: rule.and_then(|r| r.min_duration).map(|d| d.to_string()),
                on_winner: rule.map(|r| r.on_winner.as_str().to_owned()),
            },
        }
    }
}
