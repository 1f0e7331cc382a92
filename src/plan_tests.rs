use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};

use super::*;

const HOME: &str = "\
id: home
description: Which headline?
owner: growth
status: running
environments: [staging, production]
policy: {burn_in: 100, min_share: 0.02}
default_variant: plain
variants:
  - {id: plain, payload: {headline: Build faster}}
  - {id: bold, payload: {headline: Ship in a day}}
";

const STAGING_ONLY: &str = "\
id: staging-only
description: Only on staging
owner: growth
status: running
environments: [staging]
default_variant: a
variants: [{id: a, payload: 1}, {id: b, payload: 2}]
";

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn args(path: &Path) -> PlanArgs {
    PlanArgs {
        path: path.to_path_buf(),
        server: None,
        against: None,
        environment: None,
        json: false,
        admin_key: None,
        timeout: HumanDuration::from_std(Duration::from_secs(5)),
    }
}

/// Runs the command; (exit code, stdout, stderr).
fn run_plan(args: &PlanArgs) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run(args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn without_bold(text: &str) -> String {
    text.replace("  - {id: bold, payload: {headline: Ship in a day}}\n", "")
        .replace(
            "variants:\n",
            "variants:\n  - {id: calm, payload: {headline: Relax}}\n",
        )
}

#[test]
fn folder_mode_prints_a_safe_plan_and_exits_0() {
    let running = folder(&[("home.yaml", HOME)]);
    let proposed = folder(&[("home.yaml", &without_bold(HOME))]);
    let mut a = args(proposed.path());
    a.against = Some(running.path().to_path_buf());
    let (code, out, err) = run_plan(&a);
    assert_eq!(code, EXIT_SAFE, "{out}{err}");
    assert!(err.is_empty(), "{err}");
    assert!(
        out.starts_with(&format!(
            "Comparing {} (proposed) with folder {}, all environments\n",
            proposed.path().display(),
            running.path().display()
        )),
        "{out}"
    );
    assert!(
        out.contains("Effect on traffic (no traffic data: folder comparison):"),
        "{out}"
    );
    assert!(
        out.contains("home: variant 'bold' retired; its sticky units will be re-assigned"),
        "{out}"
    );
    assert!(out.ends_with("Verdict: SAFE to apply\n"), "{out}");
}

#[test]
fn folder_mode_json_reports_a_refused_plan_and_exits_1() {
    let running = folder(&[("home.yaml", HOME)]);
    let proposed = folder(&[("home.yaml", &HOME.replace("Ship in a day", "Ship now"))]);
    let mut a = args(proposed.path());
    a.against = Some(running.path().to_path_buf());
    a.json = true;
    let (code, out, _) = run_plan(&a);
    assert_eq!(code, EXIT_REFUSED, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["verdict"], json!("refused"));
    assert_eq!(value["running"]["source"], json!("folder"));
    assert_eq!(value["traffic"]["known"], json!(false));
    let home = &value["experiments"][0];
    assert_eq!(home["verdict"]["status"], json!("needs_revision_bump"));
    let reason = home["verdict"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("home.yaml: the payload of variant `bold` changes"),
        "{reason}"
    );
}

#[test]
fn an_invalid_proposed_folder_prints_its_spec_errors_and_exits_2() {
    let running = folder(&[("home.yaml", HOME)]);
    let proposed = folder(&[(
        "home.yaml",
        &HOME.replace("min_share: 0.02", "min_shar: 0.02"),
    )]);
    let mut a = args(proposed.path());
    a.against = Some(running.path().to_path_buf());
    let (code, out, err) = run_plan(&a);
    assert_eq!(code, EXIT_ERROR);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("home.yaml:6:"), "{err}");
    assert!(err.contains("unknown field `min_shar`"), "{err}");
    assert!(err.contains("banditd plan: the proposed folder"), "{err}");
    a.json = true;
    let (code, out, _) = run_plan(&a);
    assert_eq!(code, EXIT_ERROR);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["verdict"], json!("error"));
    assert_eq!(value["spec_errors"].as_array().map(Vec::len), Some(1));
}

#[test]
fn without_a_server_or_folder_there_is_nothing_to_compare_with() {
    let proposed = folder(&[("home.yaml", HOME)]);
    let (code, _, err) = run_plan(&args(proposed.path()));
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("give --server URL"), "{err}");
}

