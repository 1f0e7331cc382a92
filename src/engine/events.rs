//! Reward events: validation per event, then one durable store write for the whole batch.
//! One bad event never blocks the rest: it is rejected with its index and a reason.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::token::TokenError;
use super::{Engine, EngineError, LiveExperiment, Unit};
use crate::spec::{AssignmentMode, Status};
use crate::store::{Epoch, MAX_CLOCK_SKEW_MS, RewardOp, RewardOutcome, RewardTarget};
use std::sync::Arc;

/// How many revisions before the current one are searched for a unit's sticky record when
/// its conversion finds none in the current revision.
pub const STALE_REVISION_LOOKBACK: u32 = 4;

/// Longest event id accepted, in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 256;

// Its text fields borrow from the request body (a field with a JSON escape is unescaped into
// its own `String`, the only case that allocates): a plain event decoded into three `String`s
// cost three heap allocations per event on the HTTP worker (`benches/load/bulk_cost.sh`),
// and the event lives only as long as the request that carries it. What reaches the store
// (the id, the unit) is copied into the event's op, once. (A plain comment: the doc comment
// is the OpenAPI schema's description.)
/// One event as the pipeline posts it.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEvent<'a> {
    /// The pipeline's idempotency key: an id is applied at most once per experiment.
    #[serde(borrow)]
    #[schema(value_type = String, min_length = 1, max_length = 256)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub experiment: Cow<'a, str>,
    /// Sticky experiments: the unit whose assignment converted. Parsed like assign's `unit`.
    #[serde(default, borrow, deserialize_with = "unit_text")]
    #[schema(value_type = Option<Unit>)]
    pub unit: Option<Cow<'a, str>>,
    /// The token returned by assign; required for per-request experiments.
    #[serde(default, borrow, deserialize_with = "optional_text")]
    #[schema(value_type = Option<String>)]
    pub token: Option<Cow<'a, str>>,
    /// Absent (or `reward`): the experiment's primary reward. Otherwise the name of one of the
    /// experiment's `guardrails:` metrics (refunds, errors): the event counts toward that
    /// guardrail, under the same rules as a reward (idempotent id, window, at most once per
    /// assignment and metric).
    #[serde(default, borrow, deserialize_with = "optional_text")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = "^[a-z0-9_-]+$")]
    pub metric: Option<Cow<'a, str>>,
    /// In [0, 1]; 1 when absent (a conversion).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub reward: Option<f64>,
    /// When the conversion happened: Unix milliseconds or an RFC 3339 string. Checked (not in
    /// the future, not before the assignment) but it decides nothing: the reward window is
    /// measured with the server's clock at arrival (see `store::apply`).
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
}

/// A JSON string field's text: borrowed when the body holds it as it is (no escape), owned
/// when it had to be unescaped (and always from a `serde_json::Value`, which owns its
/// strings). serde's `borrow` alone borrows a `Cow<str>` field but not an `Option<Cow<str>>`
/// one, hence this visitor. Its `expecting` is a `String`'s, so a refusal reads the same
/// (`invalid type: integer `1`, expected a string`).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Cow<'de, str>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(text))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(text))
            }
        }
        deserializer.deserialize_string(Visitor).map(Text)
    }
}

/// An optional text field ([`Text`]): absent and `null` are `None`.
fn optional_text<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|Text(text)| text))
}

/// The `unit` field: text checked by the rule every unit passes ([`Unit::check`]), refused
/// with its words as a [`Unit`] field refused it (without quoting the unit).
fn unit_text<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    let unit = optional_text(deserializer)?;
    if let Some(text) = &unit {
        Unit::check(text).map_err(serde::de::Error::custom)?;
    }
    Ok(unit)
}

/// An event time as a number (Unix ms) or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Millis(u64),
    Rfc3339(String),
}

/// Unix milliseconds or an RFC 3339 `date-time`, for the OpenAPI document.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .description(Some("Unix milliseconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some("RFC 3339, e.g. 2026-01-01T12:00:00Z")),
            )
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

/// Why one event was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    InvalidEvent,
    UnknownExperiment,
    ExperimentNotServed,
    UnitNotAssigned,
    TokenRequired,
    BadToken,
    StaleRevision,
    OutsideWindow,
    RewardOutOfRange,
    TimestampInFuture,
    TimestampBeforeAssignment,
    AlreadyRewarded,
    /// `exposure: on_render`, per request: the token was never confirmed as shown.
    NotConfirmed,
    UnknownMetric,
}

