//! The optional `stopping:` block: when the policy may declare a winner, and what happens
//! then. Defaults: `min_exposures` 0, no `min_duration`, `on_winner: exploit`.
//! `prob_best` and `max_expected_loss` are required inside the block: a stopping rule
//! whose thresholds nobody chose would stop experiments on someone else's risk appetite.

use super::error::quoted;
use super::fields::{self, Fields, Report, fmt_number};
use super::model::{OnWinner, StoppingSpec};
use super::node::{Node, NodeKind};

/// Exposures every active arm needs before a winner may be declared, when the file does not
/// say: none beyond what `prob_best` and `max_expected_loss` already demand.
pub const DEFAULT_MIN_EXPOSURES: u64 = 0;
/// What a declared winner gets when the file does not say.
pub const DEFAULT_ON_WINNER: OnWinner = OnWinner::Exploit;

pub(super) const STOPPING_FIELDS: &[&str] = &[
    "prob_best",
    "max_expected_loss",
    "min_exposures",
    "min_duration",
    "on_winner",
    "allow_prior_only_decision",
];

pub(super) const ON_WINNER: &[(&str, OnWinner)] =
    &[("exploit", OnWinner::Exploit), ("report", OnWinner::Report)];

/// Reads the `stopping:` block. Every field is read even when an earlier one is broken, so
/// the analyst sees all problems of the block at once.
pub(super) fn stopping(report: &mut Report<'_>, node: &Node) -> Option<StoppingSpec> {
    let fields = Fields::read(report, node, "`stopping`", STOPPING_FIELDS)?;
    let prob_best = fields
        .require(report, "prob_best", "0.95")
        .and_then(|n| prob_best(report, n));
    let max_expected_loss = fields
        .require(report, "max_expected_loss", "0.001")
        .and_then(|n| max_expected_loss(report, n));
    let min_exposures = match fields.get("min_exposures") {
        None => Some(DEFAULT_MIN_EXPOSURES),
        Some(n) => fields::whole_number(report, n, "min_exposures", 0, u64::MAX),
    };
    let min_duration = match fields.get("min_duration") {
        None => Some(None),
        Some(n) => fields::duration(report, n, "min_duration").map(Some),
    };
    let on_winner = match fields.get("on_winner") {
        None => Some(DEFAULT_ON_WINNER),
        Some(n) => fields::choice(report, n, "on_winner", ON_WINNER),
    };
    let allow_prior_only_decision = match fields.get("allow_prior_only_decision") {
        None => Some(false),
        Some(n) => flag(report, n, "allow_prior_only_decision"),
    };
    Some(StoppingSpec {
        prob_best: prob_best?,
        max_expected_loss: max_expected_loss?,
        min_exposures: min_exposures?,
        min_duration: min_duration?,
        on_winner: on_winner?,
        allow_prior_only_decision: allow_prior_only_decision?,
    })
}

/// `prob_best` lies strictly between 0.5 and 1. The P(best) of all arms sum to 1, so above
/// 0.5 at most one arm can pass; and with finite data P(best) stays below 1, so a threshold
/// of 1 would never be met.
fn prob_best(report: &mut Report<'_>, node: &Node) -> Option<f64> {
    let value = fraction(report, node, "prob_best")?;
    let why = if value <= 0.5 {
        "at 0.5 or below, two variants could both pass it"
    } else if value >= 1.0 {
        "no amount of data makes P(best) exactly 1, so the experiment would never stop"
    } else {
        return Some(value);
    };
    report.error(
        node.pos,
        format!(
            "`prob_best` must be above 0.5 and below 1, found {}: {why}; it is how sure the \
             winner must be of being best, {}",
            fmt_number(value),
            example_or_percent(value, "e.g. 0.95 for 95%")
        ),
    );
    None
}

/// `max_expected_loss` lies in (0, 1]: the expected loss of a finite sample is never exactly
/// 0 (the threshold would never be met), and a difference of two rates never exceeds 1.
fn max_expected_loss(report: &mut Report<'_>, node: &Node) -> Option<f64> {
    let value = fraction(report, node, "max_expected_loss")?;
    let why = if value <= 0.0 {
        "the expected loss never reaches 0 with finite data, so the experiment would never stop"
    } else if value > 1.0 {
        "a conversion rate cannot fall by more than 1"
    } else {
        return Some(value);
    };
    report.error(
        node.pos,
        format!(
            "`max_expected_loss` must be above 0 and at most 1, found {}: {why}; it is the \
             conversion rate you accept to lose by picking the winner now, {}",
            fmt_number(value),
            example_or_percent(value, "e.g. 0.001 for 0.1 percentage points")
        ),
    );
    None
}

/// A number for a probability-like field; `95%` written as text gets a hint to write 0.95.
pub(super) fn fraction(report: &mut Report<'_>, node: &Node, field: &str) -> Option<f64> {
    if let NodeKind::Str(text) = &node.kind
        && let Some(percent) = text.trim().strip_suffix('%')
        && let Ok(percent) = percent.trim().parse::<f64>()
        && percent.is_finite()
    {
        report.error(
            node.pos,
            format!(
                "`{field}` must be a number, found the text {}; write percentages as \
                 fractions: {}",
                quoted(text),
                fmt_number(percent / 100.0)
            ),
        );
        return None;
    }
    fields::number(report, node, field)
}

/// `95` looks like a percentage: the fraction it means, said once, instead of the generic
/// `example` (which would then repeat it: "e.g. 0.95 for 95% (for 95% write 0.95)").
pub(super) fn example_or_percent(value: f64, example: &str) -> String {
    if value > 1.0 && value <= 100.0 {
        format!(
            "so for {}% write {}",
            fmt_number(value),
            fmt_number(value / 100.0)
        )
    } else {
        example.to_owned()
    }
}

/// `true` or `false`; anything else (including the text "yes") is reported.
fn flag(report: &mut Report<'_>, node: &Node, field: &str) -> Option<bool> {
    if let NodeKind::Bool(value) = node.kind {
        return Some(value);
    }
    report.error(
        node.pos,
        format!(
            "`{field}` must be true or false, found {}",
            node.kind.describe()
        ),
    );
    None
}
