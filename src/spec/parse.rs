//! From experiment YAML text to a validated [`Experiment`]: the only way to build one.
//!
//! Defaults for optional fields (documented for analysts in `experiments/*.yaml`):
//! `environments` all, `revision` 1, `assignment` sticky, `reward.window` 7d, `reward.delay` auto,
//! `prior` Beta(1, 1) (uniform), `policy.burn_in` 100 exposures per arm,
//! `policy.min_share` 0 (pure Thompson sampling after burn-in: a non-zero default would
//! make files with many variants fail `min_share × K < 1` for a field nobody wrote),
//! `policy.half_life` none (evidence never decays), `stopping` none (no automatic winner;
//! its own defaults are in `spec::stopping`).
//! `description` and `owner` are required and non-empty: the files are reviewed, and a
//! reviewer (or the on-call engineer) must be able to tell what an experiment decides and
//! whom to ask.

use std::path::Path;
use std::time::Duration;

use super::duration::HumanDuration;
use super::error::{Position, SpecError, quoted};
use super::fields::{self, Fields, Report, closest, fmt_number};
use super::model::{
    AssignmentMode, DelayModel, Experiment, ExperimentId, IdError, PolicySpec, Prior, RewardSpec,
    Status, Variant, VariantId,
};
use super::node::{Node, NodeKind, read_document};
use super::{guardrails, stopping};

/// Revision of a file that does not say: the first data epoch.
pub const DEFAULT_REVISION: u32 = 1;
/// Reward window of a file that does not say: a week covers most sign-up and purchase
/// funnels while keeping the event-id memory (kept as long as the window) small.
pub const DEFAULT_REWARD_WINDOW_SECONDS: u64 = 7 * 24 * 3600;
/// Exposures every arm gets under uniform allocation before Thompson sampling starts.
pub const DEFAULT_BURN_IN: u64 = 100;
/// Traffic floor per arm when the file does not set one.
pub const DEFAULT_MIN_SHARE: f64 = 0.0;
/// Most variants one experiment may list. Every assign draws from each arm's posterior and
/// every stats read integrates over all of them, so the cost of a request grows with the
/// count (10,000 arms made one assign cost ~0.6 CPU-s); 100 is far more than a test of
/// page variants can fill with traffic.
pub const MAX_VARIANTS: usize = 100;

pub(super) const EXPERIMENT_FIELDS: &[&str] = &[
    "$schema",
    "id",
    "description",
    "owner",
    "status",
    "environments",
    "revision",
    "assignment",
    "exposure",
    "confirm_within",
    "reward",
    "prior",
    "policy",
    "stopping",
    "guardrails",
    "default_variant",
    "winner",
    "variants",
];
pub(super) const REWARD_FIELDS: &[&str] = &["window", "delay"];
pub(super) const DELAY_FIELDS: &[&str] = &["median"];
pub(super) const PRIOR_FIELDS: &[&str] = &["alpha", "beta"];
pub(super) const POLICY_FIELDS: &[&str] = &["burn_in", "min_share", "half_life"];
pub(super) const VARIANT_FIELDS: &[&str] = &["id", "payload", "prior", "resume_after_halt"];

pub(super) const STATUSES: &[(&str, Status)] = &[
    ("draft", Status::Draft),
    ("running", Status::Running),
    ("paused", Status::Paused),
    ("concluded", Status::Concluded),
];
pub(super) const ASSIGNMENTS: &[(&str, AssignmentMode)] = &[
    ("sticky", AssignmentMode::Sticky),
    ("per_request", AssignmentMode::PerRequest),
];

