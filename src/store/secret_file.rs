//! Named secrets of the embedded store (the token HMAC key), each in its own file
//! `<data dir>/<name>.secret`, mode 0600, holding the key bytes exactly.
//!
//! Until issue 9 the key lived inside sled's `db` file, at a fixed offset of a file the whole
//! machine could read. A file of its own can be private, backed up or rotated on its own, and
//! is never copied into sled's log. A store that still holds a key in sled has it moved here on
//! open ([`migrate_from_sled`]), so tokens issued before the upgrade keep verifying.
//!
//! A file is published whole or not at all: the key is written to a temporary file created
//! 0600 (`O_CREAT | O_EXCL`), synced, renamed into place and the directory synced, so no
//! reader ever sees a partial key and the key is never readable by others, not even for an
//! instant. One process at a time opens a store (sled locks the directory) and a process-wide
//! mutex orders its own callers, so the first key made is the one every caller gets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::error::StoreError;
use super::{codec, keys};

/// Orders the callers of [`read_or_create`] within this process.
static CREATING: Mutex<()> = Mutex::new(());

/// Where the secret `name` is kept.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.secret"))
}

/// The secret `name`, made by `make` and stored on first use.
pub fn read_or_create(
    dir: &Path,
    name: &str,
    make: &mut dyn FnMut() -> Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    check_name(name)?;
    let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(secret) = read(dir, name)? {
        return Ok(secret);
    }
    let secret = make();
    publish(dir, name, &secret)?;
    Ok(secret)
}

/// The secret `name` if its file exists.
pub fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let path = path(dir, name);
    let secret = match std::fs::read(&path) {
        Ok(secret) => secret,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {error}",
                path.display()
            )));
        }
    };
    if secret.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "{} is empty; delete it to have a new secret generated (tokens signed with the \
             old one stop verifying)",
            path.display()
        )));
    }
    Ok(Some(secret))
}

/// Moves every secret an older banditd kept in sled to its file, then removes it from sled.
/// The file is durable before the sled key goes, so a crash in between leaves the key in both
/// places and the next open finishes the move. An existing file wins over the sled copy: it is
/// the key that has been in use since.
pub fn migrate_from_sled(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let prefix = keys::secret_key("");
    let mut moved = Vec::new();
    for entry in db.scan_prefix(&prefix) {
        let (key, value) = entry.map_err(|error| StoreError::Io(error.to_string()))?;
        let name = std::str::from_utf8(&key[prefix.len()..])
            .map_err(|_| StoreError::Corrupt("a stored secret has a non-UTF-8 name".to_owned()))?
            .to_owned();
        check_name(&name)?;
        let (secret, _seq) = codec::decode_secret(&value)?;
        let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
        if read(dir, &name)?.is_none() {
            publish(dir, &name, &secret)?;
        }
        tracing::info!(
            path = %path(dir, &name).display(),
            "moved the {name} secret out of the store's database into its own file"
        );
        moved.push(key);
    }
    if moved.is_empty() {
        return Ok(());
    }
    for key in moved {
        db.remove(key)
            .map_err(|error| StoreError::Io(error.to_string()))?;
    }
    db.flush()
        .map_err(|error| StoreError::Io(error.to_string()))?;
    Ok(())
}

/// Secret names become file names: lowercase letters, digits and `-` only.
fn check_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "secret name {name:?} is not of the form [a-z0-9-]+"
        )))
    }
}

/// Writes `secret` to its file atomically (see the module doc). The caller holds `CREATING`.
fn publish(dir: &Path, name: &str, secret: &[u8]) -> Result<(), StoreError> {
    let target = path(dir, name);
    let temporary = dir.join(format!(".{name}.secret.tmp"));
    let failed = |what: &str, path: &Path, error: std::io::Error| {
        StoreError::Io(format!("cannot {what} {}: {error}", path.display()))
    };
    // Left by a crash between create and rename: never published, so never used.
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed("remove", &temporary, error)),
    }
    let mut file = private_new_file(&temporary).map_err(|e| failed("create", &temporary, e))?;
    file.write_all(secret)
        .and_then(|()| file.sync_all())
        .map_err(|e| failed("write", &temporary, e))?;
    drop(file);
    std::fs::rename(&temporary, &target).map_err(|e| failed("create", &target, e))?;
    super::data_dir::sync_dir(dir).map_err(|e| failed("sync", dir, e))
}

/// Creates `path`, failing if it exists, readable and writable by the owner only from the
/// moment it exists (the mode is given to `open(2)`, not set afterwards).
#[cfg(unix)]
fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(all(test, unix))]
#[path = "secret_file_tests.rs"]
mod tests;
