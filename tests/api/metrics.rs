//! `GET /metrics` over real HTTP: the format, the key that guards it, counters that move with
//! the traffic, label sets that never carry a unit or an event id, a degraded assign under a
//! real disk fault, and the shipped dashboard and alerts that must query only what is exported.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::failsafe::{server_pid, set_file_size_limit};
use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem};

/// The scrape's samples: series (`name{labels}`) → value.
pub struct Scrape {
    pub text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self { text, samples }
    }

    /// The value of one series, 0 when it is absent (a counter never bumped).
    pub fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// Names of every sample (`banditd_x_bucket`, `banditd_y_total`, …).
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.samples
            .keys()
            .map(|series| series.split('{').next().unwrap_or(series).to_owned())
            .collect()
    }
}

fn scrape_with(app: &TestApp, key: Option<&str>) -> (u16, String, String) {
    let mut request = app.agent.get(format!("{}/metrics", app.address));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let mut response = request.call().expect("GET /metrics");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, content_type, text)
}

pub fn scrape(app: &TestApp) -> Scrape {
    let (status, content_type, text) = scrape_with(app, None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Scrape::parse(text)
}

fn assign_series(experiment: &str, variant: &str, outcome: &str) -> String {
    format!(
        "banditd_assignments_total{{experiment=\"{experiment}\",variant=\"{variant}\",outcome=\"{outcome}\"}}"
    )
}

fn event_series(experiment: &str, outcome: &str) -> String {
    format!("banditd_events_total{{experiment=\"{experiment}\",outcome=\"{outcome}\"}}")
}

/// Sum of a family's samples whose series contains every one of `parts`.
fn sum_of(scrape: &Scrape, family: &str, parts: &[&str]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|(series, _)| {
            series.starts_with(&format!("{family}{{"))
                && parts.iter().all(|part| series.contains(part))
        })
        .map(|(_, value)| value)
        .sum()
}