/// Parses one experiment file. Pure: `file` is only used in messages and stored as
/// `Experiment::source`. Returns every problem found, each at its line:column; a YAML
/// syntax error stops the read, everything after a successful read is collected.
pub fn parse_experiment(file: &Path, text: &str) -> Result<Experiment, Vec<SpecError>> {
    let root = read_document(file, text).map_err(|e| vec![e])?;
    let mut report = Report::new(file);
    let experiment = experiment(&mut report, file, &root);
    if !report.errors.is_empty() {
        // Fields are checked by kind (keys first, then values, then cross-field rules);
        // analysts read top to bottom. The sort is stable, so one place keeps its order.
        let mut errors = report.errors;
        errors.sort_by_key(SpecError::position);
        return Err(errors);
    }
    // Every `None` above is reported, so this is a safety net, not a path analysts meet.
    experiment.ok_or_else(|| {
        vec![SpecError::whole_file(
            file,
            "could not be read as an experiment",
        )]
    })
}

fn experiment(report: &mut Report<'_>, file: &Path, root: &Node) -> Option<Experiment> {
    if fields::is_foreign_mapping(report, root, "an experiment", EXPERIMENT_FIELDS) {
        return None;
    }
    let fields = Fields::read(report, root, "the experiment", EXPERIMENT_FIELDS)?;
    if let Some(schema) = fields.get("$schema") {
        fields::text(report, schema, "$schema");
    }

    let id_node = fields.require(report, "id", "homepage-headline");
    let id = id_node.and_then(|n| parse_id(report, n, "id", ExperimentId::parse));
    let description = fields
        .require(
            report,
            "description",
            "Which headline turns visitors into sign-ups?",
        )
        .and_then(|n| {
            fields::non_empty_text(
                report,
                n,
                "description",
                "say in one sentence what it decides",
            )
        });
    let owner = fields
        .require(report, "owner", "growth-analytics")
        .and_then(|n| {
            fields::non_empty_text(
                report,
                n,
                "owner",
                "name the team or person to ask about it",
            )
        });
    let status_node = fields.require(report, "status", "draft");
    let status = status_node.and_then(|n| fields::choice(report, n, "status", STATUSES));
    let environments = match fields.get("environments") {
        None => Some(None),
        Some(n) => environments(report, n).map(Some),
    };
    let revision = match fields.get("revision") {
        None => Some(DEFAULT_REVISION),
        Some(n) => fields::whole_number(report, n, "revision", 1, u64::from(u32::MAX))
            .and_then(|r| u32::try_from(r).ok()),
    };
    let assignment = match fields.get("assignment") {
        None => Some(AssignmentMode::Sticky),
        Some(n) => fields::choice(report, n, "assignment", ASSIGNMENTS),
    };
    let exposure =
        super::exposure::exposure(report, fields.get("exposure"), fields.get("confirm_within"));
    let reward = match fields.get("reward") {
        None => Some(RewardSpec {
            window: HumanDuration::from_std(Duration::from_secs(DEFAULT_REWARD_WINDOW_SECONDS)),
            delay: DelayModel::default(),
        }),
        Some(n) => reward(report, n),
    };
    let prior = match fields.get("prior") {
        None => Some(Prior::default()),
        Some(n) => prior(report, n, "`prior`"),
    };
    let (policy, written_min_share) = match fields.get("policy") {
        None => (
            Some(PolicySpec {
                burn_in: DEFAULT_BURN_IN,
                min_share: DEFAULT_MIN_SHARE,
                half_life: None,
            }),
            None,
        ),
        Some(n) => policy(report, n),
    };
    let stopping = match fields.get("stopping") {
        None => Some(None),
        Some(n) => stopping::stopping(report, n).map(Some),
    };
    let guardrails = fields
        .get("guardrails")
        .map(|n| guardrails::guardrails(report, n));
    let variants_node = fields.require(report, "variants", "[{id: control, payload: {}}, ...]");
    let arms = variants_node.and_then(|n| variants(report, n));

    if let (Some((min_share, pos)), Some(arms)) = (written_min_share, &arms) {
        check_min_share_total(report, min_share, arms.count, pos);
    }
    // The example names one of the file's own variants, so it can be pasted as is.
    let example = arms
        .as_ref()
        .and_then(|a| a.ids.first())
        .map_or_else(|| "control".to_owned(), |(id, _)| id.to_string());
    let default_variant = fields
        .require(report, "default_variant", &example)
        .and_then(|n| variant_reference(report, n, "default_variant", arms.as_ref()));
    let winner = winner(report, &fields, status_node, status, arms.as_ref());
    let known_ids = arms
        .as_ref()
        .filter(|a| a.all_ids_known)
        .map(|a| &a.ids[..]);
    let guardrails = guardrails::resolve(report, guardrails, known_ids);

    Some(Experiment {
        id: id?,
        description: description?,
        owner: owner?,
        status: status?,
        environments: environments?,
        revision: revision?,
        assignment: assignment?,
        exposure: exposure?,
        reward: reward?,
        prior: prior?,
        policy: policy?,
        stopping: stopping?,
        guardrails: guardrails?,
        default_variant: default_variant?,
        winner: winner?,
        variants: arms?.parsed?,
        source: file.to_path_buf(),
        id_position: id_node?.pos,
    })
}

