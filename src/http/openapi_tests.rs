use std::collections::BTreeSet;

use actix_web::{App, test as actix_test};
use serde_json::Value;

use super::*;

/// The served document, as JSON.
fn document_json() -> Value {
    serde_json::from_str(served_json()).expect("the document is JSON")
}

/// `(path, METHOD)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                operations.insert((path.clone(), method.to_ascii_uppercase()));
            }
        }
    }
    operations
}

/// `(path, METHOD)` of every route the app mounts.
fn mounted() -> BTreeSet<(String, String)> {
    let mut mounted = Vec::new();
    let _app = App::new().configure(|cfg| {
        mounted = Mount::on(cfg, crate::http::routes);
    });
    mounted
        .into_iter()
        .map(|(path, method)| (path, method.to_string()))
        .collect()
}

#[test]
fn every_mounted_route_is_documented_and_every_documented_operation_is_mounted() {
    let doc = document_json();
    let documented = documented(&doc);
    let mounted = mounted();
    assert_eq!(mounted, documented);
    for expected in [
        ("/healthz", "HEAD"),
        ("/readyz", "HEAD"),
        ("/v1/events", "POST"),
        ("/v1/admin/reload", "POST"),
        ("/openapi.json", "GET"),
    ] {
        assert!(
            documented.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} is missing"
        );
    }
}

/// The app as `http::configure` builds it answers every documented operation with its own
/// handler, not with the unknown-route or wrong-method fallbacks.
#[actix_web::test]
async fn the_app_routes_every_documented_operation_to_a_handler() {
    let app = actix_test::init_service(App::new().configure(crate::http::configure)).await;
    for (path, method) in documented(&document_json()) {
        let uri = path.replace("{id}", "some-experiment");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let request = actix_test::TestRequest::default()
            .method(method.clone())
            .uri(&uri)
            .to_request();
        let response = actix_test::call_service(&app, request).await;
        // Without app state a handler fails in its extractors (500 or 503), which still proves
        // the route reached it; the fallbacks answer 404 and 405.
        assert!(
            ![404, 405].contains(&response.status().as_u16()),
            "{method} {uri} was not routed to a handler: {}",
            response.status()
        );
    }
    let unknown = actix_test::TestRequest::get()
        .uri("/v1/nothing")
        .to_request();
    assert_eq!(actix_test::call_service(&app, unknown).await.status(), 404);
}

/// Each route's method guard admits its own method only: on every documented path, every
/// other method is the 405 problem whose `Allow` lists exactly the documented methods.
#[actix_web::test]
async fn every_path_refuses_the_methods_it_does_not_serve_with_their_allow_list() {
    let app = actix_test::init_service(App::new().configure(crate::http::configure)).await;
    let mut by_path: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for (path, method) in documented(&document_json()) {
        by_path
            .entry(path)
            .or_default()
            .insert(method.to_uppercase());
    }
    for (path, served) in by_path {
        let uri = path.replace("{id}", "some-experiment");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] {
            if served.contains(method) {
                continue;
            }
            let request = actix_test::TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).expect("method"))
                .uri(&uri)
                .to_request();
            let response = actix_test::call_service(&app, request).await;
            assert_eq!(response.status().as_u16(), 405, "{method} {uri}");
            let allow: BTreeSet<String> = response
                .headers()
                .get(actix_web::http::header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .split(", ")
                .map(str::to_owned)
                .collect();
            assert_eq!(allow, served, "{method} {uri}");
        }
    }
}

/// Routes reach the app only through `Routes::route`; a resource registered by hand (which
/// the document would not know) fails here.
#[test]
fn no_http_module_registers_a_route_by_hand() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    for entry in std::fs::read_dir(dir).expect("src/http") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".rs") || name.starts_with("openapi") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        let code: String = source
            .lines()
            .take_while(|line| !line.starts_with("#[cfg(test)]"))
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for by_hand in [
            "web::resource(",
            "web::scope(",
            ".route(\"",
            "cfg.service(",
            ".to(wrong_method",
        ] {
            assert!(
                !code.contains(by_hand),
                "{name} registers a route by hand (`{by_hand}`); add it with `Routes::route` \
                 and a #[utoipa::path] instead"
            );
        }
    }
}

/// Every `$ref` in the document points at a schema it defines.
#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, doc: &Value, refs: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.strip_prefix('#').expect("a local reference");
                    assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
                    *refs += 1;
                }
                map.values().for_each(|v| walk(v, doc, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc, refs)),
            _ => {}
        }
    }
    let doc = document_json();
    let mut refs = 0;
    walk(&doc, &doc, &mut refs);
    assert!(refs > 20, "only {refs} references");
}

