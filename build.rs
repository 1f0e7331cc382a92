//! Embeds the git commit the binary is built from (`banditd --version`, `GET /v1/admin/build`,
//! the startup summary): `GIT_COMMIT` when set (a Docker build has no `.git`: pass it as a
//! build argument), else `git rev-parse HEAD` when git and a repository are there, else
//! "unknown" (src/build_info.rs reads the variables this sets).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    let from_env = std::env::var("GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let commit = from_env.or_else(|| {
        // Rebuild when HEAD moves: a checkout changes HEAD, a commit appends to logs/HEAD
        // (both resolved through git, so a worktree's own files are watched).
        for path in ["HEAD", "logs/HEAD"] {
            if let Some(file) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={file}");
            }
        }
        git(&["rev-parse", "HEAD"])
    });
    let commit = commit.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BANDITD_GIT_COMMIT={commit}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=BANDITD_BUILD_PROFILE={profile}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=BANDITD_BUILD_TARGET={target}");
}