impl RejectionReason {
    pub const ALL: [Self; 14] = [
        Self::InvalidEvent,
        Self::UnknownExperiment,
        Self::ExperimentNotServed,
        Self::UnitNotAssigned,
        Self::TokenRequired,
        Self::BadToken,
        Self::StaleRevision,
        Self::OutsideWindow,
        Self::RewardOutOfRange,
        Self::TimestampInFuture,
        Self::TimestampBeforeAssignment,
        Self::AlreadyRewarded,
        Self::NotConfirmed,
        Self::UnknownMetric,
    ];

    /// The reason's name, as the API reports it (its serde name) and the metrics label it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidEvent => "invalid_event",
            Self::UnknownExperiment => "unknown_experiment",
            Self::ExperimentNotServed => "experiment_not_served",
            Self::UnitNotAssigned => "unit_not_assigned",
            Self::TokenRequired => "token_required",
            Self::BadToken => "bad_token",
            Self::StaleRevision => "stale_revision",
            Self::OutsideWindow => "outside_window",
            Self::RewardOutOfRange => "reward_out_of_range",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::TimestampBeforeAssignment => "timestamp_before_assignment",
            Self::AlreadyRewarded => "already_rewarded",
            Self::NotConfirmed => "not_confirmed",
            Self::UnknownMetric => "unknown_metric",
        }
    }
}

/// Every outcome an event can have, as the metrics label it: applied, duplicate, or the
/// rejection reason.
pub const EVENT_OUTCOMES: [&str; 16] = {
    let mut names = [""; 16];
    names[0] = "applied";
    names[1] = "duplicate";
    let mut k = 0;
    while k < RejectionReason::ALL.len() {
        names[k + 2] = RejectionReason::ALL[k].as_str();
        k += 1;
    }
    names
};

/// An event that passed the checks made before the store: its op, for a guardrail event its
/// experiment's own epoch, and the experiment (for the op's label).
type CheckedEvent = (RewardOp, Option<Epoch>, Arc<LiveExperiment>);

/// What [`Engine::ingest`] keeps of an op sent to the store, to word its outcome: the event
/// id and the target, put in words only for an outcome that is worded (most are applied).
/// Both borrow from the request body where the event did: no copy per event.
type OpLabel<'a> = (Cow<'a, str>, TargetLabel<'a>);

/// What a refusal of `op` after the store names: the event's id (`id`, moved out of the
/// event: the op has its own copy) and its target (a unit in the epoch of `live`, its
/// experiment, also for a guardrail event, whose op names the metric's). `unit`: the event's
/// own `unit`, the op's unit when it names one (a token's unit must match it); copied from
/// the op only for a token without one. The experiment is shared, not its epoch copied.
fn label_of<'a>(
    op: &RewardOp,
    id: Cow<'a, str>,
    unit: Option<Cow<'a, str>>,
    live: Arc<LiveExperiment>,
) -> OpLabel<'a> {
    let target = match &op.target {
        RewardTarget::Unit(op_unit) => {
            TargetLabel::Unit(live, unit.unwrap_or_else(|| Cow::Owned(op_unit.clone())))
        }
        RewardTarget::Token { variant, .. } => TargetLabel::Token(variant.clone()),
    };
    (id, target)
}

/// An op's target as [`Engine::ingest`] words it: a unit, with its epoch (for
/// `stale_revision`, its experiment's), or a token's assignment, by its variant.
enum TargetLabel<'a> {
    Unit(Arc<LiveExperiment>, Cow<'a, str>),
    Token(String),
}

impl TargetLabel<'_> {
    fn unit(&self) -> Option<(&Epoch, &str)> {
        match self {
            TargetLabel::Unit(live, unit) => Some((&live.epoch, unit)),
            TargetLabel::Token(_) => None,
        }
    }
}

impl std::fmt::Display for TargetLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Escaped: the detail is read by people, and a unit is the client's text.
            TargetLabel::Unit(_, unit) => write!(f, "unit {unit:?}"),
            TargetLabel::Token(variant) => {
                write!(f, "the token's assignment (variant '{variant}')")
            }
        }
    }
}

