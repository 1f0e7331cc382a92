//! Hot reload: all or nothing, by API, SIGHUP and file watch; compatibility; retirement.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem};

fn reload(app: &TestApp) -> crate::helpers::Reply {
    app.post_json("/v1/admin/reload", &json!({}))
}

fn config(app: &TestApp) -> Value {
    let r = app.get("/v1/admin/config");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls `check` for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_valid_edit_applies_through_the_api_and_the_config_shows_it() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_NO_WATCH", "true")],
    );
    let before = config(&app);
    assert_eq!(reload(&app).body["result"], "unchanged");
    app.write_experiment(
        "headline.yaml",
        &STICKY.replace("Which headline converts?", "Which headline sells?"),
    );
    let r = reload(&app);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], "applied");
    let after = config(&app);
    assert_ne!(after["version"], before["version"]);
    assert_eq!(after["last_error"], Value::Null);
    assert_eq!(
        after["experiments"][0]["description"],
        "Which headline sells?"
    );
    assert_eq!(
        app.get("/v1/experiments/headline").body["description"],
        "Which headline sells?"
    );
}

#[test]
fn a_broken_file_changes_nothing_and_the_error_is_visible_everywhere() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let version = config(&app)["version"].clone();
    let variant = app.assign("headline", "u1")["variant"].clone();
    app.write_experiment("broken.yaml", "id: broken\nstatus: [oops\n");
    // The watcher notices, refuses, and records why.
    assert!(eventually(
        Duration::from_secs(10),
        || config(&app)["last_error"] != Value::Null
    ));
    let status = config(&app);
    assert_eq!(status["version"], version, "the running set is unchanged");
    let errors = status["last_error"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("broken.yaml:2:")),
        "{errors:?}"
    );
    assert_eq!(status["last_error"]["trigger"], "watch");
    let blamed = status["last_error"]["files"].as_array().unwrap();
    assert_eq!(
        blamed.len(),
        1,
        "only the broken file is blamed: {blamed:?}"
    );
    assert!(blamed[0].as_str().unwrap().ends_with("broken.yaml"));
    // The API says the same, with a 422 problem.
    let r = reload(&app);
    assert_problem(&r, 422, "nothing was changed");
    assert!(
        r.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("broken.yaml")
    );
    // Still serving the last good set.
    assert_eq!(app.assign("headline", "u1")["variant"], variant);
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn sighup_reloads_when_watching_is_off() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    app.write_experiment("ranking.yaml", PER_REQUEST);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(app.get("/v1/experiments/ranking").status, 404, "no watcher");
    app.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || app
        .get("/v1/experiments/ranking")
        .status
        == 200));
}

#[test]
fn changing_the_assignment_mode_needs_a_revision_bump_which_starts_a_fresh_epoch() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    for i in 0..5 {
        app.assign("headline", &format!("u{i}"));
    }
    let flipped = STICKY.replace("assignment: sticky", "assignment: per_request");
    app.write_experiment("headline.yaml", &flipped);
    let r = reload(&app);
    assert_problem(&r, 422, "not compatible");
    assert!(
        r.body["errors"][0].as_str().unwrap().contains("revision"),
        "{}",
        r.body
    );
    assert_eq!(
        app.get("/v1/experiments/headline").body["assignment"],
        "sticky"
    );
    app.write_experiment(
        "headline.yaml",
        &flipped.replace("status: running", "status: running\nrevision: 2"),
    );
    assert_eq!(reload(&app).status, 200);
    let stats = app.get("/v1/experiments/headline").body;
    assert_eq!(stats["revision"], 2);
    assert_eq!(stats["assignment"], "per_request");
    assert_eq!(stats["exposures"], 0, "a fresh data epoch");
    // The old epoch stays readable.
    let old = app.get("/v1/experiments/headline?revision=1").body;
    assert_eq!(old["revision"], 1);
    assert_eq!(old["exposures"], 5, "{old}");
    // As it was served: its own variants, none of them retired in it.
    assert!(
        old["arms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["retired"] == false),
        "{old}"
    );
    assert_eq!(old["assignment"], "sticky");
    assert_eq!(old["current_revision"], 2);
    assert_problem(
        &app.get("/v1/experiments/headline?revision=3"),
        404,
        "revision 3",
    );
    assert_problem(
        &app.get("/v1/experiments/headline?revision=x"),
        400,
        "revision",
    );
}

