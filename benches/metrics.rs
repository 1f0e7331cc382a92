//! What metrics cost one request, measured without the noise of a load test on a shared
//! machine (benches/load/run.sh --metrics-ab measures the same end to end):
//!
//! - `metrics/observe_request`: the middleware's bookkeeping for a known route (read lock,
//!   template hash, status-class counter, latency histogram).
//! - `metrics/assigned`: the assign path's counter, resolved once per loaded experiment.
//! - `http/assign_route_{off,on}`: one request through an actix app shaped like banditd's
//!   (a dozen resources, a templated assign route, a small JSON answer), without and with the
//!   metrics middleware; the difference is the whole per-request cost of HTTP metrics.

use std::hint::black_box;

use actix_web::middleware::Condition;
use actix_web::{App, HttpResponse, test, web};
use banditd::metrics::{self, AssignOutcome, Metrics};
use criterion::{Criterion, criterion_group, criterion_main};

const ROUTES: [&str; 10] = [
    "/v1/assign",
    "/v1/events",
    "/v1/experiments",
    "/v1/experiments/{id}",
    "/v1/experiments/{id}/history",
    "/v1/experiments/{id}/export",
    "/v1/admin/reload",
    "/v1/admin/config",
    "/healthz",
    "/readyz",
];

fn instruments(c: &mut Criterion) {
    let metrics = Metrics::default();
    for route in ROUTES {
        metrics.observe_request(route, 200, 0.001);
    }
    let assign = "/v1/experiments/{id}/assign";
    c.bench_function("metrics/observe_request", |b| {
        b.iter(|| metrics.observe_request(black_box(assign), black_box(200), black_box(0.000_04)))
    });
    let experiment = metrics.experiment("headline", &["a", "b", "c"], &["applied"]);
    c.bench_function("metrics/assigned", |b| {
        b.iter(|| experiment.assigned(black_box(1), AssignOutcome::Counted))
    });
}

async fn answer() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "experiment": "headline", "variant": "bold", "payload": {"headline": "Ship in a day"},
        "propensity": 0.5, "counted": true,
    }))
}

fn through_actix(c: &mut Criterion) {
    metrics::install();
    let runtime = actix_web::rt::Runtime::new().expect("runtime");
    for (name, on) in [
        ("http/assign_route_off", false),
        ("http/assign_route_on", true),
    ] {
        let app = runtime.block_on(test::init_service(
            ROUTES
                .iter()
                .fold(App::new(), |app, route| {
                    app.service(web::resource(*route).route(web::get().to(answer)))
                })
                .service(web::resource("/v1/experiments/{id}/assign").route(web::get().to(answer)))
                .wrap(Condition::new(on, metrics::RecordRequests)),
        ));
        c.bench_function(name, |b| {
            b.iter(|| {
                let request = test::TestRequest::get()
                    .uri("/v1/experiments/headline/assign?unit=u1")
                    .to_request();
                let response = runtime.block_on(test::call_service(&app, request));
                black_box(response.status())
            })
        });
    }
}

criterion_group!(benches, instruments, through_actix);
criterion_main!(benches);
