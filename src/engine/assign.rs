//! Assignment: which variant a unit sees, counted as an exposure or peeked.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;

use super::live::{LiveExperiment, Snapshot};
use super::token::ClaimsRef;
use super::{Engine, EngineError, Unit};
use crate::metrics::AssignOutcome;
use crate::policy::{self, Mode};
use crate::spec::AssignmentMode;
use crate::store::{StickyLookup, StickyRecord, StoreError};

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
    /// The store could not make an exposure durable, so this answer counts and promises
    /// nothing: the experiment's default variant (or a known sticky unit's variant), no token.
    pub degraded: bool,
    /// When the token's assignment was made (Unix ms): its reward window runs from here.
    /// `None` exactly when `token` is.
    pub issued_ms: Option<u64>,
    /// `exposure: on_render`: the assignment is recorded, and counts as an exposure once the
    /// page confirms it with the token (`Engine::confirm`).
    pub confirm: bool,
    /// This call made the assignment (a new sticky unit or a per-request draw): with
    /// `exposure: on_render` it is new though not `counted` yet, which the metrics must tell
    /// apart from a returning unit's.
    pub fresh: bool,
}

impl Assignment {
    /// An answer without a token (peeks, paused, fallbacks; `Engine::sign` adds one).
    fn untokened(
        experiment: Arc<LiveExperiment>,
        arm: usize,
        propensity: f64,
        counted: bool,
    ) -> Self {
        Self {
            experiment,
            arm,
            token: None,
            propensity,
            counted,
            degraded: false,
            issued_ms: None,
            confirm: false,
            fresh: false,
        }
    }

    /// The answer while the store cannot make an exposure durable: the page still gets a
    /// variant (the experiment's default), and nothing is counted or promised.
    fn degraded_default(experiment: Arc<LiveExperiment>) -> Self {
        let default = experiment.default_arm();
        Self {
            degraded: true,
            ..Self::untokened(experiment, default, 1.0, false)
        }
    }

    /// What this answer did, for the metrics; `count` is what the caller asked for.
    pub fn outcome(&self, count: bool) -> AssignOutcome {
        if self.degraded {
            AssignOutcome::Degraded
        } else if self.counted {
            AssignOutcome::Counted
        } else if self.fresh {
            AssignOutcome::New
        } else if !count {
            AssignOutcome::Peek
        } else if self.experiment.spec.status == crate::spec::Status::Paused {
            AssignOutcome::Paused
        } else {
            AssignOutcome::Returning
        }
    }

    pub fn variant_id(&self) -> &str {
        self.experiment
            .spec
            .variants
            .get(self.arm)
            .map_or("", |v| v.id.as_str())
    }

    /// The variant's payload, already encoded as JSON (`None` serialises as `null`).
    pub fn payload(&self) -> Option<&serde_json::value::RawValue> {
        self.experiment.payload_json(self.arm)
    }

    /// When the token stops crediting rewards (Unix ms): the assignment's time plus the reward
    /// window. A browser client caches a sticky assignment and its token until then.
    pub fn reward_until_ms(&self) -> Option<u64> {
        let window_ms = self.experiment.spec.reward.window.as_millis();
        self.issued_ms
            .map(|issued| issued.saturating_add(window_ms))
    }

    /// Whether the unit keeps this variant on later calls (`assignment: sticky`).
    pub fn sticky(&self) -> bool {
        self.experiment.spec.assignment == AssignmentMode::Sticky
    }
}

/// The answer of [`Engine::assign_many`]: the assignments made, in the order listed, and the
/// listed experiments that could not be served.
#[derive(Debug)]
pub struct AssignMany {
    pub assignments: Vec<Assignment>,
    pub refused: Vec<Refused>,
}

/// A listed experiment that got no assignment, why, and what the page should render instead.
#[derive(Debug)]
pub struct Refused {
    pub experiment: String,
    pub error: EngineError,
    /// The experiment's default variant when it exists but is not served here; `None` when
    /// nothing is known about it (the page keeps its own built-in default).
    pub fallback: Option<Fallback>,
}

/// The variant a page renders for an experiment it could not be assigned in.
#[derive(Debug)]
pub struct Fallback {
    pub variant: String,
    pub payload: Option<Box<serde_json::value::RawValue>>,
}

