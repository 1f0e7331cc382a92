//! The folder reads nothing but experiment files: links that leave the folder, named pipes
//! and oversized files are refused unread, a Kubernetes ConfigMap layout loads once, and no
//! message carries more than a short excerpt of a file.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

fn experiment_yaml(id: &str) -> String {
    format!(
        "id: {id}\ndescription: d\nowner: o\nstatus: running\n\
         default_variant: a\nvariants:\n  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n"
    )
}

/// A file outside every experiment folder, with text that must never come out.
fn secret_file() -> (tempfile::TempDir, PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    let path = outside.path().join("shadow");
    fs::write(&path, SHADOW).unwrap();
    (outside, path)
}

/// `/etc/shadow`-like text: every hash is a secret.
const SHADOW: &str = "\
root:$6$PtYgjmUh$Bel31iEl2hpChYgCfrL1spNxnyVmihA/2O76UMFxFkM/R5Kjp1vRt.1fjORS/6ilI8ihN5KXSc7Tvo/hBKqFYY:19700:0:99999:7:::
daemon:$6$/kv5ZJr3$J1TWDtkwtDDb.xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWtGSU8po.799NksnRH9ucAUsdMlHUvTCQCyEZD:19700:0:99999:7:::
deploy:$6$z/TddJ8H$yS5SUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4:19700:0:99999:7:::
";

/// How many characters of `secret` the `output` shows: every position of `secret` covered
/// by a run of 12 or more characters that also appears in `output` (shorter runs are words
/// any message may share with a file).
fn revealed(output: &str, secret: &str) -> usize {
    let secret: Vec<char> = secret.chars().collect();
    let mut covered = vec![false; secret.len()];
    for start in 0..secret.len() {
        let mut end = start + 12;
        if end > secret.len() {
            break;
        }
        if !output.contains(&secret[start..end].iter().collect::<String>()) {
            continue;
        }
        while end < secret.len() && output.contains(&secret[start..=end].iter().collect::<String>())
        {
            end += 1;
        }
        covered[start..end].iter_mut().for_each(|c| *c = true);
    }
    covered.iter().filter(|c| **c).count()
}

fn messages(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_link_to_a_file_outside_the_folder_is_refused_and_never_read() {
    let (_outside, secret) = secret_file();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), experiment_yaml("a")).unwrap();
    symlink(&secret, dir.path().join("x.yaml")).unwrap();
    // Relative links that climb out are the same.
    symlink(
        "../../../../../../../../etc/passwd",
        dir.path().join("y.yaml"),
    )
    .unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    let text = messages(&errors);
    assert_eq!(errors.len(), 2, "{text}");
    assert!(errors[0].file.ends_with("x.yaml") || errors[1].file.ends_with("x.yaml"));
    for error in &errors {
        assert_eq!(error.position(), spec::Position::FILE);
        assert!(
            error.message.contains("outside the experiment folder"),
            "{error}"
        );
    }
    assert_eq!(revealed(&text, SHADOW), 0, "{text}");
    assert!(!text.contains("root:"), "{text}");
    // The fingerprint and `validate` refuse it the same way.
    assert!(
        fingerprint(dir.path())
            .unwrap_err()
            .message
            .contains("outside")
    );
    let mut out = Vec::new();
    assert!(
        !validate_report(
            &[dir.path().to_path_buf()],
            ValidateOptions::default(),
            &mut out
        )
        .unwrap()
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("x.yaml:0:0: is a symbolic link"), "{out}");
    assert_eq!(revealed(&out, SHADOW), 0, "{out}");
}

#[test]
fn a_kubernetes_configmap_mount_loads_each_file_once() {
    // What the kubelet writes: the files in a timestamped folder, `..data` linking to it,
    // and one link per key through `..data`.
    let dir = tempfile::tempdir().unwrap();
    let stamped = dir.path().join("..2026_11_29_21_40_00.123456789");
    fs::create_dir(&stamped).unwrap();
    fs::write(stamped.join("home.yaml"), experiment_yaml("home")).unwrap();
    fs::write(stamped.join("search.yml"), experiment_yaml("search")).unwrap();
    symlink("..2026_11_29_21_40_00.123456789", dir.path().join("..data")).unwrap();
    symlink("..data/home.yaml", dir.path().join("home.yaml")).unwrap();
    symlink("..data/search.yml", dir.path().join("search.yml")).unwrap();
    let loaded = read_folder(dir.path(), None).unwrap();
    let ids: Vec<&str> = loaded.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["home", "search"]);
    assert_eq!(loaded.experiments[0].source, dir.path().join("home.yaml"));
    assert_eq!(Ok(loaded.version.clone()), fingerprint(dir.path()));
    // The kubelet's update: a new folder, `..data` swapped to it.
    let next = dir.path().join("..2026_11_29_21_45_00.987654321");
    fs::create_dir(&next).unwrap();
    fs::write(next.join("home.yaml"), experiment_yaml("home2")).unwrap();
    fs::write(next.join("search.yml"), experiment_yaml("search")).unwrap();
    symlink(
        "..2026_11_29_21_45_00.987654321",
        dir.path().join("..data_tmp"),
    )
    .unwrap();
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    let reloaded = read_folder(dir.path(), None).unwrap();
    assert_eq!(reloaded.experiments[0].id.as_str(), "home2");
    assert_ne!(reloaded.version, loaded.version);
}

