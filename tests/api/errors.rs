//! Bad input gets a precise 4xx problem+json, never a 5xx.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{STICKY, TestApp, assert_problem, raw_exchange};

#[test]
fn each_class_of_bad_input_gets_its_4xx_problem() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_problem(&app.get("/v1/experiments/nope/assign?unit=u1"), 404, "nope");
    assert_problem(&app.get("/v1/experiments/nope"), 404, "nope");
    assert_problem(&app.get("/v1/experiments/headline/assign"), 400, "unit");
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit="),
        400,
        "empty",
    );
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u1&count=maybe"),
        400,
        "count",
    );
    assert_problem(
        &app.post_raw("/v1/assign", "application/json", "{\"unit\": "),
        400,
        "line 1",
    );
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": 7})),
        400,
        "unit",
    );
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": "u", "colour": 1})),
        400,
        "colour",
    );
    // An unknown experiment in a list is an entry of `errors`, not a failed request.
    let listed = app.post_json(
        "/v1/assign",
        &json!({"unit": "u", "experiments": ["headline", "nope"]}),
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["errors"][0]["experiment"], "nope");
    let long_unit = "x".repeat(300);
    assert_problem(
        &app.post_json("/v1/assign", &json!({"unit": long_unit})),
        400,
        "256",
    );
    let huge = format!("{{\"unit\": \"{}\"}}", "x".repeat(100_000));
    assert_problem(
        &app.post_raw("/v1/assign", "application/json", &huge),
        413,
        "bytes",
    );
    assert_problem(
        &app.post_raw("/v1/events", "application/json", "[{"),
        400,
        "array",
    );
    assert_problem(
        &app.post_raw("/v1/events", "application/json", "{}"),
        400,
        "array",
    );
    assert_problem(
        &app.post_raw("/v1/events", "text/csv", "a,b"),
        415,
        "ndjson",
    );
    let too_many: Vec<_> = (0..10_001).map(|i| json!({"id": i.to_string()})).collect();
    assert_problem(&app.post_json("/v1/events", &json!(too_many)), 413, "10000");
    assert_problem(&app.get("/v1/nothing-here"), 404, "/v1/nothing-here");
    assert_problem(&app.get("/v1/events"), 405, "GET");
}

#[test]
fn readiness_and_health_answer() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    assert_eq!(app.get("/healthz").status, 200);
    let ready = app.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["experiments"], 1);
}

#[test]
fn head_on_healthz_and_readyz_answers_like_get_without_a_body() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for path in ["/healthz", "/readyz"] {
        let mut head = app
            .agent
            .head(format!("{}{path}", app.address))
            .call()
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-type"], "application/json");
        assert_eq!(head.body_mut().read_to_string().unwrap(), "", "HEAD {path}");
    }
    assert_problem(&app.post_json("/healthz", &json!({})), 405, "POST");
}

#[test]
fn a_body_that_trickles_is_answered_408_problem_and_the_connection_closed() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_BODY_READ_TIMEOUT", "1s")],
    );
    let head = b"POST /v1/events HTTP/1.1\r\nHost: banditd\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000\r\n\r\n[";
    let started = Instant::now();
    // 10 bytes a second, for as long as the server listens (at most 10 s).
    let answer = raw_exchange(&app, head, Duration::from_secs(10), |stream, _| {
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b" ").is_ok()
    });
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("--body-read-timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server is not held up: an ordinary request still answers.
    assert_eq!(app.get("/healthz").status, 200);
}

/// POSTs `body` to `/v1/events` on a fresh connection: the head first, then the body in
/// `pieces` equal parts, `gap` apart. Returns the first answer (its head and a body of its
/// `content-length`) and how long after the last piece it came (at most 20 s).
fn post_events_in_pieces(
    app: &TestApp,
    content_type: &str,
    body: &str,
    pieces: usize,
    gap: Duration,
) -> (String, Duration) {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: banditd\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for piece in body.as_bytes().chunks(body.len().div_ceil(pieces)) {
        std::thread::sleep(gap);
        stream.write_all(piece).unwrap();
    }
    let sent = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while sent.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            head.lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .is_some_and(|length| body.len() >= length)
        });
        if complete {
            break;
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        sent.elapsed(),
    )
}

/// A body that arrives after its head, in pieces, is read as each piece comes, not when the
/// body's timer fires. `src/http/body.rs` reads on the first poll without the task's waker
/// and relies on actix's HTTP/1 connection polling the handler again whenever it reads the
/// socket (actix-web 4 does so on every pass, whatever waker the body holds); this holds it
/// to that, for a small body and for a bulk one larger than actix's payload buffer (32 KiB),
/// which the reader must drain for the connection to read on.
#[test]
fn a_body_that_comes_in_pieces_after_its_head_is_answered_at_once() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_BODY_READ_TIMEOUT", "30s")],
    );
    app.assign("headline", "piecewise");
    let one = r#"[{"id":"pieces-1","experiment":"headline","unit":"piecewise"}]"#.to_owned();
    let mut bulk = String::new();
    for i in 0..1_500 {
        let unit = format!("piecewise-{i}");
        app.assign("headline", &unit);
        bulk.push_str(&format!(
            r#"{{"id":"bulk-pieces-{i}","experiment":"headline","unit":"{unit}"}}"#
        ));
        bulk.push('\n');
    }
    for (content_type, body, applied) in [
        ("application/json", one, 1),
        ("application/x-ndjson", bulk, 1_500),
    ] {
        let (answer, late) =
            post_events_in_pieces(&app, content_type, &body, 4, Duration::from_millis(200));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(
            answer.contains(&format!(r#""applied":{applied}"#)),
            "{answer}"
        );
        assert!(
            late < Duration::from_secs(3),
            "{content_type}: answered {late:?} after the last piece"
        );
    }
}

#[test]
fn every_error_the_application_answers_is_problem_json() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_CORS_ORIGINS", "https://shop.example")],
    );
    // Unknown route, wrong method, query extractor errors, path with a bad escape.
    assert_problem(&app.get("/nothing"), 404, "/nothing");
    assert_problem(&app.get("/v1/assign"), 405, "GET");
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u&colour=red"),
        400,
        "colour",
    );
    assert_problem(
        &app.get("/v1/experiments/headline/assign?unit=u&unit=v"),
        400,
        "unit",
    );
    assert_problem(
        &app.get("/v1/experiments/%FF/assign?unit=u"),
        404,
        "experiment",
    );
    assert_problem(
        &app.post_raw("/v1/assign", "application/json", "[1, 2]"),
        400,
        "invalid JSON body",
    );
    // actix-cors refuses a preflight from another origin with a plain-text body of its own.
    let refused = app
        .agent
        .options(format!("{}/v1/assign", app.address))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .call()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.into_body().read_json().unwrap();
    assert_eq!(problem["status"], 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Origin is not allowed"),
        "{problem}"
    );
}

