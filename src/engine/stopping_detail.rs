//! The stopping rule in an analyst's words: every unmet condition in the units the rule is
//! written in ("3 more days", "812 of 1,000 exposures on 'c'"), and the rule's thresholds
//! as a typed value, so a dashboard can show "how far" without parsing text.

use crate::spec::{Experiment, thousands};
use crate::stats::CollectingReason;
use crate::store::DecisionRule;

const MS_PER_MINUTE: u64 = 60_000;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;

/// The experiment's `stopping:` block as the stats show it (`None` without one): the same
/// shape a recorded decision stores, so a reader compares them field by field.
pub fn rule_of(spec: &Experiment) -> Option<DecisionRule> {
    spec.stopping.as_ref().map(|rule| DecisionRule {
        prob_best: Some(rule.prob_best),
        max_expected_loss: Some(rule.max_expected_loss),
        min_exposures: Some(rule.min_exposures),
        min_duration: rule.min_duration.map(|d| d.to_string()),
        on_winner: Some(rule.on_winner.as_str().to_owned()),
    })
}

/// Every unmet condition, joined with "; ", in the order the rule checks them. `name` maps
/// an arm index to its variant id; `min_duration` is the rule's own text (`7d`).
pub fn collecting_detail<'a>(
    reasons: &[CollectingReason],
    min_duration: Option<&str>,
    name: &dyn Fn(usize) -> &'a str,
) -> String {
    let parts: Vec<String> = reasons
        .iter()
        .map(|reason| unmet(reason, min_duration, name))
        .collect();
    if parts.is_empty() {
        "collecting".to_owned()
    } else {
        parts.join("; ")
    }
}

fn unmet<'a>(
    reason: &CollectingReason,
    min_duration: Option<&str>,
    name: &dyn Fn(usize) -> &'a str,
) -> String {
    match reason {
        CollectingReason::NoArms | CollectingReason::MismatchedInputs { .. } => {
            "no arms to compare".to_owned()
        }
        CollectingReason::TooEarly { remaining_ms } => match min_duration {
            Some(total) => format!("{} (min_duration {total})", time_left(*remaining_ms)),
            None => time_left(*remaining_ms),
        },
        CollectingReason::TooFewExposures {
            arm,
            exposures,
            required,
        } => format!(
            "{} of {} exposures on '{}'",
            thousands(*exposures),
            thousands(*required),
            name(*arm)
        ),
        CollectingReason::ProbBestTooLow {
            leader,
            prob_best,
            required,
        } => format!(
            "P(best) {} of {required} (leader '{}')",
            below(*prob_best, 4),
            name(*leader)
        ),
        CollectingReason::ExpectedLossTooHigh {
            leader,
            expected_loss,
            allowed,
        } => format!(
            "expected loss {} of {allowed} (leader '{}')",
            above(*expected_loss, 3),
            name(*leader)
        ),
    }
}

/// `remaining_ms` in the largest whole unit, rounded up so the wait is never understated:
/// "3 more days", "1 more hour", "5 more minutes".
pub fn time_left(remaining_ms: u64) -> String {
    let (count, unit) = if remaining_ms >= MS_PER_DAY {
        (remaining_ms.div_ceil(MS_PER_DAY), "day")
    } else if remaining_ms >= MS_PER_HOUR {
        (remaining_ms.div_ceil(MS_PER_HOUR), "hour")
    } else {
        (remaining_ms.div_ceil(MS_PER_MINUTE).max(1), "minute")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} more {unit}{plural}")
}

/// A P(best) under its threshold with `decimals` decimals, cut (not rounded) so that an
/// unmet 0.94996 never reads as the 0.95 it fails to reach.
fn below(value: f64, decimals: i32) -> String {
    if !value.is_finite() {
        return "unknown".to_owned();
    }
    let scale = 10_f64.powi(decimals);
    trimmed((value * scale).floor() / scale, decimals)
}

/// A loss over its threshold with `significant` significant digits, rounded up so that an
/// unmet 0.0010004 never reads as the 0.001 it exceeds.
fn above(value: f64, significant: i32) -> String {
    if !value.is_finite() {
        return "unknown".to_owned();
    }
    if value <= 0.0 {
        return "0".to_owned();
    }
    // Digits after the point that keep `significant` significant ones.
    let decimals = (significant - 1 - value.log10().floor() as i32).max(0);
    let scale = 10_f64.powi(decimals);
    trimmed((value * scale).ceil() / scale, decimals)
}

fn trimmed(value: f64, decimals: i32) -> String {
    let text = format!("{value:.*}", usize::try_from(decimals).unwrap_or(0));
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> &'static str {
        ["control", "bold", "c"].get(k).copied().unwrap_or("?")
    }

    #[test]
    fn every_unmet_condition_is_said_in_the_rules_own_units() {
        let reasons = [
            CollectingReason::TooEarly {
                remaining_ms: 2 * MS_PER_DAY + 1,
            },
            CollectingReason::TooFewExposures {
                arm: 2,
                exposures: 812,
                required: 1000,
            },
            CollectingReason::ProbBestTooLow {
                leader: 1,
                prob_best: 0.42,
                required: 0.95,
            },
            CollectingReason::ExpectedLossTooHigh {
                leader: 1,
                expected_loss: 0.021,
                allowed: 0.001,
            },
        ];
        assert_eq!(
            collecting_detail(&reasons, Some("7d"), &names),
            "3 more days (min_duration 7d); 812 of 1,000 exposures on 'c'; \
             P(best) 0.42 of 0.95 (leader 'bold'); expected loss 0.021 of 0.001 (leader 'bold')"
        );
    }

    #[test]
    fn the_time_left_is_rounded_up_in_the_largest_whole_unit() {
        assert_eq!(time_left(MS_PER_DAY), "1 more day");
        assert_eq!(time_left(MS_PER_DAY - 1), "24 more hours");
        assert_eq!(time_left(MS_PER_HOUR + 1), "2 more hours");
        assert_eq!(time_left(59 * MS_PER_MINUTE + 1), "60 more minutes");
        assert_eq!(time_left(1), "1 more minute");
    }

    #[test]
    fn numbers_near_the_threshold_never_read_as_met() {
        assert_eq!(below(0.949_96, 4), "0.9499");
        assert_eq!(below(0.5, 4), "0.5");
        assert_eq!(above(0.001_000_4, 3), "0.00101");
        assert_eq!(above(0.0214, 3), "0.0214");
        assert_eq!(above(0.25, 3), "0.25");
        assert_eq!(above(f64::NAN, 3), "unknown");
        assert_eq!(below(f64::NAN, 4), "unknown");
    }
}
