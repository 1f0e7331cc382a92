//! The summary as text: an aligned table for people, JSON for tools, CSV (long format:
//! `metric,assignments,value`) for spreadsheets. Rendering only; the CLI prints.

use std::fmt::Write;

use super::summary::Summary;

/// A human-readable report.
pub fn render_table(summary: &Summary) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "{} runs x {} assignments, seed {}, posterior refreshed every {} assignment(s)",
        summary.runs, summary.horizon, summary.seed, summary.update_every
    );
    if let Some(rate) = summary.arrival_rate_per_hour {
        let delay = summary.conversion_delay.as_deref().unwrap_or("none");
        let _ = writeln!(out, "{rate} assignments per hour, conversion delay {delay}");
    }
    let width = summary
        .arms
        .iter()
        .map(|arm| arm.id.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:>9}  {:>13}",
        "arm", "true rate", "traffic share"
    );
    for arm in &summary.arms {
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>13}",
            arm.id,
            format!("{}{}", arm.true_rate, if arm.best { " *" } else { "  " }),
            percent(arm.traffic_share)
        );
    }
    let _ = writeln!(out, "(* highest true rate)");
    let _ = writeln!(
        out,
        "\ncumulative regret (expected conversions lost against always showing the best arm)"
    );
    let _ = writeln!(
        out,
        "{:>12}  {:>10}  {:>10}  {:>8}  {:>10}  {:>10}",
        "assignments", "hours", "mean", "± s.e.", "p5", "p95"
    );
    for point in &summary.regret {
        let hours = point.hours.map_or(String::new(), |h| format!("{h:.1}"));
        let _ = writeln!(
            out,
            "{:>12}  {:>10}  {:>10.2}  {:>8.2}  {:>10.2}  {:>10.2}",
            point.assignments, hours, point.mean, point.std_error, point.p5, point.p95
        );
    }
    let _ = writeln!(
        out,
        "\nbest arm traffic share: {} overall, {} in the last 10% of the horizon",
        percent(summary.best_arm_share),
        percent(summary.best_arm_share_last_tenth)
    );
    if let Some(lost) = summary.conversions_outside_window {
        let _ = writeln!(
            out,
            "conversions arriving after the reward window (rejected by the server): {}",
            percent(lost)
        );
    }
    match &summary.stopping {
        None => {
            let _ = writeln!(out, "stopping rule: none");
        }
        Some(stopping) => {
            let _ = write!(
                out,
                "stopping rule (evaluated every {} assignments): {} of runs declared a winner",
                stopping.evaluate_every,
                percent(stopping.declared_share)
            );
            if let (Some(correct), Some(median)) = (
                stopping.winner_is_best,
                stopping.median_assignments_to_decision,
            ) {
                let _ = write!(
                    out,
                    "; it had the highest true rate in {} of them; median decision after {median:.0} assignments",
                    percent(correct)
                );
                if let Some(hours) = stopping.median_hours_to_decision {
                    let _ = write!(out, " ({hours:.1} hours)");
                }
            }
            let _ = writeln!(out);
        }
    }
    if let Some(srm) = &summary.srm {
        let rates: Vec<String> = summary
            .arms
            .iter()
            .zip(&srm.confirm_rates)
            .map(|(arm, rate)| format!("{}={rate}", arm.id))
            .collect();
        let _ = writeln!(
            out,
            "sample-ratio check (p < {}) at the end of a run: alerted in {} of runs (± {}); \
             confirmation rates {}",
            srm.alert_p,
            percent(srm.alert_share),
            percent(srm.alert_share_std_error),
            rates.join(", ")
        );
    }
    out
}

/// The summary as pretty JSON (non-finite numbers become `null`).
pub fn render_json(summary: &Summary) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(summary).map(|mut text| {
        text.push('\n');
        text
    })
}

