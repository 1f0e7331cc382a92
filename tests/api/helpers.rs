//! Spawns the real `banditd` binary on a temp data dir and talks HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A headline test: sticky, two arms, no burn-in so Thompson acts at once.
pub const STICKY: &str = r#"
id: headline
description: Which headline converts?
owner: growth
status: running
assignment: sticky
reward: { window: 7d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: control
variants:
  - id: control
    payload: { headline: "Build faster" }
  - id: bold
    payload: { headline: "Ship in a day" }
"#;

/// `yaml` (one of the fixtures here, with `reward: { window: … }`) with `delay: off`: the naive
/// posterior, for tests that check exact posterior numbers (the delay-aware one moves with the
/// clock; tests/api/delay.rs covers it).
pub fn naive(yaml: &str) -> String {
    yaml.replace(
        "reward: { window: 7d }",
        "reward: { window: 7d, delay: off }",
    )
}

/// A ranking test: per-request, three arms.
pub const PER_REQUEST: &str = r#"
id: ranking
description: Which ranking weights keep people clicking?
owner: search
status: running
assignment: per_request
reward: { window: 1d }
policy: { burn_in: 0, min_share: 0.05 }
default_variant: a
variants:
  - id: a
    payload: { weights: [1, 0] }
  - id: b
    payload: { weights: [0.5, 0.5] }
  - id: c
    payload: { weights: [0, 1] }
"#;

pub struct TestApp {
    pub root: tempfile::TempDir,
    pub address: String,
    pub agent: ureq::Agent,
    child: Option<Child>,
    env: Vec<(String, String)>,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl TestApp {
    /// Starts a server on `experiments` (file name, YAML text).
    pub fn spawn(experiments: &[(&str, &str)]) -> Self {
        Self::spawn_with_env(experiments, &[])
    }

    pub fn spawn_with_env(experiments: &[(&str, &str)], env: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("experiments")).unwrap();
        for (name, text) in experiments {
            std::fs::write(root.path().join("experiments").join(name), text).unwrap();
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut app = Self {
            root,
            address: String::new(),
            agent,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Arc::default(),
        };
        app.start().expect("server starts");
        app
    }

    pub fn experiments_dir(&self) -> PathBuf {
        self.root.path().join("experiments")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Starts the binary; `Err(log)` if it exits before listening.
    pub fn start(&mut self) -> Result<(), String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banditd"));
        command
            .args([
                "--log-format",
                "json",
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
            ])
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--experiments")
            .arg(self.experiments_dir())
            .env_clear()
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn banditd");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on http://".len()..];
                    let addr: String = rest
                        .chars()
                        .take_while(|c| *c != '"' && !c.is_whitespace())
                        .collect();
                    let _ = tx.send(addr);
                }
                log.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                self.address = format!("http://{addr}");
                self.child = Some(child);
                Ok(())
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(self.log.lock().unwrap().join("\n"))
            }
        }
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (e.g. "HUP") to the running server.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Replaces an experiment file.
    pub fn write_experiment(&self, name: &str, text: &str) {
        std::fs::write(self.experiments_dir().join(name), text).expect("write experiment");
    }

    /// Sets an environment variable for the next `start`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        child.wait().expect("wait").code()
    }

    /// Waits for the server to exit by itself (after a signal); returns the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.child.take()?.wait().expect("wait").code()
    }

    pub fn restart(&mut self) {
        assert_eq!(self.terminate(), Some(0), "clean shutdown");
        self.start().expect("restart");
    }

    pub fn get(&self, path: &str) -> Reply {
        let response = self
            .agent
            .get(format!("{}{path}", self.address))
            .call()
            .expect("GET");
        reply(response)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, "application/json", &body.to_string())
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Reply {
        let response = self
            .agent
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .send(body)
            .expect("POST");
        reply(response)
    }

    /// `GET /v1/experiments/{id}/assign?unit=…`, asserting 200.
    pub fn assign(&self, experiment: &str, unit: &str) -> Value {
        let r = self.get(&format!("/v1/experiments/{experiment}/assign?unit={unit}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub fn post_events(&self, events: &Value) -> Value {
        let r = self.post_json("/v1/events", events);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Per-arm stats of an experiment, by variant id.
    pub fn arms(&self, experiment: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/experiments/{experiment}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["arms"].as_array().cloned().unwrap_or_default()
    }

    pub fn arm(&self, experiment: &str, variant: &str) -> Value {
        self.arms(experiment)
            .into_iter()
            .find(|a| a["variant"] == variant)
            .unwrap_or_else(|| panic!("no arm {variant}"))
    }

    /// Waits past the posterior snapshot refresh interval.
    pub fn let_posterior_refresh(&self) {
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        content_type,
        body,
    }
}

/// Asserts an RFC 7807 problem with `status` whose detail mentions `needle`.
pub fn assert_problem(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["status"], status);
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(needle),
        "detail {detail:?} should mention {needle:?}"
    );
}

/// Pearson chi-square statistic of `observed` against `expected` counts.
pub fn chi_square(observed: &[f64], expected: &[f64]) -> f64 {
    observed
        .iter()
        .zip(expected)
        .map(|(o, e)| (o - e) * (o - e) / e)
        .sum()
}

/// The token secret every test replica shares (tokens verify on every replica).
pub const REPLICA_SECRET: &str = "replica-token-secret-0123456789abcdef";

/// `n` replicas (processes of the real binary) serving the sticky headline experiment on the
/// Redis at `url`, in any of its URL forms.
pub fn replicas(url: &str, n: usize) -> Vec<TestApp> {
    (0..n)
        .map(|_| {
            TestApp::spawn_with_env(
                &[("headline.yaml", STICKY)],
                &[
                    ("BANDITD_REDIS", url),
                    ("BANDITD_TOKEN_SECRET", REPLICA_SECRET),
                ],
            )
        })
        .collect()
}

/// Asks every replica at once for units `unit-0` … `unit-{units − 1}` (one thread per
/// replica) and returns the variants each unit got, one per replica.
pub fn race_new_units(
    apps: &[TestApp],
    units: usize,
) -> std::collections::HashMap<String, Vec<String>> {
    let answers = std::sync::Mutex::new(std::collections::HashMap::<String, Vec<String>>::new());
    std::thread::scope(|scope| {
        for app in apps {
            let answers = &answers;
            scope.spawn(move || {
                for i in 0..units {
                    let unit = format!("unit-{i}");
                    let body = app.assign("headline", &unit);
                    let variant = body["variant"].as_str().unwrap_or_default().to_owned();
                    answers
                        .lock()
                        .unwrap()
                        .entry(unit)
                        .or_default()
                        .push(variant);
                }
            });
        }
    });
    answers.into_inner().unwrap()
}

/// Sends `head` on a fresh connection; after each read, `then` may write more and says (given
/// everything answered so far) whether to go on. Returns everything the server answered before
/// closing, `then` saying stop, or `patience` running out.
pub fn raw_exchange(
    app: &TestApp,
    head: &[u8],
    patience: Duration,
    mut then: impl FnMut(&mut std::net::TcpStream, &[u8]) -> bool,
) -> String {
    let mut stream =
        std::net::TcpStream::connect(app.address.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream.write_all(head).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < patience {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if !then(&mut stream, &answer) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}