impl Engine {
    /// Assigns `unit` in each listed experiment (all served experiments when `None`), in order.
    ///
    /// A listed experiment that cannot be served (unknown, a draft) does not cost the page its
    /// other assignments: it becomes a [`Refused`] entry beside them. A store failure still
    /// fails the whole call (it is no property of one experiment).
    #[tracing::instrument(level = "debug", name = "engine.assign_many", skip_all, fields(count, listed = experiments.map(<[String]>::len)))]
    pub async fn assign_many(
        &self,
        unit: &Unit,
        experiments: Option<&[String]>,
        count: bool,
    ) -> Result<AssignMany, EngineError> {
        let mut refused = Vec::new();
        let live: Vec<_> = match experiments {
            Some(ids) => ids
                .iter()
                .filter_map(|id| match self.served(id) {
                    Ok(live) => Some(live),
                    Err(error) => {
                        refused.push(self.refusal(id, error));
                        None
                    }
                })
                .collect(),
            None => self.catalog().served().cloned().collect(),
        };
        let futures = live.into_iter().map(|exp| self.assign_in(exp, unit, count));
        let assignments = futures_util::future::join_all(futures)
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(AssignMany {
            assignments,
            refused,
        })
    }

    /// What the page should know about an experiment it listed but cannot be assigned in.
    fn refusal(&self, id: &str, error: EngineError) -> Refused {
        let fallback = match &error {
            EngineError::Draft(_) => self.catalog().get(id).and_then(|live| {
                let arm = live.default_arm();
                Some(Fallback {
                    variant: live.spec.variants.get(arm)?.id.as_str().to_owned(),
                    payload: live.payload_json(arm).map(ToOwned::to_owned),
                })
            }),
            EngineError::NotInEnvironment { .. } => self.catalog().elsewhere(id).and_then(|spec| {
                let variant = spec.variant_index(spec.default_variant.as_str())?;
                let variant = spec.variants.get(variant)?;
                Some(Fallback {
                    variant: variant.id.as_str().to_owned(),
                    payload: serde_json::value::to_raw_value(&variant.payload).ok(),
                })
            }),
            _ => None,
        };
        Refused {
            experiment: id.to_owned(),
            error,
            fallback,
        }
    }

