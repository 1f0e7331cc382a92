//! The Dockerfile's build stage copies every file `cargo build --release --bin banditd` reads,
//! and `.dockerignore` leaves them in the build context.
//!
//! No registry is reachable from this project's machines, so building the Dockerfile takes
//! local stand-ins for its base images and a release build inside Docker
//! (`scripts/scale_out_local.sh dockerfile`, minutes and a Docker daemon): too slow and too
//! heavy for every test run. This checks the stage's inputs statically instead, at every run:
//! the manifest, the lock file, the build script, every target's source file, every path
//! dependency, and every file the sources embed with `include_str!` or `include_bytes!`. A file
//! the image lacks fails `docker build` at compile time, far from the change that needed it
//! (the vendored actix-http and the JS client were such files).

use std::fs;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sources of the first stage's `COPY` instructions (not the ones copying from another
/// stage), as paths relative to the build context (empty for the whole context, `.`).
fn build_stage_copies(dockerfile: &str) -> Vec<PathBuf> {
    let mut copies = Vec::new();
    let mut stages = 0;
    for line in dockerfile.lines().map(str::trim) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("FROM ") {
            stages += 1;
            continue;
        }
        if stages != 1 || !upper.starts_with("COPY ") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        if words.iter().any(|word| word.starts_with("--from")) {
            continue;
        }
        let sources = words
            .iter()
            .filter(|word| !word.starts_with("--"))
            .copied()
            .collect::<Vec<_>>();
        // The last word is the destination.
        for source in &sources[..sources.len().saturating_sub(1)] {
            copies.push(normal(Path::new(source.trim_end_matches('/'))));
        }
    }
    copies
}

/// `path` without `.` and `..` components (relative to the repository).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What the manifest makes cargo read: explicit target paths, `[[bench]]` targets' default
/// paths, and path dependencies (patches included).
fn manifest_inputs(manifest: &str) -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    let mut section = String::new();
    let mut pending_bench: Option<String> = None;
    let flush = |pending: &mut Option<String>, inputs: &mut Vec<PathBuf>| {
        if let Some(name) = pending.take() {
            inputs.push(PathBuf::from(format!("benches/{name}.rs")));
        }
    };
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(&mut pending_bench, &mut inputs);
            section = line.to_owned();
            continue;
        }
        if section == "[[bench]]"
            && let Some(name) = value_of(line, "name")
        {
            pending_bench = Some(name);
        }
        if let Some(path) = value_of(line, "path") {
            if section == "[[bench]]" {
                pending_bench = None;
            }
            inputs.push(normal(Path::new(&path)));
        }
        // `name = { path = "…" }`, a path dependency on one line.
        if let Some(at) = line.find("path = \"")
            && line.contains('{')
        {
            let rest = &line[at + "path = \"".len()..];
            if let Some(end) = rest.find('"') {
                inputs.push(normal(Path::new(&rest[..end])));
            }
        }
    }
    flush(&mut pending_bench, &mut inputs);
    inputs
}

/// The value of `key = "value"` on a line of its own.
fn value_of(line: &str, key: &str) -> Option<String> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    let value = rest.strip_prefix('"')?.split('"').next()?;
    Some(value.to_owned())
}

/// Every file embedded by `include_str!` / `include_bytes!` under `dir`, relative to the
/// repository.
fn embedded(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read a source dir") {
        let path = entry.expect("a dir entry").path();
        if path.is_dir() {
            embedded(&path, root, out);
            continue;
        }
        // Unit-test files are not in the release build (a test module inside another file
        // is, to this check, which then asks for more than the build needs, never less).
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if !name.ends_with(".rs") || name.ends_with("_tests.rs") || name == "tests.rs" {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read a source file");
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = &text[at + macro_name.len()..];
                let Some(end) = rest.find('"') else { continue };
                let relative = path.parent().expect("a parent").join(&rest[..end]);
                let relative = relative.strip_prefix(root).expect("under the repository");
                out.push(normal(relative));
            }
        }
    }
}

/// Whether `.dockerignore` leaves `path` in the context: its patterns are repository-relative
/// paths (optionally with a leading `/`, a trailing `/`, or `**/` for "at any depth").
fn ignored(path: &Path, dockerignore: &str) -> bool {
    dockerignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .any(|pattern| {
            let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
            match pattern.strip_prefix("**/") {
                Some(name) => path
                    .components()
                    .any(|component| component.as_os_str() == name),
                None => path.starts_with(pattern),
            }
        })
}

fn required_inputs(root: &Path) -> Vec<PathBuf> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let mut required = vec![
        PathBuf::from("Cargo.toml"),
        PathBuf::from("Cargo.lock"),
        PathBuf::from("build.rs"),
        PathBuf::from("src/main.rs"),
    ];
    required.extend(manifest_inputs(&manifest));
    embedded(&root.join("src"), root, &mut required);
    required.sort();
    required.dedup();
    required
}

#[test]
fn the_build_stage_copies_every_file_the_release_build_reads() {
    let root = root();
    let dockerfile = fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let dockerignore = fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
    let copies = build_stage_copies(&dockerfile);
    assert!(!copies.is_empty(), "no COPY in the build stage");
    let required = required_inputs(&root);
    for input in [
        "vendor/actix-http",
        "benches/load/baseline.rs",
        "clients/js/src",
    ] {
        assert!(
            required.iter().any(|path| path.starts_with(input)),
            "the inputs found miss {input}: {required:?}"
        );
    }
    let mut missing = Vec::new();
    for path in &required {
        assert!(
            root.join(path).exists(),
            "{} does not exist",
            path.display()
        );
        let copied = copies
            .iter()
            .any(|copy| copy.as_os_str() == "" || path.starts_with(copy));
        if !copied || ignored(path, &dockerignore) {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "the Dockerfile's build stage does not copy (or .dockerignore drops) what \
         `cargo build --bin banditd` reads: {missing:?}"
    );
}

#[test]
fn the_checks_parsers_read_what_they_are_meant_to() {
    let dockerfile = "FROM rust AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY src ./src\n\
                      COPY ./vendor/ ./vendor\nFROM debian\nCOPY --from=build /a /b\nCOPY x /x\n";
    assert_eq!(
        build_stage_copies(dockerfile),
        ["Cargo.toml", "Cargo.lock", "src", "vendor"].map(PathBuf::from)
    );
    let manifest = "[package]\nname = \"x\"\n[[bench]]\nname = \"policy\"\nharness = false\n\
                    [[bench]]\nname = \"other\"\npath = \"b/o.rs\"\n[[bin]]\nname = \"y\"\n\
                    path = \"benches/load/y.rs\"\n[patch.crates-io]\n\
                    actix-http = { path = \"vendor/actix-http\" }\n";
    assert_eq!(
        manifest_inputs(manifest),
        [
            "benches/policy.rs",
            "b/o.rs",
            "benches/load/y.rs",
            "vendor/actix-http"
        ]
        .map(PathBuf::from)
    );
    let ignore = "# comment\n/target\n**/node_modules\n.git/\n";
    assert!(ignored(Path::new("target/release/banditd"), ignore));
    assert!(ignored(Path::new("clients/js/node_modules/x.js"), ignore));
    assert!(ignored(Path::new(".git/HEAD"), ignore));
    assert!(!ignored(Path::new("clients/js/src/banditd.js"), ignore));
    assert!(!ignored(Path::new("src/target.rs"), ignore));
}
