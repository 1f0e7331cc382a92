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
        "{:>12}  {:>10}  {:>10}  {:>8}  {:>10}  {:>10}  {:>9}",
        "assignments", "hours", "mean", "± s.e.", "p5", "p95", "% of best"
    );
    for point in &summary.regret {
        let hours = point.hours.map_or(String::new(), |h| format!("{h:.1}"));
        let share = point
            .percent_of_best
            .map_or(String::new(), |p| format!("{p:.2}%"));
        let _ = writeln!(
            out,
            "{:>12}  {:>10}  {:>10.2}  {:>8.2}  {:>10.2}  {:>10.2}  {:>9}",
            point.assignments, hours, point.mean, point.std_error, point.p5, point.p95, share
        );
    }
    let _ = writeln!(
        out,
        "(% of best: the mean regret as a share of the conversions always showing the best arm brings)"
    );
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
    render_stopping(&mut out, summary);
    render_even_split(&mut out, summary);
    for halt in &summary.halts {
        let _ = write!(
            out,
            "guardrail halts of {}: {} of runs (± {})",
            halt.arm,
            percent(halt.halted_share),
            percent(halt.halted_share_std_error)
        );
        if let (Some(median), Some(p90)) =
            (halt.median_exposures_to_halt, halt.p90_exposures_to_halt)
        {
            let _ = write!(
                out,
                "; exposures until halt: median {median:.0}, p90 {p90:.0}"
            );
        }
        let _ = writeln!(out);
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

fn render_stopping(out: &mut String, summary: &Summary) {
    let Some(stopping) = &summary.stopping else {
        let _ = writeln!(out, "stopping rule: none");
        return;
    };
    let _ = write!(
        out,
        "stopping rule (evaluated every {} assignments): {} of runs declared a winner",
        stopping.evaluate_every,
        percent(stopping.declared_share)
    );
    if let Some(correct) = stopping.winner_is_best {
        let _ = write!(
            out,
            "; it had the highest true rate in {} of them",
            percent(correct)
        );
    }
    let _ = writeln!(out);
    if let Some(spread) = stopping.assignments_to_decision {
        let _ = write!(
            out,
            "  decision after (p10 / median / p90): {:.0} / {:.0} / {:.0} assignments",
            spread.p10, spread.p50, spread.p90
        );
        if let Some(days) = stopping.days_to_decision {
            let _ = write!(
                out,
                " ({:.1} / {:.1} / {:.1} days)",
                days.p10, days.p50, days.p90
            );
        }
        let _ = writeln!(out);
    }
    if !stopping.undecided_leaders.is_empty() {
        let leaders: Vec<String> = stopping
            .undecided_leaders
            .iter()
            .map(|leader| {
                format!(
                    "{}{} {}",
                    leader.id,
                    if leader.best { " *" } else { "" },
                    percent(leader.share)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  runs with no decision: the leader (highest P(best)) at the horizon was {}",
            leaders.join(", ")
        );
    }
}

fn render_even_split(out: &mut String, summary: &Summary) {
    let split = &summary.even_split;
    let of_best = |p: Option<f64>| p.map_or(String::new(), |p| format!(" ({p:.2}% of best)"));
    let bandit = summary.regret.last();
    let _ = writeln!(
        out,
        "\neven A/B split of the same horizon ({} assignments per arm, exact figures):",
        split.per_arm
    );
    let _ = writeln!(
        out,
        "  regret {:.2}{}; ships the best arm (most conversions, ties at random) with probability {}",
        split.regret,
        of_best(split.regret_percent_of_best),
        percent(split.picks_best)
    );
    if let Some(bandit) = bandit {
        let _ = writeln!(
            out,
            "  the bandit: regret {:.2}{}; its pick at the horizon (winner, else leader) is the best arm in {} of runs",
            bandit.mean,
            of_best(bandit.percent_of_best),
            percent(summary.final_pick_is_best)
        );
    }
    let saved = summary.conversions_saved_vs_even_split;
    if saved >= 0.0 {
        let _ = writeln!(
            out,
            "  the bandit keeps {saved:.2} conversions more than the even split"
        );
    } else {
        let _ = writeln!(
            out,
            "  the bandit loses {:.2} conversions more than the even split",
            -saved
        );
    }
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
        row("regret_percent_of_best", at, point.percent_of_best);
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
        for (name, spread) in [
            ("assignments_to_decision", stopping.assignments_to_decision),
            ("days_to_decision", stopping.days_to_decision),
        ] {
            row(&format!("{name}_p10"), None, spread.map(|s| s.p10));
            row(&format!("{name}_p50"), None, spread.map(|s| s.p50));
            row(&format!("{name}_p90"), None, spread.map(|s| s.p90));
        }
        for leader in &stopping.undecided_leaders {
            row(
                &format!("undecided_leader_share:{}", leader.id),
                None,
                Some(leader.share),
            );
        }
    }
    row("final_pick_is_best", None, Some(summary.final_pick_is_best));
    let split = &summary.even_split;
    row("even_split_per_arm", None, Some(split.per_arm as f64));
    row("even_split_regret", None, Some(split.regret));
    row(
        "even_split_regret_percent_of_best",
        None,
        split.regret_percent_of_best,
    );
    row("even_split_picks_best", None, Some(split.picks_best));
    row(
        "conversions_saved_vs_even_split",
        None,
        Some(summary.conversions_saved_vs_even_split),
    );
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", 100.0 * share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::even_split::EvenSplit;
    use crate::sim::summary::{ArmSummary, LeaderShare, RegretPoint, Spread, StoppingSummary};

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
                percent_of_best: Some(4.17),
            }],
            best_arm_share: 0.75,
            best_arm_share_last_tenth: 0.9,
            conversions_outside_window: Some(0.03),
            stopping: Some(StoppingSummary {
                evaluate_every: 100,
                declared_share: 0.5,
                winner_is_best: Some(1.0),
                assignments_to_decision: Some(Spread {
                    p10: 20.0,
                    p50: 40.0,
                    p90: 90.0,
                }),
                days_to_decision: Some(Spread {
                    p10: 0.25,
                    p50: 0.5,
                    p90: 1.5,
                }),
                undecided_leaders: vec![LeaderShare {
                    id: "bold".to_owned(),
                    best: true,
                    share: 1.0,
                }],
            }),
            final_pick_is_best: 0.5,
            even_split: EvenSplit {
                per_arm: 50,
                regret: 0.5,
                regret_percent_of_best: Some(8.33),
                picks_best: 0.62,
            },
            conversions_saved_vs_even_split: 0.25,
            halts: Vec::new(),
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
            "decision after (p10 / median / p90): 20 / 40 / 90 assignments (0.2 / 0.5 / 1.5 days)",
            "runs with no decision: the leader (highest P(best)) at the horizon was bold * 100.0%",
            "4.17%",
            "even A/B split of the same horizon (50 assignments per arm, exact figures):",
            "regret 0.50 (8.33% of best); ships the best arm (most conversions, ties at random) with probability 62.0%",
            "the bandit: regret 0.25 (4.17% of best); its pick at the horizon (winner, else leader) is the best arm in 50.0% of runs",
            "the bandit keeps 0.25 conversions more than the even split",
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
        assert!(csv.contains("assignments_to_decision_p50,,40\n"));
        assert!(csv.contains("days_to_decision_p90,,1.5\n"));
        assert!(csv.contains("even_split_picks_best,,0.62\n"));
        assert!(csv.contains("regret_percent_of_best,100,4.17\n"));
        assert!(csv.lines().all(|line| line.split(',').count() == 3));
    }
}
