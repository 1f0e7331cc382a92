use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::*;
use crate::engine::Snapshot;
use crate::store::{ArmCounters, EpochInfo};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

const YAML: &str = r#"
id: signup
description: d
owner: o
status: running
assignment: sticky
reward: { window: 7d, delay: { median: 2d } }
policy: { burn_in: 0, half_life: 1d }
default_variant: a
variants:
  - id: a
    payload: 0
  - id: b
    payload: 1
"#;

fn arm(exposures: u64, reward_sum: f64, decayed_exposures: f64, now_ms: u64) -> ArmCounters {
    ArmCounters {
        exposures,
        reward_sum,
        decayed_exposures,
        decayed_reward_sum: reward_sum,
        decayed_at_ms: now_ms,
        expected_exposures: exposures as f64,
    }
}

/// F(a) of the exponential law with median 2 d truncated at 7 d.
fn truncated_exponential(age_ms: f64) -> f64 {
    let rate = std::f64::consts::LN_2 / (2.0 * DAY_MS as f64);
    (1.0 - (-rate * age_ms).exp()) / (1.0 - (-rate * 7.0 * DAY_MS as f64).exp())
}

#[test]
fn with_a_half_life_the_pending_mass_is_decayed_like_the_exposures_and_never_exceeds_n_minus_r() {
    let spec = crate::spec::parse_experiment(Path::new("signup.yaml"), YAML).unwrap();
    let bin = 480_000u64;
    let now_ms = (bin + 10) * HOUR_MS;
    let counters: HashMap<String, ArmCounters> = [
        ("a".to_owned(), arm(100, 0.0, 60.0, now_ms)),
        ("b".to_owned(), arm(10, 9.0, 10.0, now_ms)),
    ]
    .into();
    let mut histograms: HashMap<String, DelayHistograms> = HashMap::new();
    // a: 40 exposures 9 to 10 hours old; b: 10 exposures of the running hour (age 0).
    histograms
        .entry("a".into())
        .or_default()
        .cohorts
        .insert(bin, 40);
    histograms
        .entry("b".into())
        .or_default()
        .cohorts
        .insert(bin + 10, 10);
    let snapshot = Snapshot::build_delayed(
        &spec,
        &BTreeMap::new(),
        &counters,
        Some((&histograms, None)),
        EpochInfo::default(),
        now_ms,
    );
    // Reference: the mean over ages in [9 h, 10 h] of (1 − G(a))·2^(−a/1 d), G the law's CDF
    // (linear between its hourly edges, where it equals F), by Simpson's rule on 10,000 steps.
    let (a0, a1) = (9.0 * HOUR_MS as f64, 10.0 * HOUR_MS as f64);
    let (f0, f1) = (truncated_exponential(a0), truncated_exponential(a1));
    let integrand = |a: f64| {
        let g = f0 + (f1 - f0) * (a - a0) / (a1 - a0);
        (1.0 - g) * 2f64.powf(-a / DAY_MS as f64)
    };
    let steps = 10_000;
    let h = (a1 - a0) / steps as f64;
    let simpson: f64 = (0..=steps)
        .map(|i| {
            let weight = if i == 0 || i == steps {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            weight * integrand(a0 + i as f64 * h)
        })
        .sum::<f64>()
        * h
        / 3.0;
    let pending = 40.0 * simpson / (a1 - a0);
    let naive = snapshot.naive.as_ref().expect("a naive view beside");
    assert_eq!(naive.effective[0].exposures, 60.0);
    let corrected = snapshot.effective[0].exposures;
    assert!(
        (corrected - (60.0 - pending)).abs() < 1e-9 * 60.0,
        "{corrected} against 60 − {pending}"
    );
    let delays = snapshot.delays.as_ref().unwrap();
    assert!((delays[0].pending_exposures - pending).abs() < 1e-9 * 60.0);
    // The posterior the policy uses counts the corrected exposures.
    assert!((snapshot.arms[0].beta - (1.0 + corrected)).abs() < 1e-12);
    assert_eq!(naive.shapes[0], (1.0, 61.0));
    // b: all 10 exposures pending by the law, but 9 rewards came: N_eff stops at R.
    assert_eq!(snapshot.effective[1].exposures, 9.0);
    assert_eq!(delays[1].pending_exposures, 1.0);
    assert_eq!(snapshot.arms[1].beta, 1.0);
}

#[test]
fn delay_off_reads_no_correction_and_an_epoch_without_histograms_is_naive() {
    let off = YAML.replace("delay: { median: 2d }", "delay: off");
    let now_ms = 500_000 * HOUR_MS;
    let counters: HashMap<String, ArmCounters> =
        [("a".to_owned(), arm(100, 5.0, 100.0, now_ms))].into();
    let spec = crate::spec::parse_experiment(Path::new("signup.yaml"), &off).unwrap();
    let mut histograms: HashMap<String, DelayHistograms> = HashMap::new();
    histograms
        .entry("a".into())
        .or_default()
        .cohorts
        .insert(500_000, 100);
    let snapshot = Snapshot::build_delayed(
        &spec,
        &BTreeMap::new(),
        &counters,
        Some((&histograms, None)),
        EpochInfo::default(),
        now_ms,
    );
    assert!(snapshot.delays.is_none() && snapshot.naive.is_none());
    assert_eq!(snapshot.effective[0].exposures, 100.0);
    // A store written before histograms were kept: the correction applies, with nothing
    // pending.
    let spec = crate::spec::parse_experiment(Path::new("signup.yaml"), YAML).unwrap();
    let snapshot = Snapshot::build_delayed(
        &spec,
        &BTreeMap::new(),
        &counters,
        Some((&HashMap::new(), None)),
        EpochInfo::default(),
        now_ms,
    );
    assert_eq!(snapshot.delays.as_ref().unwrap()[0].pending_exposures, 0.0);
    assert_eq!(snapshot.effective[0].exposures, 100.0);
}

#[test]
fn the_corrected_exposures_never_fall_below_the_rewards() {
    let effective = DecayedCounts {
        exposures: 10.0,
        reward_sum: 4.0,
        at_ms: 0,
    };
    let delay = ArmDelay {
        pending_exposures: 8.0,
        median_ms: 1.0,
        p90_ms: 2.0,
    };
    assert_eq!(corrected(effective, &delay).exposures, 4.0);
    let some = ArmDelay {
        pending_exposures: 2.5,
        ..delay
    };
    assert_eq!(corrected(effective, &some).exposures, 7.5);
}
