//! The optional `guardrails:` list: second metrics (refunds, errors, unsubscribes) that
//! must not get worse while the bandit optimises the primary reward. Each entry names a
//! metric, which direction is better, how much relative change is tolerated, and how sure
//! the evidence must be before an arm is halted (`stats::check_guardrail` is the test).
//!
//! Required in each entry: `metric`, `direction`, `max_relative_change` (how much harm is
//! acceptable is the analyst's call, like the stopping thresholds). Optional, with defaults
//! chosen by `banditd simulate` measurements (README, "Guardrails"): `confidence`
//! [`DEFAULT_GUARDRAIL_CONFIDENCE`], `min_exposures` [`DEFAULT_GUARDRAIL_MIN_EXPOSURES`],
//! `against` the experiment's `default_variant`.

use super::error::Position;
use super::fields::{self, Fields, Report, closest, fmt_number};
use super::model::{Guardrail, GuardrailDirection, MetricName, VariantId};
use super::node::Node;
use super::stopping::fraction;

/// How sure a halt must be when the entry does not say.
pub const DEFAULT_GUARDRAIL_CONFIDENCE: f64 = 0.99;
/// Exposures both the arm and the comparison arm need before a halt, when the entry does
/// not say.
pub const DEFAULT_GUARDRAIL_MIN_EXPOSURES: u64 = 1000;
/// The metric name of the primary reward (events without a `metric`); a guardrail may not
/// take it.
pub const PRIMARY_METRIC: &str = "reward";

pub(super) const GUARDRAIL_FIELDS: &[&str] = &[
    "metric",
    "direction",
    "max_relative_change",
    "confidence",
    "min_exposures",
    "against",
];

pub(super) const DIRECTIONS: &[(&str, GuardrailDirection)] = &[
    ("lower_is_better", GuardrailDirection::LowerIsBetter),
    ("higher_is_better", GuardrailDirection::HigherIsBetter),
];

/// A guardrail whose `against` still has to be checked against the variant list.
pub(super) struct ParsedGuardrails {
    pub guardrails: Option<Vec<Guardrail>>,
    /// `(against, where it is written)` of every entry that names one.
    pub against: Vec<(VariantId, Position)>,
}

/// Reads the `guardrails:` list. Every entry is read even when an earlier one is broken.
pub(super) fn guardrails(report: &mut Report<'_>, node: &Node) -> ParsedGuardrails {
    let mut parsed = ParsedGuardrails {
        guardrails: Some(Vec::new()),
        against: Vec::new(),
    };
    let Some(items) = fields::list(
        report,
        node,
        "guardrails",
        "[{metric: refunds, direction: lower_is_better, max_relative_change: 0.1}]",
    ) else {
        parsed.guardrails = None;
        return parsed;
    };
    let mut names: Vec<(String, Position)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let entry = guardrail(report, item, index, &mut names, &mut parsed.against);
        match (entry, &mut parsed.guardrails) {
            (Some(g), Some(list)) => list.push(g),
            _ => parsed.guardrails = None,
        }
    }
    parsed
}

fn guardrail(
    report: &mut Report<'_>,
    item: &Node,
    index: usize,
    names: &mut Vec<(String, Position)>,
    against_list: &mut Vec<(VariantId, Position)>,
) -> Option<Guardrail> {
    let label = format!("guardrail {}", index + 1);
    let fields = Fields::read(report, item, &label, GUARDRAIL_FIELDS)?;
    let metric = fields
        .require(report, "metric", "refunds")
        .and_then(|n| metric(report, n, names));
    let direction_node = fields.require(report, "direction", "lower_is_better");
    let direction = direction_node.and_then(|n| fields::choice(report, n, "direction", DIRECTIONS));
    let change = fields
        .require(report, "max_relative_change", "0.1")
        .and_then(|n| max_relative_change(report, n, direction));
    let confidence = match fields.get("confidence") {
        None => Some(DEFAULT_GUARDRAIL_CONFIDENCE),
        Some(n) => confidence(report, n),
    };
    let min_exposures = match fields.get("min_exposures") {
        None => Some(DEFAULT_GUARDRAIL_MIN_EXPOSURES),
        Some(n) => fields::whole_number(report, n, "min_exposures", 0, u64::MAX),
    };
    let against = match fields.get("against") {
        None => Some(None),
        Some(n) => {
            let id = fields::text(report, n, "against").and_then(|text| {
                VariantId::parse(&text)
                    .map_err(|err| {
                        report.error(n.pos, format!("`against` `{text}` {err}"));
                    })
                    .ok()
            });
            if let Some(id) = &id {
                against_list.push((id.clone(), n.pos));
            }
            id.map(Some)
        }
    };
    Some(Guardrail {
        metric: metric?,
        direction: direction?,
        max_relative_change: change?,
        confidence: confidence?,
        min_exposures: min_exposures?,
        against: against?,
    })
}

