//! The experiment page's plots, built from the report and the stored history: posterior
//! densities, P(best) and traffic share over time, cumulative exposures and rewards.

use maud::{Markup, html};

use crate::engine::{ExperimentReport, HistoryPoint};
use crate::stats::Posterior;
use crate::ui::svg::density::{DENSITY_POINTS, PLOTTED_LEVEL, density_curve, plotted_range};
use crate::ui::svg::{LineChart, Series, XAxis, YAxis};

/// Most points per series drawn from the history: beyond a few hundred, a line at the
/// dashboard's widths shows nothing more.
pub const MAX_PLOTTED_POINTS: usize = 600;

/// Every `k`-th point so that at most [`MAX_PLOTTED_POINTS`] remain, always keeping the last
/// (the newest state must be on the plot).
pub fn thin(points: &[HistoryPoint]) -> Vec<&HistoryPoint> {
    let stride = points.len().div_ceil(MAX_PLOTTED_POINTS).max(1);
    let mut kept: Vec<&HistoryPoint> = points.iter().step_by(stride).collect();
    if let (Some(last), Some(kept_last)) = (points.last(), kept.last())
        && !std::ptr::eq(last, *kept_last)
    {
        kept.push(last);
    }
    kept
}

/// The posterior density of every arm on one plot.
pub fn densities(report: &ExperimentReport) -> LineChart {
    let posteriors: Vec<Posterior> = report
        .arms
        .iter()
        .map(|arm| Posterior {
            alpha: arm.posterior.alpha,
            beta: arm.posterior.beta,
        })
        .collect();
    let (lo, hi) = plotted_range(&posteriors);
    let series = report
        .arms
        .iter()
        .zip(&posteriors)
        .map(|(arm, p)| Series {
            label: arm.variant.clone(),
            points: density_curve(p.alpha, p.beta, lo, hi, DENSITY_POINTS),
        })
        .collect();
    LineChart {
        id: "plot-density".into(),
        title: "Posterior density of each arm's rate".into(),
        description: format!(
            "Beta posterior density of the reward rate of each of the {} arms, over the range \
             holding {}% of every arm's posterior mass. Narrower peaks mean more certainty; \
             peaks further right mean higher rates.",
            report.arms.len(),
            PLOTTED_LEVEL * 100.0
        ),
        x_label: "rate (reward per exposure)".into(),
        y_label: "probability density".into(),
        x: XAxis::Linear { lo, hi },
        y: YAxis::FromZero,
        series,
        empty_note: "no arms".into(),
    }
}

/// A chart over time of one per-arm figure of the history.
fn over_time(
    report: &ExperimentReport,
    history: &[&HistoryPoint],
    id: &str,
    title: &str,
    y_label: &str,
    y: YAxis,
    value: impl Fn(&crate::store::HistoryArm) -> f64,
) -> LineChart {
    // One series per arm of the report, in its order; a history arm the report does not have
    // (none should) is left out rather than shown unlabelled.
    let series = report
        .arms
        .iter()
        .map(|arm| Series {
            label: arm.variant.clone(),
            points: history
                .iter()
                .filter_map(|point| {
                    point
                        .arms
                        .iter()
                        .find(|h| h.variant == arm.variant)
                        .map(|h| (point.at_ms as f64, value(h)))
                })
                .collect(),
        })
        .collect();
    LineChart {
        id: id.into(),
        title: title.into(),
        description: format!(
            "{title}, one line per arm, from the {} stored history points shown.",
            history.len()
        ),
        x_label: "time (UTC)".into(),
        y_label: y_label.into(),
        x: XAxis::Time,
        y,
        series,
        empty_note: "no history stored yet".into(),
    }
}

/// The four history charts, in page order.
pub fn history_charts(report: &ExperimentReport, history: &[HistoryPoint]) -> Vec<LineChart> {
    let shown = thin(history);
    vec![
        over_time(
            report,
            &shown,
            "plot-prob-best",
            "P(best) over time",
            "P(best)",
            YAxis::Unit,
            |h| h.prob_best,
        ),
        over_time(
            report,
            &shown,
            "plot-traffic",
            "Traffic share over time",
            "share of new traffic",
            YAxis::Unit,
            |h| h.traffic_share,
        ),
        over_time(
            report,
            &shown,
            "plot-exposures",
            "Cumulative exposures",
            "exposures (count)",
            YAxis::FromZero,
            |h| h.exposures as f64,
        ),
        over_time(
            report,
            &shown,
            "plot-rewards",
            "Cumulative rewards",
            "reward sum",
            YAxis::FromZero,
            |h| h.rewards,
        ),
    ]
}

/// A chart in a figure with its caption.
pub fn figure(kind: &str, chart: &LineChart, caption: &str) -> Markup {
    html! {
        figure class="plot" data-plot=(kind) {
            (chart.render())
            figcaption { (caption) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HistoryArm;

    fn point(at_ms: u64) -> HistoryPoint {
        HistoryPoint {
            at_ms,
            arms: vec![HistoryArm {
                variant: "a".into(),
                exposures: at_ms,
                rewards: 0.0,
                posterior_mean: 0.5,
                prob_best: 1.0,
                expected_loss: 0.0,
                traffic_share: 1.0,
            }],
        }
    }

    #[test]
    fn thinning_keeps_few_points_whole_and_many_under_the_cap_with_the_newest() {
        let few: Vec<HistoryPoint> = (0..10).map(point).collect();
        assert_eq!(thin(&few).len(), 10);
        let many: Vec<HistoryPoint> = (0..10_000).map(point).collect();
        let kept = thin(&many);
        assert!(kept.len() <= MAX_PLOTTED_POINTS + 1, "{}", kept.len());
        assert_eq!(kept.first().unwrap().at_ms, 0);
        assert_eq!(kept.last().unwrap().at_ms, 9_999);
        assert!(thin(&[]).is_empty());
    }
}
