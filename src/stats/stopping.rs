//! The stopping rule: when the data are strong enough to declare a winner (experiment YAML
//! `stopping:`; docs/ARCHITECTURE.md, "Stopping").
//!
//! A winner needs both P(best) ≥ threshold *and* expected loss ≤ threshold. P(best) alone is
//! fragile when arms are practically tied (it hovers near 1/K forever, or jumps with noise);
//! the expected loss (Scott 2015, "Multi-armed bandit experiments in the online service
//! economy", ASMBI 31(1), §4 "value remaining") says how much reward rate is at stake if the
//! call is wrong, so ties resolve once nothing meaningful is left to lose. The minimum
//! exposures and duration guard against the early-peeking regime, where a few lucky
//! conversions or one day-of-week effect dominate.

use super::arm_comparison::ArmComparison;

/// Thresholds for declaring a winner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoppingRule {
    /// The leader's P(best) must be at least this.
    pub prob_best: f64,
    /// The leader's expected loss must be at most this (a reward rate, e.g. 0.001).
    pub max_expected_loss: f64,
    /// Every arm must have at least this many exposures.
    pub min_exposures: u64,
    /// At least this long since the experiment (epoch) started.
    pub min_duration_ms: u64,
}

/// What the stopping rule concludes.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Arm `arm` (index into the inputs) meets every condition.
    Winner {
        arm: usize,
        prob_best: f64,
        expected_loss: f64,
    },
    /// No winner yet: every unmet condition, never empty. An analyst deciding whether to
    /// wait, add traffic or loosen the rule needs all of them at once: naming only the first
    /// (say, "3 more days") hides that the evidence is also far from the threshold.
    Collecting { reasons: Vec<CollectingReason> },
}

/// One unmet condition. [`evaluate`] lists them in this order: guards on time and sample
/// size first (while they fail no evidence would be acted on anyway), then the evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectingReason {
    /// No arms were given.
    NoArms,
    /// The inputs disagree on the number of arms (a caller bug; never a winner on it).
    MismatchedInputs {
        prob_best_arms: usize,
        expected_loss_arms: usize,
        exposure_arms: usize,
    },
    /// `min_duration_ms` has not elapsed; `remaining_ms` to go.
    TooEarly { remaining_ms: u64 },
    /// Arm `arm` is short of `required`; one entry per short arm, the fewest exposures
    /// first (ties by arm order).
    TooFewExposures {
        arm: usize,
        exposures: u64,
        required: u64,
    },
    /// The leader's P(best) is below `required`.
    ProbBestTooLow {
        leader: usize,
        prob_best: f64,
        required: f64,
    },
    /// The leader's expected loss is above `allowed`.
    ExpectedLossTooHigh {
        leader: usize,
        expected_loss: f64,
        allowed: f64,
    },
}

/// Applies `rule` to the current comparison. `exposures[k]` are arm k's counted exposures,
/// in the order of `comparison`; `started_ms` and `now_ms` are on the caller's clock.
///
/// The leader is the arm with the highest P(best); ties go to the lower expected loss, then
/// to the first arm. Thresholds are inclusive: P(best) exactly at `rule.prob_best` and a loss
/// exactly at `rule.max_expected_loss` count as met. A NaN anywhere fails its condition.
pub fn evaluate(
    rule: &StoppingRule,
    comparison: &ArmComparison,
    exposures: &[u64],
    started_ms: u64,
    now_ms: u64,
) -> Verdict {
    let arms = exposures.len();
    if comparison.prob_best.len() != arms || comparison.expected_loss.len() != arms {
        return Verdict::Collecting {
            reasons: vec![CollectingReason::MismatchedInputs {
                prob_best_arms: comparison.prob_best.len(),
                expected_loss_arms: comparison.expected_loss.len(),
                exposure_arms: arms,
            }],
        };
    }
    let Some(leader) = leader(comparison) else {
        return Verdict::Collecting {
            reasons: vec![CollectingReason::NoArms],
        };
    };
    let mut reasons = Vec::new();
    let elapsed = now_ms.saturating_sub(started_ms);
    if elapsed < rule.min_duration_ms {
        reasons.push(CollectingReason::TooEarly {
            remaining_ms: rule.min_duration_ms - elapsed,
        });
    }
    let mut short: Vec<(usize, u64)> = exposures
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, count)| count < rule.min_exposures)
        .collect();
    short.sort_by_key(|&(index, count)| (count, index));
    reasons.extend(
        short
            .into_iter()
            .map(|(arm, exposures)| CollectingReason::TooFewExposures {
                arm,
                exposures,
                required: rule.min_exposures,
            }),
    );
    let prob_best = comparison.prob_best[leader];
    let expected_loss = comparison.expected_loss[leader];
    // Written as "met" flags so that a NaN fails the condition.
    let prob_best_met = prob_best >= rule.prob_best;
    let expected_loss_met = expected_loss <= rule.max_expected_loss;
    if !prob_best_met {
        reasons.push(CollectingReason::ProbBestTooLow {
            leader,
            prob_best,
            required: rule.prob_best,
        });
    }
    if !expected_loss_met {
        reasons.push(CollectingReason::ExpectedLossTooHigh {
            leader,
            expected_loss,
            allowed: rule.max_expected_loss,
        });
    }
    if reasons.is_empty() {
        Verdict::Winner {
            arm: leader,
            prob_best,
            expected_loss,
        }
    } else {
        Verdict::Collecting { reasons }
    }
}