#[test]
fn counters_move_with_assigns_events_and_reloads_in_the_prometheus_text_format() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let before = scrape(&app);

    let first = app.assign("headline", "visitor-1");
    assert_eq!(first["counted"], true);
    let variant = first["variant"].as_str().unwrap().to_owned();
    let again = app.assign("headline", "visitor-1");
    assert_eq!(again["counted"], false);
    let peek = app.get("/v1/experiments/headline/assign?unit=visitor-2&count=false");
    assert_eq!(peek.status, 200, "{}", peek.body);
    let peeked = peek.body["variant"].as_str().unwrap().to_owned();
    let ranked = app.assign("ranking", "visitor-3");
    let report = app.post_events(&json!([
        {"id": "ev-1", "experiment": "headline", "unit": "visitor-1"},
        {"id": "ev-1", "experiment": "headline", "unit": "visitor-1"},
        {"id": "ev-2", "experiment": "ranking", "token": "not-a-token"},
        {"id": "ev-3", "experiment": "headline", "unit": "never-seen"},
        {"id": "ev-4", "experiment": "ranking", "token": ranked["token"], "reward": 2.0},
    ]));
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["duplicate"], 1, "{report}");

    let reload = app.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(reload.body["result"], "unchanged", "{}", reload.body);
    app.write_experiment("broken.yaml", "id: broken\nvariants: nope\n");
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 422);
    std::fs::remove_file(app.experiments_dir().join("broken.yaml")).unwrap();
    app.write_experiment(
        "headline.yaml",
        &STICKY.replace("Which headline", "What headline"),
    );
    let applied = app.post_json("/v1/admin/reload", &json!({}));
    assert_eq!(applied.body["result"], "applied", "{}", applied.body);

    let after = scrape(&app);
    let moved = |series: &str| after.value(series) - before.value(series);
    assert_eq!(moved(&assign_series("headline", &variant, "counted")), 1.0);
    assert_eq!(
        moved(&assign_series("headline", &variant, "returning")),
        1.0
    );
    assert_eq!(moved(&assign_series("headline", &peeked, "peek")), 1.0);
    let ranked_variant = ranked["variant"].as_str().unwrap();
    assert_eq!(
        moved(&assign_series("ranking", ranked_variant, "counted")),
        1.0
    );
    assert_eq!(moved(&event_series("headline", "applied")), 1.0);
    assert_eq!(moved(&event_series("headline", "duplicate")), 1.0);
    assert_eq!(moved(&event_series("ranking", "bad_token")), 1.0);
    assert_eq!(moved(&event_series("headline", "unit_not_assigned")), 1.0);
    assert_eq!(moved(&event_series("ranking", "reward_out_of_range")), 1.0);
    for result in ["unchanged", "refused", "applied"] {
        let series = format!("banditd_reloads_total{{result=\"{result}\"}}");
        assert_eq!(moved(&series), 1.0, "{series}");
    }
    let version = applied.body["version"].as_str().unwrap();
    assert_eq!(
        after.value(&format!("banditd_config_info{{version=\"{version}\"}}")),
        1.0
    );
    assert_eq!(after.value("banditd_config_reload_failing"), 0.0);
    // The routes by template, with their status classes; the scrape before this one counts.
    let assign_route = "route=\"/v1/experiments/{id}/assign\"";
    assert_eq!(
        after.value(&format!(
            "banditd_http_requests_total{{{assign_route},status=\"2xx\"}}"
        )),
        4.0
    );
    assert_eq!(
        after.value("banditd_http_requests_total{route=\"/v1/admin/reload\",status=\"4xx\"}"),
        1.0
    );
    assert!(
        sum_of(
            &after,
            "banditd_http_request_duration_seconds_count",
            &[assign_route]
        ) >= 4.0
    );
    assert!(after.value("banditd_http_requests_total{route=\"/metrics\",status=\"2xx\"}") >= 1.0);
    // The store's writes were timed, and the sticky cache's figures come from the store.
    assert!(after.value("banditd_store_commit_duration_seconds_count") >= 1.0);
    assert!(after.value("banditd_store_fsync_duration_seconds_count") >= 1.0);
    assert!(after.value("banditd_store_commit_batch_size_count") >= 1.0);
    assert!(after.value("banditd_store_group_commits_total") >= 1.0);
    assert_eq!(after.value("banditd_store_writable"), 1.0);
    let stats = app.get("/v1/admin/store").body;
    assert!(
        after.value("banditd_sticky_cache_hits_total") >= 1.0,
        "{stats}"
    );
    assert!(
        after.value("banditd_sticky_cache_misses_total") >= 1.0,
        "{stats}"
    );
    assert_eq!(
        after.value("banditd_experiment_decision{experiment=\"headline\",state=\"no_rule\"}"),
        1.0
    );
    assert!(
        after
            .samples
            .contains_key("banditd_experiment_snapshot_age_seconds{experiment=\"ranking\"}")
    );
}

/// The embedded store keeps every sticky unit and kept event id in memory by design; its
/// tables' bytes are reported (admin route and gauge, the same figures) and grow with what it
/// keeps: a unit takes at least its 24-byte slot, a kept id at least a 6-byte digest slot.
#[test]
fn the_store_tables_bytes_grow_with_the_units_and_ids_kept() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let before = app.get("/v1/admin/store").body["table_bytes"].clone();
    let units = 300u64;
    let events: Vec<Value> = (0..units)
        .map(|i| {
            app.assign("headline", &format!("t-{i}"));
            serde_json::json!({"id": format!("e-{i}"), "experiment": "headline", "unit": format!("t-{i}")})
        })
        .collect();
    let answer = app.post_events(&Value::Array(events));
    assert_eq!(answer["applied"], units, "{answer}");
    let after = app.get("/v1/admin/store").body["table_bytes"].clone();
    let bytes =
        |value: &Value, table: &str| value[table].as_u64().unwrap_or_else(|| panic!("{value}"));
    assert!(
        bytes(&after, "sticky_units") >= 24 * units,
        "{before} -> {after}"
    );
    assert!(
        bytes(&after, "event_ids") >= 6 * units,
        "{before} -> {after}"
    );
    assert!(
        bytes(&after, "sticky_units") > bytes(&before, "sticky_units"),
        "{before} -> {after}"
    );
    assert!(
        bytes(&after, "event_ids") > bytes(&before, "event_ids"),
        "{before} -> {after}"
    );
    let scraped = scrape(&app);
    for table in ["sticky_units", "event_ids"] {
        assert_eq!(
            scraped.value(&format!("banditd_store_table_bytes{{table=\"{table}\"}}")),
            bytes(&after, table) as f64,
            "{table}"
        );
    }
}