/// An experiment, variant or environment id, with a lowercase suggestion when the text
/// merely has capitals or spaces (`Bold Headline` → `bold-headline`).
fn parse_id<T>(
    report: &mut Report<'_>,
    node: &Node,
    field: &str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Option<T> {
    let value = fields::text(report, node, field)?;
    match parse(&value) {
        Ok(id) => Some(id),
        Err(IdError::Empty) => {
            report.error(node.pos, format!("`{field}` must not be empty"));
            None
        }
        Err(err) => {
            let slug: String = value
                .trim()
                .chars()
                .map(|c| match c.to_ascii_lowercase() {
                    c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' => c,
                    _ => '-',
                })
                .collect();
            let hint = if !slug.is_empty() && slug.len() <= 64 && parse(&slug).is_ok() {
                format!("; write e.g. `{slug}`")
            } else {
                String::new()
            };
            report.error(
                node.pos,
                format!("`{field}` {} {err}{hint}", quoted(&value)),
            );
            None
        }
    }
}

fn environments(report: &mut Report<'_>, node: &Node) -> Option<Vec<String>> {
    let items = fields::list(report, node, "environments", "[staging, production]")?;
    if items.is_empty() {
        report.error(
            node.pos,
            "`environments` is an empty list, so the experiment would run nowhere; \
             name at least one environment, or remove the field to run everywhere",
        );
        return None;
    }
    let mut names: Vec<(String, Position)> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        // Environment names follow the id rules, so `Production` cannot silently fail to
        // match `--environment production`.
        let Some(name) = parse_id(report, item, "environments", ExperimentId::parse) else {
            ok = false;
            continue;
        };
        let name = name.as_str().to_owned();
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            report.error(
                item.pos,
                format!(
                    "environment `{name}` is listed twice (first at {}); remove one",
                    first.describe()
                ),
            );
            ok = false;
            continue;
        }
        names.push((name, item.pos));
    }
    ok.then(|| names.into_iter().map(|(n, _)| n).collect())
}

fn reward(report: &mut Report<'_>, node: &Node) -> Option<RewardSpec> {
    let fields = Fields::read(report, node, "`reward`", REWARD_FIELDS)?;
    let window = match fields.get("window") {
        None => HumanDuration::from_std(Duration::from_secs(DEFAULT_REWARD_WINDOW_SECONDS)),
        Some(n) => fields::duration(report, n, "window")?,
    };
    let delay = match fields.get("delay") {
        None => DelayModel::default(),
        Some(n) => delay_model(report, n)?,
    };
    Some(RewardSpec { window, delay })
}