#[test]
fn removing_a_variant_retires_it_with_its_data() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    for i in 0..40 {
        app.assign("headline", &format!("u{i}"));
    }
    let bold_before = app.arm("headline", "bold")["exposures"].as_u64().unwrap();
    assert!(bold_before > 0);
    let without_bold = STICKY.replace(
        "  - id: bold\n    payload: { headline: \"Ship in a day\" }\n",
        "  - id: calm\n    payload: { headline: \"Relax\" }\n",
    );
    app.write_experiment("headline.yaml", &without_bold);
    let r = reload(&app);
    assert_eq!(r.status, 200, "{}", r.body);
    let bold = app.arm("headline", "bold");
    assert_eq!(bold["retired"], true);
    assert_eq!(
        bold["exposures"].as_u64().unwrap(),
        bold_before,
        "data kept"
    );
    assert_eq!(bold["traffic_share"], 0.0);
    for i in 100..160 {
        assert_ne!(app.assign("headline", &format!("u{i}"))["variant"], "bold");
    }
    assert_eq!(config(&app)["retired"]["headline"], json!(["bold"]));
}

#[test]
fn reloads_under_concurrent_assign_load_never_fail_a_request() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let (app, stop) = (&app, &stop);
                s.spawn(move || {
                    let mut served = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let r = app.get(&format!(
                            "/v1/experiments/headline/assign?unit=t{t}-{served}"
                        ));
                        assert_eq!(r.status, 200, "{}", r.body);
                        let v = r.body["variant"].as_str().unwrap().to_owned();
                        assert!(v == "control" || v == "bold", "{v}");
                        served += 1;
                    }
                    served
                })
            })
            .collect();
        for round in 0..6 {
            let min_share = if round % 2 == 0 { "0.1" } else { "0.05" };
            app.write_experiment(
                "headline.yaml",
                &STICKY.replace("min_share: 0.05", &format!("min_share: {min_share}")),
            );
            assert_eq!(reload(&app).status, 200);
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(served > 30, "{served}");
    });
}

#[test]
fn admin_routes_need_the_admin_key_when_one_is_set() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_ADMIN_KEY", "ops")],
    );
    assert_problem(&app.get("/v1/admin/config"), 401, "BANDITD_ADMIN_KEY");
    assert_problem(&app.get("/v1/admin/store"), 401, "BANDITD_ADMIN_KEY");
    assert_problem(&reload(&app), 401, "BANDITD_ADMIN_KEY");
    for route in ["config", "store"] {
        let ok = app
            .agent
            .get(format!("{}/v1/admin/{route}", app.address))
            .header("authorization", "Bearer ops")
            .call()
            .unwrap();
        assert_eq!(ok.status(), 200, "{route}");
    }
}

#[test]
fn the_store_route_counts_commits_and_sticky_cache_hits_and_misses() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_STICKY_CACHE_ENTRIES", "1000")],
    );
    let before = app.get("/v1/admin/store").body;
    assert_eq!(before["backend"], "sled", "{before}");
    // The embedded store holds every assignment in memory (the flag sizes Redis's cache
    // only): its capacity is the room of its table, which grows.
    assert_eq!(
        before["sticky_cache"],
        serde_json::json!({
            "capacity": 0, "entries": 0, "hits": 0, "misses": 0, "hit_ratio": null
        })
    );
    // A new unit misses (its committed record joins the table); its return visit hits.
    let first = app.assign("headline", "u1")["variant"].clone();
    assert_eq!(app.assign("headline", "u1")["variant"], first);
    let after = app.get("/v1/admin/store").body;
    let cache = &after["sticky_cache"];
    assert_eq!(
        [
            &cache["entries"],
            &cache["hits"],
            &cache["misses"],
            &cache["hit_ratio"]
        ],
        [
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(0.5)
        ],
        "{after}"
    );
    assert!(cache["capacity"].as_u64().unwrap() >= 1, "{after}");
    let commits = |body: &serde_json::Value| body["group_commits"].as_u64().unwrap();
    let seq = |body: &serde_json::Value| body["durable_seq"].as_u64().unwrap();
    assert!(commits(&after) > commits(&before), "{before} {after}");
    assert!(seq(&after) > seq(&before), "{before} {after}");
    assert_problem(
        &app.post_json("/v1/admin/store", &serde_json::json!({})),
        405,
        "POST",
    );
}