/// Most rejections listed one by one in a response; the rest are only counted (by reason in
/// `rejected_by_reason`, in total in `rejections_omitted`), so 9,000 bad events answer in a few
/// kilobytes rather than megabytes.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// One rejected event, by its position in the batch.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    pub index: usize,
    /// NDJSON only: the 1-based line of the body the event was on (blank lines are not events,
    /// so it can differ from `index + 1`). Set by the HTTP layer, which read the lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: RejectionReason,
    pub detail: String,
}

/// What happened to a batch. Harmless outcomes (`duplicate`, `already_rewarded`) are counted
/// apart from `rejected`, which counts only events that are wrong (broken data, unknown
/// targets, late or stale events), so `all_rejected` tells a pipeline that sends garbage from
/// one that merely retries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"received": 3, "applied": 1, "duplicate": 0, "already_rewarded": 1,
    "rejected": 1, "all_rejected": false, "rejected_by_reason": {"outside_window": 1},
    "rejections": [{"index": 2, "id": "evt-3", "reason": "outside_window",
                    "detail": "the reward arrived after the 7d window"}],
    "rejections_omitted": 0}))]
pub struct EventBatchReport {
    /// Events in the request (NDJSON: non-blank lines).
    pub received: usize,
    pub applied: usize,
    /// Retries of ids applied before: acknowledged, not applied again.
    pub duplicate: usize,
    /// A second conversion of an assignment already credited by another event id: harmless
    /// (a reward counts once per assignment), not applied, not listed in `rejections`.
    pub already_rewarded: usize,
    /// Events refused because something is wrong with them; each has a reason.
    pub rejected: usize,
    /// True when the batch was not empty and every event in it was rejected.
    pub all_rejected: bool,
    /// `rejected`, by reason name.
    pub rejected_by_reason: std::collections::BTreeMap<&'static str, usize>,
    /// The first [`MAX_LISTED_REJECTIONS`] rejections, in batch order.
    pub rejections: Vec<Rejection>,
    /// Rejections counted but not listed.
    pub rejections_omitted: usize,
}

