//! `exposure: on_render`: assignments are recorded when handed out and counted as exposures
//! only when the page confirms that the variant was shown (README, "Exposure modes").
//!
//! Layout: the sticky assignments of an on_render experiment live in a ledger epoch beside the
//! counted one (`<id>~assigned`, same revision; `~` cannot occur in an experiment id, so the
//! two never collide). Its counters are the *assigned* counts (and the expected assignments
//! the allocation predicted). A confirmation inserts the unit's assignment into the counted
//! epoch with [`Store::insert_sticky`](crate::store::Store::insert_sticky): set-if-absent, so
//! at most once per unit; the record and its exposure (raw, decayed, expected) in one atomic,
//! durable write before the answer, on every backend, with the audit's "counters = records"
//! holding in both epochs. Rewards resolve against the counted epoch, so an assignment that
//! was never confirmed cannot be rewarded. The window and the allocation credited are
//! `store::rules` ([`rules::confirmation_window_closed`], [`rules::confirmed_allocation`]).
//!
//! With `assignment: per_request` nothing is remembered per unit: the draw counts in the
//! ledger's counters (the *assigned* tally) and its token carries the allocation of the
//! moment. A confirmation sends the token; the store counts its exposure at most once per
//! assignment id, by a confirmation mark written with the exposure in one atomic step
//! ([`Store::confirm_tokens`](crate::store::Store::confirm_tokens),
//! [`rules::judge_confirmation`]). A reward on such a token is credited only if its mark is
//! held (`RewardTarget::Token::confirmed_only`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::live::{LiveExperiment, Snapshot};
use super::token::TokenError;
use super::{Engine, EngineError, Unit};
use crate::spec::{AssignmentMode, Experiment, ExposureMode};
use crate::store::{ConfirmOp, ConfirmOutcome, Epoch, StickyRecord, Tally, rules};

/// Appended to an experiment id to name its on_render assignment ledger.
pub const ASSIGNMENT_LEDGER_SUFFIX: &str = "~assigned";

/// Most confirmations per request.
pub const MAX_CONFIRMATIONS_PER_BATCH: usize = 1_000;

/// Where `spec`'s sticky assignments are kept: `epoch` itself with `on_assign`, the ledger
/// beside it with `on_render`.
pub fn assignment_epoch(spec: &Experiment, epoch: &Epoch) -> Epoch {
    match spec.exposure.mode {
        ExposureMode::OnAssign => epoch.clone(),
        ExposureMode::OnRender => Epoch {
            experiment: format!("{}{ASSIGNMENT_LEDGER_SUFFIX}", epoch.experiment),
            revision: epoch.revision,
        },
    }
}

/// Whether a handed-out assignment is an exposure at once (`exposure: on_assign`).
pub fn counts_on_assign(live: &LiveExperiment) -> bool {
    live.spec.exposure.mode == ExposureMode::OnAssign
}

/// One confirmation: the experiment, and the assign `token` (from a browser or a backend) or,
/// for a backend that keeps no token, the sticky `unit`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfirmation {
    pub experiment: String,
    /// The token of the assign answer that was rendered.
    #[serde(default)]
    pub token: Option<String>,
    /// The unit whose assignment was rendered (without a token; needs the events key).
    #[serde(default)]
    pub unit: Option<String>,
}

/// Why one confirmation was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationRejectionReason {
    /// Not a confirmation object (the detail says what is wrong).
    InvalidConfirmation,
    UnknownExperiment,
    /// The experiment counts exposures when assigned (`exposure: on_assign`): nothing to
    /// confirm.
    NotOnRender,
    /// Neither `token` nor `unit`; or only a `unit` for an `assignment: per_request`
    /// experiment, whose assignments only the token names.
    TokenRequired,
    BadToken,
    /// The token is from another revision than the loaded one.
    StaleRevision,
    /// The unit has no recorded assignment in this revision.
    UnitNotAssigned,
    /// More than `confirm_within` after the assignment (by the server's clock).
    OutsideWindow,
}

