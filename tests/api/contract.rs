//! The API contract: `GET /openapi.json`, and the defects schemathesis found against it
//! (`scripts/contract.sh`), each pinned here.

use crate::helpers::{STICKY, TestApp, assert_problem};

#[test]
fn the_openapi_document_is_served_as_openapi_3_1_json_naming_every_route() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let reply = app.get("/openapi.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(reply.body["openapi"], "3.1.0");
    let paths = reply.body["paths"].as_object().expect("paths");
    for path in [
        "/v1/assign",
        "/v1/events",
        "/v1/experiments/{id}/export",
        "/v1/admin/reload",
        "/healthz",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
    assert!(reply.body["components"]["securitySchemes"]["admin_key"].is_object());
}

/// RFC 9110 §15.5.6: a 405 must say which methods the route does serve. Found by
/// schemathesis (`unsupported_method`): the answer had no `Allow` header.
#[test]
fn a_wrong_method_is_a_405_problem_with_an_allow_header_naming_the_route_s_methods() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for (method, path, allow) in [
        ("GET", "/v1/events", "POST"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("PUT", "/v1/experiments/headline", "GET"),
    ] {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", app.address))
            .body(())
            .unwrap();
        let mut response = app.agent.run(request).unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body = response.body_mut().read_to_string().unwrap();
        assert!(body.contains("\"status\":405"), "{body}");
    }
}

/// The document says `since` is an int64 of Unix milliseconds; a larger number was
/// accepted (found by schemathesis: `negative_data_rejection`), now it is a 400 naming it.
#[test]
fn a_history_since_beyond_int64_is_a_bad_request_naming_the_parameter() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let reply = app.get("/v1/experiments/headline/history?since=9223372036854775808");
    assert_problem(&reply, 400, "`since`");
    let reply = app.get("/v1/experiments/headline/history?since=9223372036854775807");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// `since` is a lower bound: a valid `date-time` before 1970 (found by schemathesis:
/// `0022-06-13T08:36:56Z` was a 400) means the beginning.
#[test]
fn a_history_since_before_1970_answers_from_the_beginning() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let reply = app.get("/v1/experiments/headline/history?since=0022-06-13T08%3A36%3A56Z");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["experiment"], "headline");
}

/// `level` outside (0, 1) is refused whatever is exported (found by schemathesis:
/// `what=assignments&level=0.0` answered 200).
#[test]
fn an_export_level_outside_0_1_is_a_bad_request_whatever_is_exported() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for what in ["assignments", "events", "stats"] {
        let reply = app.get(&format!(
            "/v1/experiments/headline/export?what={what}&level=0.0"
        ));
        assert_problem(&reply, 400, "`level`");
    }
}

/// `limit` is the document's `int64` from 0, capped by the server (found by schemathesis:
/// 2^63 was accepted, and numbers beyond `usize` were refused without naming `limit`).
#[test]
fn a_history_limit_is_an_int64_count_capped_by_the_server() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let reply = app.get("/v1/experiments/headline/history?limit=9223372036854775807");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for beyond in ["9223372036854775808", "1507016669118609227776", "-1"] {
        assert_problem(
            &app.get(&format!("/v1/experiments/headline/history?limit={beyond}")),
            400,
            "`limit`",
        );
    }
}
