//! Folder loading against real temporary folders: discovery, error collection across
//! files, the cross-file id rule, environment filtering and the `validate` report.

use std::fs;

use tempfile::TempDir;

use super::*;

fn experiment_yaml(id: &str, environments: Option<&str>) -> String {
    let environments = environments
        .map(|e| format!("environments: {e}\n"))
        .unwrap_or_default();
    format!(
        "id: {id}\ndescription: d\nowner: o\nstatus: running\n{environments}\
         default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n"
    )
}

fn folder(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn ids(experiments: &[Experiment]) -> Vec<&str> {
    experiments.iter().map(|e| e.id.as_str()).collect()
}

fn report(paths: &[PathBuf], environment: Option<&str>) -> (bool, String) {
    report_with(
        paths,
        ValidateOptions {
            environment,
            allow_empty: false,
        },
    )
}

fn report_with(paths: &[PathBuf], options: ValidateOptions<'_>) -> (bool, String) {
    let mut out = Vec::new();
    let ok = validate_report(paths, options, &mut out).unwrap();
    (ok, String::from_utf8(out).unwrap())
}

#[test]
fn the_bundled_experiments_all_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let experiments = load_dir(&dir, None).unwrap();
    assert_eq!(
        ids(&experiments),
        vec!["checkout-button", "homepage-headline", "search-ranking"]
    );
    let search = &experiments[2];
    assert_eq!(search.assignment, spec::AssignmentMode::PerRequest);
    assert_eq!(
        search.variants[1].payload["boosts"][0]["factor"],
        serde_json::json!(1.5)
    );
    assert!(experiments[0].variants[2].prior.is_some());
    // Each bundled file teaches one statistics setting.
    let checkout = experiments[0]
        .stopping
        .expect("checkout-button has a stopping rule");
    assert_eq!(checkout.on_winner, spec::OnWinner::Report);
    assert_eq!(
        checkout.min_duration.map(|d| d.to_string()),
        Some("2w".to_owned())
    );
    let homepage = experiments[1]
        .stopping
        .expect("homepage-headline has a stopping rule");
    assert_eq!(homepage.on_winner, spec::OnWinner::Exploit);
    assert_eq!(
        search.policy.half_life.map(|d| d.to_string()),
        Some("2w".to_owned())
    );
}

#[test]
fn only_yaml_files_are_read_in_name_order() {
    let dir = folder(&[
        ("b.yaml", &experiment_yaml("bravo", None)),
        ("a.yml", &experiment_yaml("alpha", None)),
        ("c.YAML", &experiment_yaml("charlie", None)),
        (".hidden.yaml", "not: [valid"),
        ("notes.txt", "not: [valid"),
        ("README.md", "# experiments"),
    ]);
    fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    fs::write(dir.path().join("sub.yaml/x.yaml"), "not: [valid").unwrap();
    let experiments = load_dir(dir.path(), None).unwrap();
    assert_eq!(ids(&experiments), vec!["alpha", "bravo", "charlie"]);
    assert_eq!(experiments[0].source, dir.path().join("a.yml"));
}

#[test]
fn an_empty_folder_loads_nothing() {
    let dir = folder(&[]);
    assert_eq!(load_dir(dir.path(), None), Ok(vec![]));
}

