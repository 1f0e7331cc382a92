//! Pieces more than one page shows: badges, the leader, the stopping state in words.

use maud::{Markup, html};

use crate::engine::{ArmReport, ExperimentReport};
use crate::spec::Status;
use crate::ui::numbers;

pub fn status_badge(status: Status) -> Markup {
    let class = match status {
        Status::Running => "badge ok",
        Status::Paused | Status::Draft => "badge muted",
        Status::Concluded => "badge info",
    };
    html! { span class=(class) { (status.as_str()) } }
}

/// The live arm with the highest P(best) and that P(best), once anything has been exposed
/// (none when P(best) is unknown, as for a revision served before specs were kept).
pub fn leader(report: &ExperimentReport) -> Option<(&ArmReport, f64)> {
    if report.summary.exposures == 0 {
        return None;
    }
    report
        .arms
        .iter()
        .filter(|arm| !arm.retired)
        .filter_map(|arm| arm.prob_best.map(|p| (arm, p)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The stopping rule's state in a sentence; `with_detail` adds why there is no winner yet
/// (the experiment page shows that on its own line).
pub fn decision_words(report: &ExperimentReport, with_detail: bool) -> Markup {
    let stopping = &report.stopping;
    html! {
        @match stopping.status {
            "winner" => {
                strong { "Winner" }
                @if let Some(decided) = &stopping.decided { ": " (decided.variant) }
                @if stopping.still_holds == Some(false) {
                    " " span class="badge warn" { "no longer meets the rule" }
                }
            }
            "collecting" => {
                strong { "Collecting" }
                @if with_detail { ": " (stopping.detail) }
            }
            _ => { "No stopping rule" }
        }
    }
}

/// The sample-ratio check as a badge: alert, fine, or not yet computable.
pub fn srm_badge(srm: &crate::engine::SrmReport) -> Markup {
    html! {
        @match (srm.alert, srm.p_value) {
            (true, Some(p)) => {
                span class="badge alert" {
                    "SRM alert (p = " data value=(numbers::exact(p)) { (numbers::proportion(p)) } ")"
                }
            }
            (false, Some(p)) => {
                span class="badge ok" {
                    "SRM ok (p = " data value=(numbers::exact(p)) { (numbers::proportion(p)) } ")"
                }
            }
            _ => { span class="badge muted" { "SRM: too little data" } }
        }
    }
}