#[test]
fn a_link_within_the_folder_is_followed_and_a_dangling_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("shared")).unwrap();
    fs::write(dir.path().join("shared/a.txt"), experiment_yaml("a")).unwrap();
    symlink("shared/a.txt", dir.path().join("a.yaml")).unwrap();
    assert_eq!(load_dir(dir.path(), None).unwrap()[0].id.as_str(), "a");
    symlink("shared/gone.yaml", dir.path().join("b.yaml")).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].file.ends_with("b.yaml"));
    assert!(
        errors[0].message.contains("link to nothing"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_file_swapped_for_a_named_pipe_after_its_check_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    fs::write(&path, experiment_yaml("a")).unwrap();
    let checked = folder::named_file(&path).expect("a regular file passes the check");
    // The swap lands between the check and the open.
    fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // A blocking open would wait here for a writer that never comes.
    let refused = folder::read_file(&checked).unwrap_err();
    assert!(refused.message.contains("was replaced"), "{refused}");
}

#[test]
fn a_named_pipe_is_refused_without_blocking_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), experiment_yaml("a")).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO for reading blocks until a writer comes; were it opened, this test
    // would never end. A link to it is refused the same way.
    symlink("pipe.yaml", dir.path().join("via-link.yaml")).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 2, "{}", messages(&errors));
    for error in &errors {
        assert!(
            error
                .message
                .contains("is a named pipe (FIFO), not a regular file"),
            "{error}"
        );
    }
    // Named on the command line, too.
    let errors = load_paths(std::slice::from_ref(&fifo), None).unwrap_err();
    assert!(errors[0].message.contains("named pipe"), "{}", errors[0]);
    // A device.
    let errors = load_paths(&[PathBuf::from("/dev/zero")], None).unwrap_err();
    assert!(errors[0].message.contains("is a device"), "{}", errors[0]);
}

#[test]
fn an_oversized_file_is_refused_naming_the_limit_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), experiment_yaml("a")).unwrap();
    // Sparse: 100 MB by size, nothing on disk. Read whole, it would be 100 MB of zeros
    // (and an "is not UTF-8"-free parse error); refused by size, it is never opened.
    let big = fs::File::create(dir.path().join("big.yaml")).unwrap();
    big.set_len(100 * 1024 * 1024).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    // Over the folder's byte limit too: that is checked first, and nothing is read.
    assert_eq!(errors.len(), 1, "{}", messages(&errors));
    assert!(errors[0].file == dir.path(), "{}", errors[0]);
    assert!(
        errors[0]
            .message
            .contains("above the limit of 67108864 bytes (64 MiB) per folder"),
        "{}",
        errors[0]
    );
    big.set_len(MAX_FILE_BYTES + 1).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", messages(&errors));
    assert!(errors[0].file.ends_with("big.yaml"));
    assert!(
        errors[0]
            .message
            .contains("above the limit of 1048576 bytes (1 MiB) for one experiment file"),
        "{}",
        errors[0]
    );
    // Named on the command line, the same limit holds.
    let errors = load_paths(&[dir.path().join("big.yaml")], None).unwrap_err();
    assert!(errors[0].message.contains("1 MiB"), "{}", errors[0]);
}

#[test]
fn a_folder_with_too_many_files_is_refused_before_any_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..=MAX_FOLDER_FILES {
        // Broken files: were any read, its parse error would be reported.
        fs::write(dir.path().join(format!("e{i:04}.yaml")), "id: [").unwrap();
    }
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", messages(&errors));
    assert_eq!(errors[0].file, dir.path());
    assert!(
        errors[0]
            .message
            .contains("holds 1001 experiment files, above the limit of 1000 per folder"),
        "{}",
        errors[0]
    );
}