#[test]
fn units_stuck_to_a_retired_variant_are_reassigned_and_counted_on_their_new_arm() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    let on_bold: Vec<String> = (0..40)
        .map(|i| format!("u{i}"))
        .filter(|u| app.assign("headline", u)["variant"] == "bold")
        .collect();
    assert!(!on_bold.is_empty());
    let bold_exposures = app.arm("headline", "bold")["exposures"].clone();
    let control_before = app.arm("headline", "control")["exposures"]
        .as_u64()
        .unwrap();
    let without_bold = STICKY.replace(
        "  - id: bold\n    payload: { headline: \"Ship in a day\" }\n",
        "  - id: calm\n    payload: { headline: \"Relax\" }\n",
    );
    app.write_experiment("headline.yaml", &without_bold);
    assert_eq!(reload(&app).status, 200);
    let mut moved = std::collections::HashMap::new();
    for unit in &on_bold {
        let a = app.assign("headline", unit);
        assert_eq!(a["counted"], true, "a re-assignment is a new exposure");
        moved.insert(unit.clone(), a["variant"].as_str().unwrap().to_owned());
    }
    // Sticky again on the new arm, and counted once.
    for (unit, variant) in &moved {
        let again = app.assign("headline", unit);
        assert_eq!(again["variant"], variant.as_str());
        assert_eq!(again["counted"], false);
    }
    let control_after = app.arm("headline", "control")["exposures"]
        .as_u64()
        .unwrap();
    let calm_after = app.arm("headline", "calm")["exposures"].as_u64().unwrap();
    assert_eq!(
        (control_after - control_before) + calm_after,
        on_bold.len() as u64
    );
    assert_eq!(
        app.arm("headline", "bold")["exposures"],
        bold_exposures,
        "history is kept"
    );
}

/// Runs `banditd plan <dir> --server <app>`; returns the exit code and stdout.
fn plan_against(app: &TestApp, dir: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(["plan"])
        .arg(dir)
        .args(["--server", &app.address])
        .env_remove("BANDITD_ADMIN_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn plans_verdict_matches_what_the_reload_then_does() {
    let app = TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &[("BANDITD_NO_WATCH", "1")]);
    for i in 0..30 {
        app.assign("headline", &format!("u{i}"));
    }
    let bold = app.arm("headline", "bold")["exposures"].as_u64().unwrap();
    let proposals = [
        // Safe: a knob and a retired variant.
        STICKY.replace("min_share: 0.05", "min_share: 0.1").replace(
            "  - id: bold\n    payload: { headline: \"Ship in a day\" }\n",
            "  - id: calm\n    payload: { headline: \"Relax\" }\n",
        ),
        // Refused: a kept variant's payload changes without a revision bump.
        STICKY.replace("Build faster", "Build much faster"),
    ];
    for (i, proposal) in proposals.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("headline.yaml"), proposal).unwrap();
        let (code, text) = plan_against(&app, dir.path());
        app.write_experiment("headline.yaml", proposal);
        let reloaded = reload(&app);
        match code {
            0 => assert_eq!(
                reloaded.status, 200,
                "plan said safe:\n{text}\nreload: {}",
                reloaded.body
            ),
            1 => assert_eq!(
                reloaded.status, 422,
                "plan said refused:\n{text}\nreload: {}",
                reloaded.body
            ),
            other => panic!("plan failed with {other}:\n{text}"),
        }
        if i == 0 {
            assert_eq!(code, 0, "{text}");
            assert!(
                text.contains(&format!("its {bold} sticky units will be re-assigned")),
                "{text}"
            );
        } else {
            assert_eq!(code, 1, "{text}");
        }
    }
}

#[test]
fn plan_reports_dropping_a_served_experiment_as_its_own_verdict_and_exit_code() {
    let other = STICKY.replace("id: headline", "id: other");
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY), ("other.yaml", &other)],
        &[("BANDITD_NO_WATCH", "1")],
    );
    for i in 0..7 {
        app.assign("other", &format!("u{i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("headline.yaml"), STICKY).unwrap();
    let (code, text) = plan_against(&app, dir.path());
    assert_eq!(code, 3, "{text}");
    assert!(!text.contains("SAFE"), "{text}");
    assert!(
        text.contains("other (removed): 7 sticky units would lose their experiment"),
        "{text}"
    );
    // The server does accept it, and the units do lose their experiment.
    std::fs::remove_file(app.experiments_dir().join("other.yaml")).unwrap();
    assert_eq!(reload(&app).status, 200);
    assert_eq!(app.get("/v1/experiments/other/assign?unit=u1").status, 404);
}