/// The summary as CSV rows `metric,assignments,value`: regret statistics per checkpoint,
/// then the per-arm and per-run figures with an empty `assignments`.
pub fn render_csv(summary: &Summary) -> String {
    let mut out = String::from("metric,assignments,value\n");
    let mut row = |metric: &str, assignments: Option<u64>, value: Option<f64>| {
        let assignments = assignments.map_or(String::new(), |a| a.to_string());
        let value = value.map_or(String::new(), |v| v.to_string());
        let _ = writeln!(out, "{metric},{assignments},{value}");
    };
    for point in &summary.regret {
        let at = Some(point.assignments);
        row("regret_mean", at, Some(point.mean));
        row("regret_std_error", at, Some(point.std_error));
        row("regret_p5", at, Some(point.p5));
        row("regret_p95", at, Some(point.p95));
        if point.hours.is_some() {
            row("hours", at, point.hours);
        }
    }
    for arm in &summary.arms {
        row(&format!("true_rate:{}", arm.id), None, Some(arm.true_rate));
        row(
            &format!("traffic_share:{}", arm.id),
            None,
            Some(arm.traffic_share),
        );
    }
    row("best_arm_share", None, Some(summary.best_arm_share));
    row(
        "best_arm_share_last_tenth",
        None,
        Some(summary.best_arm_share_last_tenth),
    );
    if let Some(lost) = summary.conversions_outside_window {
        row("conversions_outside_window", None, Some(lost));
    }
    if let Some(srm) = &summary.srm {
        row("srm_alert_share", None, Some(srm.alert_share));
    }
    if let Some(stopping) = &summary.stopping {
        row("declared_share", None, Some(stopping.declared_share));
        row("winner_is_best", None, stopping.winner_is_best);
        row(
            "median_assignments_to_decision",
            None,
            stopping.median_assignments_to_decision,
        );
        row(
            "median_hours_to_decision",
            None,
            stopping.median_hours_to_decision,
        );
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", 100.0 * share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::summary::{ArmSummary, RegretPoint, StoppingSummary};

    fn summary() -> Summary {
        Summary {
            runs: 2,
            horizon: 100,
            seed: 7,
            update_every: 1,
            arrival_rate_per_hour: Some(50.0),
            conversion_delay: Some("exp:2d".to_owned()),
            arms: vec![
                ArmSummary {
                    id: "control".to_owned(),
                    true_rate: 0.05,
                    best: false,
                    traffic_share: 0.25,
                },
                ArmSummary {
                    id: "bold".to_owned(),
                    true_rate: 0.06,
                    best: true,
                    traffic_share: 0.75,
                },
            ],
            regret: vec![RegretPoint {
                assignments: 100,
                hours: Some(2.0),
                mean: 0.25,
                std_error: 0.05,
                p5: 0.2,
                p95: 0.3,
            }],
            best_arm_share: 0.75,
            best_arm_share_last_tenth: 0.9,
            conversions_outside_window: Some(0.03),
            stopping: Some(StoppingSummary {
                evaluate_every: 100,
                declared_share: 0.5,
                winner_is_best: Some(1.0),
                median_assignments_to_decision: Some(40.0),
                median_hours_to_decision: Some(0.8),
            }),
            srm: Some(crate::sim::confirm::SrmSummary {
                alert_p: 0.001,
                alert_share: 0.5,
                alert_share_std_error: 0.35,
                confirm_rates: vec![1.0, 0.5],
            }),
        }
    }

    #[test]
    fn the_table_shows_every_figure() {
        let table = render_table(&summary());
        for expected in [
            "2 runs x 100 assignments, seed 7",
            "conversion delay exp:2d",
            "bold",
            "0.06 *",
            "75.0%",
            "0.25",
            "90.0% in the last 10%",
            "3.0%",
            "50.0% of runs declared a winner",
            "highest true rate in 100.0% of them",
            "after 40 assignments (0.8 hours)",
            "sample-ratio check (p < 0.001) at the end of a run: alerted in 50.0% of runs",
            "confirmation rates control=1, bold=0.5",
        ] {
            assert!(
                table.contains(expected),
                "{expected:?} missing from\n{table}"
            );
        }
    }

    #[test]
    fn json_round_trips_the_numbers() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&summary()).unwrap()).unwrap();
        assert_eq!(json["regret"][0]["p95"], 0.3);
        assert_eq!(json["arms"][1]["id"], "bold");
        assert_eq!(json["stopping"]["winner_is_best"], 1.0);
    }

    #[test]
    fn csv_is_long_format_with_one_value_per_row() {
        let csv = render_csv(&summary());
        assert!(csv.starts_with("metric,assignments,value\n"));
        assert!(csv.contains("regret_p95,100,0.3\n"));
        assert!(csv.contains("traffic_share:bold,,0.75\n"));
        assert!(csv.contains("median_assignments_to_decision,,40\n"));
        assert!(csv.lines().all(|line| line.split(',').count() == 3));
    }
}