impl Engine {
    /// Applies a batch. `events[i]` is `Err(detail)` when item `i` could not even be decoded.
    #[tracing::instrument(level = "debug", name = "engine.ingest", skip_all, fields(events = events.len()))]
    pub async fn ingest(
        &self,
        events: Vec<Result<RawEvent<'_>, String>>,
    ) -> Result<EventBatchReport, EngineError> {
        let now_ms = self.clock.now_ms();
        let mut report = EventBatchReport {
            received: events.len(),
            ..EventBatchReport::default()
        };
        let mut ops = Vec::with_capacity(events.len());
        // Each op's place in the batch and what a refusal after the store names, in one
        // vector (was two: the places, then the labels collected after the loop).
        let mut labels: Vec<(usize, OpLabel<'_>)> = Vec::with_capacity(events.len());
        let mut guardrail_of: Vec<Option<Epoch>> = Vec::with_capacity(events.len());
        let mut recorder = crate::metrics::EventRecorder::start(events.len());
        let mut experiments = LoadedOnce::default();
        for (index, event) in events.into_iter().enumerate() {
            let live = event
                .as_ref()
                .ok()
                .and_then(|e| experiments.get(self, &e.experiment))
                .cloned();
            if let Some(recorder) = recorder.as_mut() {
                recorder.target(live.as_ref().and_then(|live| live.metrics.clone()));
            }
            let checked = event
                .map_err(|detail| (None, RejectionReason::InvalidEvent, detail))
                .and_then(|event| match self.check_event(&event, live, now_ms) {
                    // The op has copies of the id and unit; the label keeps the event's own.
                    Ok(checked) => Ok((checked, event.id, event.unit)),
                    Err((reason, detail)) => Err((Some(event.id.into_owned()), reason, detail)),
                });
            match checked {
                Ok(((op, main, live), id, unit)) => {
                    labels.push((index, label_of(&op, id, unit, live)));
                    ops.push(op);
                    guardrail_of.push(main);
                }
                Err((id, reason, detail)) => report.reject(index, id, reason, detail),
            }
        }
        let outcomes = self.apply_ops(ops, guardrail_of).await?;
        for (outcome, (index, (id, target))) in outcomes.into_iter().zip(labels) {
            match outcome {
                RewardOutcome::Applied { .. } => {
                    report.applied += 1;
                    if let Some(recorder) = &recorder {
                        recorder.record(index, EVENT_OUTCOMES[0]);
                    }
                }
                RewardOutcome::Duplicate => {
                    report.duplicate += 1;
                    if let Some(recorder) = &recorder {
                        recorder.record(index, EVENT_OUTCOMES[1]);
                    }
                }
                RewardOutcome::UnitNotAssigned => {
                    let earlier = match target.unit() {
                        Some((epoch, unit)) => self.earlier_revision_of(epoch, unit).await?,
                        None => None,
                    };
                    match earlier {
                        Some(revision) => report.reject(
                            index,
                            Some(id.into_owned()),
                            RejectionReason::StaleRevision,
                            format!(
                                "{target} was assigned in revision {revision}; the experiment is \
                                 at revision {}, which starts its data afresh",
                                target.unit().map_or(0, |(epoch, _)| epoch.revision)
                            ),
                        ),
                        None => report.reject(
                            index,
                            Some(id.into_owned()),
                            RejectionReason::UnitNotAssigned,
                            format!(
                                "{target} was never assigned in this experiment's current revision"
                            ),
                        ),
                    }
                }
                RewardOutcome::AlreadyRewarded => {
                    report.already_rewarded += 1;
                    if let Some(recorder) = &recorder {
                        recorder.record(index, RejectionReason::AlreadyRewarded.as_str());
                    }
                }
                RewardOutcome::OutsideWindow => report.reject(
                    index,
                    Some(id.into_owned()),
                    RejectionReason::OutsideWindow,
                    format!("the event arrived after {target}'s reward window closed"),
                ),
                RewardOutcome::NotConfirmed => report.reject(
                    index,
                    Some(id.into_owned()),
                    RejectionReason::NotConfirmed,
                    format!(
                        "{target} was never confirmed as shown (`exposure: on_render`), so it is \
                         no exposure and earns no reward; confirm it with POST /v1/exposures \
                         before its conversion is sent"
                    ),
                ),
                RewardOutcome::TimestampBeforeAssignment => report.reject(
                    index,
                    Some(id.into_owned()),
                    RejectionReason::TimestampBeforeAssignment,
                    format!(
                        "timestamp lies before {target} was assigned (by more than {} s of clock \
                         skew); an event cannot convert an assignment not yet made",
                        MAX_CLOCK_SKEW_MS / 1000
                    ),
                ),
            }
        }
        report.rejections.sort_by_key(|r| r.index);
        if let Some(recorder) = &recorder {
            for rejection in &report.rejections {
                recorder.record(rejection.index, rejection.reason.as_str());
            }
        }
        report.all_rejected = report.received > 0 && report.rejected == report.received;
        if report.rejections.len() > MAX_LISTED_REJECTIONS {
            report.rejections_omitted = report.rejections.len() - MAX_LISTED_REJECTIONS;
            report.rejections.truncate(MAX_LISTED_REJECTIONS);
        }
        Ok(report)
    }

    /// The latest of the [`STALE_REVISION_LOOKBACK`] revisions before `epoch` in which `unit`
    /// has a sticky record: a conversion of it is late (`stale_revision`), not a unit nobody
    /// assigned. Read only for events the store already refused, so it costs nothing on the
    /// path of events that apply; the reads of one event run concurrently.
    async fn earlier_revision_of(
        &self,
        epoch: &Epoch,
        unit: &str,
    ) -> Result<Option<u32>, EngineError> {
        let earliest = epoch
            .revision
            .saturating_sub(STALE_REVISION_LOOKBACK)
            .max(1);
        let revisions: Vec<u32> = (earliest..epoch.revision).rev().collect();
        let reads = revisions.iter().map(|&revision| {
            self.store.sticky(
                &Epoch {
                    experiment: epoch.experiment.clone(),
                    revision,
                },
                unit,
            )
        });
        let found = futures_util::future::join_all(reads).await;
        for (revision, record) in revisions.into_iter().zip(found) {
            if record?.is_some() {
                return Ok(Some(revision));
            }
        }
        Ok(None)
    }

    /// Whether `event` carries a token signed by this server for the event's experiment: the
    /// proof that lets a request without the events key through (`http::auth::EventsPost`).
    /// The rest of the event is checked by [`Engine::ingest`] as for any event.
    pub fn verify_event_token(&self, event: &RawEvent<'_>) -> bool {
        event.token.as_deref().is_some_and(|token| {
            self.signer
                .verify(token)
                .is_ok_and(|claims| claims.experiment == event.experiment)
        })
    }

    /// Everything that can be decided without the store.
    /// The op, and for a guardrail event the experiment's own epoch (the op's is the
    /// metric's, see `store::guardrail_events`).
    /// The op owns copies of the event's id and unit (the event's own borrow from the body).
    /// `live`: the loaded experiment `event.experiment` names (`None`: none is loaded), handed
    /// back with the op.
    fn check_event(
        &self,
        event: &RawEvent<'_>,
        live: Option<Arc<LiveExperiment>>,
        now_ms: u64,
    ) -> Result<CheckedEvent, (RejectionReason, String)> {
        use RejectionReason as R;
        if event.id.is_empty() || event.id.len() > MAX_EVENT_ID_BYTES {
            return Err((
                R::InvalidEvent,
                format!("`id` must be 1 to {MAX_EVENT_ID_BYTES} bytes long"),
            ));
        }
        let live = live.ok_or_else(|| {
            (
                R::UnknownExperiment,
                format!(
                    "no experiment with id {} is loaded",
                    quoted_excerpt(&event.experiment)
                ),
            )
        })?;
        if live.spec.status == Status::Draft {
            return Err((
                R::ExperimentNotServed,
                format!(
                    "experiment '{}' is a draft and has no assignments",
                    event.experiment
                ),
            ));
        }
        let metric = super::guardrail_events::metric_of(&live, event.metric.as_deref())
            .map_err(|detail| (R::UnknownMetric, detail))?;
        let reward = event.reward.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&reward) {
            return Err((
                R::RewardOutOfRange,
                format!("reward {reward} is outside [0, 1]"),
            ));
        }
        let occurred_ms = event
            .timestamp
            .as_ref()
            .map(parse_timestamp)
            .transpose()
            .map_err(|detail| (R::InvalidEvent, detail))?;
        if let Some(occurred_ms) = occurred_ms
            && occurred_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
        {
            return Err((
                R::TimestampInFuture,
                format!(
                    "timestamp lies {} s in the future; at most {} s of clock skew is tolerated",
                    (occurred_ms - now_ms) / 1000,
                    MAX_CLOCK_SKEW_MS / 1000
                ),
            ));
        }
        let mut target = match (&event.token, &event.unit) {
            (Some(token), unit) => {
                let claims = self.signer.verify(token).map_err(|e| {
                    let detail = match e {
                        TokenError::Malformed => "token is malformed",
                        TokenError::BadSignature => "token signature does not match",
                    };
                    (R::BadToken, detail.to_owned())
                })?;
                if claims.experiment != event.experiment {
                    return Err((
                        R::BadToken,
                        format!("token was issued for experiment '{}'", claims.experiment),
                    ));
                }
                if unit.as_ref().is_some_and(|u| *u != claims.unit) {
                    return Err((
                        R::BadToken,
                        "token was issued for a different unit than `unit`".to_owned(),
                    ));
                }
                if claims.revision != live.epoch.revision {
                    return Err((
                        R::StaleRevision,
                        format!(
                            "token is from revision {}; the experiment is at revision {}",
                            claims.revision, live.epoch.revision
                        ),
                    ));
                }
                match live.spec.assignment {
                    AssignmentMode::Sticky => RewardTarget::Unit(claims.unit),
                    AssignmentMode::PerRequest => RewardTarget::Token {
                        assignment_id: claims.assignment_id,
                        variant: claims.variant,
                        issued_ms: claims.issued_ms,
                        propensity: claims.propensity,
                        confirmed_only: !super::exposure::counts_on_assign(&live),
                    },
                }
            }
            (None, Some(unit)) => match live.spec.assignment {
                AssignmentMode::Sticky => RewardTarget::Unit(unit.as_ref().to_owned()),
                AssignmentMode::PerRequest => {
                    return Err((
                        R::TokenRequired,
                        format!(
                            "experiment '{}' assigns per request, so a unit names no single \
                             assignment; send the `token` returned by assign",
                            event.experiment
                        ),
                    ));
                }
            },
            (None, None) => {
                return Err((
                    R::InvalidEvent,
                    "give `unit` (sticky experiments) or `token`".to_owned(),
                ));
            }
        };
        let (epoch, main) = match metric {
            Some(metric) => {
                // The confirmation marks live in the experiment's epoch, not the metric's
                // (see `store::guardrail_events`).
                if let RewardTarget::Token { confirmed_only, .. } = &mut target {
                    *confirmed_only = false;
                }
                (
                    crate::store::guardrail_events::guardrail_epoch(&live.epoch, metric),
                    Some(live.epoch.clone()),
                )
            }
            None => (live.epoch.clone(), None),
        };
        let op = RewardOp {
            epoch,
            event_id: event.id.as_ref().to_owned(),
            target,
            reward,
            occurred_ms,
            now_ms,
            window_ms: live.spec.reward.window.as_millis(),
            half_life_ms: live.spec.policy.half_life.map(|h| h.as_millis()),
        };
        Ok((op, main, live))
    }
}

