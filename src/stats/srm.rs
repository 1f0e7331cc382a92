//! Sample-ratio mismatch (SRM) for adaptive allocation: did each arm get the exposures the
//! policy meant to give it?
//!
//! In a fixed-split A/B test the expected share is the split; under a bandit it moves, so
//! the caller supplies E_k = Σ over counted assignments of the probability the policy had of
//! choosing arm k at that moment (its propensity). With N_k the exposures actually counted,
//! Pearson's statistic X² = Σ (N_k − E_k)²/E_k is asymptotically χ² with K − 1 degrees of
//! freedom (Pearson 1900; Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online
//! Controlled Experiments", KDD, recommend alerting at p < 0.001). A mismatch means
//! assignments are lost, duplicated or misrouted somewhere, and every statistic built on the
//! counts is suspect. Each assignment is drawn independently given the policy state, so
//! (N_k) is a sum of independent categorical draws whose mean is (E_k); Pearson's
//! statistic with the summed probabilities is the natural large-sample test (the exact
//! law is Poisson-binomial, and χ² is its usual approximation once every E_k ≳ 5).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// p-value below which an SRM alert is raised (Fabijan et al. 2019, §5: 0.0005–0.001 keeps
/// false alarms rare across many experiments checked continuously).
pub const SRM_ALERT_P: f64 = 0.001;