/// `reward.delay`: `auto`, `off` (a YAML 1.1 reader's `false` too), or `{median: 2d}`.
fn delay_model(report: &mut Report<'_>, node: &Node) -> Option<DelayModel> {
    match &node.kind {
        NodeKind::Map(_) => {
            let fields = Fields::read(report, node, "`reward.delay`", DELAY_FIELDS)?;
            let n = fields.require(report, "median", "2d")?;
            // `duration` refuses 0: a duration is positive.
            let median = fields::duration(report, n, "median")?;
            Some(DelayModel::Prior { median })
        }
        NodeKind::Bool(false) => Some(DelayModel::Off),
        NodeKind::Str(word) if word == "auto" => Some(DelayModel::Auto),
        NodeKind::Str(word) if word == "off" => Some(DelayModel::Off),
        other => {
            let mut message = format!(
                "`delay` must be `auto`, `off` or a cold-start model such as `{{median: 2d}}`, \
                 found {}",
                other.describe()
            );
            if let NodeKind::Str(word) = other
                && let Some(near) = closest(word, &["auto", "off"])
            {
                message.push_str(&format!("; did you mean `{near}`?"));
            }
            report.error(node.pos, message);
            None
        }
    }
}

/// A Beta prior: both parameters finite and above 0, or the density is not a distribution.
fn prior(report: &mut Report<'_>, node: &Node, what: &str) -> Option<Prior> {
    let fields = Fields::read(report, node, what, PRIOR_FIELDS)?;
    let mut parameter = |name: &str| {
        let n = fields.require(report, name, "1")?;
        let value = fields::number(report, n, name)?;
        if value > 0.0 {
            Some(value)
        } else {
            report.error(
                n.pos,
                format!(
                    "`{name}` of {what} must be above 0, found {value}; \
                     `alpha: 1, beta: 1` is the uniform prior"
                ),
            );
            None
        }
    };
    let alpha = parameter("alpha");
    let beta = parameter("beta");
    Some(Prior {
        alpha: alpha?,
        beta: beta?,
    })
}

/// The policy, and `min_share` with its position when the file sets a valid one (for the
/// `min_share × K` check, which should run even if `burn_in` is broken).
fn policy(report: &mut Report<'_>, node: &Node) -> (Option<PolicySpec>, Option<(f64, Position)>) {
    let Some(fields) = Fields::read(report, node, "`policy`", POLICY_FIELDS) else {
        return (None, None);
    };
    let burn_in = match fields.get("burn_in") {
        None => Some(DEFAULT_BURN_IN),
        Some(n) => fields::whole_number(report, n, "burn_in", 0, u64::MAX),
    };
    let (min_share, written) = match fields.get("min_share") {
        None => (Some(DEFAULT_MIN_SHARE), None),
        Some(n) => {
            // `5%` as text gets the fraction, like the stopping thresholds.
            let share = stopping::fraction(report, n, "min_share").filter(|share| {
                let in_range = (0.0..1.0).contains(share);
                if !in_range {
                    report.error(
                        n.pos,
                        format!(
                            "`min_share` must be at least 0 and below 1, found {}; it is the \
                             share of traffic every variant keeps, {}",
                            fmt_number(*share),
                            stopping::example_or_percent(*share, "e.g. 0.02 for 2%")
                        ),
                    );
                }
                in_range
            });
            (share, share.map(|s| (s, n.pos)))
        }
    };
    let half_life = match fields.get("half_life") {
        None => Some(None),
        Some(n) => fields::duration(report, n, "half_life").map(Some),
    };
    let spec = match (burn_in, min_share, half_life) {
        (Some(burn_in), Some(min_share), Some(half_life)) => Some(PolicySpec {
            burn_in,
            min_share,
            half_life,
        }),
        _ => None,
    };
    (spec, written)
}

