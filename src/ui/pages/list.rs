//! `/ui/`: every loaded experiment in one table — status, owner, traffic, the leader, the
//! stopping state, and the checks that say whether to trust the numbers.

use std::time::Duration;

use maud::{Markup, html};

use super::parts::{decision_words, leader, srm_badge, status_badge};
use crate::engine::{DEFAULT_CREDIBLE_LEVEL, Engine, ExperimentReport};
use crate::spec::Status;
use crate::ui::error::UiResult;
use crate::ui::numbers;

/// Whether the stored history keeps up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryFreshness {
    /// A point was stored within the last two intervals.
    Fresh,
    /// No point within the last two intervals: the history writer is behind or failing.
    Stale { window_ms: u64 },
    /// Drafts are not served, so no history is stored for them.
    NotRecorded,
}

/// One row of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub report: ExperimentReport,
    pub history: HistoryFreshness,
}

/// Reads every experiment's report (the same call as `GET /v1/experiments/{id}`) and whether
/// its history is fresh.
pub async fn load(engine: &Engine, history_interval: Duration) -> UiResult<Vec<Row>> {
    let ids: Vec<String> = engine
        .catalog()
        .all()
        .map(|live| live.epoch.experiment.clone())
        .collect();
    let window_ms = u64::try_from(history_interval.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(2);
    let now_ms = engine.now_ms();
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let report = engine.report(&id, DEFAULT_CREDIBLE_LEVEL, None).await?;
        let history = if report.summary.status == Status::Draft {
            HistoryFreshness::NotRecorded
        } else if engine
            .revision_history(&id, None, now_ms.saturating_sub(window_ms), 1)
            .await?
            .is_empty()
        {
            HistoryFreshness::Stale { window_ms }
        } else {
            HistoryFreshness::Fresh
        };
        rows.push(Row { report, history });
    }
    Ok(rows)
}

/// The table's columns and their classes. On a phone the rows become cards, each cell
/// labelled by its `data-label` (the explicit ARIA roles keep the table a table for screen
/// readers whatever the CSS `display`).
const COLUMNS: [(&str, Option<&str>); 8] = [
    ("Experiment", None),
    ("Status", None),
    ("Owner", None),
    ("Assignment", None),
    ("Exposures", Some("num")),
    ("Leader (P(best))", None),
    ("Stopping", None),
    ("Checks", None),
];

pub fn render(rows: &[Row]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No experiments are loaded. Add YAML files to the experiment folder; the server "
                "reloads when they change." }
        } @else {
            div class="table-wrap" role="region" aria-labelledby="experiments-caption" tabindex="0" {
                table class="experiments" role="table" {
                    caption id="experiments-caption" {
                        "Loaded experiments, in file order. P(best) is the posterior probability "
                        "that the arm has the highest rate, computed from the stored counts when "
                        "this page was read."
                    }
                    thead {
                        tr role="row" {
                            @for (heading, class) in COLUMNS {
                                th scope="col" role="columnheader" class=[class] { (heading) }
                            }
                        }
                    }
                    tbody {
                        @for row in rows { (row_markup(row)) }
                    }
                }
            }
        }
    }
}

fn row_markup(row: &Row) -> Markup {
    let report = &row.report;
    let summary = &report.summary;
    html! {
        tr role="row" data-experiment=(summary.id) {
            th scope="row" role="rowheader" {
                a href=(format!("/ui/experiments/{}", summary.id)) { (summary.id) }
                @if !summary.description.is_empty() {
                    span class="description" { (summary.description) }
                }
            }
            td role="cell" data-label="Status" { (status_badge(summary.status)) }
            td role="cell" data-label="Owner" { (summary.owner) }
            td role="cell" data-label="Assignment" { (summary.assignment.as_str()) }
            td role="cell" data-label="Exposures" class="num" {
                data value=(summary.exposures) { (numbers::count(summary.exposures)) }
            }
            td role="cell" data-label="Leader" {
                @match leader(report) {
                    Some((arm, prob_best)) => {
                        (arm.variant) " ("
                        data value=(numbers::exact(prob_best)) { (numbers::proportion(prob_best)) }
                        ")"
                    }
                    None => { "—" }
                }
            }
            td role="cell" data-label="Stopping" { (decision_words(report, true)) }
            td role="cell" data-label="Checks" class="checks" {
                (srm_badge(&report.srm))
                @match row.history {
                    HistoryFreshness::Stale { window_ms } => {
                        span class="badge warn" {
                            "History stale: no point in the last " (numbers::age(window_ms))
                        }
                    }
                    HistoryFreshness::NotRecorded => {
                        span class="badge muted" { "Draft: not served, no history" }
                    }
                    HistoryFreshness::Fresh => {}
                }
            }
        }
    }
}