#[test]
fn folder_mode_compares_the_sets_one_environment_loads() {
    let running = folder(&[("home.yaml", HOME)]);
    let proposed = folder(&[("home.yaml", HOME), ("staging-only.yaml", STAGING_ONLY)]);
    let mut a = args(proposed.path());
    a.against = Some(running.path().to_path_buf());
    a.environment = Some("production".into());
    let report = make_plan(&a).unwrap();
    assert!(report.plan.is_noop(), "{:?}", report.plan);
    a.environment = Some("staging".into());
    let report = make_plan(&a).unwrap();
    assert_eq!(report.plan.experiments[1].id, "staging-only");
    assert_eq!(report.plan.experiments[1].kind, ChangeKind::Added);
}

/// A one-route-table HTTP server answering canned JSON, recording each request head.
struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn fake_server(routes: Vec<(&'static str, u16, String)>) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(head);
            let (status, body) = routes.iter().find(|(p, _, _)| *p == path).map_or(
                (404, String::from("{\"detail\": \"no route\"}")),
                |(_, s, b)| (*s, b.clone()),
            );
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    FakeServer { url, requests }
}

fn document(text: &str) -> Value {
    spec::parse_experiment(Path::new("x.yaml"), text)
        .unwrap()
        .to_document()
}

fn config(experiments: Vec<Value>, retired: Value, environment: Value) -> String {
    json!({
        "version": "3f2a9c",
        "loaded_ms": 1_700_000_000_000_u64,
        "environment": environment,
        "experiments": experiments,
        "retired": retired,
        "files": ["home.yaml"],
        "last_error": null,
    })
    .to_string()
}

fn home_stats() -> String {
    json!({
        "id": "home",
        "arms": [
            {"variant": "plain", "exposures": 1187, "rewards": 40.0},
            {"variant": "bold", "exposures": 1204, "rewards": 52.0},
        ],
    })
    .to_string()
}

#[test]
fn server_mode_reads_the_running_config_and_counts_the_units_a_retirement_moves() {
    let server = fake_server(vec![
        (
            "/v1/admin/config",
            200,
            config(vec![document(HOME)], json!({}), json!("production")),
        ),
        ("/v1/experiments/home", 200, home_stats()),
    ]);
    let proposed = folder(&[
        ("home.yaml", &without_bold(HOME)),
        ("staging-only.yaml", STAGING_ONLY),
    ]);
    let mut a = args(proposed.path());
    a.server = Some(format!("{}/", server.url));
    a.admin_key = Some("s3cret".into());
    let (code, out, err) = run_plan(&a);
    assert_eq!(code, EXIT_SAFE, "{out}{err}");
    assert!(
        out.contains(&format!(
            "with server http://{} (running version 3f2a9c), environment `production`\n",
            server.url
        )),
        "{out}"
    );
    // The server's environment filters the proposed folder: staging-only is not planned.
    assert!(!out.contains("staging-only"), "{out}");
    assert!(
        out.contains(
            "  home: variant 'bold' retired; its 1,204 sticky units will be re-assigned\n"
        ),
        "{out}"
    );
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /v1/admin/config HTTP/1.1"),
        "{}",
        requests[0]
    );
    assert!(
        requests.iter().all(|r| r
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret")),
        "{requests:?}"
    );
}

#[test]
fn server_mode_refuses_re_adding_a_variant_the_store_still_has_data_for() {
    let two = HOME.replace("  - {id: bold, payload: {headline: Ship in a day}}\n", "  - {id: bold, payload: {headline: Ship in a day}}\n  - {id: calm, payload: {headline: Relax}}\n");
    let server = fake_server(vec![
        (
            "/v1/admin/config",
            200,
            config(vec![document(HOME)], json!({"home": ["calm"]}), Value::Null),
        ),
        ("/v1/experiments/home", 200, home_stats()),
    ]);
    let proposed = folder(&[("home.yaml", &two)]);
    let mut a = args(proposed.path());
    a.server = Some(format!("http://{}", server.url));
    a.json = true;
    let (code, out, _) = run_plan(&a);
    assert_eq!(code, EXIT_REFUSED, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["running"]["version"], json!("3f2a9c"));
    assert_eq!(value["traffic"]["known"], json!(true));
    let reason = value["experiments"][0]["verdict"]["reasons"][0]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("variant `calm` was retired but still has data in revision 1"),
        "{reason}"
    );
}