/// The experiments one batch's events name, each looked up in the loaded set once per run of
/// events naming it rather than once per event: a batch is usually one experiment, and a
/// lookup (the set's snapshot, a SipHash of the id, the `Arc`'s count up and down) was ~700
/// instructions of a bulk event's ~4,900 on the HTTP worker (`benches/load/bulk_cost.sh`).
/// The batch sees one snapshot of an experiment as long as its events keep naming it; an id
/// no experiment has is looked up again each time (the refusals' path).
#[derive(Default)]
struct LoadedOnce {
    last: Option<Arc<LiveExperiment>>,
}

impl LoadedOnce {
    fn get(&mut self, engine: &Engine, id: &str) -> Option<&Arc<LiveExperiment>> {
        let hit = self
            .last
            .as_ref()
            .is_some_and(|live| live.spec.id.as_str() == id);
        if !hit {
            self.last = Some(engine.loaded(id).ok()?);
        }
        self.last.as_ref()
    }
}

impl EventBatchReport {
    fn reject(
        &mut self,
        index: usize,
        id: Option<String>,
        reason: RejectionReason,
        detail: String,
    ) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(reason.as_str()).or_default() += 1;
        self.rejections.push(Rejection {
            index,
            line: None,
            id,
            reason,
            detail,
        });
    }
}

