//! `/ui/experiments/{id}`: one experiment — the per-arm table, the stopping decision, the
//! sample-ratio check, and the plots; any earlier revision through `?revision=`.

use std::time::Duration;

use maud::{Markup, html};

use super::parts::{decision_words, srm_badge, status_badge};
use super::plots::{densities, figure, history_charts};
use crate::engine::MAX_HISTORY_POINTS;
use crate::engine::{DEFAULT_CREDIBLE_LEVEL, Engine, ExperimentReport, HistoryPoint};
use crate::ui::error::UiResult;
use crate::ui::numbers;

/// The longest history the plots cover: six days, or fewer when the history interval is so
/// short that six days hold more points than one read returns (the newest must be shown).
const MAX_HISTORY_WINDOW_MS: u64 = 6 * 24 * 3_600_000;

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ExperimentPage {
    pub report: ExperimentReport,
    pub history: Vec<HistoryPoint>,
    /// The loaded revision (the revision links run from 1 to it).
    pub current_revision: u32,
    /// Where the plotted history starts, when older history is left out.
    pub history_from_ms: Option<u64>,
}

/// Reads the report (the same call as `GET /v1/experiments/{id}`) and the stored history of
/// the revision asked for.
pub async fn load(
    engine: &Engine,
    id: &str,
    revision: Option<u32>,
    history_interval: Duration,
) -> UiResult<ExperimentPage> {
    let report = engine.report(id, DEFAULT_CREDIBLE_LEVEL, revision).await?;
    let current_revision = engine
        .catalog()
        .get(id)
        .map_or(report.summary.revision, |live| live.epoch.revision);
    let interval_ms = u64::try_from(history_interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    // Nine in ten of a read's points, so that a write interval a little off still fits.
    let window_ms =
        MAX_HISTORY_WINDOW_MS.min(interval_ms.saturating_mul(MAX_HISTORY_POINTS as u64 * 9 / 10));
    let now_ms = engine.now_ms();
    let since_ms = now_ms.saturating_sub(window_ms);
    let history = engine
        .revision_history(id, revision, since_ms, MAX_HISTORY_POINTS)
        .await?;
    let cut = report.started_ms.is_some_and(|started| started < since_ms);
    Ok(ExperimentPage {
        report,
        history,
        current_revision,
        history_from_ms: cut.then_some(since_ms),
    })
}

pub fn render(page: &ExperimentPage) -> Markup {
    let report = &page.report;
    let summary = &report.summary;
    let archived = summary.revision != page.current_revision;
    html! {
        @if !summary.description.is_empty() { p class="lead" { (summary.description) } }
        (revision_links(&summary.id, summary.revision, page.current_revision))
        @if archived {
            p class="note" role="note" {
                "You are looking at revision " (summary.revision) " of " (page.current_revision)
                ", shown as it was served (its own variants, priors and stopping rule, at its "
                "last data): a revision bump started a fresh data epoch, and this one gets no "
                "more traffic."
            }
        }
        section aria-labelledby="summary-heading" {
            h2 id="summary-heading" { "Summary" }
            dl class="facts" {
                dt { "Status" } dd {
                    @if archived {
                        span class="badge muted" { "archived" }
                        " (the experiment is " (summary.status.as_str()) " in revision "
                        (page.current_revision) ")"
                    } @else {
                        (status_badge(summary.status))
                    }
                }
                dt { "Owner" } dd { (summary.owner) }
                dt { "Assignment" } dd { (summary.assignment.as_str()) }
                dt { "Revision" } dd { (summary.revision) }
                dt { "Exposures" } dd { data value=(summary.exposures) { (numbers::count(summary.exposures)) } }
                dt { "Rewards" } dd { data value=(numbers::exact(summary.rewards)) { (numbers::reward_sum(summary.rewards)) } }
                dt { "Default variant" } dd { (report.default_variant) }
                dt { "Policy" } dd {
                    "burn-in " (report.burn_in) " exposures per arm, min share "
                    data value=(numbers::exact(report.min_share)) { (numbers::proportion(report.min_share)) }
                    @if let Some(half_life) = &report.half_life { ", half-life " (half_life) }
                }
                dt { "Reward window" } dd { (report.reward_window) }
                dt { "Started" } dd {
                    @match report.started_ms {
                        Some(ms) => time datetime=(numbers::utc(ms)) { (numbers::utc(ms)) },
                        None => "no exposure yet",
                    }
                }
            }
        }
        section aria-labelledby="decision-heading" {
            h2 id="decision-heading" { "Stopping decision" }
            p class="decision" data-status=(report.stopping.status) { (decision_words(report, false)) }
            p { (report.stopping.detail) }
            @if let Some(decided) = &report.stopping.decided {
                p {
                    "Declared at " (numbers::utc(decided.decided_ms)) " with P(best) "
                    data value=(numbers::exact(decided.prob_best)) { (numbers::proportion(decided.prob_best)) }
                    " and expected loss "
                    data value=(numbers::exact(decided.expected_loss)) { (numbers::loss(decided.expected_loss)) }
                    ". A decision is never reversed; later data only shows whether it still holds."
                }
            }
        }
        @if !report.halts.is_empty() {
            (halts_section(report))
        }
        @if report.arms.is_empty() {
            section aria-labelledby="arms-heading" {
                h2 id="arms-heading" { "Arms" }
                p { "No data was stored in revision " (summary.revision) ": it had no exposure." }
            }
        } @else {
            (data_sections(page))
        }
    }
}

/// The arm table, the sample-ratio check and the plots, for a revision with data.
fn data_sections(page: &ExperimentPage) -> Markup {
    let report = &page.report;
    html! {
        section aria-labelledby="arms-heading" {
            h2 id="arms-heading" { "Arms" }
            (arm_table(report))
        }
        section aria-labelledby="srm-heading" {
            h2 id="srm-heading" { "Sample-ratio check" }
            (srm_section(report))
        }
        section aria-labelledby="plots-heading" {
            h2 id="plots-heading" { "Plots" }
            @if let Some(from) = page.history_from_ms {
                p class="note" { "The plots over time show the history from " (numbers::utc(from)) "." }
            }
            div class="plots" {
                (figure("density", &densities(report),
                    "Each curve is an arm's Beta posterior of its rate; the table's credible \
                     interval holds 95% of its area."))
                @for (kind, chart, caption) in history_figures(report, &page.history) {
                    (figure(kind, &chart, caption))
                }
            }
        }
    }
}

fn history_figures(
    report: &ExperimentReport,
    history: &[HistoryPoint],
) -> Vec<(&'static str, crate::ui::svg::LineChart, &'static str)> {
    let captions = [
        (
            "prob-best",
            "The posterior probability that each arm has the highest rate, at each stored history point.",
        ),
        (
            "traffic",
            "The share of new traffic the policy sent to each arm (Thompson sampling with the minimum share).",
        ),
        (
            "exposures",
            "Exposures counted per arm since the revision started.",
        ),
        (
            "rewards",
            "Rewards summed per arm since the revision started.",
        ),
    ];
    history_charts(report, history)
        .into_iter()
        .zip(captions)
        .map(|(chart, (kind, caption))| (kind, chart, caption))
        .collect()
}

fn revision_links(id: &str, shown: u32, current: u32) -> Markup {
    html! {
        @if current > 1 {
            nav class="revisions" aria-label="Revisions" {
                "Revision: "
                @for revision in (1..=current).rev() {
                    @let href = if revision == current {
                        format!("/ui/experiments/{id}")
                    } else {
                        format!("/ui/experiments/{id}?revision={revision}")
                    };
                    @if revision == shown {
                        a href=(href) aria-current="page" { (revision) @if revision == current { " (current)" } }
                    } @else {
                        a href=(href) { (revision) @if revision == current { " (current)" } }
                    }
                }
            }
        }
    }
}

/// A number cell: the rounded figure, with the exact one in `<data value>`.
fn cell(field: &str, exact: f64, shown: String) -> Markup {
    html! {
        td class="num" data-field=(field) { data value=(numbers::exact(exact)) { (shown) } }
    }
}

/// A number that may be unknown (`null` in the API): shown as "—" then, with no value.
fn maybe_cell(field: &str, exact: Option<f64>, shown: fn(f64) -> String) -> Markup {
    match exact {
        Some(value) => cell(field, value, shown(value)),
        None => html! { td class="num" data-field=(field) { "—" } },
    }
}

fn arm_table(report: &ExperimentReport) -> Markup {
    let level = report.arms.first().map_or(DEFAULT_CREDIBLE_LEVEL, |arm| {
        arm.posterior.credible_interval.level
    });
    let level_percent = numbers::fixed(level * 100.0, 0);
    let on_render = report.exposure == crate::spec::ExposureMode::OnRender;
    let delayed = report.arms.iter().any(|arm| arm.delay.is_some());
    html! {
        p class="table-note" {
            "Rate is rewards ÷ exposures; the posterior is Beta(α, β) from the prior and the "
            "counts; P(best) is the posterior probability that the arm has the highest rate; "
            "expected loss is the rate that choosing the arm gives up, in expectation."
            @if on_render {
                " This experiment counts an exposure only when the page confirms it showed the "
                "variant (exposure: on_render): Assigned is what the server handed out, "
                "Confirmed the share the page confirmed, Exposures the confirmed count the "
                "statistics use."
            }
            @if delayed {
                " Recent exposures may still convert (reward.delay): the posterior, P(best) and "
                "expected loss count each as the share of its conversion that has had time to "
                "arrive; Naive mean and Naive P(best) count every exposure as a whole trial; "
                "Pending is the exposures still waiting; the delay median and 90th percentile "
                "are the arm's estimated times to convert."
            }
        }
        div class="table-wrap" role="region" aria-labelledby="arms-caption" tabindex="0" {
            table class="arms" {
                caption id="arms-caption" { "Per-arm statistics" }
                thead {
                    tr {
                        th scope="col" { "Variant" }
                        @if on_render {
                            th scope="col" class="num" { "Assigned" }
                            th scope="col" class="num" { "Confirmed" }
                        }
                        th scope="col" class="num" { "Exposures" }
                        th scope="col" class="num" { "Rewards" }
                        th scope="col" class="num" { "Rate" }
                        th scope="col" class="num" { "Posterior mean" }
                        th scope="col" class="num" { (level_percent) "% credible interval" }
                        th scope="col" class="num" { "P(best)" }
                        th scope="col" class="num" { "Expected loss" }
                        th scope="col" class="num" { "Traffic share" }
                        @if delayed {
                            th scope="col" class="num" { "Naive mean" }
                            th scope="col" class="num" { "Naive P(best)" }
                            th scope="col" class="num" { "Pending" }
                            th scope="col" class="num" { "Delay median" }
                            th scope="col" class="num" { "Delay p90" }
                        }
                        th scope="col" { "Retired" }
                    }
                }
                tbody {
                    @for arm in &report.arms {
                        tr data-variant=(arm.variant) {
                            th scope="row" { (arm.variant) }
                            @if on_render {
                                td class="num" data-field="assigned" {
                                    data value=(arm.assigned) { (numbers::count(arm.assigned)) }
                                }
                                (maybe_cell("confirmation_rate", arm.confirmation_rate, numbers::proportion))
                            }
                            td class="num" data-field="exposures" {
                                data value=(arm.exposures) { (numbers::count(arm.exposures)) }
                            }
                            (cell("rewards", arm.rewards, numbers::reward_sum(arm.rewards)))
                            @match arm.rate {
                                Some(rate) => (cell("rate", rate, numbers::proportion(rate))),
                                None => td class="num" data-field="rate" { "—" },
                            }
                            (cell("mean", arm.posterior.mean, numbers::proportion(arm.posterior.mean)))
                            td class="num" data-field="interval" {
                                "["
                                data value=(numbers::exact(arm.posterior.credible_interval.lower)) {
                                    (numbers::proportion(arm.posterior.credible_interval.lower))
                                }
                                ", "
                                data value=(numbers::exact(arm.posterior.credible_interval.upper)) {
                                    (numbers::proportion(arm.posterior.credible_interval.upper))
                                }
                                "]"
                            }
                            (maybe_cell("prob_best", arm.prob_best, numbers::proportion))
                            (maybe_cell("expected_loss", arm.expected_loss, numbers::loss))
                            (cell("traffic_share", arm.traffic_share, numbers::proportion(arm.traffic_share)))
                            @if delayed {
                                (delay_cells(arm.delay.as_ref()))
                            }
                            td data-field="retired" { @if arm.retired { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
    }
}

/// The guardrail halts, with the numbers that justified each and whether a resume names it.
fn halts_section(report: &ExperimentReport) -> Markup {
    html! {
        section aria-labelledby="halts-heading" {
            h2 id="halts-heading" { "Guardrail halts" }
            p {
                "A halted arm gets no new traffic and its sticky units are re-assigned. A halt is \
                 never undone by later data: an analyst resumes the arm with \
                 `resume_after_halt` naming the halt's time (README, \"Guardrails\")."
            }
            table class="halts" {
                thead {
                    tr {
                        th scope="col" { "Variant" }
                        th scope="col" { "Metric" }
                        th scope="col" { "Against" }
                        th scope="col" { "Halted at" }
                        th scope="col" class="num" { "P(worse)" }
                        th scope="col" class="num" { "Exposures" }
                        th scope="col" class="num" { "Events" }
                        th scope="col" { "State" }
                    }
                }
                tbody {
                    @for h in &report.halts {
                        tr data-variant=(h.halt.variant) data-metric=(h.halt.metric) {
                            th scope="row" { (h.halt.variant) }
                            td { (h.halt.metric) }
                            td { (h.halt.against) }
                            td data-field="halted_ms" data-value=(h.halt.halted_ms) {
                                (numbers::utc(h.halt.halted_ms))
                            }
                            (cell("prob_worse", h.halt.prob_worse, numbers::proportion(h.halt.prob_worse)))
                            td class="num" { (h.halt.exposures) " vs " (h.halt.against_exposures) }
                            td class="num" { (h.halt.events) " vs " (h.halt.against_events) }
                            td data-field="state" { @if h.resumed { "resumed" } @else { "halted" } }
                        }
                    }
                }
            }
        }
    }
}

/// The naive figures and the delay law of one arm (`—` where the arm has none).
fn delay_cells(delay: Option<&crate::engine::ArmDelayReport>) -> Markup {
    let naive_mean = delay.map(|d| d.naive.alpha / (d.naive.alpha + d.naive.beta));
    let duration = |ms: f64| numbers::age(ms.max(0.0) as u64);
    html! {
        (maybe_cell("naive_mean", naive_mean, numbers::proportion))
        (maybe_cell("naive_prob_best", delay.and_then(|d| d.naive.prob_best), numbers::proportion))
        (maybe_cell("pending_exposures", delay.map(|d| d.pending_exposures), |p| numbers::fixed(p, 1)))
        (maybe_cell("delay_median_ms", delay.map(|d| d.delay_median_ms), duration))
        (maybe_cell("delay_p90_ms", delay.map(|d| d.delay_p90_ms), duration))
    }
}

fn srm_section(report: &ExperimentReport) -> Markup {
    html! {
        p { (srm_badge(&report.srm)) }
        p {
            "The check compares each arm's exposures with the number the policy's own allocation "
            "probabilities predict (Pearson's chi-square test). "
            @match (report.srm.alert, report.srm.p_value) {
                (true, Some(_)) => {
                    strong { "The alert is on: " }
                    "traffic is not reaching the arms as the server assigned it, so the numbers "
                    "above may be biased. Usual causes: a frontend that drops or re-draws "
                    "assignments, bots, caching of assigned pages, or exposures counted where the "
                    "variant was not shown. Fix the cause before acting on these results."
                }
                (false, Some(_)) => {
                    "p ≥ 0.001: the split matches the allocation as well as chance allows; nothing "
                    "points at a broken assignment path."
                }
                _ => { "There are too few exposures to test yet." }
            }
        }
        div class="table-wrap" role="region" aria-labelledby="srm-caption" tabindex="0" {
            table class="srm" {
                caption id="srm-caption" { "Exposures per arm, observed and predicted by the allocation" }
                thead {
                    tr {
                        th scope="col" { "Variant" }
                        th scope="col" class="num" { "Observed" }
                        th scope="col" class="num" { "Predicted" }
                    }
                }
                tbody {
                    @for arm in &report.arms {
                        tr data-variant=(arm.variant) {
                            th scope="row" { (arm.variant) }
                            td class="num" { data value=(arm.exposures) { (numbers::count(arm.exposures)) } }
                            (cell("expected_exposures", arm.expected_exposures,
                                numbers::fixed(arm.expected_exposures, numbers::EXPECTED_PLACES)))
                        }
                    }
                }
            }
        }
    }
}