/// Index of the highest P(best); ties by the lower expected loss, then the lower index. NaN
/// P(best) ranks below every number and NaN loss above every number.
fn leader(comparison: &ArmComparison) -> Option<usize> {
    let rank = |value: f64, nan_as: f64| if value.is_nan() { nan_as } else { value };
    let mut best: Option<usize> = None;
    for k in 0..comparison.prob_best.len() {
        let candidate = (
            rank(comparison.prob_best[k], f64::NEG_INFINITY),
            rank(comparison.expected_loss[k], f64::INFINITY),
        );
        best = match best {
            Some(b) => {
                let current = (
                    rank(comparison.prob_best[b], f64::NEG_INFINITY),
                    rank(comparison.expected_loss[b], f64::INFINITY),
                );
                let better = candidate.0 > current.0
                    || (candidate.0 == current.0 && candidate.1 < current.1);
                Some(if better { k } else { b })
            }
            None => Some(k),
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: StoppingRule = StoppingRule {
        prob_best: 0.95,
        max_expected_loss: 0.001,
        min_exposures: 100,
        min_duration_ms: 3_600_000,
    };

    fn comparison(prob_best: &[f64], expected_loss: &[f64]) -> ArmComparison {
        ArmComparison {
            prob_best: prob_best.to_vec(),
            expected_loss: expected_loss.to_vec(),
        }
    }

    fn verdict(prob_best: &[f64], expected_loss: &[f64], exposures: &[u64]) -> Verdict {
        evaluate(
            &RULE,
            &comparison(prob_best, expected_loss),
            exposures,
            1_000,
            1_000 + RULE.min_duration_ms,
        )
    }

    #[test]
    fn a_leader_meeting_every_threshold_exactly_is_the_winner() {
        assert_eq!(
            verdict(&[0.05, 0.95], &[0.02, 0.001], &[100, 100]),
            Verdict::Winner {
                arm: 1,
                prob_best: 0.95,
                expected_loss: 0.001
            }
        );
    }

    #[test]
    fn a_leader_below_the_prob_best_threshold_keeps_collecting() {
        let below = 0.95 - f64::EPSILON;
        assert_eq!(
            verdict(&[1.0 - below, below], &[0.02, 0.0001], &[500, 500]),
            Verdict::Collecting {
                reasons: vec![CollectingReason::ProbBestTooLow {
                    leader: 1,
                    prob_best: below,
                    required: 0.95
                }]
            }
        );
    }

    #[test]
    fn a_leader_with_too_much_expected_loss_keeps_collecting() {
        assert_eq!(
            verdict(&[0.97, 0.03], &[0.0011, 0.03], &[500, 500]),
            Verdict::Collecting {
                reasons: vec![CollectingReason::ExpectedLossTooHigh {
                    leader: 0,
                    expected_loss: 0.0011,
                    allowed: 0.001
                }]
            }
        );
    }

    #[test]
    fn every_short_arm_is_named_the_fewest_exposures_first() {
        assert_eq!(
            verdict(&[0.99, 0.005, 0.005], &[0.0, 0.1, 0.1], &[500, 99, 42]),
            Verdict::Collecting {
                reasons: vec![
                    CollectingReason::TooFewExposures {
                        arm: 2,
                        exposures: 42,
                        required: 100
                    },
                    CollectingReason::TooFewExposures {
                        arm: 1,
                        exposures: 99,
                        required: 100
                    }
                ]
            }
        );
    }

    #[test]
    fn the_remaining_time_is_reported_until_the_minimum_duration_has_elapsed() {
        let compared = comparison(&[0.99, 0.01], &[0.0, 0.1]);
        let started = 10_000;
        let early = evaluate(&RULE, &compared, &[500, 500], started, started + 600_000);
        assert_eq!(
            early,
            Verdict::Collecting {
                reasons: vec![CollectingReason::TooEarly {
                    remaining_ms: 3_000_000
                }]
            }
        );
        let exactly = evaluate(
            &RULE,
            &compared,
            &[500, 500],
            started,
            started + RULE.min_duration_ms,
        );
        assert!(matches!(exactly, Verdict::Winner { arm: 0, .. }));
        // A clock that reads before the start counts as no time elapsed.
        let backwards = evaluate(&RULE, &compared, &[500, 500], started, 0);
        assert_eq!(
            backwards,
            Verdict::Collecting {
                reasons: vec![CollectingReason::TooEarly {
                    remaining_ms: RULE.min_duration_ms
                }]
            }
        );
    }

    #[test]
    fn every_unmet_condition_is_listed_guards_before_the_evidence() {
        // Everything fails: the duration, both arms' exposures, P(best) and the loss.
        let compared = comparison(&[0.5, 0.5], &[0.1, 0.1]);
        assert_eq!(
            evaluate(&RULE, &compared, &[3, 1], 0, 600_000),
            Verdict::Collecting {
                reasons: vec![
                    CollectingReason::TooEarly {
                        remaining_ms: 3_000_000
                    },
                    CollectingReason::TooFewExposures {
                        arm: 1,
                        exposures: 1,
                        required: 100
                    },
                    CollectingReason::TooFewExposures {
                        arm: 0,
                        exposures: 3,
                        required: 100
                    },
                    CollectingReason::ProbBestTooLow {
                        leader: 0,
                        prob_best: 0.5,
                        required: 0.95
                    },
                    CollectingReason::ExpectedLossTooHigh {
                        leader: 0,
                        expected_loss: 0.1,
                        allowed: 0.001
                    },
                ]
            }
        );
    }

    #[test]
    fn ties_in_prob_best_go_to_the_lower_loss_then_to_the_first_arm() {
        let rule = StoppingRule {
            prob_best: 0.4,
            ..RULE
        };
        let run = |loss: &[f64]| {
            evaluate(
                &rule,
                &comparison(&[0.45, 0.45, 0.1], loss),
                &[500; 3],
                0,
                RULE.min_duration_ms,
            )
        };
        assert!(matches!(
            run(&[0.0009, 0.0005, 0.1]),
            Verdict::Winner { arm: 1, .. }
        ));
        assert!(matches!(
            run(&[0.0005, 0.0005, 0.1]),
            Verdict::Winner { arm: 0, .. }
        ));
    }

    #[test]
    fn nan_values_never_win_and_inconsistent_inputs_are_reported() {
        assert!(matches!(
            verdict(&[f64::NAN, 0.2], &[0.0, 0.0005], &[500, 500]),
            Verdict::Collecting { reasons } if matches!(
                reasons.as_slice(),
                [CollectingReason::ProbBestTooLow { leader: 1, .. }]
            )
        ));
        assert!(matches!(
            verdict(&[0.99, 0.01], &[f64::NAN, 0.1], &[500, 500]),
            Verdict::Collecting { reasons } if matches!(
                reasons.as_slice(),
                [CollectingReason::ExpectedLossTooHigh { leader: 0, .. }]
            )
        ));
        assert_eq!(
            verdict(&[], &[], &[]),
            Verdict::Collecting {
                reasons: vec![CollectingReason::NoArms]
            }
        );
        assert_eq!(
            verdict(&[0.5, 0.5], &[0.1, 0.1], &[500]),
            Verdict::Collecting {
                reasons: vec![CollectingReason::MismatchedInputs {
                    prob_best_arms: 2,
                    expected_loss_arms: 2,
                    exposure_arms: 1
                }]
            }
        );
    }
}
