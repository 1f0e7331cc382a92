//! `GET /v1/experiments/{id}/export` and `banditd export`: round trips against what assign
//! returned and what was posted, stats against the report, keys, bad parameters.

use std::collections::HashMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem};

struct Raw {
    status: u16,
    content_type: String,
    disposition: String,
    body: String,
}

fn get_raw(app: &TestApp, path: &str, key: Option<&str>) -> Raw {
    let mut request = app.agent.get(format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let mut response = request.call().expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let body = response.body_mut().read_to_string().expect("body");
    Raw {
        status: response.status().as_u16(),
        content_type,
        disposition,
        body,
    }
}

fn export(app: &TestApp, id: &str, query: &str) -> Raw {
    let raw = get_raw(app, &format!("/v1/experiments/{id}/export?{query}"), None);
    assert_eq!(raw.status, 200, "{}", raw.body);
    raw
}

/// An independent RFC 4180 reader: quoted fields with doubled quotes, CRLF records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "unterminated record");
    records
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Assigns `units`; returns unit → (variant, propensity) as assign answered.
fn assign_all(app: &TestApp, experiment: &str, units: &[String]) -> HashMap<String, (String, f64)> {
    units
        .iter()
        .map(|unit| {
            let reply = app.get(&format!(
                "/v1/experiments/{experiment}/assign?unit={}",
                encode(unit)
            ));
            assert_eq!(reply.status, 200, "{}", reply.body);
            let variant = reply.body["variant"].as_str().unwrap().to_owned();
            let propensity = reply.body["propensity"].as_f64().unwrap();
            (unit.clone(), (variant, propensity))
        })
        .collect()
}

fn sticky_units() -> Vec<String> {
    let mut units: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    units.extend([
        "a,b \"c\"".to_owned(),
        "ünï code".to_owned(),
        "=1+2".to_owned(),
    ]);
    units
}

/// Rewards every third unit: 1 or 0.5. Returns unit → reward.
fn reward_some(app: &TestApp, units: &[String]) -> HashMap<String, f64> {
    let rewarded: HashMap<String, f64> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(i, unit)| (unit.clone(), if i % 2 == 0 { 1.0 } else { 0.5 }))
        .collect();
    let events: Vec<Value> = rewarded
        .iter()
        .map(|(unit, reward)| {
            json!({"id": format!("ev-{unit}"), "experiment": "headline", "unit": unit, "reward": reward})
        })
        .collect();
    let report = app.post_events(&Value::Array(events));
    assert_eq!(report["applied"], rewarded.len(), "{report}");
    rewarded
}

#[test]
fn sticky_assignments_export_round_trips_in_csv_and_ndjson() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let units = sticky_units();
    let assigned = assign_all(&app, "headline", &units);
    let rewarded = reward_some(&app, &units);

    let csv = export(&app, "headline", "what=assignments&format=csv");
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert_eq!(
        csv.disposition,
        "attachment; filename=\"headline-r1-assignments.csv\""
    );
    let records = parse_csv(&csv.body);
    assert_eq!(
        records[0],
        [
            "unit",
            "variant",
            "assigned_ms",
            "assigned_at",
            "propensity",
            "reward"
        ]
    );
    let mut seen = HashMap::new();
    for row in &records[1..] {
        assert_eq!(row.len(), 6, "{row:?}");
        let (variant, propensity) = &assigned[&row[0]];
        assert_eq!(&row[1], variant, "{row:?}");
        assert_eq!(row[4].parse::<f64>().unwrap(), *propensity, "{row:?}");
        let reward = rewarded.get(&row[0]).map(|r| r.to_string());
        assert_eq!(row[5], reward.unwrap_or_default(), "{row:?}");
        assert!(row[3].ends_with('Z') && row[3].contains('T'), "{row:?}");
        assert!(
            seen.insert(row[0].clone(), ()).is_none(),
            "{} twice",
            row[0]
        );
    }
    assert_eq!(seen.len(), units.len());

    let nd = export(&app, "headline", "what=assignments&format=ndjson");
    assert_eq!(nd.content_type, "application/x-ndjson");
    assert_eq!(
        nd.disposition,
        "attachment; filename=\"headline-r1-assignments.ndjson\""
    );
    let rows = ndjson(&nd.body);
    assert_eq!(rows.len(), units.len());
    for row in &rows {
        let unit = row["unit"].as_str().unwrap();
        let (variant, propensity) = &assigned[unit];
        assert_eq!(row["variant"], variant.as_str());
        assert_eq!(row["propensity"].as_f64().unwrap(), *propensity);
        assert_eq!(row["reward"].as_f64(), rewarded.get(unit).copied(), "{row}");
    }
    // The same rows in the same order in both formats.
    let csv_units: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    let nd_units: Vec<&str> = rows.iter().map(|r| r["unit"].as_str().unwrap()).collect();
    assert_eq!(csv_units, nd_units);

    let events = export(&app, "headline", "what=events&format=csv");
    let records = parse_csv(&events.body);
    assert_eq!(
        records[0],
        [
            "unit",
            "variant",
            "assigned_ms",
            "assigned_at",
            "reward",
            "rewarded_ms",
            "rewarded_at",
            "time_to_reward_ms"
        ]
    );
    let credited: HashMap<String, (String, f64)> = records[1..]
        .iter()
        .map(|r| (r[0].clone(), (r[1].clone(), r[4].parse().unwrap())))
        .collect();
    assert_eq!(credited.len(), records.len() - 1, "a unit listed twice");
    let expected: HashMap<String, (String, f64)> = rewarded
        .iter()
        .map(|(unit, reward)| (unit.clone(), (assigned[unit].0.clone(), *reward)))
        .collect();
    assert_eq!(credited, expected);
}