#[test]
fn a_refused_reload_shows_until_a_good_one_replaces_it() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.write_experiment("broken.yaml", "id: broken\nvariants: nope\n");
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 422);
    assert_eq!(scrape(&app).value("banditd_config_reload_failing"), 1.0);
    std::fs::remove_file(app.experiments_dir().join("broken.yaml")).unwrap();
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    assert_eq!(scrape(&app).value("banditd_config_reload_failing"), 0.0);
}

#[test]
fn no_unit_event_id_or_raw_path_ever_appears_in_the_metrics() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let unit = "unit-7f3a91c2";
    let event = "event-9c1e44d0";
    let made_up = "experiment-b81d";
    app.assign("headline", unit);
    let ranked = app.assign("ranking", unit);
    app.post_events(&json!([
        {"id": event, "experiment": "headline", "unit": unit},
        {"id": format!("{event}-2"), "experiment": "ranking", "token": ranked["token"]},
        {"id": format!("{event}-3"), "experiment": made_up, "unit": unit},
        {"id": format!("{event}-4"), "experiment": "headline", "unit": format!("{unit}-x")},
    ]));
    let missing = app.get(&format!("/v1/experiments/{made_up}/assign?unit={unit}"));
    assert_eq!(missing.status, 404);
    assert_eq!(app.get("/no/such/path-e5a0").status, 404);
    let scrape = scrape(&app);
    for secret in [unit, event, made_up, "path-e5a0", "/no/such"] {
        assert!(
            !scrape.text.contains(secret),
            "{secret} in\n{}",
            scrape.text
        );
    }
    // The made-up experiment's event is counted under one bounded label, and the unknown
    // path under one route label.
    assert_eq!(
        scrape.value(&event_series("(unknown)", "unknown_experiment")),
        1.0
    );
    assert_eq!(
        scrape.value("banditd_http_requests_total{route=\"unmatched\",status=\"4xx\"}"),
        1.0
    );
    // Every label value comes from a bounded set: route templates, status classes, the
    // loaded experiments and variants, outcomes, the config version and decision states.
    let labels: BTreeSet<&str> = scrape
        .samples
        .keys()
        .filter_map(|series| series.split_once('{'))
        .flat_map(|(_, labels)| labels.trim_end_matches('}').split(','))
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, _)| name)
        .collect();
    let allowed = [
        "route",
        "status",
        "experiment",
        "variant",
        "outcome",
        "result",
        "version",
        "state",
        "le",
        // The store's two in-memory tables, by name (`sticky_units`, `event_ids`).
        "table",
    ];
    for label in &labels {
        assert!(allowed.contains(label), "unexpected label {label}");
    }
}

#[test]
fn the_admin_key_guards_the_metrics_unless_a_metrics_key_is_set() {
    let admin_only = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ADMIN_KEY", "ops-key")],
    );
    assert_problem(&admin_only.get("/metrics"), 401, "BANDITD_ADMIN_KEY");
    assert_eq!(scrape_with(&admin_only, Some("wrong")).0, 401);
    assert_eq!(scrape_with(&admin_only, Some("ops-key")).0, 200);

    let with_metrics_key = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[
            ("BANDITD_ADMIN_KEY", "ops-key"),
            ("BANDITD_METRICS_KEY", "scrape-key"),
        ],
    );
    assert_problem(
        &with_metrics_key.get("/metrics"),
        401,
        "BANDITD_METRICS_KEY",
    );
    let (status, content_type, text) = scrape_with(&with_metrics_key, Some("scrape-key"));
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert_eq!(scrape_with(&with_metrics_key, Some("ops-key")).0, 200);
    // The scraper's key opens nothing else.
    let reload = with_metrics_key
        .agent
        .post(format!("{}/v1/admin/reload", with_metrics_key.address))
        .header("authorization", "Bearer scrape-key")
        .send_json(json!({}))
        .expect("POST");
    assert_eq!(reload.status().as_u16(), 401);
    // No key in the log either.
    let log = with_metrics_key.log.lock().unwrap().join("\n");
    assert!(!log.contains("scrape-key"), "{log}");
}