#[test]
fn no_message_quotes_more_than_80_characters_of_a_long_single_line_file() {
    let line: String = (0..20_000)
        .map(|i| char::from(b'a' + u8::try_from(i * 7 % 26).unwrap_or(0)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("plain.yaml", line.clone()),
        ("key.yaml", format!("{line}: 1\n")),
        ("quoted.yaml", format!("id: \"{line}\"\n")),
        (
            "status.yaml",
            format!("{}status: {line}\n", experiment_yaml("s")),
        ),
        (
            "window.yaml",
            format!("{}reward: {{window: 7{line}}}\n", experiment_yaml("w")),
        ),
        (
            "number.yaml",
            format!("{}revision: \"1{line}\"\n", experiment_yaml("n")),
        ),
        ("duplicate.yaml", format!("{line}: 1\n{line}: 2\n")),
        (
            "payload.yaml",
            experiment_yaml("p").replace(
                "payload: 1",
                &format!("payload: {{{line}: 1, \"{line}\": 2}}"),
            ),
        ),
        ("broken.yaml", format!("id: [{line}\n")),
    ];
    for (name, text) in &files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let errors = load_dir(dir.path(), None).unwrap_err();
    let output = messages(&errors);
    for (name, _) in &files {
        assert!(output.contains(name), "{name} has no error:\n{output}");
    }
    let chars: Vec<char> = line.chars().collect();
    for window in chars.windows(MAX_EXCERPT) {
        let window: String = window.iter().collect();
        assert!(
            !output.contains(&window),
            "more than 80 characters quoted:\n{output}"
        );
    }
    assert!(output.contains('…'), "{output}");
}

/// One character more than an excerpt may hold.
const MAX_EXCERPT: usize = spec::MAX_EXCERPT_CHARS + 1;

#[test]
fn a_secrets_file_in_the_folder_shows_at_most_80_characters_of_itself() {
    let credentials = "aws_access_key_id: AKIAZ7Q2XK4M9P3R8T6W\n\
        aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8m4N7v2R\n\
        database_password: 'correct horse battery staple 8f3a9c1d'\n";
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("shadow.yaml"), SHADOW).unwrap();
    fs::write(dir.path().join("credentials.yaml"), credentials).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    let output = messages(&errors);
    assert!(revealed(&output, SHADOW) <= 80, "{output}");
    assert!(!output.contains("daemon:"), "{output}");
    // Unknown keys are named (that is the error); their values never appear.
    assert!(!output.contains("AKIAZ7Q2XK4M9P3R8T6W"), "{output}");
    assert!(!output.contains("wJalrXUtnFEMI"), "{output}");
    assert!(!output.contains("battery staple"), "{output}");
    assert!(revealed(&output, credentials) <= 80, "{output}");
}

#[test]
fn the_readme_states_the_limits_the_code_enforces() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (limit, documented) in [
        (
            spec::MAX_VARIANTS as u64,
            "| variants in one experiment | 100 |",
        ),
        (
            MAX_FILE_BYTES,
            "| size of one file | 1 MiB (1,048,576 bytes) |",
        ),
        (
            MAX_FOLDER_FILES as u64,
            "| experiment files in the folder | 1,000 |",
        ),
        (
            MAX_FOLDER_BYTES >> 20,
            "| bytes of experiment files in the folder | 64 MiB |",
        ),
    ] {
        assert!(readme.contains(documented), "README lacks {documented:?}");
        let digits: String = documented
            .rsplit('|')
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(|c| *c != '(')
            .filter(char::is_ascii_digit)
            .collect();
        let stated: u64 = digits.parse().unwrap();
        let in_units = if documented.contains("1 MiB") {
            limit >> 20
        } else {
            limit
        };
        assert_eq!(stated, in_units, "{documented}");
    }
}

#[test]
fn a_file_with_thousands_of_errors_reports_the_first_fifty_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    // Near misses of `id`, so each is an "unknown field" error of its own.
    let keys: String = (0..5_000).map(|i| format!("id{i}: 1\n")).collect();
    fs::write(dir.path().join("many.yaml"), keys).unwrap();
    let errors = load_dir(dir.path(), None).unwrap_err();
    assert_eq!(
        errors.len(),
        MAX_ERRORS_PER_FILE + 1,
        "{}",
        messages(&errors[..3])
    );
    assert_eq!(errors[0].line, 1);
    let last = errors.last().unwrap();
    assert!(
        last.message.starts_with("and ")
            && last.message.contains("more errors in this file, not shown"),
        "{last}"
    );
}
