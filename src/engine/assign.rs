//! Assignment: which variant a unit sees, counted as an exposure or peeked.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;

use super::live::LiveExperiment;
use super::token::Claims;
use super::{Engine, EngineError, Unit};
use crate::policy::{self, Decision, Mode, Reason};
use crate::spec::AssignmentMode;
use crate::store::{StickyRecord, Tally};

/// One experiment's answer for one unit.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub experiment: Arc<LiveExperiment>,
    pub arm: usize,
    /// Signed proof of the assignment for reward events; `None` for uncounted peeks and paused
    /// experiments (there is nothing to reward).
    pub token: Option<String>,
    pub propensity: f64,
    /// Whether this call counted an exposure.
    pub counted: bool,
    pub reason: Reason,
}

impl Assignment {
    pub fn variant_id(&self) -> &str {
        self.experiment
            .spec
            .variants
            .get(self.arm)
            .map_or("", |v| v.id.as_str())
    }

    pub fn payload(&self) -> &serde_json::Value {
        self.experiment
            .spec
            .variants
            .get(self.arm)
            .map_or(&serde_json::Value::Null, |v| &v.payload)
    }
}

/// The store's write context for a counted exposure now: no half-life yet (the spec has none),
/// and the allocation of the current snapshot.
fn tally(live: &LiveExperiment, now_ms: u64) -> Tally {
    let allocation = live
        .spec
        .variants
        .iter()
        .map(|variant| variant.id.as_str().to_owned())
        .zip(live.allocation())
        .collect();
    Tally {
        now_ms,
        half_life_ms: None,
        allocation,
    }
}

impl Engine {
    /// Assigns `unit` in each listed experiment (all served experiments when `None`), in order.
    pub async fn assign_many(
        &self,
        unit: &Unit,
        experiments: Option<&[String]>,
        count: bool,
    ) -> Result<Vec<Assignment>, EngineError> {
        let live = match experiments {
            Some(ids) => ids
                .iter()
                .map(|id| self.served(id))
                .collect::<Result<Vec<_>, _>>()?,
            None => self.catalog().served().cloned().collect(),
        };
        let futures = live.into_iter().map(|exp| self.assign_in(exp, unit, count));
        futures_util::future::join_all(futures)
            .await
            .into_iter()
            .collect()
    }

    /// Assigns `unit` in one experiment.
    pub async fn assign(
        &self,
        experiment: &str,
        unit: &Unit,
        count: bool,
    ) -> Result<Assignment, EngineError> {
        let live = self.served(experiment)?;
        self.assign_in(live, unit, count).await
    }

    async fn assign_in(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        count: bool,
    ) -> Result<Assignment, EngineError> {
        let now_ms = self.clock.now_ms();
        self.refresh_if_stale(&live, now_ms).await;
        let decided = {
            let snapshot = live.snapshot();
            policy::decide(
                live.mode(),
                live.params(),
                &snapshot.arms,
                &snapshot.shares,
                &mut rand::rng(),
            )
        };
        let decision = match decided {
            Ok(decision) => decision,
            Err(error) => {
                // Serving the default beats failing the page; the log says why.
                tracing::error!(experiment = %live.epoch.experiment, %error, "policy failed; serving the default variant");
                let default = live
                    .spec
                    .variant_index(live.spec.default_variant.as_str())
                    .unwrap_or(0);
                return Ok(self.answer(
                    live,
                    unit,
                    Decision {
                        arm: default,
                        propensity: 1.0,
                        counted: false,
                        reason: Reason::Fallback,
                    },
                    now_ms,
                    false,
                    false,
                ));
            }
        };
        if let Mode::Paused { .. } = live.mode() {
            return Ok(self.answer(live, unit, decision, now_ms, false, false));
        }
        match live.spec.assignment {
            AssignmentMode::PerRequest => {
                let counted = count && decision.counted;
                if counted {
                    self.store.count_exposure(
                        &live.epoch,
                        live.spec.variants[decision.arm].id.as_str(),
                        tally(&live, now_ms),
                    );
                }
                Ok(self.answer(live, unit, decision, now_ms, counted, counted))
            }
            AssignmentMode::Sticky => {
                self.assign_sticky(live, unit, decision, now_ms, count)
                    .await
            }
        }
    }

    async fn assign_sticky(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        decision: Decision,
        now_ms: u64,
        count: bool,
    ) -> Result<Assignment, EngineError> {
        if let Some(record) = self.store.sticky(&live.epoch, unit.as_str()).await? {
            return Ok(self.answer_stored(live, unit, decision, &record, false));
        }
        if !count {
            // A peek at a unit never assigned: show what it would get, promise nothing.
            return Ok(self.answer(live, unit, decision, now_ms, false, false));
        }
        let record = StickyRecord {
            variant: live.spec.variants[decision.arm].id.as_str().to_owned(),
            assigned_ms: now_ms,
            propensity: decision.propensity,
            reward: None,
        };
        let (record, inserted) = self
            .store
            .insert_sticky(&live.epoch, unit.as_str(), record, tally(&live, now_ms))
            .await?;
        Ok(self.answer_stored(live, unit, decision, &record, inserted))
    }

    /// The answer for a unit that has a stored assignment. Concluded experiments serve their
    /// winner to everybody; a unit stored on another arm gets the winner without a token, since
    /// its rewards belong to the arm it was exposed to (they still resolve by unit).
    fn answer_stored(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        decision: Decision,
        record: &StickyRecord,
        inserted: bool,
    ) -> Assignment {
        match live.spec.variant_index(&record.variant) {
            Some(arm) if matches!(live.mode(), Mode::Adaptive) || arm == decision.arm => {
                let stored = Decision {
                    arm,
                    propensity: record.propensity,
                    counted: inserted,
                    reason: decision.reason,
                };
                self.answer(live, unit, stored, record.assigned_ms, inserted, true)
            }
            _ => self.answer(live, unit, decision, record.assigned_ms, false, false),
        }
    }

    /// Builds the answer; `with_token` only for assignments that are (or were) counted, so a
    /// reward can never land on an arm without its exposure.
    fn answer(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        decision: Decision,
        issued_ms: u64,
        counted: bool,
        with_token: bool,
    ) -> Assignment {
        let token = with_token.then(|| {
            let mut id = [0u8; 12];
            rand::rng().fill(&mut id);
            self.signer.sign(&Claims {
                experiment: live.epoch.experiment.clone(),
                revision: live.epoch.revision,
                variant: live.spec.variants[decision.arm].id.as_str().to_owned(),
                unit: unit.as_str().to_owned(),
                issued_ms,
                assignment_id: URL_SAFE_NO_PAD.encode(id),
            })
        });
        Assignment {
            experiment: live,
            arm: decision.arm,
            token,
            propensity: decision.propensity,
            counted,
            reason: decision.reason,
        }
    }
}
