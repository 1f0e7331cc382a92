//! Tests of the allocation policy: closed-form references and seeded 4σ tolerances.

use super::*;
use rand::{SeedableRng, rngs::SmallRng};
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn arm(alpha: f64, beta: f64, exposures: f64) -> ArmView {
    ArmView {
        alpha,
        beta,
        exposures,
        active: true,
    }
}

fn retired(alpha: f64, beta: f64, exposures: f64) -> ArmView {
    ArmView {
        active: false,
        ..arm(alpha, beta, exposures)
    }
}

const PARAMS: Params = Params {
    burn_in: 100,
    min_share: 0.05,
};

/// P(Beta(3,2) > Beta(2,3)) = 53/70 exactly (Evan Miller, "Formulas for Bayesian A/B
/// testing", 2015: Σ_{i<α_B} B(α_A+i, β_A+β_B) / ((β_B+i)·B(1+i, β_B)·B(α_A, β_A))).
const P_BETA32_BEATS_BETA23: f64 = 53.0 / 70.0;

fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

/// Runs `decide` n times and returns how often each arm was chosen.
fn frequencies(
    mode: Mode,
    params: Params,
    arms: &[ArmView],
    shares: &[f64],
    n: usize,
    seed: u64,
) -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut counts = vec![0usize; arms.len()];
    for _ in 0..n {
        let decision = decide(mode, params, arms, shares, &mut rng).expect("valid state");
        counts[decision.arm] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

#[test]
fn paused_serves_the_default_arm_uncounted_with_certainty() {
    let arms = [arm(1.0, 1.0, 500.0), arm(50.0, 1.0, 500.0)];
    let mut rng = SmallRng::seed_from_u64(1);
    let mode = Mode::Paused { default: 0 };
    let decision = decide(mode, PARAMS, &arms, &[0.0, 1.0], &mut rng).expect("valid state");
    let expected = Decision {
        arm: 0,
        propensity: 1.0,
        counted: false,
        reason: Reason::Paused,
    };
    assert_eq!(decision, expected);
    assert_eq!(
        allocation(mode, PARAMS, &arms, &[0.0, 1.0]),
        Ok(vec![1.0, 0.0])
    );
}

#[test]
fn fixed_serves_the_winner_to_everybody_counted() {
    let arms = [arm(1.0, 1.0, 0.0), arm(1.0, 50.0, 0.0), arm(1.0, 1.0, 0.0)];
    let mut rng = SmallRng::seed_from_u64(2);
    let mode = Mode::Fixed { winner: 1 };
    for _ in 0..100 {
        let decision = decide(mode, PARAMS, &arms, &[0.5, 0.0, 0.5], &mut rng).expect("valid");
        let expected = Decision {
            arm: 1,
            propensity: 1.0,
            counted: true,
            reason: Reason::Fixed,
        };
        assert_eq!(decision, expected);
    }
    assert_eq!(
        allocation(mode, PARAMS, &arms, &[0.5, 0.0, 0.5]),
        Ok(vec![0.0, 1.0, 0.0])
    );
}

#[test]
fn inconsistent_inputs_are_errors_not_panics() {
    let arms = [arm(1.0, 1.0, 0.0), retired(1.0, 1.0, 0.0)];
    let mut rng = SmallRng::seed_from_u64(3);
    let shares = [1.0, 0.0];
    let cases = [
        (
            Mode::Paused { default: 2 },
            &shares[..],
            PolicyError::ArmOutOfRange { arm: 2, arms: 2 },
        ),
        (
            Mode::Fixed { winner: 5 },
            &shares[..],
            PolicyError::ArmOutOfRange { arm: 5, arms: 2 },
        ),
        (
            Mode::Fixed { winner: 1 },
            &shares[..],
            PolicyError::RetiredWinner(1),
        ),
        (
            Mode::Adaptive,
            &shares[..1],
            PolicyError::SharesLengthMismatch { shares: 1, arms: 2 },
        ),
    ];
    for (mode, shares, error) in cases {
        assert_eq!(decide(mode, PARAMS, &arms, shares, &mut rng), Err(error));
        assert_eq!(allocation(mode, PARAMS, &arms, shares), Err(error));
    }
    let all_retired = [retired(1.0, 1.0, 0.0)];
    let no_active = decide(Mode::Adaptive, PARAMS, &all_retired, &[0.0], &mut rng);
    assert_eq!(no_active, Err(PolicyError::NoActiveArm));
    assert_eq!(
        decide(Mode::Adaptive, PARAMS, &[], &[], &mut rng),
        Err(PolicyError::NoActiveArm)
    );
}

#[test]
fn burn_in_allocation_is_uniform_over_active_arms() {
    // One arm under burn-in keeps every arm uniform, however lopsided the posteriors.
    // Pearson's chi-square on 30k decisions, 2 degrees of freedom; a correct policy fails
    // with probability 0.001 (and, seeded, then always passes).
    let arms = [
        arm(900.0, 100.0, 1000.0),
        arm(1.0, 1.0, 10.0),
        retired(1.0, 1.0, 0.0),
        arm(1.0, 900.0, 1000.0),
    ];
    let n = 30_000;
    let shares = [1.0, 0.0, 0.0, 0.0];
    let observed = frequencies(Mode::Adaptive, PARAMS, &arms, &shares, n, 4);
    assert_eq!(observed[2], 0.0);
    let expected = n as f64 / 3.0;
    let statistic: f64 = [0, 1, 3]
        .iter()
        .map(|&k| (observed[k] * n as f64 - expected).powi(2) / expected)
        .sum();
    let p_value = ChiSquared::new(2.0)
        .expect("valid constant df")
        .sf(statistic);
    assert!(p_value > 0.001, "chi-square {statistic}, p = {p_value}");
    let mut rng = SmallRng::seed_from_u64(5);
    let decision = decide(Mode::Adaptive, PARAMS, &arms, &shares, &mut rng).expect("valid");
    assert_eq!(
        (decision.reason, decision.propensity),
        (Reason::BurnIn, 1.0 / 3.0)
    );
}

#[test]
fn burn_in_ends_when_every_active_arm_has_enough_exposures() {
    // A retired arm that never reached burn-in must not hold the experiment in it.
    let arms = [
        arm(50.0, 50.0, 100.0),
        arm(10.0, 90.0, 100.0),
        retired(1.0, 1.0, 3.0),
    ];
    let mut rng = SmallRng::seed_from_u64(6);
    let params = Params {
        burn_in: 100,
        min_share: 0.0,
    };
    let decision =
        decide(Mode::Adaptive, params, &arms, &[1.0, 0.0, 0.0], &mut rng).expect("valid");
    assert_eq!(decision.reason, Reason::Thompson);
}

#[test]
fn min_share_floor_is_honoured_for_a_clearly_worse_arm() {
    let arms = [arm(501.0, 501.0, 1000.0), arm(101.0, 901.0, 1000.0)];
    let params = Params {
        burn_in: 100,
        min_share: 0.05,
    };
    let n = 20_000;
    let observed = frequencies(Mode::Adaptive, params, &arms, &[1.0, 0.0], n, 7);
    assert!(
        observed[1] >= 0.05 - four_sigma(0.05, n),
        "bad arm share {}",
        observed[1]
    );
}

#[test]
fn thompson_concentrates_on_a_clearly_better_arm() {
    // Beta(501,501) vs Beta(101,901): means 0.5 vs 0.1, sds 0.016 and 0.0095, so the
    // worse arm wins a draw with probability far below 1e-6.
    let arms = [arm(101.0, 901.0, 1000.0), arm(501.0, 501.0, 1000.0)];
    let params = Params {
        burn_in: 100,
        min_share: 0.0,
    };
    let observed = frequencies(Mode::Adaptive, params, &arms, &[0.0, 1.0], 10_000, 8);
    assert!(observed[1] > 0.99, "better arm share {}", observed[1]);
}

#[test]
fn decision_frequencies_match_the_closed_form_allocation() {
    // Arms Beta(2,3) and Beta(3,2) with floor 2·0.1: P(arm 1) = 0.1 + 0.8·53/70.
    let arms = [arm(2.0, 3.0, 200.0), arm(3.0, 2.0, 200.0)];
    let params = Params {
        burn_in: 100,
        min_share: 0.1,
    };
    let shares = [1.0 - P_BETA32_BEATS_BETA23, P_BETA32_BEATS_BETA23];
    let expected = 0.1 + 0.8 * P_BETA32_BEATS_BETA23;
    let n = 40_000;
    let observed = frequencies(Mode::Adaptive, params, &arms, &shares, n, 9);
    assert!(
        (observed[1] - expected).abs() < four_sigma(expected, n),
        "{} vs {expected}",
        observed[1]
    );
    let allocated = allocation(Mode::Adaptive, params, &arms, &shares).expect("valid");
    assert!((allocated[1] - expected).abs() < 1e-15);
    assert!((allocated[0] + allocated[1] - 1.0).abs() < 1e-15);
}

#[test]
fn propensity_equals_the_allocation_in_every_branch() {
    let arms = [
        arm(2.0, 3.0, 200.0),
        retired(9.0, 1.0, 5.0),
        arm(3.0, 2.0, 200.0),
        arm(1.0, 9.0, 200.0),
    ];
    let shares = [0.3, 0.0, 0.6, 0.1];
    let cases = [
        (Mode::Paused { default: 1 }, PARAMS),
        (Mode::Fixed { winner: 2 }, PARAMS),
        (
            Mode::Adaptive,
            Params {
                burn_in: 1_000,
                min_share: 0.1,
            },
        ),
        (
            Mode::Adaptive,
            Params {
                burn_in: 100,
                min_share: 0.1,
            },
        ),
        (
            Mode::Adaptive,
            Params {
                burn_in: 100,
                min_share: 0.0,
            },
        ),
        (
            Mode::Adaptive,
            Params {
                burn_in: 100,
                min_share: 0.5,
            },
        ),
    ];
    let mut rng = SmallRng::seed_from_u64(12);
    let mut reasons_seen = Vec::new();
    for (mode, params) in cases {
        let allocated = allocation(mode, params, &arms, &shares).expect("valid");
        assert!(
            (allocated.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{allocated:?}"
        );
        for _ in 0..500 {
            let decision = decide(mode, params, &arms, &shares, &mut rng).expect("valid");
            assert_eq!(
                decision.propensity, allocated[decision.arm],
                "{mode:?} {params:?}"
            );
            if !reasons_seen.contains(&decision.reason) {
                reasons_seen.push(decision.reason);
            }
        }
    }
    assert_eq!(
        reasons_seen.len(),
        5,
        "not every branch was exercised: {reasons_seen:?}"
    );
}

#[test]
fn retired_arms_are_never_chosen() {
    // The retired arm has the best posterior and the fewest exposures.
    let arms = [
        arm(10.0, 90.0, 500.0),
        retired(990.0, 10.0, 0.0),
        arm(20.0, 80.0, 500.0),
    ];
    let shares = [0.1, 0.8, 0.1];
    for (burn_in, min_share) in [(1_000, 0.1), (100, 0.3), (100, 0.0)] {
        let params = Params { burn_in, min_share };
        let observed = frequencies(Mode::Adaptive, params, &arms, &shares, 3_000, 13);
        assert_eq!(observed[1], 0.0, "burn_in {burn_in}, min_share {min_share}");
        let allocated = allocation(Mode::Adaptive, params, &arms, &shares).expect("valid");
        assert_eq!(allocated[1], 0.0);
    }
}

#[test]
fn propensities_stay_in_the_unit_interval_for_awkward_inputs() {
    let arms: Vec<ArmView> = (0..100).map(|k| arm(1.0 + k as f64, 50.0, 500.0)).collect();
    let garbage: Vec<f64> = (0..100)
        .map(|k| if k % 3 == 0 { f64::NAN } else { -1.0 })
        .collect();
    let zeros = vec![0.0; 100];
    let mut rng = SmallRng::seed_from_u64(14);
    for shares in [&garbage, &zeros] {
        for min_share in [0.0, 0.02, f64::NAN, -1.0] {
            let params = Params {
                burn_in: 100,
                min_share,
            };
            for _ in 0..200 {
                let decision =
                    decide(Mode::Adaptive, params, &arms, shares, &mut rng).expect("valid");
                assert!(
                    decision.propensity > 0.0 && decision.propensity <= 1.0,
                    "{decision:?}"
                );
            }
        }
    }
}

#[test]
fn an_arm_whose_estimated_share_is_zero_gets_the_smallest_positive_propensity() {
    // A stale Monte Carlo estimate says arm 1 never wins, but Beta(3,2) beats Beta(2,3)
    // 53/70 of the time; with no floor the propensity must still be positive.
    let arms = [arm(2.0, 3.0, 200.0), arm(3.0, 2.0, 200.0)];
    let params = Params {
        burn_in: 100,
        min_share: 0.0,
    };
    let mut rng = SmallRng::seed_from_u64(16);
    let decisions: Vec<Decision> = (0..100)
        .map(|_| decide(Mode::Adaptive, params, &arms, &[1.0, 0.0], &mut rng).expect("valid"))
        .collect();
    let underestimated = decisions
        .iter()
        .find(|d| d.arm == 1)
        .expect("arm 1 wins some draws");
    assert_eq!(underestimated.propensity, f64::MIN_POSITIVE);
}

#[test]
fn a_floor_above_one_in_total_makes_allocation_uniform() {
    // 100 arms × 0.02 = 2 > 1: every arm gets exactly 1/100, whatever the shares say.
    let arms: Vec<ArmView> = (0..100).map(|k| arm(1.0 + k as f64, 50.0, 500.0)).collect();
    let mut shares = vec![0.0; 100];
    shares[99] = 1.0;
    let params = Params {
        burn_in: 100,
        min_share: 0.02,
    };
    let allocated = allocation(Mode::Adaptive, params, &arms, &shares).expect("valid");
    assert!(allocated.iter().all(|&p| (p - 0.01).abs() < 1e-15));
    let mut rng = SmallRng::seed_from_u64(15);
    let decision = decide(Mode::Adaptive, params, &arms, &shares, &mut rng).expect("valid");
    assert_eq!(decision.reason, Reason::Floor);
}

#[test]
fn shares_that_do_not_sum_to_one_are_renormalised_over_active_arms() {
    let arms = [
        arm(2.0, 3.0, 200.0),
        retired(3.0, 2.0, 200.0),
        arm(3.0, 2.0, 200.0),
    ];
    let params = Params {
        burn_in: 100,
        min_share: 0.0,
    };
    let allocated = allocation(Mode::Adaptive, params, &arms, &[1.0, 5.0, 3.0]).expect("valid");
    assert_eq!(allocated, vec![0.25, 0.0, 0.75]);
}

#[test]
fn ties_go_to_the_first_arm() {
    let values = [(0, 0.5), (1, 1.0), (2, 1.0), (3, 0.2)];
    assert_eq!(first_argmax(values.into_iter()), Some(1));
    assert_eq!(first_argmax(std::iter::empty()), None);
}

#[test]
fn exploit_gives_the_winner_everything_but_the_floor() {
    // K = 3 active arms, min_share 0.05: each loser keeps 0.05, the winner 0.9, also while
    // a loser has the better posterior and burn-in would not be over.
    let arms = [
        arm(2.0, 50.0, 10.0),
        arm(50.0, 2.0, 10.0),
        arm(3.0, 40.0, 10.0),
    ];
    let params = Params {
        burn_in: 1_000,
        min_share: 0.05,
    };
    let mode = Mode::Exploit { winner: 0 };
    let shares = [0.0; 3];
    let expected = [0.9, 0.05, 0.05];
    let allocated = allocation(mode, params, &arms, &shares).expect("valid");
    for (a, e) in allocated.iter().zip(expected) {
        assert!((a - e).abs() < 1e-15, "{allocated:?}");
    }
    let n = 40_000;
    let observed = frequencies(mode, params, &arms, &shares, n, 41);
    for (o, e) in observed.iter().zip(expected) {
        assert!((o - e).abs() <= four_sigma(e, n), "{observed:?}");
    }
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..1_000 {
        let d = decide(mode, params, &arms, &shares, &mut rng).expect("valid");
        assert!(d.counted);
        assert_eq!(d.propensity, allocated[d.arm]);
        assert_eq!(
            d.reason == Reason::Exploit,
            d.arm == 0 && d.reason != Reason::Floor
        );
    }
}

#[test]
fn exploit_of_a_retired_winner_is_an_error_and_retired_losers_get_nothing() {
    let arms = [
        arm(2.0, 5.0, 0.0),
        retired(5.0, 2.0, 0.0),
        arm(3.0, 4.0, 0.0),
    ];
    let params = Params {
        burn_in: 0,
        min_share: 0.1,
    };
    assert_eq!(
        decide(
            Mode::Exploit { winner: 1 },
            params,
            &arms,
            &[0.0; 3],
            &mut SmallRng::seed_from_u64(1)
        ),
        Err(PolicyError::RetiredWinner(1))
    );
    let allocated =
        allocation(Mode::Exploit { winner: 0 }, params, &arms, &[0.0; 3]).expect("valid");
    assert_eq!(allocated[1], 0.0);
    assert!((allocated[0] - 0.9).abs() < 1e-15 && (allocated[2] - 0.1).abs() < 1e-15);
}

#[test]
fn simple_decimal_shares_come_out_exact_not_one_ulp_off() {
    // The sum floor/K + (1 − floor) gave 0.05 + 0.9 = 0.9500000000000001, and 3 × 0.1 / 3
    // gave 0.10000000000000002: exact decimals for the analyst's own min_share.
    let two = [arm(30.0, 10.0, 500.0), arm(10.0, 30.0, 500.0)];
    let params = |min_share| Params {
        burn_in: 0,
        min_share,
    };
    let exploit = allocation(Mode::Exploit { winner: 0 }, params(0.05), &two, &[0.5, 0.5]).unwrap();
    assert_eq!(exploit, vec![0.95, 0.05]);
    let three = [
        arm(30.0, 10.0, 500.0),
        arm(10.0, 30.0, 500.0),
        arm(10.0, 30.0, 500.0),
    ];
    let exploit = allocation(
        Mode::Exploit { winner: 0 },
        params(0.1),
        &three,
        &[1.0, 0.0, 0.0],
    )
    .unwrap();
    assert_eq!(exploit, vec![0.8, 0.1, 0.1]);
    let adaptive = allocation(Mode::Adaptive, params(0.1), &three, &[1.0, 0.0, 0.0]).unwrap();
    assert_eq!(adaptive, vec![0.8, 0.1, 0.1]);
    let adaptive = allocation(Mode::Adaptive, params(0.05), &two, &[1.0, 0.0]).unwrap();
    assert_eq!(adaptive, vec![0.95, 0.05]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let decision = decide(
        Mode::Exploit { winner: 0 },
        params(0.05),
        &two,
        &[0.5, 0.5],
        &mut rng,
    )
    .unwrap();
    assert!(
        decision.propensity == 0.95 || decision.propensity == 0.05,
        "{decision:?}"
    );
}