/// Every arm is promised `min_share` of the traffic, so K arms need `min_share × K < 1`
/// (docs/ARCHITECTURE.md, "Allocation": with probability K·min_share a uniform arm is drawn).
fn check_min_share_total(report: &mut Report<'_>, min_share: f64, arms: usize, pos: Position) {
    // Arm counts are small; the conversion is exact far beyond any realistic K.
    #[allow(clippy::cast_precision_loss)]
    let total = min_share * arms as f64;
    if total < 1.0 {
        return;
    }
    let k = u64::try_from(arms).unwrap_or(u64::MAX);
    // Largest d-decimal value strictly below 1/K: m = floor((10^d − 1) / K), with d grown
    // until m > 0 (so 200 variants get 0.004, not 0.00).
    let mut suggestion = String::from("0");
    for decimals in 2..=9_usize {
        let scale = 10_u64.pow(u32::try_from(decimals).unwrap_or(9));
        let m = (scale - 1) / k;
        if m > 0 {
            // m < 10^d, so it fits in d digits after the point.
            suggestion = format!("0.{m:0>decimals$}");
            break;
        }
    }
    report.error(
        pos,
        format!(
            "min_share {} × {arms} variants = {} must be below 1 (every variant is promised \
             min_share of the traffic); lower min_share to at most {suggestion}",
            fmt_number(min_share),
            fmt_number(total)
        ),
    );
}

/// What the variant list yielded: its length (even when some entries are broken, for the
/// `min_share` check) and, if every entry is valid, the variants.
struct Arms {
    count: usize,
    /// `(id, position of the id)` of every variant whose id parsed, in file order.
    ids: Vec<(VariantId, Position)>,
    /// Whether every id parsed, i.e. `ids` is the complete list to check references against.
    all_ids_known: bool,
    parsed: Option<Vec<Variant>>,
}

fn variants(report: &mut Report<'_>, node: &Node) -> Option<Arms> {
    let items = fields::list(
        report,
        node,
        "variants",
        "[{id: control, payload: {}}, ...]",
    )?;
    if items.len() > MAX_VARIANTS {
        // Refused before any variant is read, so an oversized list costs nothing more.
        report.error(
            node.pos,
            format!(
                "`variants` lists {} variants, above the limit of {MAX_VARIANTS} per \
                 experiment; split the test into several experiments",
                items.len()
            ),
        );
        return None;
    }
    if items.len() < 2 {
        report.error(
            node.pos,
            format!(
                "an experiment needs at least 2 variants to compare, found {}; \
                 add another entry under `variants`",
                items.len()
            ),
        );
    }
    let mut arms = Arms {
        count: items.len(),
        ids: Vec::with_capacity(items.len()),
        // An empty list gives references nothing to be checked against.
        all_ids_known: !items.is_empty(),
        parsed: Some(Vec::with_capacity(items.len())),
    };
    for (index, item) in items.iter().enumerate() {
        let variant = variant(report, item, index, &mut arms);
        match (variant, &mut arms.parsed) {
            (Some(v), Some(list)) => list.push(v),
            _ => arms.parsed = None,
        }
    }
    if items.len() < 2 {
        arms.parsed = None;
    }
    Some(arms)
}