#[test]
fn server_mode_notes_a_failed_reload_and_an_environment_mismatch() {
    let mut body: Value = serde_json::from_str(&config(
        vec![document(HOME)],
        json!({}),
        json!("production"),
    ))
    .unwrap();
    body["last_error"] = json!({"message": "home.yaml:3:9: unknown status", "at_ms": 1});
    let server = fake_server(vec![("/v1/admin/config", 200, body.to_string())]);
    let proposed = folder(&[("home.yaml", HOME)]);
    let mut a = args(proposed.path());
    a.server = Some(server.url.clone());
    a.environment = Some("staging".into());
    let report = make_plan(&a).unwrap();
    assert_eq!(report.environment.as_deref(), Some("staging"));
    assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
    assert!(report.notes[0].contains(
        "last reload failed and it still runs version 3f2a9c: home.yaml:3:9: unknown status"
    ));
    assert!(report.notes[1].contains("the server runs environment `production`, but the proposed folder is filtered for `staging`"));
    // Nothing changed, so no experiment stats were asked for.
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[test]
fn an_unreachable_server_exits_2() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proposed = folder(&[("home.yaml", HOME)]);
    let mut a = args(proposed.path());
    a.server = Some(format!("127.0.0.1:{port}"));
    let (code, _, err) = run_plan(&a);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains(&format!(
            "banditd plan: cannot reach http://127.0.0.1:{port}/v1/admin/config"
        )),
        "{err}"
    );
}

#[test]
fn a_refused_key_exits_2_with_a_hint() {
    let server = fake_server(vec![(
        "/v1/admin/config",
        401,
        json!({"detail": "missing or wrong bearer key"}).to_string(),
    )]);
    let proposed = folder(&[("home.yaml", HOME)]);
    let mut a = args(proposed.path());
    a.server = Some(server.url.clone());
    let (code, _, err) = run_plan(&a);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains("answered HTTP 401: missing or wrong bearer key; set BANDITD_ADMIN_KEY"),
        "{err}"
    );
}

#[test]
fn a_response_that_is_not_a_config_exits_2() {
    for body in [
        String::from("<html>proxy error</html>"),
        json!({"version": "1", "experiments": [{"id": "home", "status": "sideways"}]}).to_string(),
    ] {
        let server = fake_server(vec![("/v1/admin/config", 200, body.clone())]);
        let proposed = folder(&[("home.yaml", HOME)]);
        let mut a = args(proposed.path());
        a.server = Some(server.url.clone());
        let (code, _, err) = run_plan(&a);
        assert_eq!(code, EXIT_ERROR, "{body}");
        assert!(err.contains("unexpected answer from"), "{err}");
    }
    // A server without the route says so, instead of planning against nothing.
    let server = fake_server(vec![]);
    let proposed = folder(&[("home.yaml", HOME)]);
    let mut a = args(proposed.path());
    a.server = Some(server.url.clone());
    let (code, _, err) = run_plan(&a);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("has no /v1/admin/config"), "{err}");
}

#[test]
fn urls_get_a_scheme_and_lose_trailing_slashes() {
    assert_eq!(normalise_url("localhost:8080/"), "http://localhost:8080");
    assert_eq!(
        normalise_url(" https://b.example.com "),
        "https://b.example.com"
    );
}

#[test]
fn the_command_line_parses_plan_flags() {
    let cli = crate::cli::Cli::try_parse_from([
        "banditd",
        "plan",
        "experiments",
        "--against",
        "running",
        "--json",
        "--environment",
        "prod",
    ])
    .unwrap();
    let crate::cli::Command::Plan(a) = cli.command else {
        panic!("not plan")
    };
    assert_eq!(a.path, Path::new("experiments"));
    assert_eq!(a.against.as_deref(), Some(Path::new("running")));
    assert!(a.json);
    assert_eq!(a.environment.as_deref(), Some("prod"));
    assert_eq!(a.timeout.as_std(), Duration::from_secs(10));
}

