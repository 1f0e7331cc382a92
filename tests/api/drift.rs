//! Config drift: three replicas on one real `redis-server`, one of them on a different
//! experiment folder. Every replica's `GET /v1/admin/config` shows it, `banditd plan --server`
//! warns about it, and it goes away when the odd replica is aligned and reloaded, or stopped.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{STICKY, TestApp};
use crate::redis_harness::RedisServer;

const SECRET: &str = "replica-token-secret-0123456789abcdef";

/// A compatible edit (a policy knob): another folder version the running data accepts.
fn edited() -> String {
    STICKY.replace("min_share: 0.05", "min_share: 0.1")
}

fn replica(redis: &RedisServer, folder: &str) -> TestApp {
    TestApp::spawn_with_env(
        &[("headline.yaml", folder)],
        &[
            ("BANDITD_REDIS", &redis.url()),
            ("BANDITD_TOKEN_SECRET", SECRET),
            ("BANDITD_NO_WATCH", "1"),
        ],
    )
}

fn replica_set(app: &TestApp) -> Value {
    let r = app.get("/v1/admin/config");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["replicas"].clone()
}

/// Waits (at most 20 s: a report is refreshed every second) until every app's replica set
/// has `live` replicas and agrees or not as `agree` says; returns the sets.
fn settle(apps: &[&TestApp], live: usize, agree: bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sets: Vec<Value> = apps.iter().map(|app| replica_set(app)).collect();
        if sets
            .iter()
            .all(|set| set["live"].as_array().map(Vec::len) == Some(live) && set["agree"] == agree)
        {
            return sets;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not settle on {live} live, agree = {agree}: {sets:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn version(app: &TestApp) -> String {
    let r = app.get("/v1/admin/config");
    r.body["version"].as_str().unwrap().to_owned()
}

fn id_of(app: &TestApp) -> String {
    replica_set(app)["this_replica"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn plan_against(app: &TestApp, dir: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_banditd"))
        .arg("plan")
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
fn drift_shows_on_every_replica_until_the_odd_one_is_aligned_and_reloaded_or_stopped() {
    let redis = RedisServer::start();
    let edited = edited();
    let apps = [
        replica(&redis, STICKY),
        replica(&redis, STICKY),
        replica(&redis, &edited),
    ];
    let all: Vec<&TestApp> = apps.iter().collect();
    let (common, odd) = (version(&apps[0]), version(&apps[2]));
    assert_ne!(common, odd);
    let ids: Vec<String> = apps.iter().map(id_of).collect();
    let pid = apps[2].pid().to_string();
    assert!(ids[2].ends_with(&format!(":{pid}")), "{ids:?}");

    for (set, id) in settle(&all, 3, false).iter().zip(&ids) {
        assert_eq!(set["this_replica"], id.as_str());
        let mut common_ids = vec![ids[0].clone(), ids[1].clone()];
        common_ids.sort();
        assert_eq!(
            set["versions"],
            json!([
                {"version": common, "replicas": common_ids},
                {"version": odd, "replicas": [ids[2]]},
            ]),
            "the majority version first, each with its replicas"
        );
        let mut addresses: Vec<String> = set["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|report| format!("http://{}", report["address"].as_str().unwrap()))
            .collect();
        addresses.sort();
        let mut expected: Vec<String> = apps.iter().map(|app| app.address.clone()).collect();
        expected.sort();
        assert_eq!(
            addresses, expected,
            "each report names where its replica serves"
        );
    }

    // The dashboard's configuration page shows the drift on every replica, naming each
    // version with its replicas.
    for app in &apps {
        let page = ui_config(app);
        assert!(page.contains("Config drift"), "{page}");
        assert!(
            page.contains(&format!("version <code>{odd}</code> on {}", ids[2])),
            "{page}"
        );
        for id in &ids {
            assert!(page.contains(&format!("data-replica=\"{id}\"")), "{page}");
        }
    }

    let proposal = tempfile::tempdir().unwrap();
    std::fs::write(proposal.path().join("headline.yaml"), STICKY).unwrap();
    let (code, text) = plan_against(&apps[0], proposal.path());
    assert_eq!(code, 0, "{text}");
    let warning = text
        .lines()
        .find(|line| line.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(
        warning.contains("do not run the same experiment folder"),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("version {odd} on {}", ids[2])),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("version {common} on ")),
        "{warning}"
    );

    // Aligned and reloaded: the drift disappears everywhere, and plan is quiet again.
    apps[2].write_experiment("headline.yaml", STICKY);
    let reloaded = apps[2].post_json("/v1/admin/reload", &json!({}));
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    for set in settle(&all, 3, true) {
        assert_eq!(set["versions"][0]["version"], common.as_str());
    }
    let (_, text) = plan_against(&apps[0], proposal.path());
    assert!(!text.contains("warning:"), "{text}");
    let page = ui_config(&apps[0]);
    assert!(!page.contains("Config drift"), "{page}");
    assert!(
        page.contains("All 3 replicas run the same version."),
        "{page}"
    );

    // Drifted again, then stopped: a clean stop takes it out of the set at once.
    let mut apps = apps;
    apps[2].write_experiment("headline.yaml", &edited);
    assert_eq!(
        apps[2].post_json("/v1/admin/reload", &json!({})).status,
        200
    );
    settle(&all_of(&apps), 3, false);
    assert_eq!(apps[2].terminate(), Some(0), "clean shutdown");
    let sets = settle(&all_of(&apps[..2]), 2, true);
    assert!(
        sets[0]["live"]
            .as_array()
            .unwrap()
            .iter()
            .all(|report| report["id"] != ids[2].as_str())
    );
}

/// The dashboard's configuration page (open: these replicas have no admin key).
fn ui_config(app: &TestApp) -> String {
    let r = app.get("/ui/config");
    assert_eq!(r.status, 200);
    r.body.as_str().expect("an HTML page").to_owned()
}

fn all_of(apps: &[TestApp]) -> Vec<&TestApp> {
    apps.iter().collect()
}

/// On the embedded store a server is its own only replica, and agrees with itself.
#[test]
fn a_single_sled_server_reports_itself_as_the_only_replica() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let set = replica_set(&app);
    assert_eq!(set["agree"], true);
    assert_eq!(set["live"].as_array().unwrap().len(), 1);
    assert_eq!(set["live"][0]["version"], version(&app).as_str());
    assert_eq!(set["live"][0]["id"], set["this_replica"]);
    assert!(
        app.address
            .ends_with(set["live"][0]["address"].as_str().unwrap())
    );
    let page = ui_config(&app);
    assert!(page.contains("One replica: this one."), "{page}");
    assert!(!page.contains("Config drift"), "{page}");
}
