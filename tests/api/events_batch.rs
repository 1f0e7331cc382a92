//! The events route as a pipeline and a browser see it: the counts of a batch, bounded
//! answers, NDJSON lines, messages, late conversions after a revision bump, beacons and the
//! keyless token path.

use serde_json::json;

use crate::events::reasons;
use crate::helpers::{PER_REQUEST, STICKY, TestApp, assert_problem};

#[test]
fn a_second_conversion_is_counted_apart_from_errors_and_an_all_bad_batch_says_so() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    let first = app.post_events(&json!([{"id": "a", "experiment": "headline", "unit": "u1"}]));
    assert_eq!(first["applied"], 1, "{first}");
    // Another event id converting the same unit: harmless, not an error.
    let again = app.post_events(&json!([{"id": "b", "experiment": "headline", "unit": "u1"}]));
    assert_eq!(
        (
            &again["already_rewarded"],
            &again["rejected"],
            &again["all_rejected"]
        ),
        (&json!(1), &json!(0), &json!(false)),
        "{again}"
    );
    assert_eq!(again["rejections"], json!([]), "{again}");
    // Every event broken: still 200, and the report says the whole batch was refused.
    let broken = app.post_raw(
        "/v1/events",
        "application/json",
        r#"[{"id": "c", "experiment": "nope", "unit": "u1"}, 7]"#,
    );
    assert_eq!(broken.status, 200, "{}", broken.body);
    assert_eq!(broken.body["received"], 2, "{}", broken.body);
    assert_eq!(broken.body["rejected"], 2, "{}", broken.body);
    assert_eq!(broken.body["all_rejected"], true, "{}", broken.body);
    assert_eq!(
        broken.body["rejected_by_reason"],
        json!({"unknown_experiment": 1, "invalid_event": 1})
    );
}

#[test]
fn thousands_of_rejections_answer_in_bounded_size_grouped_by_reason() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let mut body = String::new();
    for i in 0..9_000 {
        body.push_str(&format!(
            r#"{{"id":"e{i}","experiment":"headline","unit":"nobody-{i}"}}"#
        ));
        body.push('\n');
    }
    let r = app.post_raw("/v1/events", "application/x-ndjson", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rejected"], 9_000);
    assert_eq!(
        r.body["rejected_by_reason"],
        json!({"unit_not_assigned": 9_000})
    );
    assert_eq!(r.body["rejections"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["rejections_omitted"], 8_900);
    assert!(
        r.body.to_string().len() < 64 * 1024,
        "{}",
        r.body.to_string().len()
    );
}

#[test]
fn a_late_unit_conversion_after_a_revision_bump_is_stale_not_unassigned() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "old-timer");
    let token = app.assign("headline", "token-holder")["token"].clone();
    app.write_experiment(
        "headline.yaml",
        &STICKY.replace("status: running", "status: running\nrevision: 2"),
    );
    assert_eq!(app.post_json("/v1/admin/reload", &json!({})).status, 200);
    let report = app.post_events(&json!([
        {"id": "e1", "experiment": "headline", "unit": "old-timer"},
        {"id": "e2", "experiment": "headline", "unit": "never-seen"},
        {"id": "e3", "experiment": "headline", "token": token},
    ]));
    assert_eq!(
        reasons(&report),
        [
            (0, "stale_revision".into()),
            (1, "unit_not_assigned".into()),
            (2, "stale_revision".into()),
        ]
    );
    let detail = report["rejections"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("revision 1") && detail.contains("revision 2"),
        "{detail}"
    );
}

#[test]
fn ndjson_rejections_carry_their_line_and_crlf_and_blank_lines_are_fine() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    app.assign("headline", "u2");
    let body = "{\"id\":\"a\",\"experiment\":\"headline\",\"unit\":\"u1\"}\r\n\r\n   \r\n\
                {oops\r\n\
                {\"id\":\"b\",\"experiment\":\"headline\",\"unit\":\"u2\"}\r\n";
    let r = app.post_raw("/v1/events", "application/x-ndjson", body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["applied"], 2, "{}", r.body);
    let rejection = &r.body["rejections"][0];
    assert_eq!(
        (&rejection["index"], &rejection["line"]),
        (&json!(1), &json!(4)),
        "{rejection}"
    );
}

#[test]
fn messages_speak_json_not_rust_and_ndjson_posted_as_json_gets_a_hint() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let report = app.post_events(&json!([
        {"id": "a", "experiment": "headline", "unit": "u", "reward": "high"},
        {"id": "b", "experiment": "headline", "unit": "u", "timestamp": true},
        {"id": 5, "experiment": "headline", "unit": "u"},
        "not an object",
        {"id": "c", "experiment": "headline", "unit": "x".repeat(257)},
    ]));
    assert_eq!(
        report["rejected_by_reason"],
        json!({"invalid_event": 5}),
        "{report}"
    );
    for rejection in report["rejections"].as_array().unwrap() {
        let detail = rejection["detail"].as_str().unwrap();
        for rust in ["RawEvent", "f64", "u64", "Timestamp", "struct", "enum"] {
            assert!(!detail.contains(rust), "{rust} in {detail}");
        }
    }
    let ndjson = "{\"id\":\"a\",\"experiment\":\"headline\",\"unit\":\"u\"}\n\
                  {\"id\":\"b\",\"experiment\":\"headline\",\"unit\":\"u\"}\n";
    assert_problem(
        &app.post_raw("/v1/events", "application/json", ndjson),
        400,
        "application/x-ndjson",
    );
}