/// What happened to a batch of confirmations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"received": 3, "confirmed": 1, "duplicate": 1, "rejected": 1,
    "rejections": [{"index": 2, "reason": "outside_window",
                    "detail": "the confirmation arrived 11m after the assignment; confirm_within is 10m"}]}))]
pub struct ConfirmationReport {
    pub received: usize,
    /// Counted now: each an exposure, durable before this answer.
    pub confirmed: usize,
    /// Assignments confirmed before (a retry, a second render): acknowledged, not counted
    /// again.
    pub duplicate: usize,
    /// Refused, each listed in `rejections` with its reason.
    pub rejected: usize,
    pub rejections: Vec<ConfirmationRejection>,
}

/// One refused confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConfirmationRejection {
    /// Position in the request.
    pub index: usize,
    pub reason: ConfirmationRejectionReason,
    pub detail: String,
}

/// A confirmation that passed every check but the store's at-most-once.
struct Checked {
    live: Arc<LiveExperiment>,
    unit: String,
    record: StickyRecord,
    allocation: Option<Vec<(String, f64)>>,
    /// `assignment: per_request`: the token's assignment id (the at-most-once key), `None`
    /// for a sticky unit.
    assignment_id: Option<String>,
}

type Refusal = (ConfirmationRejectionReason, String);

impl Checked {
    /// What counting this confirmed assignment needs, for a unit and for a token alike: the
    /// tally (the exposure ages from its assignment, and the expected exposures follow the
    /// allocation at the assignment, `rules::confirmed_allocation`), and the snapshot with the
    /// arm's index, for burn-in. The snapshot is loaded before the write, so its counters
    /// cannot include it (see `burn_in`).
    fn counting(&self) -> (Tally, Arc<Snapshot>, Option<usize>) {
        let snapshot = self.live.snapshot().clone();
        let allocation = rules::confirmed_allocation(
            self.allocation.as_deref(),
            &self.record.variant,
            self.record.propensity,
            &snapshot.allocation,
        );
        let tally = Tally {
            now_ms: self.record.assigned_ms,
            half_life_ms: self.live.spec.policy.half_life.map(|h| h.as_millis()),
            allocation: allocation.into(),
        };
        let arm = snapshot
            .variant_ids
            .iter()
            .position(|v| *v == self.record.variant);
        (tally, snapshot, arm)
    }
}

impl Engine {
    /// Whether `confirmation` carries a valid token of its experiment: what lets a browser
    /// confirm without the events key (the token proves the assignment).
    pub fn verify_confirmation_token(&self, confirmation: &RawConfirmation) -> bool {
        confirmation.token.as_deref().is_some_and(|token| {
            self.signer
                .verify(token)
                .is_ok_and(|claims| claims.experiment == confirmation.experiment)
        })
    }