fn variant(report: &mut Report<'_>, item: &Node, index: usize, arms: &mut Arms) -> Option<Variant> {
    // Messages name the variant by its id when it has a readable one, else by position.
    let label = match &item.kind {
        NodeKind::Map(entries) => {
            entries
                .iter()
                .find_map(|(key, value)| match (&key.kind, &value.kind) {
                    (NodeKind::Str(k), NodeKind::Str(v))
                        if k == "id" && VariantId::parse(v).is_ok() =>
                    {
                        Some(format!("variant `{v}`"))
                    }
                    _ => None,
                })
        }
        _ => None,
    }
    .unwrap_or_else(|| format!("variant {}", index + 1));
    let Some(fields) = Fields::read(report, item, &label, VARIANT_FIELDS) else {
        arms.all_ids_known = false;
        return None;
    };
    let id_node = fields.require(report, "id", "control");
    let id = id_node.and_then(|n| parse_id(report, n, "id", VariantId::parse));
    let id = match (id, id_node) {
        (Some(id), Some(n)) => {
            if let Some((_, first)) = arms.ids.iter().find(|(seen, _)| *seen == id) {
                report.error(
                    n.pos,
                    format!(
                        "variant id `{id}` is used twice (first at {}); \
                         give each variant its own id",
                        first.describe()
                    ),
                );
                None
            } else {
                arms.ids.push((id.clone(), n.pos));
                Some(id)
            }
        }
        _ => {
            arms.all_ids_known = false;
            None
        }
    };
    let payload = match fields.raw("payload") {
        None => {
            report.error(
                fields.pos,
                format!(
                    "{label} has no `payload`; add the value the frontend should receive, \
                     e.g. `payload: {{headline: \"Build faster\"}}` (or `payload: {{}}`)"
                ),
            );
            None
        }
        Some(n) => n
            .to_json()
            .map_err(|(pos, msg)| report.error(pos, format!("payload of {label}: {msg}")))
            .ok(),
    };
    let prior = match fields.get("prior") {
        None => Some(None),
        Some(n) => prior(report, n, &format!("the prior of {label}")).map(Some),
    };
    let resume_after_halt = match fields.get("resume_after_halt") {
        None => Some(None),
        Some(n) => fields::whole_number(report, n, "resume_after_halt", 1, u64::MAX).map(Some),
    };
    Some(Variant {
        id: id?,
        payload: payload?,
        prior: prior?,
        resume_after_halt: resume_after_halt?,
    })
}

/// `default_variant` / `winner`: must name one of the variants.
fn variant_reference(
    report: &mut Report<'_>,
    node: &Node,
    field: &str,
    arms: Option<&Arms>,
) -> Option<VariantId> {
    let id = parse_id(report, node, field, VariantId::parse)?;
    // Without a complete variant list a "no such variant" error could be wrong; the broken
    // variants are reported already.
    let arms = arms.filter(|a| a.all_ids_known)?;
    if arms.ids.iter().any(|(known, _)| *known == id) {
        return Some(id);
    }
    let names: Vec<&str> = arms.ids.iter().map(|(v, _)| v.as_str()).collect();
    let near = closest(id.as_str(), &names)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default();
    report.error(
        node.pos,
        format!(
            "`{field}` is `{id}`, which is not one of the variants; {near}use one of: {}",
            names.join(", ")
        ),
    );
    None
}

/// `winner` is required when (and only allowed when) the experiment is concluded: a
/// winner on a running experiment would be ignored, which is worse than an error.
fn winner(
    report: &mut Report<'_>,
    fields: &Fields<'_>,
    status_node: Option<&Node>,
    status: Option<Status>,
    arms: Option<&Arms>,
) -> Option<Option<VariantId>> {
    let winner_node = fields.get("winner");
    match (status, winner_node) {
        (Some(Status::Concluded), None) => {
            let pos = status_node.map_or(fields.pos, |n| n.pos);
            report.error(
                pos,
                "`status: concluded` needs a `winner`; add `winner: <variant id>` naming the \
                 variant everybody gets from now on",
            );
            None
        }
        (Some(status), Some(n)) if status != Status::Concluded => {
            report.error(
                n.pos,
                format!(
                    "`winner` is only allowed when `status: concluded` (status is {status}); \
                     remove `winner`, or set `status: concluded` to serve it to everybody"
                ),
            );
            None
        }
        (_, Some(n)) => variant_reference(report, n, "winner", arms).map(Some),
        (_, None) => Some(None),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "parse_arm_tests.rs"]
mod arm_tests;

#[cfg(test)]
#[path = "parse_stopping_tests.rs"]
mod stopping_tests;

#[cfg(test)]
#[path = "parse_message_tests.rs"]
mod message_tests;

#[cfg(test)]
#[path = "parse_delay_tests.rs"]
mod delay_tests;
