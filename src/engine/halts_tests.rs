use super::*;
use std::path::Path;

use crate::spec::parse_experiment;

const SPEC: &str = "id: headline\ndescription: d\nowner: o\nstatus: running\nreward: { window: 7d }\n\
default_variant: control\nvariants:\n  - id: control\n    payload: {}\n  - id: bold\n    \
payload: {}\n    resume_after_halt: 42\nguardrails:\n  - metric: refunds\n    \
direction: lower_is_better\n    max_relative_change: 0.1\n";

fn halt(variant: &str, halted_ms: u64) -> Halt {
    Halt {
        metric: "refunds".into(),
        variant: variant.into(),
        against: "control".into(),
        halted_ms,
        direction: "lower_is_better".into(),
        max_relative_change: 0.1,
        confidence: 0.99,
        prob_worse: 0.999,
        exposures: 1000,
        against_exposures: 1000,
        events: 30.0,
        against_events: 10.0,
        posterior: [31.0, 971.0],
        against_posterior: [11.0, 991.0],
    }
}

#[test]
fn the_server_checks_at_the_cadence_the_simulator_measured_the_defaults_with() {
    assert_eq!(GUARDRAIL_CHECK_EVERY, crate::sim::DEFAULT_CHECK_EVERY);
}

#[test]
fn only_a_resume_naming_the_halt_lifts_it() {
    let spec = parse_experiment(Path::new("headline.yaml"), SPEC).expect("the spec parses");
    assert!(
        !in_force(&spec, &halt("bold", 42)),
        "the named halt is lifted"
    );
    assert!(
        in_force(&spec, &halt("bold", 43)),
        "a later halt still holds"
    );
    assert!(
        in_force(&spec, &halt("bold", 41)),
        "an earlier halt still holds"
    );
    assert!(
        in_force(&spec, &halt("control", 42)),
        "another arm's halt holds"
    );
    let reported = report(&spec, &[halt("bold", 43), halt("bold", 42)]);
    assert_eq!(
        reported.iter().map(|r| r.resumed).collect::<Vec<_>>(),
        vec![false, true]
    );
}

#[test]
fn spec_directions_map_to_the_side_of_harm() {
    let spec = parse_experiment(Path::new("headline.yaml"), SPEC).expect("the spec parses");
    let rule = rule_of(&spec.guardrails[0]);
    assert_eq!(rule.harm, Harm::Higher);
    assert_eq!(rule.max_relative_change, 0.1);
    assert_eq!(
        rule.min_exposures,
        crate::spec::DEFAULT_GUARDRAIL_MIN_EXPOSURES
    );
}

#[test]
fn a_halt_in_force_stops_its_arm_but_never_the_default_variant() {
    let spec = parse_experiment(Path::new("headline.yaml"), SPEC).expect("the spec parses");
    let bold = spec.variant_index("bold").unwrap();
    let control = spec.variant_index("control").unwrap();
    assert!(stops(&spec, &[halt("bold", 43)], bold));
    assert!(!stops(&spec, &[halt("bold", 42)], bold), "resumed");
    assert!(
        !stops(&spec, &[halt("control", 43)], control),
        "the default is served"
    );
    assert!(!stops(&spec, &[], bold));
    assert!(!stops(&spec, &[halt("bold", 43)], 7), "no such arm");
}
