//! Tests of `compare_arms` against closed forms, mpmath references and Monte Carlo.

use super::*;
use crate::stats::sample_beta;
use rand::{SeedableRng, rngs::SmallRng};
use statrs::function::beta::ln_beta;

fn compare(arms: &[(f64, f64)]) -> ArmComparison {
    compare_arms(arms).expect("valid constant shapes")
}

fn posteriors(arms: &[(f64, f64)]) -> Vec<LogitBeta> {
    arms.iter()
        .map(|&(a, b)| LogitBeta::new(a, b).expect("valid constant shapes"))
        .collect()
}

fn max_abs_error(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn assert_matches(arms: &[(f64, f64)], prob_best: &[f64], expected_loss: &[f64], tol: f64) {
    let result = compare(arms);
    let p_error = max_abs_error(&result.prob_best, prob_best);
    let loss_error = max_abs_error(&result.expected_loss, expected_loss);
    assert!(
        p_error <= tol && loss_error <= tol,
        "{arms:?}: P(best) error {p_error:e}, loss error {loss_error:e}\n{result:?}"
    );
}

/// Evan Miller's closed form, "Formulas for Bayesian A/B testing" (2015), in log space:
/// P(X_B > X_A) = Σ_{i<α_B} B(α_A+i, β_A+β_B) / ((β_B+i) B(1+i, β_B) B(α_A, β_A)),
/// for integer α_B. Independent of the quadrature (a finite sum of Beta functions).
fn miller_p_b_beats_a((a_a, b_a): (f64, f64), (a_b, b_b): (f64, f64)) -> f64 {
    let ln_norm_a = ln_beta(a_a, b_a);
    (0..a_b as u64)
        .map(|i| {
            let i = i as f64;
            (ln_beta(a_a + i, b_a + b_b) - (b_b + i).ln() - ln_beta(1.0 + i, b_b) - ln_norm_a).exp()
        })
        .sum()
}

/// One two-arm reference: arms A and B, P(B best), and the expected losses of A and B.
struct TwoArmReference {
    a: (f64, f64),
    b: (f64, f64),
    p_b_best: f64,
    loss_a: f64,
    loss_b: f64,
}

/// From `python3 scripts/stats_references.py`, section "two arms": Miller's closed form
/// summed in mpmath at 30 digits; losses by the identity in
/// `two_arm_losses_match_the_shifted_shape_identity`.
const TWO_ARM_REFERENCES: [TwoArmReference; 4] = [
    TwoArmReference {
        a: (2.0, 3.0),
        b: (3.0, 2.0),
        p_b_best: 0.757_142_857_142_857_1, // 53/70
        loss_a: 0.242_857_142_857_142_85,
        loss_b: 0.042_857_142_857_142_86,
    },
    TwoArmReference {
        a: (11.0, 91.0),
        b: (16.0, 86.0),
        p_b_best: 0.853_283_789_933_966_1,
        loss_a: 0.052_597_695_973_848_3,
        loss_b: 0.003_578_088_130_711_048,
    },
    TwoArmReference {
        a: (101.0, 901.0),
        b: (121.0, 881.0),
        p_b_best: 0.923_183_438_973_559_8,
        loss_a: 0.020_444_693_766_675_805,
        loss_b: 0.000_484_613_926_356_443_7,
    },
    TwoArmReference {
        a: (1001.0, 9001.0),
        b: (1101.0, 8901.0),
        p_b_best: 0.989_457_354_431_714,
        loss_a: 0.010_013_582_843_752_217,
        loss_b: 0.000_015_582_443_832_201_356,
    },
];

#[test]
fn two_arm_prob_best_matches_evan_millers_closed_form() {
    for TwoArmReference {
        a,
        b,
        p_b_best: p_b,
        ..
    } in TWO_ARM_REFERENCES
    {
        let closed_form = miller_p_b_beats_a(a, b);
        assert!((closed_form - p_b).abs() < 1e-10, "f64 Miller sum drifted");
        let result = compare(&[a, b]);
        assert!(
            (result.prob_best[1] - p_b).abs() < 1e-12
                && (result.prob_best[0] - (1.0 - p_b)).abs() < 1e-12,
            "{a:?} vs {b:?}: {:?}",
            result.prob_best
        );
    }
    assert!((compare(&[(2.0, 3.0), (3.0, 2.0)]).prob_best[1] - 53.0 / 70.0).abs() < 1e-14);
}

#[test]
fn two_arm_losses_match_the_shifted_shape_identity() {
    // E[max(X−Y, 0)] = a/(a+b)·P(X′>Y) − c/(c+d)·P(X>Y′), X ~ Beta(a,b), Y ~ Beta(c,d),
    // X′ ~ Beta(a+1,b), Y′ ~ Beta(c+1,d): the loss of choosing Y. Evaluated with the f64
    // closed form above, and against the mpmath values.
    for TwoArmReference {
        a: (a, b),
        b: (c, d),
        loss_a,
        loss_b,
        ..
    } in TWO_ARM_REFERENCES
    {
        let x_mean = a / (a + b);
        let y_mean = c / (c + d);
        // Loss of choosing A (here "Y" = A, "X" = B).
        let identity_a = y_mean * miller_p_b_beats_a((a, b), (c + 1.0, d))
            - x_mean * miller_p_b_beats_a((a + 1.0, b), (c, d));
        assert!((identity_a - loss_a).abs() < 1e-10);
        let result = compare(&[(a, b), (c, d)]);
        assert!(
            (result.expected_loss[0] - loss_a).abs() < 1e-12,
            "{result:?}"
        );
        assert!(
            (result.expected_loss[1] - loss_b).abs() < 1e-12,
            "{result:?}"
        );
        // The two losses differ by exactly the difference of the means.
        let gap = result.expected_loss[0] - result.expected_loss[1];
        assert!((gap - (y_mean - x_mean)).abs() < 1e-15);
    }
}

#[test]
fn three_small_arms_match_the_mpmath_reference() {
    // `python3 scripts/stats_references.py`, "K=3 small counts (betainc)".
    assert_matches(
        &[(3.0, 7.0), (4.0, 6.0), (2.0, 8.0)],
        &[
            0.276_633_818_014_892_2,
            0.632_111_792_725_603_5,
            0.091_254_389_259_504_35,
        ],
        &[
            0.149_388_024_816_750_1,
            0.049_388_024_816_750_08,
            0.249_388_024_816_750_08,
        ],
        1e-12,
    );
}

#[test]
fn shapes_below_one_match_the_mpmath_reference() {
    // Jeffreys-prior arms with no or few successes, whose densities are infinite at 0 (and
    // at 1 for Beta(0.5, 0.5)). "K=3 Jeffreys shapes below 1 (betainc)".
    assert_matches(
        &[(0.5, 200.5), (1.5, 300.5), (0.5, 0.5)],
        &[
            0.011_797_249_516_347_494,
            0.034_027_328_969_455_63,
            0.954_175_421_514_196_9,
        ],
        &[
            0.497_740_332_206_988,
            0.495_261_006_978_824_2,
            0.000_227_894_396_042_725_8,
        ],
        1e-10,
    );
}

#[test]
fn ten_arms_of_mixed_counts_match_the_mpmath_reference() {
    // "K=10 mixed counts (cumulative)": from a uniform prior with no data to 10^4 trials.
    assert_matches(
        &[
            (1.0, 1.0),
            (3.0, 7.0),
            (12.0, 90.0),
            (30.0, 270.0),
            (101.0, 901.0),
            (95.0, 905.0),
            (1001.0, 9001.0),
            (980.0, 9020.0),
            (2.0, 30.0),
            (50.0, 450.0),
        ],
        &[
            0.695_461_671_759_560_3,
            0.288_952_229_328_725,
            0.009_378_834_236_269_979,
            0.001_624_500_233_152_556_7,
            0.000_708_788_395_110_703_9,
            0.000_248_798_231_149_758_34,
            0.000_150_456_898_703_207_8,
            5.354_372_624_409_345e-5,
            0.002_344_953_500_994_229,
            0.001_076_223_690_090_117_2,
        ],
        &[
            0.055_082_803_582_820_64,
            0.255_082_803_582_820_64,
            0.437_435_744_759_291_23,
            0.455_082_803_582_820_64,
            0.454_284_400_389_207_87,
            0.460_082_803_582_820_64,
            0.455_002_819_579_621_3,
            0.457_082_803_582_820_64,
            0.492_582_803_582_820_64,
            0.455_082_803_582_820_64,
        ],
        1e-12,
    );
}

#[test]
fn four_arms_with_millions_of_exposures_match_the_mpmath_reference() {
    // "K=4 counts 1e6 and 1e7 (cumulative)": rates 5% and 5.02% at 10^6 exposures, 5% and
    // 5.003% at 10^7 (posterior sd 2.2e-4 and 6.9e-5). Measured error 5e-12; the rounding
    // floor of ln g at these shapes (see `raw_prob_best_sums_to_one_...`) sets the margin.
    assert_matches(
        &[
            (50_001.0, 950_001.0),
            (50_201.0, 949_801.0),
            (500_001.0, 9_500_001.0),
            (500_301.0, 9_499_701.0),
        ],
        &[
            0.200_375_784_380_559_55,
            0.636_053_314_132_272,
            0.058_390_916_684_778_464,
            0.105_179_984_802_390_12,
        ],
        &[
            0.000_264_014_408_714_157_5,
            6.401_480_871_335_746e-5,
            0.000_264_824_406_932_161_1,
            0.000_234_824_412_932_159_85,
        ],
        1e-10,
    );
}

#[test]
fn uniform_arms_have_the_order_statistic_closed_forms() {
    // K iid Uniform(0,1): P(best) = 1/K, E[max] = K/(K+1), so loss = K/(K+1) − 1/2.
    for arms in [2usize, 10, 100] {
        let result = compare(&vec![(1.0, 1.0); arms]);
        let k = arms as f64;
        for (p, loss) in result.prob_best.iter().zip(&result.expected_loss) {
            assert!((p - 1.0 / k).abs() < 1e-14, "K={arms}: {p}");
            assert!(
                (loss - (k / (k + 1.0) - 0.5)).abs() < 1e-12,
                "K={arms}: {loss}"
            );
        }
    }
}

#[test]
fn raw_prob_best_sums_to_one_and_is_converged_across_shapes_and_arm_counts() {
    // Before normalisation the integrals must already sum to 1 (Σ_k g_k Π_{j≠k} F_j is the
    // density of the max), and a grid four times finer must agree: both fail if panels are
    // too coarse for some shape or the CDF carry is wrong.
    let cases: Vec<Vec<(f64, f64)>> = vec![
        vec![(1.0, 1.0), (1.0, 1e7)],
        vec![(1e-3, 1e-3), (0.5, 0.5), (2.0, 40.0)],
        vec![(1e7, 1e7), (1e7 + 3e3, 1e7 - 3e3)],
        (0..100).map(|k| (30.0 + k as f64 * 0.1, 270.0)).collect(),
        (0..100).map(|_| (5e5 + 1.0, 95e5 + 1.0)).collect(),
        (0..10)
            .map(|k| (1.0 + 5e4 + 100.0 * k as f64, 1.0 + 95e4 - 100.0 * k as f64))
            .collect(),
    ];
    for arms in cases {
        let coarse = integrate(&posteriors(&arms), 1).expect("bounded tails");
        let fine = integrate(&posteriors(&arms), 4).expect("bounded tails");
        let sum: f64 = coarse.prob_best.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12, "K={}: sum {sum}", arms.len());
        // The floor is rounding, not truncation: ln g carries ~α·1e-16·|ln x| ≈ 1e-9 of
        // noise per node at shapes of 1e7, which a different grid samples differently.
        let drift = max_abs_error(&coarse.prob_best, &fine.prob_best);
        assert!(
            drift < 1e-9,
            "K={}: refinement moved P by {drift:e}",
            arms.len()
        );
        let e_max_drift = (coarse.expected_max - fine.expected_max).abs();
        assert!(
            e_max_drift < 1e-11,
            "K={}: E[max] moved by {e_max_drift:e}",
            arms.len()
        );
    }
}