#[test]
fn the_document_is_openapi_3_1_with_the_crate_version_and_unique_operation_ids() {
    let doc = document_json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().expect("an operationId");
            // `method(get, head)` shares one operation between two methods.
            if !ids.insert(id.to_owned()) {
                assert!(["healthz", "readyz"].contains(&id), "{id} is used twice");
            }
        }
    }
}

/// Each guarded route names the key that guards it (and the admin key, which opens it too),
/// exactly as its handler's `Authorized<…>` extractor checks; open routes name none.
#[test]
fn each_route_names_the_keys_its_extractor_checks() {
    let doc = document_json();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in [ADMIN_KEY, EVENTS_KEY, ASSIGN_KEY, METRICS_KEY] {
        assert_eq!(schemes[name]["type"], "http");
        assert_eq!(schemes[name]["scheme"], "bearer");
    }
    let security = |path: &str, method: &str| -> BTreeSet<String> {
        doc["paths"][path][method]["security"]
            .as_array()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .flat_map(|alt| alt.as_object().unwrap().keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    for (path, method) in [
        ("/v1/admin/reload", "post"),
        ("/v1/admin/config", "get"),
        ("/v1/admin/store", "get"),
    ] {
        assert_eq!(security(path, method), keys(&[ADMIN_KEY]), "{path}");
    }
    for (path, method) in [
        ("/v1/events", "post"),
        ("/v1/experiments/{id}/export", "get"),
    ] {
        assert_eq!(
            security(path, method),
            keys(&[EVENTS_KEY, ADMIN_KEY]),
            "{path}"
        );
    }
    assert_eq!(
        security("/metrics", "get"),
        keys(&[METRICS_KEY, ADMIN_KEY]),
        "/metrics"
    );
    for (path, method) in [
        ("/v1/assign", "post"),
        ("/v1/experiments/{id}/assign", "get"),
    ] {
        assert_eq!(
            security(path, method),
            keys(&[ASSIGN_KEY, ADMIN_KEY]),
            "{path}"
        );
    }
    for (path, method) in [
        ("/v1/experiments", "get"),
        ("/v1/experiments/{id}", "get"),
        ("/v1/experiments/{id}/history", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(security(path, method).is_empty(), "{path} is open");
    }
}

/// Every 4xx and 5xx an operation declares is a problem document, and every guarded
/// operation declares its 401. One narrow exception: the dashboard's pages (`/ui…`, src/ui/)
/// answer a person in a browser, so their own refusals (the login form again, a page saying an
/// experiment is unknown) are HTML pages; every other error there stays a problem.
#[test]
fn every_error_response_is_a_problem_document() {
    let doc = document_json();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().expect("a body");
                    if path.starts_with("/ui") && content.contains_key("text/html") {
                        let others: Vec<&String> = content
                            .keys()
                            .filter(|media_type| *media_type != "text/html")
                            .collect();
                        assert!(
                            others.iter().all(|m| *m == "application/problem+json"),
                            "{method} {path} {status}: {others:?}"
                        );
                        continue;
                    }
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
            if operation.get("security").is_some() {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} lacks its 401"
                );
            }
        }
    }
}

/// The events route takes a JSON array and NDJSON, as `events::is_ndjson` decides.
#[test]
fn the_events_body_is_documented_as_json_and_ndjson() {
    let doc = document_json();
    let content = &doc["paths"]["/v1/events"]["post"]["requestBody"]["content"];
    for media_type in ["application/json", "application/x-ndjson"] {
        assert_eq!(
            content[media_type]["schema"]["type"], "array",
            "{media_type}"
        );
        assert_eq!(
            content[media_type]["schema"]["items"]["$ref"],
            "#/components/schemas/RawEvent"
        );
    }
}

/// The examples in the document are valid instances of the schemas they illustrate.
#[test]
fn every_schema_example_is_valid_against_its_schema() {
    let doc = document_json();
    let mut checked = 0;
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(example) = schema.get("example") else {
            continue;
        };
        let mut root = doc.clone();
        root.as_object_mut().unwrap().insert(
            "$ref".to_owned(),
            Value::String(format!("#/components/schemas/{name}")),
        );
        let validator = jsonschema::validator_for(&root).expect("the document compiles");
        let errors: Vec<String> = validator
            .iter_errors(example)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "the example of {name}: {errors:?}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} examples");
}
