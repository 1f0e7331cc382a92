//! The file watcher: notifications instead of polling, so an idle server reads nothing, and
//! each change (a write, a rename into place, a ConfigMap `..data` swap) is one reload.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{PER_REQUEST, STICKY, TestApp};

fn config(app: &TestApp) -> Value {
    let r = app.get("/v1/admin/config");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn folder_reads(app: &TestApp) -> u64 {
    let watch = config(app)["watch"].clone();
    watch["folder_reads"]
        .as_u64()
        .unwrap_or_else(|| panic!("no folder_reads in {watch}"))
}

fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Longer than the old watcher's poll interval (1 s) and several debounce intervals, so a
/// reload that was going to happen has happened.
fn settle() {
    std::thread::sleep(Duration::from_millis(1_500));
}

/// The watcher starts beside the server; waits until it runs, and returns its status.
fn watching(app: &TestApp) -> Value {
    assert!(
        eventually(Duration::from_secs(10), || config(app)["watch"]["mode"]
            != "off"),
        "the watcher never started"
    );
    config(app)["watch"].clone()
}

fn description(app: &TestApp) -> Value {
    app.get("/v1/experiments/headline").body["description"].clone()
}

#[test]
fn an_idle_server_never_reads_the_folder_and_each_change_reloads_exactly_once() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let watch = watching(&app);
    assert_eq!(watch["mode"], "notify", "{watch}");
    assert_eq!(watch["debounce_ms"], 300, "{watch}");
    settle();
    assert_eq!(folder_reads(&app), 0, "nothing changed, nothing is read");

    // Written in place, as `git checkout` does.
    app.write_experiment(
        "headline.yaml",
        &STICKY.replace("Which headline converts?", "Which headline sells?"),
    );
    assert!(eventually(Duration::from_secs(10), || description(&app)
        == "Which headline sells?"));
    settle();
    assert_eq!(folder_reads(&app), 1, "one write, one reload");

    // Written aside and renamed into place, as editors do; the temporary file is hidden.
    let dir = app.experiments_dir();
    std::fs::write(dir.join(".ranking.yaml.tmp"), PER_REQUEST).unwrap();
    std::fs::rename(dir.join(".ranking.yaml.tmp"), dir.join("ranking.yaml")).unwrap();
    assert!(eventually(Duration::from_secs(10), || app
        .get("/v1/experiments/ranking")
        .status
        == 200));
    settle();
    assert_eq!(folder_reads(&app), 2, "one rename, one reload");

    // An editor's swap file is no change.
    std::fs::write(dir.join(".headline.yaml.swp"), "swap").unwrap();
    settle();
    assert_eq!(folder_reads(&app), 2);
}

#[test]
fn a_configmap_data_swap_reloads_once() {
    let mut app = TestApp::spawn(&[]);
    app.terminate();
    let dir = app.experiments_dir();
    configmap_version(&dir, "..2026_11_29_21_40_00.000000001", STICKY);
    std::os::unix::fs::symlink("..2026_11_29_21_40_00.000000001", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/headline.yaml", dir.join("headline.yaml")).unwrap();
    app.start().expect("starts on a ConfigMap layout");
    assert_eq!(description(&app), "Which headline converts?");
    assert_eq!(watching(&app)["mode"], "notify");
    settle();
    assert_eq!(folder_reads(&app), 0);

    // The kubelet's atomic update: a new folder, a new link, renamed over `..data`, the
    // old folder removed.
    configmap_version(
        &dir,
        "..2026_11_29_21_45_00.000000002",
        &STICKY.replace("Which headline converts?", "Which headline sells?"),
    );
    std::os::unix::fs::symlink("..2026_11_29_21_45_00.000000002", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_29_21_40_00.000000001")).unwrap();
    assert!(eventually(Duration::from_secs(10), || description(&app)
        == "Which headline sells?"));
    settle();
    assert_eq!(folder_reads(&app), 1, "one swap, one reload");
    let files = config(&app)["files"].clone();
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");
}

fn configmap_version(dir: &Path, stamp: &str, headline: &str) {
    std::fs::create_dir(dir.join(stamp)).unwrap();
    std::fs::write(dir.join(stamp).join("headline.yaml"), headline).unwrap();
}

/// Bytes the process has read through `read(2)` and friends, from `/proc/<pid>/io`.
#[cfg(target_os = "linux")]
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/<pid>/io");
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("rchar")
}

/// Evidence from the kernel rather than from the server's own counter: while nobody calls
/// it and nothing changes, the server reads less than one experiment file's worth of bytes.
/// (The polling watcher read every file in full every second.)
#[cfg(target_os = "linux")]
#[test]
fn an_idle_server_reads_no_experiment_bytes() {
    let padding: String = (0..1_000)
        .map(|i| format!("# padding line {i:04} to make the file large enough to notice\n"))
        .collect();
    let headline = format!("{STICKY}{padding}");
    let ranking = format!("{PER_REQUEST}{padding}");
    let app = TestApp::spawn(&[("headline.yaml", &headline), ("ranking.yaml", &ranking)]);
    // Past startup (the initial load and the watcher's start), then measured.
    std::thread::sleep(Duration::from_millis(500));
    let file_bytes = u64::try_from(headline.len()).unwrap();
    let before = bytes_read(app.pid());
    std::thread::sleep(Duration::from_millis(3_000));
    let after = bytes_read(app.pid());
    assert!(
        after - before < file_bytes,
        "an idle server read {} bytes in 3 s (one file is {file_bytes})",
        after - before
    );
}

#[test]
fn restoring_a_broken_file_clears_the_reload_error_by_itself_and_says_so() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    watching(&app);
    app.write_experiment("headline.yaml", "id: headline\nstatus: [broken\n");
    assert!(
        eventually(Duration::from_secs(10), || !config(&app)["last_error"]
            .is_null()),
        "the broken file is refused and reported: {}",
        config(&app)
    );
    // Back to the last good content, as `git checkout -- headline.yaml` does.
    app.write_experiment("headline.yaml", STICKY);
    assert!(
        eventually(Duration::from_secs(10), || config(&app)["last_error"]
            .is_null()),
        "the error clears without a manual reload: {}",
        config(&app)
    );
    assert!(
        eventually(Duration::from_secs(5), || app
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("reload error cleared"))),
        "and the log says so"
    );
}