#[test]
fn monte_carlo_agrees_within_four_standard_errors() {
    // 10^6 seeded joint draws; the win frequency of arm k is binomial with standard error
    // sqrt(p(1−p)/n), the mean loss has standard error sd(max − θ_k)/sqrt(n) ≤ 1/sqrt(n)·0.5
    // (a [0,1] variable); 4σ bounds.
    let arms = [(30.0, 270.0), (33.0, 267.0), (25.0, 240.0), (1.0, 1.0)];
    let draws = 1_000_000;
    let mut rng = SmallRng::seed_from_u64(77);
    let mut wins = [0u64; 4];
    let mut loss_sums = [0.0; 4];
    for _ in 0..draws {
        let theta: Vec<f64> = arms
            .iter()
            .map(|&(a, b)| sample_beta(&mut rng, a, b))
            .collect();
        let (best, max) = theta
            .iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |acc, (k, &t)| if t > acc.1 { (k, t) } else { acc },
            );
        wins[best] += 1;
        for (sum, t) in loss_sums.iter_mut().zip(&theta) {
            *sum += max - t;
        }
    }
    let result = compare(&arms);
    let n = draws as f64;
    for k in 0..arms.len() {
        let p = result.prob_best[k];
        let frequency = wins[k] as f64 / n;
        assert!(
            (frequency - p).abs() < 4.0 * (p * (1.0 - p) / n).sqrt() + 1e-12,
            "arm {k}: {frequency} vs {p}"
        );
        let mean_loss = loss_sums[k] / n;
        assert!(
            (mean_loss - result.expected_loss[k]).abs() < 4.0 * 0.5 / n.sqrt(),
            "arm {k}: {mean_loss} vs {}",
            result.expected_loss[k]
        );
    }
}