#[test]
fn the_stats_export_matches_the_experiment_report() {
    let app = TestApp::spawn(&[("headline.yaml", &crate::helpers::naive(STICKY))]);
    let units = sticky_units();
    assign_all(&app, "headline", &units);
    reward_some(&app, &units);
    app.let_posterior_refresh();
    let arms = app.arms("headline");
    let rows = ndjson(&export(&app, "headline", "what=stats&format=ndjson").body);
    assert_eq!(rows.len(), arms.len());
    for (row, arm) in rows.iter().zip(&arms) {
        let posterior = &arm["posterior"];
        let interval = &posterior["credible_interval"];
        let pairs = [
            ("variant", &arm["variant"]),
            ("retired", &arm["retired"]),
            ("exposures", &arm["exposures"]),
            ("rewards", &arm["rewards"]),
            ("rate", &arm["rate"]),
            ("effective_exposures", &arm["effective_exposures"]),
            ("effective_rewards", &arm["effective_rewards"]),
            ("posterior_alpha", &posterior["alpha"]),
            ("posterior_beta", &posterior["beta"]),
            ("posterior_mean", &posterior["mean"]),
            ("ci_lower", &interval["lower"]),
            ("ci_upper", &interval["upper"]),
            ("prob_best", &arm["prob_best"]),
            ("expected_loss", &arm["expected_loss"]),
            ("traffic_share", &arm["traffic_share"]),
            ("expected_exposures", &arm["expected_exposures"]),
            ("halted", &arm["halted"]),
        ];
        for (column, value) in pairs {
            assert_eq!(&row[column], value, "{column} of {}", arm["variant"]);
        }
    }
    let csv = parse_csv(&export(&app, "headline", "what=stats").body);
    assert_eq!(csv.len(), arms.len() + 1);
    assert_eq!(csv[0][0], "variant");
    assert_eq!(csv[1][2], arms[0]["exposures"].to_string());
}

/// Unix milliseconds of an RFC 3339 time.
fn millis(text: &str) -> u64 {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (at.unix_timestamp_nanos() / 1_000_000) as u64
}

#[test]
fn the_events_export_carries_when_each_reward_arrived_and_how_long_after_the_assignment() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 / 1_000_000;
    app.assign("headline", "alice");
    let token = app.assign("ranking", "bob")["token"].clone();
    std::thread::sleep(std::time::Duration::from_millis(300));
    app.post_events(&json!([
        {"id": "a1", "experiment": "headline", "unit": "alice", "reward": 1},
        {"id": "b1", "experiment": "ranking", "token": token, "reward": 1},
    ]));
    let after = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 / 1_000_000;
    for (experiment, assigned) in [("headline", "assigned_ms"), ("ranking", "issued_ms")] {
        let rows = ndjson(&export(&app, experiment, "what=events&format=ndjson").body);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        let arrived = row["rewarded_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("{row}"));
        assert!(arrived >= before + 300 && arrived <= after, "{row}");
        assert_eq!(millis(row["rewarded_at"].as_str().unwrap()), arrived);
        let delay = row["time_to_reward_ms"].as_u64().unwrap();
        assert_eq!(delay, arrived - row[assigned].as_u64().unwrap(), "{row}");
        assert!(delay >= 300, "{row}");
    }
}