#[test]
fn a_missing_folder_is_an_error_at_line_zero() {
    let dir = folder(&[]);
    let missing = dir.path().join("nope");
    let errors = load_dir(&missing, None).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, missing);
    assert_eq!((errors[0].line, errors[0].column), (0, 0));
    assert!(
        errors[0]
            .message
            .contains("cannot read the experiment folder"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_file_that_is_not_utf8_is_an_error_at_line_zero() {
    let dir = folder(&[("good.yaml", &experiment_yaml("good", None))]);
    fs::write(dir.path().join("bad.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, dir.path().join("bad.yaml"));
    assert_eq!((errors[0].line, errors[0].column), (0, 0));
    assert!(errors[0].message.contains("UTF-8"), "{}", errors[0]);
}

#[test]
fn errors_of_every_file_are_collected() {
    let dir = folder(&[
        (
            "a.yaml",
            &experiment_yaml("alpha", None).replace("status: running", "status: on"),
        ),
        ("b.yaml", &experiment_yaml("bravo", None)),
        ("c.yaml", "id: charlie\nowner: [\n"),
    ]);
    let errors = load_dir(dir.path(), None).unwrap_err();
    let files: Vec<_> = errors.iter().map(|e| e.file.file_name().unwrap()).collect();
    assert_eq!(files, vec!["a.yaml", "c.yaml"]);
    assert_eq!((errors[0].line, errors[0].column), (4, 9));
}

#[test]
fn a_duplicate_id_across_files_names_both_files() {
    let dir = folder(&[
        ("first.yaml", &experiment_yaml("same", None)),
        ("second.yaml", &experiment_yaml("same", None)),
    ]);
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 1);
    let err = &errors[0];
    assert_eq!(err.file, dir.path().join("second.yaml"));
    assert_eq!((err.line, err.column), (1, 5));
    let first = format!("{}:1:5", dir.path().join("first.yaml").display());
    assert!(err.message.contains(&first), "{err}");
}

#[test]
fn the_id_rule_spans_environments_and_is_reported_with_other_errors() {
    let dir = folder(&[
        ("a.yaml", &experiment_yaml("same", Some("[staging]"))),
        ("b.yaml", &experiment_yaml("same", Some("[production]"))),
        ("c.yaml", "id: [\n"),
    ]);
    let errors = load_dir(dir.path(), Some("staging")).unwrap_err();
    let files: Vec<_> = errors.iter().map(|e| e.file.file_name().unwrap()).collect();
    assert_eq!(files, vec!["c.yaml", "b.yaml"]);
}

#[test]
fn only_experiments_live_in_the_environment_are_kept() {
    let dir = folder(&[
        ("a.yaml", &experiment_yaml("everywhere", None)),
        (
            "b.yaml",
            &experiment_yaml("staging-only", Some("[staging]")),
        ),
        (
            "c.yaml",
            &experiment_yaml("both", Some("[staging, production]")),
        ),
    ]);
    let production = load_dir(dir.path(), Some("production")).unwrap();
    assert_eq!(ids(&production), vec!["everywhere", "both"]);
    let staging = load_dir(dir.path(), Some("staging")).unwrap();
    assert_eq!(ids(&staging), vec!["everywhere", "staging-only", "both"]);
    let unfiltered = load_dir(dir.path(), None).unwrap();
    assert_eq!(unfiltered.len(), 3);
}

#[test]
fn paths_mix_files_and_folders_and_count_a_file_once() {
    let dir = folder(&[
        ("a.yaml", &experiment_yaml("alpha", None)),
        ("b.yaml", &experiment_yaml("bravo", None)),
    ]);
    let other = folder(&[("x.txt", &experiment_yaml("named", None))]);
    let paths = vec![
        dir.path().to_path_buf(),
        dir.path().join("a.yaml"),
        other.path().join("x.txt"),
    ];
    let experiments = load_paths(&paths, None).unwrap();
    assert_eq!(ids(&experiments), vec!["alpha", "bravo", "named"]);
}

#[test]
fn a_missing_path_is_reported_with_the_other_errors() {
    let dir = folder(&[("a.yaml", "id: [\n")]);
    let missing = dir.path().join("gone.yaml");
    let errors = load_paths(&[missing.clone(), dir.path().to_path_buf()], None).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].file, missing);
    assert_eq!((errors[0].line, errors[0].column), (0, 0));
    assert!(errors[0].message.contains("no such file or folder"));
    assert_eq!(errors[1].file, dir.path().join("a.yaml"));
}

#[test]
fn the_report_of_a_valid_folder_has_one_line_per_experiment() {
    let dir = folder(&[
        ("a.yaml", &experiment_yaml("alpha", Some("[staging]"))),
        ("b.yaml", &experiment_yaml("bravo", None)),
    ]);
    let (ok, text) = report(&[dir.path().to_path_buf()], None);
    assert!(ok);
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    assert_eq!(
        text,
        format!(
            "ok  alpha  running  sticky  2 variants  rev 1  window 1w  ({})\n\
             ok  bravo  running  sticky  2 variants  rev 1  window 1w  ({})\n\
             2 experiments valid\n",
            a.display(),
            b.display()
        )
    );
}

#[test]
fn the_report_line_shows_half_life_and_stopping_rule_when_set() {
    let text = experiment_yaml("alpha", None).replace(
        "default_variant: a\n",
        "policy: {half_life: 14d}\nstopping:\n  prob_best: 0.95\n  max_expected_loss: 0.001\n\
         \x20 min_exposures: 1000\n  min_duration: 3d\n  on_winner: report\ndefault_variant: a\n",
    );
    let brief = experiment_yaml("bravo", None).replace(
        "default_variant: a\n",
        "stopping: {prob_best: 0.9, max_expected_loss: 0.01}\ndefault_variant: a\n",
    );
    let dir = folder(&[("a.yaml", &text), ("b.yaml", &brief)]);
    let (ok, out) = report(&[dir.path().to_path_buf()], None);
    assert!(ok, "{out}");
    let lines: Vec<_> = out.lines().collect();
    assert!(
        lines[0].contains(
            "window 1w  half-life 2w  stops at P(best) >= 0.95, loss <= 0.001, \
             1000 exposures each, after 3d, then report  ("
        ),
        "{out}"
    );
    assert!(
        lines[1].contains("window 1w  stops at P(best) >= 0.9, loss <= 0.01, then exploit  ("),
        "{out}"
    );
}

#[test]
fn the_report_says_how_many_valid_experiments_are_not_live_in_the_environment() {
    let dir = folder(&[
        ("a.yaml", &experiment_yaml("alpha", Some("[staging]"))),
        ("b.yaml", &experiment_yaml("bravo", None)),
    ]);
    let (ok, text) = report(&[dir.path().to_path_buf()], Some("staging"));
    assert!(ok);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let (ok, text) = report(&[dir.path().to_path_buf()], Some("production"));
    assert!(ok);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // No file names `production`: a likely typo is flagged (see the next test).
    assert!(
        lines[0].starts_with("warning: the environment `production`"),
        "{text}"
    );
    assert!(lines[1].starts_with("ok  bravo  "), "{text}");
    assert_eq!(
        lines[2],
        "1 experiment valid; 1 more valid but not live in `production`"
    );
}

#[test]
fn an_environment_no_file_names_is_flagged_and_an_empty_result_fails() {
    let dir = folder(&[
        (
            "a.yaml",
            &experiment_yaml("alpha", Some("[staging, production]")),
        ),
        ("b.yaml", &experiment_yaml("bravo", Some("[production]"))),
    ]);
    let (ok, text) = report(&[dir.path().to_path_buf()], Some("prod"));
    assert!(!ok, "{text}");
    assert_eq!(
        text,
        "warning: the environment `prod` is named by no experiment file (they name: production, \
         staging); only experiments without an `environments` list are live in it. Check the \
         spelling\n\
         0 experiments valid; 2 more valid but not live in `prod`\n\
         error: no experiment live in `prod`: a server would serve nothing. Check the paths (and \
         --environment); pass --allow-empty if an empty set is intended\n"
    );
    // Files that list no environment make every name legitimate.
    let open = folder(&[("b.yaml", &experiment_yaml("bravo", None))]);
    let (ok, text) = report(&[open.path().to_path_buf()], Some("prod"));
    assert!(ok && !text.contains("warning"), "{text}");
}

#[test]
fn a_folder_without_experiments_fails_unless_allowed() {
    let dir = folder(&[("notes.txt", "not an experiment")]);
    let (ok, text) = report(&[dir.path().to_path_buf()], None);
    assert!(!ok, "{text}");
    assert_eq!(
        text,
        "0 experiments valid\n\
         error: no experiment: a server would serve nothing. Check the paths (and \
         --environment); pass --allow-empty if an empty set is intended\n"
    );
    let (ok, text) = report_with(
        &[dir.path().to_path_buf()],
        ValidateOptions {
            environment: None,
            allow_empty: true,
        },
    );
    assert!(ok, "{text}");
    assert_eq!(text, "0 experiments valid\n");
}

#[test]
fn yaml_1_1_booleans_in_a_payload_are_warned_about_with_their_place() {
    let text = experiment_yaml("alpha", None).replace("payload: 1", "payload: {show_banner: no}");
    assert!(text.contains("show_banner"), "{text}");
    let dir = folder(&[("a.yaml", &text)]);
    let (ok, out) = report(&[dir.path().to_path_buf()], None);
    assert!(ok, "{out}");
    let a = dir.path().join("a.yaml");
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with(&format!("{}:", a.display()))
            && line.contains(": warning: `no` is the text \"no\" here (YAML 1.2), not a boolean")
            && line.contains("Write `false` for the boolean"),
        "{out}"
    );
    assert!(out.ends_with("1 experiment valid; 1 warning\n"), "{out}");
}

#[test]
fn the_report_of_a_failing_folder_lists_every_error_then_a_count() {
    let dir = folder(&[
        (
            "a.yaml",
            &experiment_yaml("alpha", None).replace("status: running", "status: on"),
        ),
        (
            "b.yaml",
            &experiment_yaml("bravo", None).replace("owner: o", "owner: 7"),
        ),
        ("c.yaml", &experiment_yaml("charlie", None)),
    ]);
    let (ok, text) = report(&[dir.path().to_path_buf()], None);
    assert!(!ok);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let a = dir.path().join("a.yaml");
    assert!(
        lines[0].starts_with(&format!("{}:4:9: `status` must be one of", a.display())),
        "{text}"
    );
    let b = dir.path().join("b.yaml");
    assert!(
        lines[1].starts_with(&format!("{}:3:8: `owner` must be text", b.display())),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "2 errors in 2 files: the set is invalid, and a server would keep running its last \
         valid set; fix them and run validate again"
    );
    assert!(!text.contains("nothing was loaded"), "{text}");
}