#[test]
fn a_beacon_text_plain_body_holding_json_or_ndjson_is_accepted() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u1");
    app.assign("headline", "u2");
    let array = r#" [{"id":"a","experiment":"headline","unit":"u1"}]"#;
    let r = app.post_raw("/v1/events", "text/plain;charset=UTF-8", array);
    assert_eq!(
        (r.status, &r.body["applied"]),
        (200, &json!(1)),
        "{}",
        r.body
    );
    let ndjson = "{\"id\":\"b\",\"experiment\":\"headline\",\"unit\":\"u2\"}\n{oops}\n";
    let r = app.post_raw("/v1/events", "text/plain", ndjson);
    assert_eq!(
        (r.status, &r.body["applied"]),
        (200, &json!(1)),
        "{}",
        r.body
    );
    assert_eq!(r.body["rejections"][0]["line"], 2, "{}", r.body);
}

#[test]
fn token_events_need_no_events_key_but_unit_events_and_forged_tokens_still_do() {
    let app = TestApp::spawn_with_env(
        &[("headline.yaml", STICKY), ("ranking.yaml", PER_REQUEST)],
        &[("BANDITD_EVENTS_KEY", "pipeline-secret")],
    );
    app.assign("headline", "u1");
    let token = app.assign("ranking", "u1")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.assign("ranking", "u2")["token"].clone();
    // A browser with only the token: accepted without the key, as a beacon would send it.
    let beacon = json!([{"id": "t1", "experiment": "ranking", "token": token}]).to_string();
    let r = app.post_raw("/v1/events", "text/plain", &beacon);
    assert_eq!(
        (r.status, &r.body["applied"]),
        (200, &json!(1)),
        "{}",
        r.body
    );
    // One unit event, one forged token, a token for another experiment, a broken event, or
    // an empty batch: the whole request is refused, nothing applied.
    let (claims, signature) = token.split_once('.').unwrap();
    let forged = format!("{claims}.{}", signature.replace(|c: char| c != 'A', "A"));
    for batch in [
        json!([
            {"id": "t2", "experiment": "ranking", "token": other},
            {"id": "u", "experiment": "headline", "unit": "u1"},
        ]),
        json!([{"id": "t3", "experiment": "ranking", "token": forged}]),
        json!([{"id": "t4", "experiment": "headline", "token": other}]),
        json!([{"id": "t5", "experiment": "ranking", "token": other}, 7]),
        json!([]),
    ] {
        assert_problem(
            &app.post_json("/v1/events", &batch),
            401,
            "BANDITD_EVENTS_KEY",
        );
    }
    assert_problem(
        &app.post_raw("/v1/events", "application/json", "[{not json"),
        401,
        "BANDITD_EVENTS_KEY",
    );
    // A wrong key is refused even with a genuine token.
    let wrong = app
        .agent
        .post(format!("{}/v1/events", app.address))
        .header("authorization", "Bearer wrong")
        .send_json(json!([{"id": "t6", "experiment": "ranking", "token": other}]))
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let total: f64 = app
        .arms("ranking")
        .iter()
        .map(|a| a["rewards"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 1.0, "only the keyless genuine token applied");
}

/// An event's text is read borrowed from the body unless a field holds a JSON escape, which is
/// unescaped into text of its own: either way it is the same event as its plain spelling (the
/// same id for at-most-once, the same unit and experiment), and its refusals name it unescaped.
#[test]
fn an_escaped_event_is_the_same_event_as_its_plain_spelling() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "u-1");
    app.assign("headline", "u-2");
    // id `é-1"q`, experiment `headline`, unit `u-1`, each with an escape; then an unassigned
    // unit `nobody` and a unit with an escaped control character.
    let escaped = [
        r#"{"id":"\u00e9-1\"q","experiment":"head\u006cine","unit":"u\u002d1"}"#,
        r#"{"id":"n\u00e9","experiment":"headline","unit":"n\u006fbody"}"#,
        r#"{"id":"c","experiment":"headline","unit":"u\u0000x"}"#,
    ]
    .join("\n");
    let r = app.post_raw("/v1/events", "application/x-ndjson", &escaped);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["applied"], &r.body["rejected"]),
        (&json!(1), &json!(2)),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["rejections"],
        json!([
            {
                "index": 1,
                "line": 2,
                "id": "n\u{e9}",
                "reason": "unit_not_assigned",
                "detail": format!(
                    "unit {:?} was never assigned in this experiment's current revision",
                    "nobody"
                ),
            },
            {
                "index": 2,
                "line": 3,
                "reason": "invalid_event",
                "detail": "line 3: not a valid event: `unit`: unit contains a control character \
                           at byte 1",
            },
        ]),
        "{}",
        r.body
    );
    // The same id spelled plainly is a retry; the other unit, escaped, applies.
    let plain = r#"[{"id":"é-1\"q","experiment":"headline","unit":"u-1"},
                    {"id":"d","experiment":"headline","unit":"u\u002d2"}]"#;
    let r = app.post_raw("/v1/events", "application/json", plain);
    assert_eq!(
        (
            &r.body["applied"],
            &r.body["duplicate"],
            &r.body["rejected"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{}",
        r.body
    );
}