#[test]
fn a_hopeless_arm_gets_zero_and_its_loss_is_the_gap_in_means() {
    let result = compare(&[(10.0, 990.0), (500.0, 500.0), (1e4, 1e4)]);
    assert_eq!(result.prob_best[0], 0.0);
    let e_max = 0.5 + result.expected_loss[2];
    assert!((result.expected_loss[0] - (e_max - 0.01)).abs() < 1e-15);
    assert!((result.prob_best.iter().sum::<f64>() - 1.0).abs() < 1e-15);
}

#[test]
fn permuting_the_arms_permutes_the_results() {
    let arms = [(3.0, 7.0), (40.0, 60.0), (0.5, 2.0), (12.0, 20.0)];
    let forward = compare(&arms);
    let reversed: Vec<(f64, f64)> = arms.iter().rev().copied().collect();
    let backward = compare(&reversed);
    for k in 0..arms.len() {
        let j = arms.len() - 1 - k;
        assert!((forward.prob_best[k] - backward.prob_best[j]).abs() < 1e-13);
        assert!((forward.expected_loss[k] - backward.expected_loss[j]).abs() < 1e-13);
    }
}

#[test]
fn extreme_shapes_give_a_distribution_without_nan() {
    let shapes = [1e-3, 0.5, 1.0, 7.0, 1e4, 1e8];
    for &a in &shapes {
        for &b in &shapes {
            let arms = [(a, b), (b, a), (1.0, 1.0), (a, a)];
            let result = compare(&arms);
            let sum: f64 = result.prob_best.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "({a},{b}): sum {sum}");
            for (p, loss) in result.prob_best.iter().zip(&result.expected_loss) {
                assert!((0.0..=1.0).contains(p), "({a},{b}): P {p}");
                assert!((0.0..=1.0).contains(loss), "({a},{b}): loss {loss}");
            }
        }
    }
}

#[test]
fn degenerate_inputs_are_answered_and_invalid_shapes_are_errors() {
    let empty = compare(&[]);
    assert!(empty.prob_best.is_empty() && empty.expected_loss.is_empty());
    assert_eq!(
        compare(&[(3.0, 4.0)]),
        ArmComparison {
            prob_best: vec![1.0],
            expected_loss: vec![0.0]
        }
    );
    // Shapes the arithmetic cannot resolve: a tail beyond y = 1e300, and shapes of 1e15
    // whose log-density rounding (~1e15·1e-16) swamps the answer.
    for unresolvable in [
        [(1e-300, 1e-300), (1.0, 1.0)],
        [(1e15, 1e15), (1e15 + 1e8, 1e15 - 1e8)],
    ] {
        assert!(
            matches!(
                compare_arms(&unresolvable),
                Err(StatsError::InvalidShape { .. })
            ),
            "{unresolvable:?} accepted"
        );
    }
    for bad in [
        (0.0, 1.0),
        (1.0, -1.0),
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
        (1e308, 1e308),
    ] {
        assert!(
            matches!(
                compare_arms(&[(1.0, 1.0), bad]),
                Err(StatsError::InvalidShape { .. })
            ),
            "{bad:?} accepted"
        );
    }
}