/// Longest excerpt of a client's text quoted back in a rejection, in characters.
const MAX_QUOTED_CHARS: usize = 80;

/// The client's text as a short escaped excerpt: an unknown id may be megabytes long or hold
/// control characters, and the detail is read by people.
fn quoted_excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Unix milliseconds of a timestamp (a number of ms, or RFC 3339 text).
pub fn parse_timestamp(ts: &Timestamp) -> Result<u64, String> {
    match ts {
        Timestamp::Millis(ms) => Ok(*ms),
        Timestamp::Rfc3339(text) => {
            let parsed =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                    format!("timestamp {text:?} is not RFC 3339 (e.g. 2026-11-26T10:00:00Z): {e}")
                })?;
            let ms = parsed.unix_timestamp_nanos() / 1_000_000;
            u64::try_from(ms).map_err(|_| format!("timestamp {text:?} is before 1970"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_with_offsets_become_unix_millis() {
        let ts = Timestamp::Rfc3339("2026-11-26T12:00:00.250+02:00".into());
        // 2026-11-26T10:00:00.250Z = 1795687200 s since the epoch (days from civil: 20783 × 86400 + 36000).
        assert_eq!(parse_timestamp(&ts), Ok(1_795_687_200_250));
    }

    #[test]
    fn quoted_excerpts_are_escaped_and_short() {
        assert_eq!(quoted_excerpt("headline"), "\"headline\"");
        assert_eq!(quoted_excerpt("a\u{0}b"), "\"a\\0b\"");
        let long = quoted_excerpt(&"é".repeat(10_000));
        assert_eq!(long, format!("{:?}…", "é".repeat(MAX_QUOTED_CHARS)));
    }

    #[test]
    fn unparseable_and_pre_epoch_timestamps_are_errors() {
        assert!(parse_timestamp(&Timestamp::Rfc3339("yesterday".into())).is_err());
        assert!(parse_timestamp(&Timestamp::Rfc3339("1969-12-31T23:59:59Z".into())).is_err());
    }
}
