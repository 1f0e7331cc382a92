use super::*;

fn beta(alpha: f64, beta: f64) -> Posterior {
    Posterior { alpha, beta }
}

/// (arm, reference, harm, δ, P(worse)).
type Reference = ((f64, f64), (f64, f64), Harm, f64, f64);

/// mpmath references at 30 digits (scripts/stats_references.py, `guardrail_references`),
/// rounded to the nearest f64.
const REFERENCES: &[Reference] = &[
    (
        (2.0, 3.0),
        (3.0, 2.0),
        Harm::Higher,
        0.0,
        0.24285714285714285,
    ),
    (
        (11.0, 991.0),
        (21.0, 981.0),
        Harm::Higher,
        0.1,
        0.01836703126859695,
    ),
    (
        (21.0, 981.0),
        (11.0, 991.0),
        Harm::Higher,
        0.1,
        0.9399281535932796,
    ),
    (
        (101.0, 9901.0),
        (51.0, 9951.0),
        Harm::Higher,
        0.2,
        0.9986870978728335,
    ),
    (
        (60.0, 4941.0),
        (50.0, 4951.0),
        Harm::Lower,
        0.05,
        0.10883630572471982,
    ),
    ((0.5, 0.5), (1.0, 1.0), Harm::Higher, 1.0, 0.25),
    (
        (31.0, 2971.0),
        (21.0, 2981.0),
        Harm::Higher,
        0.25,
        0.7287720463079144,
    ),
    (
        (40.0, 61.0),
        (55.0, 46.0),
        Harm::Lower,
        0.1,
        0.9225940490343554,
    ),
    (
        (3.0, 997.0),
        (1.0, 1.0),
        Harm::Higher,
        0.3,
        0.002307692307692308,
    ),
];

#[test]
fn prob_worse_matches_high_precision_references() {
    for &((a1, b1), (a2, b2), harm, delta, expected) in REFERENCES {
        let got = prob_worse(beta(a1, b1), beta(a2, b2), harm, delta).unwrap();
        assert!(
            (got - expected).abs() < 1e-11,
            "Beta({a1}, {b1}) vs Beta({a2}, {b2}), {harm:?}, δ {delta}: {got} vs {expected}"
        );
    }
}

#[test]
fn against_a_uniform_reference_the_probability_is_the_closed_form_mean_over_c() {
    // Y ~ U(0, 1): P(X > cY) = ∫_0^{1/c} S_X(cy) dy = E[X] / c, and P(X < cY) for c < 1 is
    // ∫_0^1 F_X(cy) dy = (1/c) ∫_0^c F_X = (c − E[min(X, c)]) / c.
    for &(a, b, delta) in &[(2.0, 5.0, 0.5), (30.0, 970.0, 0.1), (0.3, 0.7, 3.0)] {
        let got = prob_worse(beta(a, b), beta(1.0, 1.0), Harm::Higher, delta).unwrap();
        let expected = a / (a + b) / (1.0 + delta);
        assert!(
            (got - expected).abs() < 1e-12,
            "{a}, {b}, {delta}: {got} vs {expected}"
        );
    }
    // Beta(1, 1) arm too: E[min(X, c)] = c − c²/2, so P(X < cY) = c/2.
    let got = prob_worse(beta(1.0, 1.0), beta(1.0, 1.0), Harm::Lower, 0.4).unwrap();
    assert!((got - 0.3).abs() < 1e-12, "{got}");
}

#[test]
fn with_no_tolerance_the_two_harms_are_complementary() {
    // δ = 0: P(X > Y) + P(X < Y) = 1 for continuous laws.
    for &((a1, b1), (a2, b2)) in &[
        ((5.0, 95.0), (7.0, 93.0)),
        ((1001.0, 99001.0), (1101.0, 98901.0)),
    ] {
        let above = prob_worse(beta(a1, b1), beta(a2, b2), Harm::Higher, 0.0).unwrap();
        let below = prob_worse(beta(a1, b1), beta(a2, b2), Harm::Lower, 0.0).unwrap();
        assert!((above + below - 1.0).abs() < 1e-11, "{above} + {below}");
    }
}

#[test]
fn large_counts_converge_under_panel_refinement() {
    // Counts of a long experiment (10^6 exposures at 1%): finer grids agree to within the
    // ~1e-12 rounding statrs' ln B of shapes near 10^6 leaves in every CDF value.
    let arm = beta(10_401.0, 989_601.0);
    let reference = beta(10_001.0, 990_001.0);
    let coarse = prob_worse_refined(arm, reference, Harm::Higher, 0.02, 1).unwrap();
    let fine = prob_worse_refined(arm, reference, Harm::Higher, 0.02, 4).unwrap();
    assert!((coarse - fine).abs() < 1e-10, "{coarse} vs {fine}");
    assert!(coarse > 0.5 && coarse < 1.0, "{coarse}");
}

#[test]
fn a_sharp_arm_against_a_wide_reference_is_resolved() {
    // The arm's step is far narrower than the reference's panels: its own panels carry it.
    let arm = beta(100_001.0, 9_900_001.0);
    let reference = beta(3.0, 297.0);
    let coarse = prob_worse_refined(arm, reference, Harm::Higher, 0.1, 1).unwrap();
    let fine = prob_worse_refined(arm, reference, Harm::Higher, 0.1, 8).unwrap();
    assert!((coarse - fine).abs() < 1e-10, "{coarse} vs {fine}");
}

#[test]
fn bad_shapes_and_tolerances_are_errors_not_nans() {
    let ok = beta(1.0, 1.0);
    assert!(prob_worse(beta(0.0, 1.0), ok, Harm::Higher, 0.1).is_err());
    assert!(prob_worse(ok, beta(1.0, f64::NAN), Harm::Higher, 0.1).is_err());
    assert_eq!(
        prob_worse(ok, ok, Harm::Higher, -0.1),
        Err(StatsError::InvalidRelativeChange(-0.1))
    );
    assert!(prob_worse(ok, ok, Harm::Higher, f64::INFINITY).is_err());
    // A fall of 100% or more is impossible.
    assert_eq!(prob_worse(ok, ok, Harm::Lower, 1.0), Ok(0.0));
}

#[test]
fn the_rule_waits_for_exposures_then_halts_only_at_the_confidence() {
    let rule = GuardrailRule {
        harm: Harm::Higher,
        max_relative_change: 0.1,
        confidence: 0.9,
        min_exposures: 1000,
    };
    let (arm, reference) = (beta(21.0, 981.0), beta(11.0, 991.0));
    assert_eq!(
        check_guardrail(&rule, arm, 999, reference, 5000),
        Ok(GuardrailVerdict::Collecting)
    );
    assert_eq!(
        check_guardrail(&rule, arm, 5000, reference, 999),
        Ok(GuardrailVerdict::Collecting)
    );
    // P(worse) = 0.93993 (the reference above): above 0.9, below 0.95.
    match check_guardrail(&rule, arm, 1000, reference, 1000).unwrap() {
        GuardrailVerdict::Halt(evidence) => {
            assert!((evidence.prob_worse - 0.9399281535932796).abs() < 1e-11);
            assert_eq!(
                (evidence.arm_exposures, evidence.reference_exposures),
                (1000, 1000)
            );
            assert_eq!((evidence.arm, evidence.reference), (arm, reference));
        }
        other => panic!("{other:?}"),
    }
    let stricter = GuardrailRule {
        confidence: 0.95,
        ..rule
    };
    assert!(matches!(
        check_guardrail(&stricter, arm, 1000, reference, 1000),
        Ok(GuardrailVerdict::Clear { prob_worse }) if prob_worse > 0.9
    ));
}