#[test]
fn metrics_off_answers_404_and_the_api_still_works() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_METRICS", "false")],
    );
    assert_eq!(app.assign("headline", "someone")["counted"], true);
    assert_problem(&app.get("/metrics"), 404, "metrics are turned off");
}

#[test]
fn a_paused_experiment_counts_its_answers_as_paused() {
    let paused = STICKY.replace("status: running", "status: paused");
    let app = TestApp::spawn(&[("headline.yaml", &paused)]);
    let answer = app.assign("headline", "someone");
    assert_eq!(answer["counted"], false);
    let scrape = scrape(&app);
    assert_eq!(
        scrape.value(&assign_series("headline", "control", "paused")),
        1.0
    );
}

#[test]
fn a_degraded_assign_counts_as_degraded_while_the_store_fails_for_real() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    assert_eq!(app.assign("headline", "known")["counted"], true);
    let pid = server_pid(&app.data_dir());
    // Every write fails (`failsafe`'s module docs).
    set_file_size_limit(pid, Some(0));
    let answer = app.assign("headline", "new-during-fault");
    assert_eq!(answer["degraded"], true, "{answer}");
    let during = scrape(&app);
    set_file_size_limit(pid, None);
    assert_eq!(
        during.value(&assign_series("headline", "control", "degraded")),
        1.0,
        "{}",
        during.text
    );
    assert_eq!(during.value("banditd_store_writable"), 0.0);
    assert!(during.value("banditd_store_commit_failures_total") >= 1.0);
    assert_eq!(during.value("banditd_store_failure_episodes_total"), 1.0);
    // Once the store recovers, the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(&app).value("banditd_store_writable") != 1.0 {
        assert!(Instant::now() < deadline, "the store did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every `banditd_*` name mentioned in `text` (a dashboard's queries, alert expressions).
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("banditd_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// A server after traffic that gives every family a sample: assigns, events, a reload and an
/// SRM check with data.
fn server_with_every_family() -> Scrape {
    let guarded = format!(
        "{STICKY}guardrails:\n  - metric: refunds\n    direction: lower_is_better\n    \
         max_relative_change: 0.1\n"
    );
    let app = TestApp::spawn(&[("headline.yaml", &guarded), ("ranking.yaml", PER_REQUEST)]);
    for k in 0..20 {
        app.assign("headline", &format!("u{k}"));
        app.assign("ranking", &format!("u{k}"));
    }
    app.post_events(&json!([{"id": "e", "experiment": "headline", "unit": "u1"}]));
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    // The snapshot the collector reads is rebuilt by the next assign after the refresh interval.
    app.let_posterior_refresh();
    app.assign("headline", "u0");
    app.assign("ranking", "u0");
    scrape(&app)
}

#[test]
fn the_grafana_dashboard_and_the_alert_rules_query_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard_text = std::fs::read_to_string(root.join("grafana/banditd.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("dashboard is JSON");
    let mut queries = Vec::new();
    collect_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let alerts = std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap();

    // The embedded store's families and a Redis replica's (the dashboard's Redis panels).
    let mut exported = server_with_every_family().sample_names();
    exported.extend(crate::metrics_redis::redis_replica_scrape().sample_names());
    let mut queried = metric_names_in(&queries.join("\n"));
    assert!(queried.len() >= 10, "{queried:?}");
    queried.extend(metric_names_in(&alerts));
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
}

/// Every `expr` string in the dashboard (panel targets, template variable queries).
fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                match (key.as_str(), field) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    ("query", Value::String(query)) if query.contains("banditd_") => {
                        out.push(query.clone())
                    }
                    _ => collect_exprs(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, out)),
        _ => {}
    }
}