#[test]
fn per_request_exports_list_each_rewarded_token_once() {
    let app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let mut posted = Vec::new();
    let mut events = Vec::new();
    for i in 0..10 {
        let a = app.assign("ranking", &format!("u{i}"));
        if i % 3 != 0 {
            let reward = if i % 2 == 0 { 1.0 } else { 0.25 };
            posted.push((
                a["variant"].as_str().unwrap().to_owned(),
                reward,
                a["propensity"].as_f64().unwrap(),
            ));
            events.push(json!({"id": format!("click-{i}"), "experiment": "ranking",
                               "token": a["token"], "reward": reward}));
        }
    }
    assert_eq!(
        app.post_events(&Value::Array(events))["applied"],
        posted.len()
    );
    posted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for what in ["events", "assignments"] {
        let rows = ndjson(&export(&app, "ranking", &format!("what={what}&format=ndjson")).body);
        // The propensity travels signed in the token and is kept with the credit, so a
        // per-request experiment supports inverse-propensity analysis too.
        let mut exported: Vec<(String, f64, f64)> = rows
            .iter()
            .map(|r| {
                assert!(
                    r["issued_at"].as_str().is_some_and(|t| t.ends_with('Z')),
                    "{r}"
                );
                (
                    r["variant"].as_str().unwrap().to_owned(),
                    r["reward"].as_f64().unwrap(),
                    r["propensity"].as_f64().unwrap(),
                )
            })
            .collect();
        exported.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(exported, posted, "{what}");
        let ids: std::collections::HashSet<&str> = rows
            .iter()
            .map(|r| r["assignment_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), posted.len());
    }
}

#[test]
fn the_export_needs_the_events_or_the_admin_key() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[
            ("BANDITD_EVENTS_KEY", "events-secret"),
            ("BANDITD_ADMIN_KEY", "admin-secret"),
            ("BANDITD_ASSIGN_KEY", "assign-secret"),
        ],
    );
    let path = "/v1/experiments/headline/export?what=stats";
    assert_problem(&app.get(path), 401, "BANDITD_EVENTS_KEY");
    for wrong in ["assign-secret", "nope"] {
        assert_eq!(get_raw(&app, path, Some(wrong)).status, 401);
    }
    // Without a key, bad parameters and unknown experiments are not revealed.
    assert_eq!(
        get_raw(&app, "/v1/experiments/nope/export?what=x", None).status,
        401
    );
    for key in ["events-secret", "admin-secret"] {
        let raw = get_raw(&app, path, Some(key));
        assert_eq!(raw.status, 200, "{}", raw.body);
        assert!(raw.body.starts_with("variant,retired,exposures"));
    }
}

#[test]
fn bad_export_parameters_are_problems() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let base = "/v1/experiments/headline/export";
    assert_problem(&app.get(&format!("{base}?what=units")), 400, "`what`");
    assert_problem(&app.get(base), 400, "`what` is missing");
    assert_problem(
        &app.get(&format!("{base}?what=stats&format=xml")),
        400,
        "`format`",
    );
    assert_problem(
        &app.get(&format!("{base}?what=stats&revision=two")),
        400,
        "`revision`",
    );
    assert_problem(
        &app.get(&format!("{base}?what=stats&level=2")),
        400,
        "level",
    );
    assert_problem(
        &app.get(&format!("{base}?what=stats&colour=red")),
        400,
        "colour",
    );
    assert_problem(
        &app.get(&format!("{base}?what=stats&revision=2")),
        404,
        "no revision 2",
    );
    assert_problem(
        &app.get("/v1/experiments/nope/export?what=stats"),
        404,
        "nope",
    );
    let post = app.post_json(&format!("{base}?what=stats"), &json!({}));
    assert_eq!(post.status, 405);
}

fn banditd_export(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_banditd"));
    command.arg("export").args(args).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run banditd export")
}

#[test]
fn the_cli_streams_the_export_to_stdout_or_a_file_and_exits_2_on_errors() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_EVENTS_KEY", "events-secret")],
    );
    assign_all(&app, "headline", &sticky_units());
    let key = [("BANDITD_EVENTS_KEY", "events-secret")];
    let server = app.address.as_str();
    let http = get_raw(
        &app,
        "/v1/experiments/headline/export?what=assignments&format=csv",
        Some("events-secret"),
    );
    let out = banditd_export(
        &["headline", "--server", server, "--what", "assignments"],
        &key,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), http.body);

    let file = app.root.path().join("assignments.ndjson");
    let out = banditd_export(
        &[
            "headline",
            "--server",
            server,
            "--what",
            "assignments",
            "--format",
            "ndjson",
            "--output",
            file.to_str().unwrap(),
        ],
        &key,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ndjson(&std::fs::read_to_string(&file).unwrap()).len(), 43);

    // No key, an unknown experiment, a bad flag value, no server: exit 2 with a reason.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            &["headline", "--server", server, "--what", "stats"],
            &[],
            "401",
        ),
        (
            &["nope", "--server", server, "--what", "stats"],
            &key,
            "404",
        ),
        (
            &["headline", "--server", server, "--what", "units"],
            &key,
            "`what`",
        ),
        (
            &["headline", "--server", "127.0.0.1:1", "--what", "stats"],
            &key,
            "cannot reach",
        ),
    ];
    for (args, env, needle) in cases {
        let out = banditd_export(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