/// A metric name follows the id rules (it travels in event bodies and metric labels), is
/// not the primary reward's name, and is not listed twice.
fn metric(
    report: &mut Report<'_>,
    node: &Node,
    names: &mut Vec<(String, Position)>,
) -> Option<MetricName> {
    let text = fields::text(report, node, "metric")?;
    let name = match MetricName::parse(&text) {
        Ok(name) => name,
        Err(err) => {
            report.error(node.pos, format!("`metric` `{text}` {err}"));
            return None;
        }
    };
    if name.as_str() == PRIMARY_METRIC {
        report.error(
            node.pos,
            format!(
                "`metric` `{PRIMARY_METRIC}` is the name of the primary reward (events \
                 without a metric); name the guardrail after what it counts, e.g. `refunds`"
            ),
        );
        return None;
    }
    if let Some((_, first)) = names.iter().find(|(n, _)| n == name.as_str()) {
        report.error(
            node.pos,
            format!(
                "guardrail metric `{name}` is listed twice (first at {}); merge the two \
                 entries, one metric has one rule",
                first.describe()
            ),
        );
        return None;
    }
    names.push((name.as_str().to_owned(), node.pos));
    Some(name)
}

/// δ ≥ 0; below 1 when higher is better (a rate cannot fall by 100% or more).
fn max_relative_change(
    report: &mut Report<'_>,
    node: &Node,
    direction: Option<GuardrailDirection>,
) -> Option<f64> {
    let value = fraction(report, node, "max_relative_change")?;
    if value < 0.0 {
        report.error(
            node.pos,
            format!(
                "`max_relative_change` must be at least 0, found {}; it is the relative \
                 worsening tolerated before an arm is halted, e.g. 0.1 for 10%",
                fmt_number(value)
            ),
        );
        return None;
    }
    if direction == Some(GuardrailDirection::HigherIsBetter) && value >= 1.0 {
        report.error(
            node.pos,
            format!(
                "`max_relative_change` must be below 1 with `direction: higher_is_better`, \
                 found {}: a rate cannot fall by 100% or more, so no arm could ever be \
                 halted; e.g. 0.1 halts an arm 10% below the comparison",
                fmt_number(value)
            ),
        );
        return None;
    }
    Some(value)
}

/// `confidence` in (0.5, 1): at 0.5 or below a halt would be more likely wrong than right,
/// and no finite data makes a posterior probability exactly 1.
fn confidence(report: &mut Report<'_>, node: &Node) -> Option<f64> {
    let value = fraction(report, node, "confidence")?;
    if value > 0.5 && value < 1.0 {
        return Some(value);
    }
    report.error(
        node.pos,
        format!(
            "`confidence` must be above 0.5 and below 1, found {}; it is how sure the \
             harm must be before an arm is halted, e.g. 0.99 for 99%",
            fmt_number(value)
        ),
    );
    None
}

/// The list once the variants are known: no `guardrails:` is an empty list, and every
/// `against` must name one of the variants (`variants` is `None` when the list is
/// incomplete: the broken variants are reported already, and a "no such variant" error
/// could be wrong).
pub(super) fn resolve(
    report: &mut Report<'_>,
    parsed: Option<ParsedGuardrails>,
    variants: Option<&[(VariantId, Position)]>,
) -> Option<Vec<Guardrail>> {
    let Some(parsed) = parsed else {
        return Some(Vec::new());
    };
    let Some(variants) = variants else {
        return parsed.guardrails;
    };
    let ids: Vec<&str> = variants.iter().map(|(id, _)| id.as_str()).collect();
    let mut ok = true;
    for (id, pos) in &parsed.against {
        if ids.contains(&id.as_str()) {
            continue;
        }
        let near = closest(id.as_str(), &ids)
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        report.error(
            *pos,
            format!(
                "`against` is `{id}`, which is not one of the variants; {near}use one of: {}",
                ids.join(", ")
            ),
        );
        ok = false;
    }
    parsed.guardrails.filter(|_| ok)
}

#[cfg(test)]
#[path = "guardrails_tests.rs"]
mod tests;
