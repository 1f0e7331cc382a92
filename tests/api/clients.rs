//! What the client libraries (`clients/js/`, `clients/python/`) rely on: assign answers that
//! say how long a client may cache them, and the browser client served at `GET /v1/sdk.js`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::helpers::{PER_REQUEST, STICKY, TestApp};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[test]
fn a_sticky_answer_says_until_when_its_token_credits_rewards() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)]);
    let before = now_ms();
    let first = app.assign("headline", "alice");
    let after = now_ms();
    assert_eq!(first["sticky"], true, "{first}");
    let until = first["reward_until_ms"].as_u64().expect("a number");
    // The assignment's time plus the 7d window.
    assert!(
        (before + 7 * DAY_MS..=after + 7 * DAY_MS).contains(&until),
        "{until} not within [{}, {}]",
        before + 7 * DAY_MS,
        after + 7 * DAY_MS
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The window runs from the first assignment, not from this call.
    let again = app.assign("headline", "alice");
    assert_eq!(again["reward_until_ms"], until, "{again}");
    assert_eq!(again["counted"], false);

    let many = app.post_json("/v1/assign", &json!({"unit": "alice"}));
    let from_many = many.body["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|a| a["experiment"] == "headline")
        .expect("headline assigned")
        .clone();
    assert_eq!(from_many["reward_until_ms"], until);

    let before = now_ms();
    let ranking = app.assign("ranking", "alice");
    let after = now_ms();
    assert_eq!(ranking["sticky"], false, "{ranking}");
    let until = ranking["reward_until_ms"].as_u64().expect("a number");
    assert!((before + DAY_MS..=after + DAY_MS).contains(&until));
}

#[test]
fn an_answer_without_a_token_has_no_reward_window() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let peek = app.get("/v1/experiments/headline/assign?unit=bob&count=false");
    assert_eq!(peek.status, 200);
    assert_eq!(peek.body["token"], serde_json::Value::Null);
    assert_eq!(
        peek.body["reward_until_ms"],
        serde_json::Value::Null,
        "{}",
        peek.body
    );
    assert_eq!(peek.body["sticky"], true);
}

#[test]
fn the_browser_client_is_served_with_its_type_and_cache_validators() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY)],
        &[("BANDITD_CORS_ORIGINS", "http://shop.example")],
    );
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/src/banditd.js"),
    )
    .expect("the client's source");
    let url = format!("{}/v1/sdk.js", app.address);
    let mut response = app
        .agent
        .get(&url)
        .header("origin", "http://shop.example")
        .call()
        .expect("GET");
    assert_eq!(response.status(), 200);
    let header = |response: &ureq::http::Response<ureq::Body>, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        header(&response, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&response, "cache-control"),
        "public, max-age=300, must-revalidate"
    );
    // A cross-origin `<script type="module">` needs CORS, like the API calls.
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        "http://shop.example"
    );
    let etag = header(&response, "etag");
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    let body = response.body_mut().read_to_string().expect("body");
    assert_eq!(body, shipped, "the served client is the package's file");

    let mut revalidated = app
        .agent
        .get(&url)
        .header("if-none-match", &etag)
        .call()
        .expect("GET");
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag"), etag);
    assert_eq!(
        revalidated.body_mut().read_to_string().unwrap_or_default(),
        ""
    );

    let stale = app
        .agent
        .get(&url)
        .header("if-none-match", "\"an-older-client\"")
        .call()
        .expect("GET");
    assert_eq!(stale.status(), 200);
}