    /// Counts the confirmed exposures of a batch, each at most once per assignment; answers
    /// once every counted one is durable. `items[i]` is `Err(detail)` when item `i` could not
    /// be decoded. Refused while the store takes no writes, so nothing is applied then.
    pub async fn confirm(
        &self,
        items: Vec<Result<RawConfirmation, String>>,
    ) -> Result<ConfirmationReport, EngineError> {
        if !self.store.writable() {
            return Err(EngineError::Store(crate::store::StoreError::Unavailable(
                "the store does not accept writes; nothing was confirmed".into(),
            )));
        }
        let now_ms = self.clock.now_ms();
        let mut report = ConfirmationReport {
            received: items.len(),
            ..ConfirmationReport::default()
        };
        let mut checked = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let outcome = match item {
                Err(detail) => Err((ConfirmationRejectionReason::InvalidConfirmation, detail)),
                Ok(item) => self.check_confirmation(item, now_ms).await?,
            };
            match outcome {
                Ok(ok) => checked.push((index, ok)),
                Err((reason, detail)) => report.reject(index, reason, detail),
            }
        }
        let (tokens, sticky): (Vec<_>, Vec<_>) = checked
            .into_iter()
            .partition(|(_, checked)| checked.assignment_id.is_some());
        let writes = sticky
            .into_iter()
            .map(|(_, checked)| self.count_confirmed(checked));
        for outcome in futures_util::future::join_all(writes).await {
            match outcome? {
                true => report.confirmed += 1,
                false => report.duplicate += 1,
            }
        }
        self.confirm_per_request(tokens, now_ms, &mut report)
            .await?;
        report.rejections.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// Confirms per-request tokens in one store call (see the module docs).
    async fn confirm_per_request(
        &self,
        tokens: Vec<(usize, Checked)>,
        now_ms: u64,
        report: &mut ConfirmationReport,
    ) -> Result<(), EngineError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut arms = Vec::with_capacity(tokens.len());
        let indices: Vec<usize> = tokens.iter().map(|(index, _)| *index).collect();
        let ops: Vec<ConfirmOp> = tokens
            .into_iter()
            .map(|(_, checked)| {
                let (tally, snapshot, arm) = checked.counting();
                let Checked {
                    live,
                    record,
                    assignment_id,
                    ..
                } = checked;
                arms.push(arm.map(|arm| (snapshot, arm)));
                ConfirmOp {
                    epoch: live.epoch.clone(),
                    assignment_id: assignment_id.unwrap_or_default(),
                    variant: record.variant,
                    issued_ms: record.assigned_ms,
                    propensity: record.propensity,
                    now_ms,
                    confirm_within_ms: live.spec.exposure.confirm_within.as_millis(),
                    reward_window_ms: live.spec.reward.window.as_millis(),
                    tally,
                }
            })
            .collect();
        let within: Vec<_> = ops.iter().map(|op| op.confirm_within_ms).collect();
        let late: Vec<_> = ops
            .iter()
            .map(|op| now_ms.saturating_sub(op.issued_ms))
            .collect();
        let outcomes = self.store.confirm_tokens(ops).await?;
        for (k, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                ConfirmOutcome::Confirmed => {
                    report.confirmed += 1;
                    if let Some(Some((snapshot, arm))) = arms.get(k) {
                        snapshot.fresh.record(*arm);
                    }
                }
                ConfirmOutcome::AlreadyConfirmed => report.duplicate += 1,
                // The engine refused late ones before; this is a sweep that passed the mark.
                ConfirmOutcome::OutsideWindow => report.reject(
                    indices[k],
                    ConfirmationRejectionReason::OutsideWindow,
                    format!(
                        "the confirmation arrived {} after the assignment; confirm_within is {}, \
                         so the assignment stays unexposed",
                        human_ms(late[k]),
                        human_ms(within[k])
                    ),
                ),
            }
        }
        Ok(())
    }

    /// Every check of one confirmation that needs no write. A store failure on a unit lookup
    /// fails the batch (`Err`); everything else is the item's own outcome.
    async fn check_confirmation(
        &self,
        item: RawConfirmation,
        now_ms: u64,
    ) -> Result<Result<Checked, Refusal>, EngineError> {
        use ConfirmationRejectionReason as R;
        let Ok(live) = self.loaded(&item.experiment) else {
            return Ok(Err((
                R::UnknownExperiment,
                format!("no experiment '{}' is loaded", item.experiment),
            )));
        };
        if counts_on_assign(&live) {
            return Ok(Err((
                R::NotOnRender,
                format!(
                    "experiment '{}' counts exposures when they are assigned (`exposure: {}`); \
                     there is nothing to confirm",
                    item.experiment, live.spec.exposure.mode
                ),
            )));
        }
        let mut token_assignment = None;
        let (unit, record, allocation) = match (&item.token, &item.unit) {
            (Some(token), unit) => {
                let claims = match self.signer.verify(token) {
                    Ok(claims) => claims,
                    Err(error) => {
                        let detail = match error {
                            TokenError::Malformed => "token is malformed",
                            TokenError::BadSignature => "token signature does not match",
                        };
                        return Ok(Err((R::BadToken, detail.to_owned())));
                    }
                };
                if claims.experiment != item.experiment {
                    return Ok(Err((
                        R::BadToken,
                        format!("token was issued for experiment '{}'", claims.experiment),
                    )));
                }
                if unit.as_ref().is_some_and(|unit| *unit != claims.unit) {
                    return Ok(Err((
                        R::BadToken,
                        "token was issued for a different unit than `unit`".to_owned(),
                    )));
                }
                if claims.revision != live.epoch.revision {
                    return Ok(Err((
                        R::StaleRevision,
                        format!(
                            "token is from revision {}; the experiment is at revision {}",
                            claims.revision, live.epoch.revision
                        ),
                    )));
                }
                let record = StickyRecord {
                    variant: claims.variant,
                    assigned_ms: claims.issued_ms,
                    propensity: claims.propensity,
                    reward: None,
                    rewarded_ms: None,
                };
                if live.spec.assignment == AssignmentMode::PerRequest {
                    token_assignment = Some(claims.assignment_id);
                }
                (claims.unit, record, claims.allocation)
            }
            (None, Some(_)) if live.spec.assignment == AssignmentMode::PerRequest => {
                return Ok(Err((
                    R::TokenRequired,
                    format!(
                        "experiment '{}' assigns per request, so a unit names no single \
                         assignment; confirm with the `token` of the assign answer",
                        item.experiment
                    ),
                )));
            }
            (None, Some(unit)) => {
                let unit = match Unit::parse(unit) {
                    Ok(unit) => unit.as_str().to_owned(),
                    Err(error) => return Ok(Err((R::InvalidConfirmation, error.to_string()))),
                };
                let Some(record) = self.store.sticky(&live.assignment_epoch, &unit).await? else {
                    return Ok(Err((
                        R::UnitNotAssigned,
                        format!(
                            "unit '{unit}' has no assignment in revision {} of '{}'",
                            live.epoch.revision, item.experiment
                        ),
                    )));
                };
                (unit, record, None)
            }
            (None, None) => {
                return Ok(Err((
                    R::TokenRequired,
                    "a confirmation needs the `token` of the assign answer (or, from a \
                     backend with the events key, the sticky `unit`)"
                        .to_owned(),
                )));
            }
        };
        let within = live.spec.exposure.confirm_within;
        if rules::confirmation_window_closed(record.assigned_ms, now_ms, within.as_millis()) {
            let late = crate::spec::HumanDuration::from_std(std::time::Duration::from_millis(
                now_ms.saturating_sub(record.assigned_ms),
            ));
            return Ok(Err((
                R::OutsideWindow,
                format!(
                    "the confirmation arrived {late} after the assignment; confirm_within is \
                     {within}, so the assignment stays unexposed"
                ),
            )));
        }
        Ok(Ok(Checked {
            live,
            unit,
            record,
            allocation,
            assignment_id: token_assignment,
        }))
    }

    /// Inserts one confirmed assignment into the counted epoch; true when this call counted
    /// it, false when it was confirmed before.
    async fn count_confirmed(&self, checked: Checked) -> Result<bool, EngineError> {
        let (tally, snapshot, arm) = checked.counting();
        let Checked {
            live, unit, record, ..
        } = checked;
        let (_, won) = self
            .store
            .insert_sticky(&live.epoch, &unit, record, tally)
            .await?;
        if let (true, Some(arm)) = (won, arm) {
            snapshot.fresh.record(arm);
        }
        Ok(won)
    }
}

/// A span of milliseconds as the spec spells durations (`11m`).
fn human_ms(ms: u64) -> crate::spec::HumanDuration {
    crate::spec::HumanDuration::from_std(std::time::Duration::from_millis(ms))
}

impl ConfirmationReport {
    fn reject(&mut self, index: usize, reason: ConfirmationRejectionReason, detail: String) {
        self.rejected += 1;
        self.rejections.push(ConfirmationRejection {
            index,
            reason,
            detail,
        });
    }
}