/// p-value of Pearson's χ² test of observed exposures against expected ones, per arm.
///
/// The expected vector is first rescaled to the observed total. It is a sum of allocation
/// probabilities over exactly the assignments that were counted, so the two totals agree up
/// to rounding; rescaling guards against the races where an assignment is counted but its
/// propensity is lost (or the reverse), which would otherwise show up as a spurious
/// mismatch in every arm at once.
///
/// Arms with E_k = 0 and N_k = 0 are dropped (retired, or never allocated); an arm with
/// E_k = 0 but N_k > 0 received traffic the policy never gave it, a certain mismatch: p = 0.
/// Returns `None` when the test is undefined: mismatched lengths, a negative or non-finite
/// count, total expected or total observed of 0, or fewer than two arms left.
pub fn srm_p_value(observed: &[f64], expected: &[f64]) -> Option<f64> {
    if observed.len() != expected.len() {
        return None;
    }
    let valid = |v: &f64| v.is_finite() && *v >= 0.0;
    if !observed.iter().all(valid) || !expected.iter().all(valid) {
        return None;
    }
    let total_expected: f64 = expected.iter().sum();
    let total_observed: f64 = observed.iter().sum();
    if total_expected <= 0.0 || total_observed <= 0.0 {
        return None;
    }
    if observed
        .iter()
        .zip(expected)
        .any(|(&n, &e)| e == 0.0 && n > 0.0)
    {
        return Some(0.0);
    }
    let scale = total_observed / total_expected;
    let mut arms = 0usize;
    let mut statistic = 0.0;
    for (&n, &e) in observed.iter().zip(expected) {
        if e == 0.0 {
            continue;
        }
        let e = e * scale;
        statistic += (n - e) * (n - e) / e;
        arms += 1;
    }
    if arms < 2 {
        return None;
    }
    // statrs' chi-square sf is gamma_ur(k/2, x/2): a continued fraction for the upper tail
    // when x > k (relative accuracy ~1e-15 down to the f64 underflow), 1 − P otherwise, where
    // p ≥ ~0.3 and the subtraction is harmless. 1 − cdf would round every p < 1e-16 to 0.
    let distribution = ChiSquared::new((arms - 1) as f64).ok()?;
    Some(distribution.sf(statistic).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p_value(observed: &[f64], expected: &[f64]) -> f64 {
        srm_p_value(observed, expected).expect("test is defined")
    }

    #[test]
    fn published_chi_square_critical_values_give_their_tail_probabilities() {
        // Pearson & Hartley, Biometrika Tables for Statisticians, Table 8 (also NIST
        // e-Handbook 1.3.6.7.4): χ²(1) 3.841 → 0.05; χ²(2) 5.991 → 0.05, 13.816 → 0.001.
        // Two arms with equal expectation e and counts e ± d have X² = 2d²/e; three arms with
        // expectations e and counts (e + d, e − d, e) have X² = 2d²/e as well.
        let e = 10_000.0;
        let d = |x2: f64| (x2 * e / 2.0).sqrt();
        // The tables round the critical values; mpmath's exact tail probabilities at the
        // rounded values (scripts/stats_references.py, section "srm") pin the result further.
        let one_dof = p_value(&[e + d(3.841), e - d(3.841)], &[e, e]);
        assert!((one_dof - 0.05).abs() < 2e-5, "{one_dof}");
        assert!(
            (one_dof - 0.050_013_683_763_956_7).abs() < 1e-10,
            "{one_dof}"
        );
        let two_dof = p_value(&[e + d(5.991), e - d(5.991), e], &[e, e, e]);
        assert!((two_dof - 0.05).abs() < 2e-5, "{two_dof}");
        assert!(
            (two_dof - 0.050_011_615_026_579_09).abs() < 1e-10,
            "{two_dof}"
        );
        let alert = p_value(&[e + d(13.816), e - d(13.816), e], &[e, e, e]);
        assert!((alert - 0.001).abs() < 1e-6, "{alert}");
        assert!(
            (alert - 0.000_999_755_308_923_882_5).abs() < 1e-12,
            "{alert}"
        );
    }

    #[test]
    fn hand_computed_case_matches() {
        // Observed (50, 30, 20) vs expected (40, 40, 20): X² = 100/40 + 100/40 + 0 = 5, 2 dof,
        // whose survival function is exactly e^(−5/2) = 0.0820849986238988.
        let p = p_value(&[50.0, 30.0, 20.0], &[40.0, 40.0, 20.0]);
        assert!((p - (-2.5f64).exp()).abs() < 1e-14, "{p}");
    }

    #[test]
    fn huge_statistics_keep_relative_accuracy_in_the_far_tail() {
        // X² = 100 on 1 dof: p = erfc(√50) = 1.5239706048321052e-23 (mpmath, printed by
        // scripts/stats_references.py, section "srm"). 1 − cdf would give 0.
        let e = 1_000.0;
        let d = (100.0 * e / 2.0f64).sqrt();
        let p = p_value(&[e + d, e - d], &[e, e]);
        let expected = 1.523_970_604_832_105e-23;
        assert!((p / expected - 1.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn expected_counts_are_rescaled_to_the_observed_total() {
        // Same proportions, expected total off by 0.1%: no mismatch at all.
        let p = p_value(&[500.0, 300.0, 200.0], &[500.5, 300.3, 200.2]);
        assert!((p - 1.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn unallocated_arms_are_dropped_and_traffic_to_them_is_a_certain_mismatch() {
        let with_retired = p_value(&[50.0, 30.0, 20.0, 0.0], &[40.0, 40.0, 20.0, 0.0]);
        assert!((with_retired - (-2.5f64).exp()).abs() < 1e-14);
        assert_eq!(
            srm_p_value(&[50.0, 50.0, 3.0], &[50.0, 50.0, 0.0]),
            Some(0.0)
        );
    }

    #[test]
    fn undefined_tests_return_none() {
        assert_eq!(srm_p_value(&[10.0], &[10.0]), None);
        assert_eq!(srm_p_value(&[10.0, 0.0], &[10.0, 0.0]), None);
        assert_eq!(srm_p_value(&[0.0, 0.0], &[0.0, 0.0]), None);
        assert_eq!(srm_p_value(&[1.0, 2.0], &[0.0, 0.0]), None);
        assert_eq!(srm_p_value(&[0.0, 0.0], &[3.0, 4.0]), None);
        assert_eq!(srm_p_value(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(srm_p_value(&[1.0, f64::NAN], &[1.0, 1.0]), None);
        assert_eq!(srm_p_value(&[1.0, 2.0], &[-1.0, 4.0]), None);
    }

    #[test]
    fn matching_counts_do_not_alert_and_a_lost_fifth_of_one_arm_does() {
        assert!(p_value(&[5_000.0, 5_000.0], &[5_000.0, 5_000.0]) > SRM_ALERT_P);
        assert!(p_value(&[5_000.0, 4_000.0], &[5_000.0, 5_000.0]) < SRM_ALERT_P);
    }
}
