//! `banditd-chaos`: the load and the checks of the disk-full chaos test (`benches/chaos/run.sh`).
//!
//! `load` drives a running banditd whose data dir sits on a small filesystem: mixed load
//! (new sticky units and their conversions, per-request assigns and their token rewards) from
//! a few threads, while `/readyz` is polled. It then fills that filesystem until it refuses a
//! write, holds it full, frees it, and keeps the load going until the store recovers. Every
//! answer is checked as it comes (a degraded assign carries no token and serves the default
//! variant; a counted one carries a token); at the end everything acknowledged is sent again
//! (every acked unit keeps its variant, every acked event comes back a duplicate) and no arm
//! may show more reward than exposures. It prints the figures and exits 1 on any violation.
//!
//! `audit` opens the stopped server's data dir and recomputes every counter from the records.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// How often `/readyz` is polled: the resolution of the readiness timings.
const READYZ_POLL_MS: u64 = 20;
/// Events per request when everything acknowledged is sent again.
const RESEND_BATCH: usize = 500;
/// Write size of the filler file.
const FILL_CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, Parser)]
#[command(name = "banditd-chaos", about = "Disk-full chaos test of banditd")]
struct Args {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Load a running server, fill its filesystem, free it, and check what it acknowledged.
    Load(LoadArgs),
    /// Recompute every counter of a stopped server's data dir from its records.
    Audit {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The server, e.g. http://127.0.0.1:18090.
    #[arg(long)]
    addr: String,
    /// A directory on the same filesystem as the server's data dir: the filler file goes here.
    #[arg(long)]
    fill_dir: PathBuf,
    /// Admin key, when the server has one (for `GET /v1/admin/store`).
    #[arg(long, env = "BANDITD_ADMIN_KEY")]
    admin_key: Option<String>,
    #[arg(long, default_value = "chaos-sticky")]
    sticky: String,
    #[arg(long, default_value = "chaos-per-request")]
    per_request: String,
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Seconds of load before the filesystem is filled.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Seconds the filesystem stays full (counted from the store's first failed commit).
    #[arg(long, default_value_t = 4)]
    full_secs: u64,
    /// Seconds of load after the store recovered.
    #[arg(long, default_value_t = 2)]
    settle_secs: u64,
    /// Give up waiting for a failure or a recovery after this long.
    #[arg(long, default_value_t = 30)]
    max_wait_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Mode::Load(load) => run_load(&load),
        Mode::Audit { data_dir } => audit(&data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chaos: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn audit(data_dir: &Path) -> Result<(), String> {
    let store = banditd::store::SledStore::open(data_dir)
        .map_err(|e| format!("cannot open {}: {e}", data_dir.display()))?;
    let report = store.audit().map_err(|e| format!("audit failed: {e}"))?;
    if report.is_clean() {
        println!("audit: counters equal the records");
        Ok(())
    } else {
        Err(format!("counters disagree with the records: {report:?}"))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the load threads saw, shared with the main thread.
#[derive(Default)]
struct Observed {
    /// Sticky units answered with `counted: true`, and their variant.
    units: Mutex<Vec<(String, String)>>,
    /// Events answered as applied (or duplicate), to be sent again at the end.
    events: Mutex<Vec<Value>>,
    violations: Mutex<Vec<String>>,
    /// Answers by (route, status class).
    answers: Mutex<HashMap<String, u64>>,
    degraded_assigns: AtomicU64,
    first_event_503_ms: AtomicU64,
    first_degraded_ms: AtomicU64,
    /// First write acknowledged after the filler was removed.
    first_write_after_free_ms: AtomicU64,
    freed_at_ms: AtomicU64,
}

impl Observed {
    fn violation(&self, text: String) {
        let mut all = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() < 20 {
            eprintln!("chaos: violation: {text}");
        }
        all.push(text);
    }

    fn answer(&self, route: &str, status: u16) {
        let key = format!("{route} {}xx", status / 100);
        *self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn first(slot: &AtomicU64) {
        let _ = slot.compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire);
    }

    fn wrote(&self) {
        if self.freed_at_ms.load(Ordering::Acquire) != 0 {
            Self::first(&self.first_write_after_free_ms);
        }
    }
}

struct Client {
    agent: ureq::Agent,
    addr: String,
}

impl Client {
    fn new(addr: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Client {
            agent,
            addr: addr.trim_end_matches('/').to_owned(),
        }
    }

    fn get(&self, path: &str, bearer: Option<&str>) -> Result<(u16, Value), String> {
        let mut request = self.agent.get(format!("{}{path}", self.addr));
        if let Some(key) = bearer {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.call().map_err(|e| format!("GET {path}: {e}"))?;
        Ok(Self::read(response))
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let response = self
            .agent
            .post(format!("{}{path}", self.addr))
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("POST {path}: {e}"))?;
        Ok(Self::read(response))
    }

    fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// One load thread: a new sticky unit and its conversion, then a per-request assign and its
/// token reward, over and over.
fn load_thread(args: &LoadArgs, thread: usize, seen: &Observed, stop: &AtomicBool) {
    let client = Client::new(&args.addr);
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let unit = format!("c{thread}-{n}");
        if let Some(variant) = assign(&client, &args.sticky, &unit, seen, "control") {
            // The unit is acknowledged whether or not its conversion is (a 503 is allowed).
            seen.units
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((unit.clone(), variant));
            let event =
                json!({"id": format!("ev-{unit}"), "experiment": args.sticky, "unit": unit});
            post_event(&client, &event, seen);
        }
        let token_unit = format!("p{thread}-{n}");
        if let Some(token) = assign_token(&client, args, &token_unit, seen) {
            let event = json!({"id": format!("pe-{token_unit}"), "experiment": args.per_request, "token": token});
            post_event(&client, &event, seen);
        }
    }
}

/// A sticky assign; `Some(variant)` when it was counted (acknowledged durable).
fn assign(
    client: &Client,
    experiment: &str,
    unit: &str,
    seen: &Observed,
    default_variant: &str,
) -> Option<String> {
    let path = format!("/v1/experiments/{experiment}/assign?unit={unit}");
    let (status, body) = match client.get(&path, None) {
        Ok(reply) => reply,
        Err(error) => {
            seen.violation(format!("assign {unit}: no answer: {error}"));
            return None;
        }
    };
    seen.answer("assign", status);
    if status != 200 {
        seen.violation(format!("assign {unit}: status {status}: {body}"));
        return None;
    }
    check_assign_shape(unit, &body, seen, default_variant);
    if body["counted"] == true {
        seen.wrote();
        body["variant"].as_str().map(str::to_owned)
    } else {
        None
    }
}

/// A per-request assign; `Some(token)` when it was counted.
fn assign_token(client: &Client, args: &LoadArgs, unit: &str, seen: &Observed) -> Option<String> {
    let path = format!("/v1/experiments/{}/assign?unit={unit}", args.per_request);
    let (status, body) = match client.get(&path, None) {
        Ok(reply) => reply,
        Err(error) => {
            seen.violation(format!("per-request assign {unit}: no answer: {error}"));
            return None;
        }
    };
    seen.answer("assign", status);
    if status != 200 {
        seen.violation(format!(
            "per-request assign {unit}: status {status}: {body}"
        ));
        return None;
    }
    check_assign_shape(unit, &body, seen, "a");
    body["token"].as_str().map(str::to_owned)
}

/// A page must get an answer, and the answer must not lie: a token only with a counted
/// exposure, and a degraded answer serves the default variant uncounted.
fn check_assign_shape(unit: &str, body: &Value, seen: &Observed, default_variant: &str) {
    let counted = body["counted"] == true;
    let has_token = body["token"].is_string();
    if counted != has_token {
        seen.violation(format!(
            "assign {unit}: counted {counted} with token {has_token}: {body}"
        ));
    }
    if body["degraded"] == true {
        seen.degraded_assigns.fetch_add(1, Ordering::Relaxed);
        Observed::first(&seen.first_degraded_ms);
        if counted || has_token || body["variant"] != default_variant {
            seen.violation(format!(
                "assign {unit}: degraded answer that is not the uncounted default: {body}"
            ));
        }
    }
}

/// Posts one event; `true` when the server acknowledged it (applied or duplicate).
fn post_event(client: &Client, event: &Value, seen: &Observed) -> bool {
    let (status, body) = match client.post("/v1/events", &json!([event])) {
        Ok(reply) => reply,
        Err(error) => {
            seen.violation(format!("event {}: no answer: {error}", event["id"]));
            return false;
        }
    };
    seen.answer("events", status);
    match status {
        200 => {
            let acked =
                body["applied"].as_u64().unwrap_or(0) + body["duplicate"].as_u64().unwrap_or(0);
            if acked == 1 {
                seen.wrote();
                seen.events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(event.clone());
                true
            } else {
                seen.violation(format!("event {} refused: {body}", event["id"]));
                false
            }
        }
        503 => {
            Observed::first(&seen.first_event_503_ms);
            false
        }
        other => {
            seen.violation(format!("event {}: status {other}: {body}", event["id"]));
            false
        }
    }
}

/// `/readyz` transitions: (time, status).
fn poll_readyz(client: &Client, stop: &AtomicBool, log: &Mutex<Vec<(u64, u16)>>) {
    let mut last = 0u16;
    while !stop.load(Ordering::Acquire) {
        let status = client.get("/readyz", None).map_or(0, |(status, _)| status);
        if status != last {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((now_ms(), status));
            last = status;
        }
        std::thread::sleep(Duration::from_millis(READYZ_POLL_MS));
    }
}

/// Writes a filler file until the filesystem refuses; returns its path.
fn fill(dir: &Path) -> Result<(PathBuf, u64), String> {
    let path = dir.join("chaos-filler");
    let mut file =
        std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let chunk = vec![0xA5u8; FILL_CHUNK_BYTES];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break, // ENOSPC: full
        }
    }
    // Take the last pages too, in small writes.
    while let Ok(n) = file.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    Ok((path, written))
}

/// The store's current failure episode start (ms), from `GET /v1/admin/store`, if failing.
fn failing_since(client: &Client, key: Option<&str>) -> Option<u64> {
    let (status, body) = client.get("/v1/admin/store", key).ok()?;
    if status != 200 {
        return None;
    }
    body.pointer("/health/failing/started_ms")
        .and_then(Value::as_u64)
}

fn wait_until(max: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn run_load(args: &LoadArgs) -> Result<(), String> {
    let client = Client::new(&args.addr);
    let seen = Observed::default();
    let stop_load = AtomicBool::new(false);
    let stop_poll = AtomicBool::new(false);
    let readyz: Mutex<Vec<(u64, u16)>> = Mutex::default();
    let max_wait = Duration::from_secs(args.max_wait_secs);
    let key = args.admin_key.as_deref();
    let timeline = std::thread::scope(|s| -> Result<Timeline, String> {
        for thread in 0..args.threads {
            let (seen, stop) = (&seen, &stop_load);
            s.spawn(move || load_thread(args, thread, seen, stop));
        }
        s.spawn(|| poll_readyz(&Client::new(&args.addr), &stop_poll, &readyz));
        std::thread::sleep(Duration::from_secs(args.warmup_secs));
        let fill_started_ms = now_ms();
        let (filler, filled) = fill(&args.fill_dir)?;
        println!(
            "chaos: filled {} with {filled} bytes",
            args.fill_dir.display()
        );
        let mut failed_ms = None;
        let failed = wait_until(max_wait, || {
            failed_ms = failing_since(&client, key);
            failed_ms.is_some()
        });
        let result = (|| {
            let failed_ms = failed_ms.filter(|_| failed).ok_or_else(|| {
                format!("no failed commit within {max_wait:?} of a full filesystem")
            })?;
            std::thread::sleep(Duration::from_secs(args.full_secs));
            std::fs::remove_file(&filler).map_err(|e| format!("remove the filler: {e}"))?;
            let freed_ms = now_ms();
            seen.freed_at_ms.store(freed_ms, Ordering::Release);
            let recovered = wait_until(max_wait, || failing_since(&client, key).is_none());
            if !recovered {
                return Err(format!("the store did not recover within {max_wait:?}"));
            }
            std::thread::sleep(Duration::from_secs(args.settle_secs));
            Ok(Timeline {
                fill_started_ms,
                failed_ms,
                freed_ms,
            })
        })();
        let _ = std::fs::remove_file(&filler);
        stop_load.store(true, Ordering::Release);
        // Let the poller see the end state, then stop it.
        std::thread::sleep(Duration::from_millis(200));
        stop_poll.store(true, Ordering::Release);
        result
    })?;
    let readyz = readyz.into_inner().unwrap_or_default();
    report(args, &client, &seen, &readyz, &timeline)
}

struct Timeline {
    fill_started_ms: u64,
    failed_ms: u64,
    freed_ms: u64,
}

fn report(
    args: &LoadArgs,
    client: &Client,
    seen: &Observed,
    readyz: &[(u64, u16)],
    timeline: &Timeline,
) -> Result<(), String> {
    let Timeline {
        fill_started_ms,
        failed_ms,
        freed_ms,
    } = *timeline;
    let since = |at: u64, from: u64| at as i64 - from as i64;
    let not_ready = readyz
        .iter()
        .find(|(at, status)| *status == 503 && *at + READYZ_POLL_MS >= failed_ms)
        .map(|(at, _)| *at);
    let ready_again = readyz
        .iter()
        .find(|(at, status)| *status == 200 && *at >= freed_ms)
        .map(|(at, _)| *at);
    let first_503 = seen.first_event_503_ms.load(Ordering::Acquire);
    let first_write = seen.first_write_after_free_ms.load(Ordering::Acquire);
    println!(
        "chaos: first failed commit {} ms after the fill started",
        since(failed_ms, fill_started_ms)
    );
    let mut failures = Vec::new();
    let mut check = |name: &str, at: Option<u64>, from: u64, limit_ms: i64| match at {
        Some(at) if at > 0 => {
            let took = since(at, from);
            println!("chaos: {name}: {took} ms (limit {limit_ms} ms)");
            if took > limit_ms {
                failures.push(format!("{name} took {took} ms, more than {limit_ms} ms"));
            }
        }
        _ => failures.push(format!("{name}: never observed")),
    };
    check(
        "/readyz 503 after the first failed commit",
        not_ready,
        failed_ms,
        1000,
    );
    check(
        "first event 503 after the first failed commit",
        Some(first_503),
        failed_ms,
        1000,
    );
    check(
        "/readyz 200 after space returned",
        ready_again,
        freed_ms,
        2000,
    );
    check(
        "first acknowledged write after space returned",
        Some(first_write),
        freed_ms,
        2000,
    );
    println!("chaos: readyz transitions: {readyz:?}");
    println!(
        "chaos: degraded assigns: {}",
        seen.degraded_assigns.load(Ordering::Relaxed)
    );
    let mut answers: Vec<_> = seen
        .answers
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    answers.sort();
    println!("chaos: answers: {answers:?}");

    let units = seen.units.lock().map(|u| u.clone()).unwrap_or_default();
    let mut moved = 0;
    for (unit, variant) in &units {
        let path = format!("/v1/experiments/{}/assign?unit={unit}", args.sticky);
        match client.get(&path, None) {
            Ok((200, body)) if body["variant"] == variant.as_str() => {}
            other => {
                moved += 1;
                if moved <= 5 {
                    eprintln!("chaos: unit {unit} acked on {variant}, now {other:?}");
                }
            }
        }
    }
    println!(
        "chaos: {} acknowledged units sent again: {moved} changed variant or failed",
        units.len()
    );
    if moved > 0 {
        failures.push(format!("{moved} acknowledged units lost their variant"));
    }
    let events = seen.events.lock().map(|e| e.clone()).unwrap_or_default();
    let mut not_duplicate = 0u64;
    for batch in events.chunks(RESEND_BATCH) {
        match client.post("/v1/events", &Value::Array(batch.to_vec())) {
            Ok((200, body)) => {
                not_duplicate += batch.len() as u64 - body["duplicate"].as_u64().unwrap_or(0);
            }
            other => return Err(format!("resending acknowledged events: {other:?}")),
        }
    }
    println!(
        "chaos: {} acknowledged events sent again: {not_duplicate} were not duplicates",
        events.len()
    );
    if not_duplicate > 0 {
        failures.push(format!(
            "{not_duplicate} acknowledged events were not recognised as applied"
        ));
    }
    for experiment in [&args.sticky, &args.per_request] {
        let (status, body) = client.get(&format!("/v1/experiments/{experiment}"), None)?;
        if status != 200 {
            return Err(format!("stats of {experiment}: {status}"));
        }
        for arm in body["arms"].as_array().into_iter().flatten() {
            let exposures = arm["exposures"].as_f64().unwrap_or(0.0);
            let rewards = arm["rewards"].as_f64().unwrap_or(0.0);
            println!(
                "chaos: {experiment}/{}: {exposures} exposures, {rewards} rewards",
                arm["variant"]
            );
            if rewards > exposures {
                failures.push(format!(
                    "{experiment}/{}: {rewards} rewards > {exposures} exposures",
                    arm["variant"]
                ));
            }
        }
    }
    let violations = seen.violations.lock().map(|v| v.len()).unwrap_or(0);
    println!("chaos: answer violations: {violations}");
    if violations > 0 {
        failures.push(format!("{violations} answers broke the rules (see above)"));
    }
    if failures.is_empty() {
        println!("chaos: PASS");
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