    /// Assigns `unit` in one experiment.
    #[tracing::instrument(
        level = "debug",
        name = "engine.assign",
        skip_all,
        fields(experiment, count)
    )]
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
        let answer = self.decide_and_store(live, unit, count).await?;
        if let Some(metrics) = &answer.experiment.metrics {
            metrics.assigned(answer.arm, answer.outcome(count));
        }
        Ok(answer)
    }

    async fn decide_and_store(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        count: bool,
    ) -> Result<Assignment, EngineError> {
        let now_ms = self.clock.now_ms();
        self.refresh_if_stale(&live, now_ms).await;
        let snapshot = live.snapshot().clone();
        let mode = live.mode(&snapshot);
        let mut stuck_on_retired = None;
        // The store's read was skipped (`StickyLookup::Unseen`): the insert below answers the
        // record the unit holds, if any.
        let mut insert_first = false;
        if let (
            AssignmentMode::Sticky,
            Mode::Adaptive | Mode::Exploit { .. } | Mode::Fixed { .. },
        ) = (live.spec.assignment, mode)
        {
            // One atomic load. While the store fails, a new unit cannot be made durable, and
            // no answer promises anything (see `Assignment::degraded`).
            let writable = self.store.writable();
            let ledger = &live.assignment_epoch;
            // Only a call that will store an assignment may skip the read: a peek writes
            // nothing, and a failing store still answers a known unit's variant.
            let lookup = if count && writable {
                self.store.sticky_cached(ledger, unit.as_str())
            } else {
                StickyLookup::Read
            };
            let held = match lookup {
                StickyLookup::Known(record) => Ok(Some(record)),
                StickyLookup::Unseen => {
                    insert_first = true;
                    Ok(None)
                }
                StickyLookup::Read => self.store.sticky(ledger, unit.as_str()).await,
            };
            // A known unit keeps its variant: no draw needed. One stuck to a retired variant
            // is re-assigned below, like a new unit.
            stuck_on_retired = match held {
                Ok(Some(record)) if on_active_arm(&live, &snapshot, &record) => {
                    return Ok(self.answer_stored(live, unit, mode, &record, None, !writable));
                }
                Ok(Some(record)) => Some(record.variant),
                Ok(None) => None,
                // A page never breaks on the store.
                Err(error) => return Ok(degraded_on(&error, live)),
            };
            if !writable {
                return Ok(Assignment::degraded_default(live));
            }
        }
        let past_burn_in = super::burn_in::ended_since_snapshot(&live, &snapshot, mode);
        let arms = past_burn_in
            .as_ref()
            .map_or(&snapshot.arms[..], |(arms, _)| &arms[..]);
        let decision = match policy::decide(
            mode,
            live.params(),
            arms,
            &snapshot.shares,
            &mut rand::rng(),
        ) {
            Ok(decision) => decision,
            Err(error) => {
                if insert_first
                    && let Some(answer) = self.skipped_read(&live, &snapshot, unit, mode).await
                {
                    return Ok(answer);
                }
                // Serving the default beats failing the page; the log says why.
                tracing::error!(experiment = %live.epoch.experiment, %error, "policy failed; serving the default variant");
                let default = live.default_arm();
                return Ok(Assignment::untokened(live, default, 1.0, false));
            }
        };
        let counted = count && decision.counted;
        // Not reached (every sticky mode that reads counts), but a call that does not insert
        // answers what the skipped read would have found, as before.
        if !counted
            && insert_first
            && let Some(answer) = self.skipped_read(&live, &snapshot, unit, mode).await
        {
            return Ok(answer);
        }
        if !counted {
            // Paused, or a peek: show what the unit would get, count and promise nothing.
            return Ok(Assignment::untokened(
                live,
                decision.arm,
                decision.propensity,
                false,
            ));
        }
        let variant = live.spec.variants[decision.arm].id.as_str();
        let mut tally = live.tally(&snapshot, now_ms);
        if let Some((_, allocation)) = past_burn_in {
            tally.allocation = allocation;
        }
        match live.spec.assignment {
            AssignmentMode::PerRequest => {
                // With on_render the draw is counted in the ledger (its "assigned" tally) and
                // the token carries the allocation of the moment, which its confirmation
                // credits to the expected exposures (`exposure`).
                let on_assign = super::exposure::counts_on_assign(&live);
                let carried = (!on_assign).then(|| tally.allocation.clone());
                if !self
                    .store
                    .count_exposure(&live.assignment_epoch, variant, tally)
                {
                    // Not counted, so no token: a reward could otherwise outrun exposures.
                    return Ok(Assignment::degraded_default(live));
                }
                if on_assign {
                    snapshot.fresh.record(decision.arm);
                }
                let mut answer =
                    Assignment::untokened(live, decision.arm, decision.propensity, on_assign);
                self.sign(&mut answer, unit, now_ms, carried.as_deref());
                answer.confirm = !on_assign;
                answer.fresh = true;
                Ok(answer)
            }
            AssignmentMode::Sticky => {
                // Built again for the rare retry below rather than cloned for every new unit
                // (the variant's `String` is an allocation per unit).
                let new_record = || StickyRecord {
                    variant: variant.to_owned(),
                    assigned_ms: now_ms,
                    propensity: decision.propensity,
                    reward: None,
                    rewarded_ms: None,
                };
                let record = new_record();
                let ledger = &live.assignment_epoch;
                let allocation = tally.allocation.clone();
                let stored = match stuck_on_retired {
                    None if insert_first => {
                        // The insert answers the record the unit already holds; one on an
                        // inactive arm moves as if the read had found it. (A `Tally` clone
                        // is a reference-count bump.)
                        let retry_tally = tally.clone();
                        match self
                            .store
                            .insert_sticky(ledger, unit.as_str(), record, tally)
                            .await
                        {
                            Ok((held, false)) if !on_active_arm(&live, &snapshot, &held) => {
                                self.move_from(
                                    ledger,
                                    unit,
                                    &held.variant,
                                    new_record(),
                                    retry_tally,
                                )
                                .await
                            }
                            other => other,
                        }
                    }
                    None => {
                        self.store
                            .insert_sticky(ledger, unit.as_str(), record, tally)
                            .await
                    }
                    Some(retired) => self.move_from(ledger, unit, &retired, record, tally).await,
                };
                match stored {
                    Ok((record, inserted)) => {
                        let on_assign = super::exposure::counts_on_assign(&live);
                        if inserted && on_assign {
                            snapshot.fresh.record(decision.arm);
                        }
                        // The allocation rides in the token of a fresh on_render assignment:
                        // its confirmation credits the split the policy had now.
                        let carried: &[(String, f64)] = if on_assign { &[] } else { &allocation };
                        let fresh = inserted.then_some(carried);
                        Ok(self.answer_stored(live, unit, mode, &record, fresh, false))
                    }
                    // Nothing was acknowledged, so nothing is counted or promised.
                    Err(error) => Ok(degraded_on(&error, live)),
                }
            }
        }
    }

    /// Re-assigns a unit stuck on `retired` (a retired or halted arm) by compare-and-set.
    async fn move_from(
        &self,
        ledger: &crate::store::Epoch,
        unit: &Unit,
        retired: &str,
        record: StickyRecord,
        tally: crate::store::Tally,
    ) -> Result<(StickyRecord, bool), StoreError> {
        let moved = self
            .store
            .reassign_sticky(
                ledger,
                unit.as_str(),
                retired,
                record.clone(),
                tally.clone(),
            )
            .await;
        match moved {
            Ok(Some(outcome)) => Ok(outcome),
            // The record vanished (cannot happen in one epoch); assign afresh.
            Ok(None) => {
                self.store
                    .insert_sticky(ledger, unit.as_str(), record, tally)
                    .await
            }
            Err(error) => Err(error),
        }
    }

    /// For a call that skipped the read (`StickyLookup::Unseen`) but does not insert after all:
    /// the answer that read would have led to when the unit holds a record on an active arm
    /// (or the store fails), `None` when the call goes on as for a new unit.
    async fn skipped_read(
        &self,
        live: &Arc<LiveExperiment>,
        snapshot: &Snapshot,
        unit: &Unit,
        mode: Mode,
    ) -> Option<Assignment> {
        match self
            .store
            .sticky(&live.assignment_epoch, unit.as_str())
            .await
        {
            Ok(Some(record)) if on_active_arm(live, snapshot, &record) => {
                Some(self.answer_stored(live.clone(), unit, mode, &record, None, false))
            }
            Ok(_) => None,
            Err(error) => Some(degraded_on(&error, live.clone())),
        }
    }

    /// The answer for a unit that has a stored assignment: its variant, with the propensity
    /// it was assigned with. Concluded experiments serve their winner to everybody; a unit
    /// stored on another arm gets the winner without a token, since its rewards belong to the
    /// arm it was exposed to (they still resolve by unit). A `degraded` answer (the store
    /// fails) keeps the unit's variant but carries no token. `fresh` is set for the call that
    /// stored the record (`Some`), with the allocation an on_render token carries (empty
    /// otherwise).
    fn answer_stored(
        &self,
        live: Arc<LiveExperiment>,
        unit: &Unit,
        mode: Mode,
        record: &StickyRecord,
        fresh: Option<&[(String, f64)]>,
        degraded: bool,
    ) -> Assignment {
        let inserted = fresh.is_some();
        let on_render = !super::exposure::counts_on_assign(&live);
        let (arm, propensity, with_token) = match (mode, live.spec.variant_index(&record.variant)) {
            (Mode::Fixed { winner }, stored) if stored != Some(winner) => (winner, 1.0, false),
            (_, Some(arm)) => (arm, record.propensity, true),
            // Stored on a variant the spec no longer has: serve the default, promise nothing.
            (_, None) => (live.default_arm(), 1.0, false),
        };
        let mut answer = Assignment::untokened(live, arm, propensity, inserted && !on_render);
        answer.degraded = degraded;
        answer.fresh = inserted;
        if with_token && !degraded {
            let allocation = fresh.filter(|a| on_render && !a.is_empty());
            self.sign(&mut answer, unit, record.assigned_ms, allocation);
            answer.confirm = on_render;
        }
        answer
    }

    /// Gives the answer a token. Only for assignments that are (or were) counted, so that a
    /// reward can never land on an arm without its exposure.
    fn sign(
        &self,
        answer: &mut Assignment,
        unit: &Unit,
        issued_ms: u64,
        allocation: Option<&[(String, f64)]>,
    ) {
        let mut id = [0u8; 12];
        rand::rng().fill(&mut id);
        // 12 bytes are exactly 16 base64 characters: no padding, no allocation.
        let mut id_text = [0u8; 16];
        let written = URL_SAFE_NO_PAD
            .encode_slice(id, &mut id_text)
            .unwrap_or_default();
        let token = self.signer.sign(&ClaimsRef {
            experiment: &answer.experiment.epoch.experiment,
            revision: answer.experiment.epoch.revision,
            variant: answer.variant_id(),
            unit: unit.as_str(),
            issued_ms,
            assignment_id: std::str::from_utf8(&id_text[..written]).unwrap_or_default(),
            propensity: answer.propensity,
            allocation,
        });
        answer.token = Some(token);
        answer.issued_ms = Some(issued_ms);
    }
}

/// Whether the record's arm still gets traffic. A halted arm is inactive in the snapshot: its
/// units move like a retired one's.
fn on_active_arm(live: &LiveExperiment, snapshot: &Snapshot, record: &StickyRecord) -> bool {
    live.spec
        .variant_index(&record.variant)
        .is_some_and(|k| snapshot.arms.get(k).is_some_and(|arm| arm.active))
}

/// The degraded answer for a request the store failed. A failure episode is logged once by the
/// store; anything else (a corrupt record, say) is logged here, since the page hides it.
fn degraded_on(error: &StoreError, live: Arc<LiveExperiment>) -> Assignment {
    if !matches!(error, StoreError::Unavailable(_)) {
        tracing::error!(experiment = %live.epoch.experiment, %error, "store failed; serving the default variant");
    }
    Assignment::degraded_default(live)
}

#[cfg(test)]
#[path = "assign_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "assign_redis_tests.rs"]
mod redis_tests;
