//! Guardrail events (events with a `metric` that names one of the experiment's `guardrails:`)
//! kept with the machinery every backend already has for per-request rewards, so the rules
//! are the reward rules, written once (`rules::judge_reward`) and mirrored once (the token
//! op of the Redis script):
//!
//! | rule | how |
//! | --- | --- |
//! | counters per arm and metric, apart from the primary reward's | the metric's own epoch, [`guardrail_epoch`]: `<experiment>/<metric>` (ids are `[a-z0-9-_]`, so it names no experiment) at the experiment's revision; its arms count guardrail events in R and nothing in N (the exposures are the experiment's) |
//! | an event id is applied at most once per experiment and metric; a retry answers `Duplicate` | the metric epoch's event ids |
//! | at most once per assignment and metric | a token credit mark in the metric's epoch, named by the assignment ([`guardrail_target`]): a unit's assignment is named by its unit and assignment time, so a unit re-assigned after a halt or a retirement is a new assignment |
//! | the reward window and the clock-skew check against the assignment's time | `rules::timing_refusal`, with the assignment's time as the mark's issue time |
//! | durable before the answer; marks expire a window plus a day after the assignment and fold into the arm's total | as for every token mark |
//!
//! A unit's assignment is read (`Store::sticky`) before the event is applied, outside the
//! atomic step: if a halt or a retirement re-assigns the unit in between, the event is
//! credited to the assignment it was read from, which held when the event arrived.
//!
//! A per-request token of an `exposure: on_render` experiment has its confirmation mark in the
//! experiment's epoch, not the metric's, so a guardrail event on such a token is counted
//! whether or not the render was confirmed (`confirmed_only` is off in the metric's epoch):
//! a guardrail rate then counts events of unconfirmed renders over confirmed exposures, which
//! can only overstate the harm, never hide it.

use super::types::{Epoch, RewardTarget, StickyRecord};

/// The epoch that keeps the guardrail `metric`'s events and counters for `epoch`.
pub fn guardrail_epoch(epoch: &Epoch, metric: &str) -> Epoch {
    Epoch {
        experiment: format!("{}/{metric}", epoch.experiment),
        revision: epoch.revision,
    }
}

/// The at-most-once target of a guardrail event of `unit`, whose assignment is `record`: a
/// credit mark named by the unit and its assignment time.
pub fn guardrail_target(unit: &str, record: &StickyRecord) -> RewardTarget {
    RewardTarget::Token {
        assignment_id: format!("unit:{}:{unit}", record.assigned_ms),
        variant: record.variant.clone(),
        issued_ms: record.assigned_ms,
        propensity: record.propensity,
        confirmed_only: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(variant: &str, assigned_ms: u64) -> StickyRecord {
        StickyRecord {
            variant: variant.into(),
            assigned_ms,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        }
    }

    #[test]
    fn each_metric_has_its_own_epoch_that_no_experiment_id_can_name() {
        let epoch = Epoch {
            experiment: "checkout".into(),
            revision: 3,
        };
        let refunds = guardrail_epoch(&epoch, "refunds");
        assert_eq!(refunds.experiment, "checkout/refunds");
        assert_eq!(refunds.revision, 3);
        assert_ne!(refunds, guardrail_epoch(&epoch, "errors"));
        assert!(crate::spec::ExperimentId::parse(&refunds.experiment).is_err());
    }

    #[test]
    fn a_reassigned_unit_is_a_new_assignment_for_its_guardrails() {
        let before = guardrail_target("u1", &record("bold", 10));
        let after = guardrail_target("u1", &record("control", 20));
        assert_ne!(before, after);
        assert_eq!(before, guardrail_target("u1", &record("bold", 10)));
        match after {
            RewardTarget::Token {
                variant, issued_ms, ..
            } => assert_eq!((variant.as_str(), issued_ms), ("control", 20)),
            RewardTarget::Unit(_) => panic!("a guardrail target is a mark"),
        }
    }
}
