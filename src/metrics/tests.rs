//! The registry without a server: handles resolve once and share their series, labels stay
//! bounded, and the scrape-time collector reads a real engine and store.

use std::path::Path;
use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use super::*;
use crate::engine::{Engine, ManualClock, RejectionReason, TokenSigner};
use crate::store::SledStore;

fn encoded(metrics: &Metrics) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn a_route_is_resolved_once_and_counts_by_status_class() {
    let metrics = Metrics::default();
    let route = "/v1/experiments/{id}/assign";
    metrics.observe_request(route, 200, 0.000_2);
    metrics.observe_request(route, 204, 0.000_3);
    metrics.observe_request(route, 503, 2.0);
    // Out-of-range codes land in the nearest class instead of panicking.
    metrics.observe_request(registry::UNMATCHED_ROUTE, 999, 0.1);
    assert_eq!(metrics.routes_seen(), 2);
    let text = encoded(&metrics);
    for line in [
        "banditd_http_requests_total{route=\"/v1/experiments/{id}/assign\",status=\"2xx\"} 2",
        "banditd_http_requests_total{route=\"/v1/experiments/{id}/assign\",status=\"5xx\"} 1",
        "banditd_http_requests_total{route=\"unmatched\",status=\"5xx\"} 1",
        "banditd_http_request_duration_seconds_count{route=\"/v1/experiments/{id}/assign\"} 3",
        "banditd_http_request_duration_seconds_bucket{route=\"/v1/experiments/{id}/assign\",le=\"0.00025\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[test]
fn an_experiments_counters_carry_over_a_reload_and_ignore_unknown_arms() {
    let metrics = Metrics::default();
    let outcomes = ["applied", "duplicate", "bad_token"];
    let before = metrics.experiment("headline", &["control", "bold"], &outcomes);
    before.assigned(1, AssignOutcome::Counted);
    before.assigned(7, AssignOutcome::Counted);
    // A reload resolves the counters again: the series continue.
    let after = metrics.experiment("headline", &["control", "bold", "new"], &outcomes);
    after.assigned(1, AssignOutcome::Counted);
    after.assigned(2, AssignOutcome::Peek);
    let text = encoded(&metrics);
    let series = |variant: &str, outcome: &str, value: u32| {
        format!(
            "banditd_assignments_total{{experiment=\"headline\",variant=\"{variant}\",outcome=\"{outcome}\"}} {value}"
        )
    };
    assert!(text.contains(&series("bold", "counted", 2)), "{text}");
    assert!(text.contains(&series("new", "peek", 1)), "{text}");
    assert!(text.contains(&series("control", "degraded", 0)), "{text}");
}

#[test]
fn events_count_by_experiment_and_unknown_experiments_share_one_label() {
    let metrics: &'static Metrics = Box::leak(Box::default());
    let headline = Arc::new(metrics.experiment("headline", &["a"], &["applied", "bad_token"]));
    let mut recorder = EventRecorder::with(metrics, 3);
    recorder.target(Some(headline.clone()));
    recorder.target(None);
    recorder.target(None);
    recorder.record(0, "applied");
    recorder.record(1, "unknown_experiment");
    recorder.record(2, "unknown_experiment");
    // An index past the batch still counts, under the unknown label.
    recorder.record(9, "invalid_event");
    let text = encoded(metrics);
    for line in [
        "banditd_events_total{experiment=\"headline\",outcome=\"applied\"} 1",
        "banditd_events_total{experiment=\"headline\",outcome=\"bad_token\"} 0",
        "banditd_events_total{experiment=\"(unknown)\",outcome=\"unknown_experiment\"} 2",
        "banditd_events_total{experiment=\"(unknown)\",outcome=\"invalid_event\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[test]
fn every_rejection_reason_is_an_event_outcome_named_as_the_api_names_it() {
    let outcomes = crate::engine::EVENT_OUTCOMES;
    for reason in RejectionReason::ALL {
        let api_name = serde_json::to_value(reason).unwrap();
        assert_eq!(api_name, reason.as_str());
        assert!(outcomes.contains(&reason.as_str()), "{reason:?}");
    }
    let mut unique = outcomes.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), outcomes.len());
}

#[test]
fn the_scrape_reads_the_store_the_config_and_each_experiments_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let yaml = "id: headline\ndescription: d\nowner: o\nstatus: running\n\
                policy: { burn_in: 0 }\n\
                stopping: { prob_best: 0.95, max_expected_loss: 0.001 }\n\
                default_variant: a\nvariants:\n  - id: a\n    payload: {}\n  - id: b\n    payload: {}\n";
    let spec = crate::spec::parse_experiment(Path::new("headline.yaml"), yaml).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let engine = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(Engine::start(
            vec![spec],
            store,
            TokenSigner::new(&[7; 32]),
            clock.clone(),
        ))
        .unwrap();
    clock.advance_ms(2_500);
    let exporter = Exporter::new(&Metrics::default(), Arc::new(engine));
    let text = exporter.render().unwrap();
    for line in [
        "banditd_experiment_snapshot_age_seconds{experiment=\"headline\"} 2.5",
        "banditd_experiment_decision{experiment=\"headline\",state=\"collecting\"} 1",
        "banditd_experiment_decision{experiment=\"headline\",state=\"winner\"} 0",
        "banditd_store_writable 1",
        "banditd_store_failure_episodes_total 0",
        "banditd_sticky_cache_misses_total 0",
        "banditd_config_reload_failing 0",
        "banditd_config_info{version=\"\"} 1",
        "# TYPE banditd_store_commit_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    // Too little data for the sample-ratio check: no sample rather than a made-up one.
    assert!(!text.contains("banditd_experiment_srm_p_value{"), "{text}");
}
