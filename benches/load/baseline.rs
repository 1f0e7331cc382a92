//! `banditd-baseline`: the same-run floor for `benches/load/run.sh`. A bare actix-web server,
//! configured like banditd (same actix-web version and features, same worker count, same
//! routes), whose handlers do nothing but what every HTTP answer costs: read the request (and
//! its body, for POST), serialise a fixed answer of the size of a real one with `serde_json`
//! (the serialiser banditd uses), and send it.
//!
//! The load script measures this server right before banditd on the same core, so
//! `banditd / baseline` is the share of the framework's per-core capacity that banditd keeps;
//! it cancels out the machine, the load generator and the kernel.

/// The same allocator as banditd (Cargo.toml), so the ratio compares handlers, not allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use serde::Serialize;

/// Largest body the POST routes read; banditd's events limit, so bulk bodies fit.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A token of the length banditd issues: base64url of ~120 bytes of claims, '.', a 43-char tag.
const TOKEN: &str = "eyJlIjoibG9hZC1zdGlja3kiLCJyIjoxLCJ2IjoiYm9sZCIsInUiOiJrLTEyMzQ1IiwidCI6MTc2NDE0NDAwMDAwMCwiYSI6IlJtOXZZbUZ5WW1GNlFYRiJ9.c2lnbmF0dXJlLW9mLXRoaXJ0eS10d28tYnl0ZXMtaG1hYy1zaGEyNTYtdGFnAA";

#[derive(Debug, Parser)]
#[command(
    name = "banditd-baseline",
    about = "Bare actix-web baseline for the load test"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    bind: String,
    /// HTTP worker threads; the load script passes banditd's count.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// The shape (and roughly the size, ~330 bytes) of banditd's assign answer.
#[derive(Debug, Serialize)]
struct Answer {
    experiment: &'static str,
    variant: &'static str,
    payload: serde_json::Value,
    token: &'static str,
    propensity: f64,
    counted: bool,
}

/// The shape of banditd's events answer.
#[derive(Debug, Serialize)]
struct EventsAnswer {
    applied: usize,
    duplicate: usize,
    rejected: usize,
    rejections: [u8; 0],
}

fn answer() -> Answer {
    Answer {
        experiment: "load-sticky",
        variant: "bold",
        payload: serde_json::json!({ "headline": "Ship in a day", "subline": "From idea to production" }),
        token: TOKEN,
        propensity: 0.3333333333333333,
        counted: true,
    }
}

async fn assign_get() -> HttpResponse {
    HttpResponse::Ok().json(answer())
}

async fn assign_post(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().json(answer())
}

async fn events_post(body: web::Bytes) -> HttpResponse {
    // Counting lines is the least a real handler does with a body; it keeps the read honest.
    let lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    HttpResponse::Ok().json(EventsAnswer {
        applied: lines,
        duplicate: 0,
        rejected: 0,
        rejections: [],
    })
}

async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args.workers.max(1);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route("/v1/experiments/{id}/assign", web::get().to(assign_get))
                .route("/v1/assign", web::post().to(assign_post))
                .route("/v1/events", web::post().to(events_post))
                .route("/readyz", web::get().to(ready))
        })
        .workers(workers)
        .bind(&args.bind)?
        .run()
        .await
    })
}