#[test]
fn removing_a_served_experiment_is_never_called_safe_and_names_no_made_up_path() {
    let stats = json!({
        "id": "home",
        "arms": [
            {"variant": "plain", "exposures": 15_001, "rewards": 40.0},
            {"variant": "bold", "exposures": 15_002, "rewards": 52.0},
        ],
    })
    .to_string();
    let server = fake_server(vec![
        (
            "/v1/admin/config",
            200,
            config(
                vec![document(HOME), document(STAGING_ONLY)],
                json!({}),
                Value::Null,
            ),
        ),
        ("/v1/experiments/home", 200, stats),
    ]);
    let proposed = folder(&[("staging-only.yaml", STAGING_ONLY)]);
    let mut a = args(proposed.path());
    a.server = Some(server.url.clone());
    let (code, out, err) = run_plan(&a);
    assert_eq!(code, EXIT_DROPS_SERVED, "{out}{err}");
    assert!(!out.contains("SAFE"), "{out}");
    assert!(
        out.contains("Verdict: DROPS SERVED EXPERIMENTS: the server would accept the reload"),
        "{out}"
    );
    assert!(
        out.contains("  home (removed): 30,003 sticky units would lose their experiment\n"),
        "{out}"
    );
    // The removed experiment has no file anywhere this machine can open.
    assert!(
        out.contains("- home  removed, revision 1  (no file: it runs on the server"),
        "{out}"
    );
    assert!(!out.contains(".yaml)"), "{out}");
    assert!(!out.contains(&format!("{}/home.yaml", server.url)), "{out}");
    a.json = true;
    let (code, out, _) = run_plan(&a);
    assert_eq!(code, EXIT_DROPS_SERVED);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["verdict"], json!("drops_served"));
    assert_eq!(value["experiments"][0]["file"], Value::Null);
}

#[test]
fn setting_a_served_experiment_back_to_draft_drops_it_but_removing_a_draft_is_safe() {
    let running = folder(&[("home.yaml", HOME)]);
    let proposed = folder(&[(
        "home.yaml",
        &HOME.replace("status: running", "status: draft"),
    )]);
    let mut a = args(proposed.path());
    a.against = Some(running.path().to_path_buf());
    let (code, out, _) = run_plan(&a);
    assert_eq!(code, EXIT_DROPS_SERVED, "{out}");
    assert!(out.contains("  home (set back to draft)\n"), "{out}");
    // The other way round: a draft is not served, so dropping it loses nothing.
    let (code, out, _) = run_plan(&PlanArgs {
        against: Some(proposed.path().to_path_buf()),
        ..args(folder(&[]).path())
    });
    assert_eq!(code, EXIT_SAFE, "{out}");
    // A folder comparison names the running file, a real path.
    let (code, out, _) = run_plan(&PlanArgs {
        against: Some(running.path().to_path_buf()),
        ..args(folder(&[]).path())
    });
    assert_eq!(code, EXIT_DROPS_SERVED, "{out}");
    let file = running.path().join("home.yaml");
    assert!(out.contains(&format!("({})", file.display())), "{out}");
    assert!(file.exists());
}

fn replica(id: &str, version: &str) -> crate::store::ReplicaReport {
    crate::store::ReplicaReport {
        id: id.to_owned(),
        address: "127.0.0.1:8080".to_owned(),
        version: version.to_owned(),
        loaded_ms: 1,
        reported_ms: 2,
    }
}

#[test]
fn replicas_that_agree_give_no_warning() {
    let set = ReplicaSet::of(replica("a:1", "v1"), vec![replica("b:2", "v1")]);
    assert_eq!(drift_warning(&set), None);
}

#[test]
fn replicas_on_two_versions_are_warned_about_by_name_and_version() {
    let set = ReplicaSet::of(
        replica("a:1", "v1"),
        vec![replica("b:2", "v2"), replica("c:3", "v1")],
    );
    let warning = drift_warning(&set).expect("a warning");
    assert!(
        warning.contains("the 3 live replicas do not run the same experiment folder"),
        "{warning}"
    );
    assert!(
        warning.contains("version v1 on a:1, c:3; version v2 on b:2"),
        "{warning}"
    );
    assert!(warning.contains("compares with a:1 only"), "{warning}");
}
