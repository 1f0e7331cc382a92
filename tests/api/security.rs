//! Issue 9 §2, "Secrets stay secret", against the real binary: a private data dir and secret
//! file, token-secret rotation without a flag day, and API keys on every guarded route
//! family (401 problem+json, the `Bearer` scheme in any case).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{PER_REQUEST, Reply, STICKY, TestApp, assert_problem};

const ADMIN_KEY: &str = "admin-key-0123456789";
const EVENTS_KEY: &str = "events-key-0123456789";
const ASSIGN_KEY: &str = "assign-key-0123456789";

/// Sends `method path` with an optional `Authorization` value and a JSON body.
fn send(app: &TestApp, method: &str, path: &str, authorization: Option<&str>) -> Reply {
    let url = format!("{}{path}", app.address);
    let mut response = match method {
        "GET" => {
            let mut request = app.agent.get(url);
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            request.call()
        }
        _ => {
            let mut request = app
                .agent
                .post(url)
                .header("content-type", "application/json");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            request.send(r#"{"unit": "u1"}"#)
        }
    }
    .expect("request");
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if status == 401 {
        assert_eq!(www_authenticate, "Bearer", "{method} {path}");
    }
    Reply {
        status,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn with_all_keys() -> TestApp {
    TestApp::spawn_with_env(
        &[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)],
        &[
            ("BANDITD_ADMIN_KEY", ADMIN_KEY),
            ("BANDITD_EVENTS_KEY", EVENTS_KEY),
            ("BANDITD_ASSIGN_KEY", ASSIGN_KEY),
        ],
    )
}

/// Every guarded route family: (method, path, its key's variable, its key).
const GUARDED: [(&str, &str, &str, &str); 8] = [
    ("POST", "/v1/admin/reload", "BANDITD_ADMIN_KEY", ADMIN_KEY),
    ("GET", "/v1/admin/config", "BANDITD_ADMIN_KEY", ADMIN_KEY),
    ("GET", "/v1/admin/store", "BANDITD_ADMIN_KEY", ADMIN_KEY),
    ("GET", "/v1/admin/build", "BANDITD_ADMIN_KEY", ADMIN_KEY),
    ("POST", "/v1/events", "BANDITD_EVENTS_KEY", EVENTS_KEY),
    (
        "GET",
        "/v1/experiments/headline/export?what=assignments",
        "BANDITD_EVENTS_KEY",
        EVENTS_KEY,
    ),
    ("POST", "/v1/assign", "BANDITD_ASSIGN_KEY", ASSIGN_KEY),
    (
        "GET",
        "/v1/experiments/headline/assign?unit=u1",
        "BANDITD_ASSIGN_KEY",
        ASSIGN_KEY,
    ),
];

#[test]
fn every_guarded_route_answers_401_problem_json_without_its_key_or_with_a_wrong_one() {
    let app = with_all_keys();
    for (method, path, variable, key) in GUARDED {
        let missing = send(&app, method, path, None);
        assert_problem(&missing, 401, variable);
        let wrong = send(&app, method, path, Some("Bearer not-the-key"));
        assert_problem(&wrong, 401, variable);
        let other_scheme = send(&app, method, path, Some(&format!("Basic {key}")));
        assert_problem(&other_scheme, 401, variable);
        let detail = wrong.body["detail"].as_str().unwrap_or("");
        assert!(!detail.contains(key), "{method} {path}: {detail}");
        let right = send(&app, method, path, Some(&format!("Bearer {key}")));
        assert_ne!(right.status, 401, "{method} {path}: {}", right.body);
        let admin = send(&app, method, path, Some(&format!("Bearer {ADMIN_KEY}")));
        assert_ne!(admin.status, 401, "{method} {path}: the admin key opens it");
    }
}

#[test]
fn the_key_is_checked_before_the_request_is_read() {
    let app = with_all_keys();
    // A bad query string without a key: the caller learns about the key, not the query.
    let reply = send(&app, "GET", "/v1/experiments/nope/assign?count=maybe", None);
    assert_problem(&reply, 401, "BANDITD_ASSIGN_KEY");
    let reply = send(&app, "GET", "/v1/experiments/nope/export?what=x", None);
    assert_problem(&reply, 401, "BANDITD_EVENTS_KEY");
}

#[test]
fn the_bearer_scheme_name_is_case_insensitive() {
    let app = with_all_keys();
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        for (method, path, _, key) in GUARDED {
            let reply = send(&app, method, path, Some(&format!("{scheme} {key}")));
            assert_ne!(
                reply.status, 401,
                "{scheme} on {method} {path}: {}",
                reply.body
            );
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_fresh_data_dir_is_private_and_its_secret_file_holds_the_token_key() {
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let token = app.assign("ranking", "u1")["token"].clone();
    assert_eq!(app.terminate(), Some(0));
    let data = app.data_dir();
    assert_eq!(mode(&data), 0o700);
    let secret_file = data.join("token.secret");
    assert_eq!(mode(&secret_file), 0o600);
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let path = entry.path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    // The generated secret is text, so it can be handed on as the previous secret.
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_eq!(secret.len(), 64, "32 random bytes in hex");
    app.set_env("BANDITD_TOKEN_SECRET", &secret);
    std::fs::remove_dir_all(&data).unwrap();
    app.start().unwrap();
    let report = app.post_events(&json!([{"id": "e1", "experiment": "ranking", "token": token}]));
    assert_eq!(report["applied"], 1, "the file held the very key: {report}");
}

#[test]
fn an_existing_data_dir_open_to_others_is_named_in_a_warning() {
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    app.assign("ranking", "u1");
    assert_eq!(app.terminate(), Some(0));
    let data = app.data_dir();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    app.log.lock().unwrap().clear();
    app.start().unwrap();
    let log = app.log.lock().unwrap().join("\n");
    let warning = log
        .lines()
        .find(|line| line.contains("WARN") && line.contains("open to group or others"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(warning.contains(&data.display().to_string()), "{warning}");
    assert_eq!(
        mode(&data.join("db")),
        0o600,
        "the store's own file is tightened"
    );
}

const OLD_SECRET: &str = "old-secret-0123456789abcdef0123456789";
const NEW_SECRET: &str = "new-secret-0123456789abcdef0123456789";
const UNRELATED_SECRET: &str = "unrelated-0123456789abcdef0123456789";

/// A token for `ranking`, issued by a server that signs with `secret` (on its own data dir).
fn token_signed_with(secret: &str, unit: &str) -> Value {
    let app = TestApp::spawn_with_env(
        &[("ranking.yaml", PER_REQUEST)],
        &[("BANDITD_TOKEN_SECRET", secret)],
    );
    let assignment = app.assign("ranking", unit);
    assert!(assignment["token"].is_string(), "{assignment}");
    assignment["token"].clone()
}

#[test]
fn a_rotation_keeps_old_tokens_credited_signs_new_ones_with_the_new_secret_and_refuses_others() {
    let mut app = TestApp::spawn_with_env(
        &[("ranking.yaml", PER_REQUEST)],
        &[("BANDITD_TOKEN_SECRET", OLD_SECRET)],
    );
    let before = app.assign("ranking", "u1");
    app.terminate();
    app.set_env("BANDITD_TOKEN_SECRET", NEW_SECRET);
    app.set_env("BANDITD_TOKEN_SECRET_PREVIOUS", OLD_SECRET);
    app.start().unwrap();
    let after = app.assign("ranking", "u2");
    let forged = token_signed_with(UNRELATED_SECRET, "u3");
    let report = app.post_events(&json!([
        {"id": "old", "experiment": "ranking", "token": before["token"]},
        {"id": "unrelated", "experiment": "ranking", "token": forged},
        {"id": "new", "experiment": "ranking", "token": after["token"]},
    ]));
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(report["rejections"][0]["index"], 1, "{report}");
    assert_eq!(report["rejections"][0]["reason"], "bad_token", "{report}");
    let credited: f64 = app
        .arms("ranking")
        .iter()
        .map(|arm| arm["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(credited, 2.0);
    // New tokens carry the new secret alone: the rotation can end without losing them.
    let newest = app.assign("ranking", "u4");
    app.terminate();
    app.set_env("BANDITD_TOKEN_SECRET_PREVIOUS", "");
    app.start().unwrap();
    let report = app.post_events(&json!([
        {"id": "newest", "experiment": "ranking", "token": newest["token"]},
    ]));
    assert_eq!(report["applied"], 1, "{report}");
}

#[test]
fn a_short_previous_secret_refuses_to_start() {
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    app.terminate();
    app.set_env("BANDITD_TOKEN_SECRET_PREVIOUS", "short");
    let log = app
        .start()
        .expect_err("a 5-byte previous secret must be refused");
    assert!(
        log.contains("BANDITD_TOKEN_SECRET_PREVIOUS") && log.contains("at least 32"),
        "{log}"
    );
}

#[test]
fn no_key_or_secret_reaches_the_log() {
    let mut app = TestApp::spawn_with_env(
        &[("ranking.yaml", PER_REQUEST)],
        &[
            ("BANDITD_ADMIN_KEY", ADMIN_KEY),
            ("BANDITD_EVENTS_KEY", EVENTS_KEY),
            ("BANDITD_ASSIGN_KEY", ASSIGN_KEY),
            ("BANDITD_TOKEN_SECRET", NEW_SECRET),
            ("BANDITD_TOKEN_SECRET_PREVIOUS", OLD_SECRET),
            ("RUST_LOG", "trace"),
        ],
    );
    for (method, path, _, key) in GUARDED {
        send(&app, method, path, Some(&format!("Bearer {key}")));
        send(&app, method, path, Some("Bearer wrong"));
    }
    app.terminate();
    let log = app.log.lock().unwrap().join("\n");
    assert!(log.contains("listening"), "{log}");
    for secret in [ADMIN_KEY, EVENTS_KEY, ASSIGN_KEY, NEW_SECRET, OLD_SECRET] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

#[test]
fn a_binary_previous_secret_is_taken_in_base64() {
    use base64::Engine as _;
    // A generated secret stands in for the binary one an older build kept in its database:
    // the file's bytes, whatever they are, are the key.
    let mut app = TestApp::spawn(&[("ranking.yaml", PER_REQUEST)]);
    let token = app.assign("ranking", "u1")["token"].clone();
    assert_eq!(app.terminate(), Some(0));
    let secret_file = app.data_dir().join("token.secret");
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&secret_file).unwrap());
    std::fs::remove_file(&secret_file).unwrap();
    app.set_env("BANDITD_TOKEN_SECRET", NEW_SECRET);
    app.set_env(
        "BANDITD_TOKEN_SECRET_PREVIOUS",
        &format!("base64:{encoded}"),
    );
    app.start().unwrap();
    let report = app.post_events(&json!([{"id": "e1", "experiment": "ranking", "token": token}]));
    assert_eq!(report["applied"], 1, "{report}");
}
