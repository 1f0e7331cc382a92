//! The data directory is private to the server's user: sled's log holds every assignment and
//! event, and a readable directory once exposed the token secret (issue 9). The directory is
//! created 0700 and every file the process creates afterwards is 0600, because the process
//! umask is narrowed before sled opens (sled creates `db`, `conf`, `blobs/` and `snap.*`
//! itself, with no way to pass a mode).
//!
//! An existing directory is not changed: an operator may have opened it to a backup group on
//! purpose. Startup warns, naming the path, when it is open to group or others. The files
//! inside are the store's own, and those are tightened to 0600 (directories to 0700), so a
//! store written by an older banditd (whose `db` was 0644) stops being readable by others.

use std::path::Path;

use super::error::StoreError;

/// Permission bits for group and others.
#[cfg(unix)]
const GROUP_OTHER_BITS: u32 = 0o077;

/// Narrows the process umask, creates `dir` (0700) if needed, warns about an open existing
/// directory, and tightens the files inside it.
///
/// The umask is process-wide and stays narrowed: every file this process creates from now on
/// is private to its user, which is what a server whose only files are its store wants.
pub fn prepare(dir: &Path) -> Result<(), StoreError> {
    restrict_umask();
    let created = !dir.exists();
    create_private_dir(dir)
        .map_err(|error| StoreError::Io(format!("cannot create {}: {error}", dir.display())))?;
    if !created {
        warn_if_open(dir);
        tighten_contents(dir);
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_umask() {
    use rustix::fs::Mode;
    use rustix::process::umask;
    // `umask` can only be read by setting it: set the private mask, then add back any stricter
    // bits the operator's mask already had.
    let previous = umask(Mode::from_raw_mode(GROUP_OTHER_BITS));
    let wanted = previous | Mode::from_raw_mode(GROUP_OTHER_BITS);
    if wanted != Mode::from_raw_mode(GROUP_OTHER_BITS) {
        umask(wanted);
    }
}

#[cfg(not(unix))]
fn restrict_umask() {}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_open(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & GROUP_OTHER_BITS != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:o}"),
                "the data dir {} is open to group or others (mode {mode:o}); \
                 banditd keeps its files 0600, but run `chmod 700 {}` unless that is intended",
                dir.display(),
                dir.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_open(_dir: &Path) {}

/// Sets every file under `dir` to 0600 and every directory below it to 0700, without
/// following symlinks. A file that cannot be changed is reported, not fatal: the store still
/// works, and the warning names the path for the operator.
#[cfg(unix)]
fn tighten_contents(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let private = if meta.is_dir() {
            tighten_contents(&path);
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & GROUP_OTHER_BITS == 0 {
            continue;
        }
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "{} was open to group or others (mode {mode:o}); now {private:o}",
                path.display()
            ),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "{} is open to group or others (mode {mode:o}) and cannot be tightened",
                path.display()
            ),
        }
    }
}

#[cfg(not(unix))]
fn tighten_contents(_dir: &Path) {}

#[cfg(all(test, unix))]
#[path = "data_dir_tests.rs"]
mod tests;

/// `fsync` of a directory, so that a file created, renamed or removed in it stays so: a
/// directory entry is only on disk once its directory is synced.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
