//! `banditd validate`'s warning for a stopping rule that the priors alone already satisfy:
//! with no data at all, the leader's prior P(best) and expected loss meet the thresholds, so
//! the first exposure of every arm is all that stands between the file and a decision (or
//! nothing at all, with `allow_prior_only_decision: true`). Strong priors are legitimate; a
//! decision that the data never had a say in rarely is, so the analyst should hear of it.

use crate::spec::Experiment;
use crate::stats::{self, StoppingRule, Verdict};

/// The warning for `experiment`, if its priors alone meet its stopping rule.
pub fn prior_only_warning(experiment: &Experiment) -> Option<String> {
    let rule = experiment.stopping.as_ref()?;
    let shapes: Vec<(f64, f64)> = (0..experiment.variants.len())
        .map(|k| {
            let prior = experiment.arm_prior(k);
            (prior.alpha, prior.beta)
        })
        .collect();
    let comparison = stats::compare_arms(&shapes).ok()?;
    // The evidence thresholds only: time and sample-size guards are what hold such a rule back.
    let evidence_only = StoppingRule {
        prob_best: rule.prob_best,
        max_expected_loss: rule.max_expected_loss,
        min_exposures: 0,
        min_duration_ms: 0,
    };
    let exposures = vec![0; shapes.len()];
    let Verdict::Winner {
        arm,
        prob_best,
        expected_loss,
    } = stats::evaluate(&evidence_only, &comparison, &exposures, 0, 0)
    else {
        return None;
    };
    let variant = experiment.variants.get(arm)?.id.as_str();
    let consequence = if rule.allow_prior_only_decision {
        "with `allow_prior_only_decision: true` it is declared the winner before any exposure"
            .to_owned()
    } else {
        format!(
            "it is declared the winner as soon as every variant has {} exposure(s), whatever \
             they show",
            rule.required_exposures()
        )
    };
    Some(format!(
        "{}: the priors alone already satisfy the stopping rule: `{variant}` has prior P(best) \
         {prob_best:.4} (rule: {}) and expected loss {expected_loss:.6} (rule: {}); \
         {consequence}. Weaken the priors, raise `stopping.min_exposures`, or tighten the \
         thresholds ({})",
        experiment.id,
        rule.prob_best,
        rule.max_expected_loss,
        experiment.source.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variant `a` with prior `a_prior` (empty: the default Beta(1, 1)) against `b` with
    /// Beta(1, 200).
    fn experiment(a_prior: &str, stopping: &str) -> Experiment {
        let b_prior = if a_prior.is_empty() {
            ""
        } else {
            "    prior: {alpha: 1, beta: 200}\n"
        };
        let text = format!(
            "id: strong\ndescription: d\nowner: o\nstatus: running\nstopping: {stopping}\n\
             default_variant: a\nvariants:\n  - id: a\n    payload: 1\n{a_prior}  - id: b\n    \
             payload: 2\n{b_prior}"
        );
        crate::spec::parse_experiment(std::path::Path::new("strong.yaml"), &text).unwrap()
    }

    #[test]
    fn priors_that_already_meet_the_rule_are_warned_about() {
        // a: Beta(200, 1) against b: Beta(1, 200): P(a best) = 1 to machine precision.
        let strong = experiment(
            "    prior: {alpha: 200, beta: 1}\n",
            "{prob_best: 0.95, max_expected_loss: 0.01}",
        );
        let warning = prior_only_warning(&strong).expect("a warning");
        assert!(warning.contains("`a`"), "{warning}");
        assert!(warning.contains("1 exposure(s)"), "{warning}");
        let allowed = experiment(
            "    prior: {alpha: 200, beta: 1}\n",
            "{prob_best: 0.95, max_expected_loss: 0.01, allow_prior_only_decision: true}",
        );
        assert!(
            prior_only_warning(&allowed)
                .expect("a warning")
                .contains("before any exposure")
        );
    }

    #[test]
    fn ordinary_priors_get_no_warning() {
        // Both arms Beta(1, 1): P(best) is 1/2 each by symmetry, under any threshold.
        let ordinary = experiment("", "{prob_best: 0.95, max_expected_loss: 0.001}");
        assert_eq!(prior_only_warning(&ordinary), None);
    }
}