#[test]
fn malformed_request_heads_get_actix_parser_answers_with_an_empty_body() {
    // The README lists these as the only errors that are not problem+json.
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let patience = Duration::from_secs(5);
    let garbage = raw_exchange(&app, b"GARBAGE\r\n\r\n", patience, |_, _| true);
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    assert!(garbage.contains("content-length: 0"), "{garbage:?}");
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: banditd\r\n".to_vec();
    for i in 0..200 {
        huge.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(200)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let too_large = raw_exchange(&app, &huge, patience, |_, _| true);
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large:?}");
    assert!(too_large.contains("content-length: 0"), "{too_large:?}");
    // A first head that never completes: 408 after 5 s (REQUEST_HEAD_TIMEOUT_SECS).
    let started = Instant::now();
    let slow = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHo",
        Duration::from_secs(10),
        |_, _| true,
    );
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow:?}");
    assert!(slow.contains("content-length: 0"), "{slow:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
}

#[test]
fn cors_allows_only_the_configured_origin() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_CORS_ORIGINS", "https://shop.example")],
    );
    let preflight = |origin: &str| {
        app.agent
            .options(format!("{}/v1/assign", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .call()
            .unwrap()
    };
    let ok = preflight("https://shop.example");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://shop.example"
    );
    let other = preflight("https://evil.example");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A page may send its own request id, and its script may read the one that comes back.
    let with_id = app
        .agent
        .options(format!("{}/v1/assign", app.address))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-request-id")
        .call()
        .unwrap();
    assert_eq!(with_id.status(), 200);
    let answer = app
        .agent
        .get(format!(
            "{}/v1/experiments/headline/assign?unit=u1",
            app.address
        ))
        .header("origin", "https://shop.example")
        .call()
        .unwrap();
    let exposed = answer
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed:?}");
}

#[test]
fn sigterm_exits_cleanly_with_status_zero() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    assert_eq!(app.terminate(), Some(0));
}

#[test]
fn sigint_also_drains_flushes_and_exits_zero() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let variant = app.assign("headline", "u1")["variant"].clone();
    app.signal("INT");
    assert_eq!(app.wait_exit(), Some(0));
    app.start().expect("restart");
    assert_eq!(app.assign("headline", "u1")["variant"], variant);
}

#[test]
fn a_data_dir_written_by_an_older_build_stops_startup_with_a_clear_message() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    // An older build's store: records, but no format mark. A fresh sled directory with one
    // key stands in for it.
    let old = app.data_dir().with_file_name("old-data");
    {
        let db = sled::open(&old).expect("sled opens a new directory");
        db.insert(b"\x00seq", &7u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    std::fs::remove_dir_all(app.data_dir()).unwrap();
    std::fs::rename(&old, app.data_dir()).unwrap();
    let log = app.start().expect_err("the server refuses the old store");
    assert!(
        log.contains("from before store formats were marked")
            && log.contains("new, empty data directory"),
        "{log}"
    );
}

#[test]
fn a_malformed_cors_origin_stops_startup_with_the_expected_form() {
    let mut app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.kill9();
    for bad in [
        "http://a.example/",
        "127.0.0.1:3000",
        "*",
        "https://a.example/app",
    ] {
        app.set_env("BANDITD_CORS_ORIGINS", &format!("https://ok.example,{bad}"));
        app.log.lock().unwrap().clear();
        let log = app.start().expect_err("a malformed origin stops startup");
        assert!(
            log.contains("scheme://host[:port]") && log.contains(bad),
            "{bad}: {log}"
        );
        assert!(!log.contains("listening on"), "{log}");
    }
}

#[test]
fn startup_lists_the_cors_origins_and_a_refused_preflight_is_logged_at_debug() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[
            (
                "BANDITD_CORS_ORIGINS",
                "https://shop.example,http://localhost:3000",
            ),
            ("RUST_LOG", "info,banditd=debug"),
        ],
    );
    let logged = |needle: &str| app.log.lock().unwrap().iter().any(|l| l.contains(needle));
    assert!(
        logged(r#""origins":["https://shop.example","http://localhost:3000"]"#),
        "{:#?}",
        app.log.lock().unwrap()
    );
    let refused = app
        .agent
        .options(format!("{}/v1/assign", app.address))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .call()
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(logged("CORS refused a request") && logged("https://evil.example")) {
        assert!(Instant::now() < deadline, "{:#?}", app.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
}
