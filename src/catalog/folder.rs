//! Finding and reading experiment files without reading anything else.
//!
//! Why this is careful: the folder is written by analysts (or by whoever can write to it), but
//! read by the server with the server's rights, and error messages travel on to the reload
//! response, `GET /v1/admin/config` and the log. A link to `/etc/shadow` named `x.yaml`, a
//! named pipe that blocks whoever opens it, or a 100 MB file must each be refused before a
//! byte of it is read. So every entry's type is taken from `symlink_metadata` first; a
//! symbolic link is followed only when its target, canonicalized, lies inside the folder
//! (the layout of a Kubernetes ConfigMap mount: `x.yaml -> ..data/x.yaml`, `..data ->
//! ..2026_11_29_…/`); sizes are checked against the limits before any file is opened; and
//! the file that is opened must still be the one that was checked.

use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::spec::SpecError;

/// Largest experiment file read, in bytes (1 MiB). A spec with 100 variants and generous
/// payloads is a few tens of kilobytes; the limit leaves room for large payloads while a
/// file that is plainly not an experiment (a log, a dump) is refused without being read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Most experiment files in one folder. Each is a live experiment with its own counters and
/// stats; a thousand is far beyond what one team runs at once, and bounds what one reload
/// reads and validates.
pub const MAX_FOLDER_FILES: usize = 1_000;

/// Most bytes of experiment files in one folder (64 MiB), checked from the files' sizes
/// before any is read.
pub const MAX_FOLDER_BYTES: u64 = 64 * 1024 * 1024;

/// An experiment file found and checked: the path analysts know it by (used in messages and
/// as the experiment's source), and the path its bytes are read from (the link's target).
#[derive(Debug, Clone)]
pub(crate) struct FoundFile {
    pub path: PathBuf,
    pub resolved: PathBuf,
    metadata: Metadata,
}

/// The experiment files of one folder (sorted by name), and the entries that were refused.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub files: Vec<FoundFile>,
    pub refused: Vec<SpecError>,
}

/// Lists the experiment files of `dir` (non-recursive; `.yaml`/`.yml`; dotfiles, which
/// include a ConfigMap's `..data` and `..2026_…` entries, are skipped so nothing is loaded
/// twice). Refused entries are collected; a folder over a limit is an error of its own,
/// returned before any file is read.
pub(crate) fn list_folder(dir: &Path) -> Result<Listing, SpecError> {
    let unreadable = |e: std::io::Error| {
        SpecError::whole_file(dir, format!("cannot read the experiment folder: {e}"))
    };
    let root = std::fs::canonicalize(dir).map_err(unreadable)?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(|e| {
            SpecError::whole_file(dir, format!("cannot list the experiment folder: {e}"))
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_yaml = Path::new(name.as_ref())
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
        if !name.starts_with('.') && is_yaml {
            names.push(entry.path());
        }
    }
    // Counted from the names alone, before any entry is examined.
    check_file_count(dir, names.len())?;
    let mut listing = Listing::default();
    for path in names {
        match check_entry(&root, path) {
            Ok(Some(file)) => listing.files.push(file),
            Ok(None) => {}
            Err(refused) => listing.refused.push(refused),
        }
    }
    listing
        .files
        .sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    check_folder_bytes(dir, &listing.files)?;
    Ok(listing)
}

/// A file named on the command line (`banditd validate FILE`): the analyst chose it, so a
/// link is followed wherever it points, but it must still be a regular file within the size
/// limit.
pub(crate) fn named_file(path: &Path) -> Result<FoundFile, SpecError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| SpecError::whole_file(path, format!("cannot read the file: {e}")))?;
    if !metadata.is_file() {
        return Err(not_a_regular_file(path, &metadata));
    }
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(FoundFile {
        path: path.to_path_buf(),
        resolved,
        metadata,
    })
}

/// Reads a checked file: refused without opening when its size is over the limit, and
/// refused when the file opened is not the one checked (replaced in between) or has grown
/// past the limit since.
pub(crate) fn read_file(file: &FoundFile) -> Result<Vec<u8>, SpecError> {
    let refuse = |message: String| SpecError::whole_file(&file.path, message);
    check_file_size(&file.path, file.metadata.len())?;
    let opened = open_without_blocking(&file.resolved)
        .map_err(|e| refuse(format!("cannot read the file: {e}")))?;
    let opened_metadata = opened
        .metadata()
        .map_err(|e| refuse(format!("cannot read the file: {e}")))?;
    if !opened_metadata.is_file() || !same_file(&opened_metadata, &file.metadata) {
        return Err(refuse(
            "was replaced while it was being read; reload again once the folder is written"
                .to_owned(),
        ));
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read the file: {e}")))?;
    check_file_size(&file.path, u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
    Ok(bytes)
}

/// Opens for reading without waiting for a writer: a file swapped for a named pipe between
/// the type check and the open would otherwise block the loader thread (and the reload lock)
/// until somebody writes to it. `O_NONBLOCK` changes nothing for a regular file; for a pipe
/// the open returns at once and the inode check in [`read_file`] refuses it.
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    options.open(path)
}

/// One directory entry: `Ok(None)` for a folder (subfolders are not loaded), a checked file,
/// or why it is refused.
fn check_entry(root: &Path, path: PathBuf) -> Result<Option<FoundFile>, SpecError> {
    let unreadable =
        |e: std::io::Error| SpecError::whole_file(&path, format!("cannot read the file: {e}"));
    let own = std::fs::symlink_metadata(&path).map_err(unreadable)?;
    let (resolved, metadata) = if own.file_type().is_symlink() {
        let Ok(target) = std::fs::canonicalize(&path) else {
            return Err(SpecError::whole_file(
                &path,
                "is a symbolic link to nothing (its target does not exist); remove the link \
                 or restore its target",
            ));
        };
        if !target.starts_with(root) || target == root {
            return Err(SpecError::whole_file(
                &path,
                "is a symbolic link to a file outside the experiment folder, which is not \
                 read; links are followed only within the folder (as in a Kubernetes \
                 ConfigMap mount), so copy the file into the folder instead",
            ));
        }
        let metadata = std::fs::metadata(&target).map_err(unreadable)?;
        (target, metadata)
    } else {
        (path.clone(), own)
    };
    if metadata.is_dir() {
        return Ok(None);
    }
    if !metadata.is_file() {
        return Err(not_a_regular_file(&path, &metadata));
    }
    Ok(Some(FoundFile {
        path,
        resolved,
        metadata,
    }))
}

fn not_a_regular_file(path: &Path, metadata: &Metadata) -> SpecError {
    SpecError::whole_file(
        path,
        format!(
            "is {}, not a regular file, and is not read; experiment files must be plain files",
            file_kind(metadata)
        ),
    )
}

/// How a message names a special file.
fn file_kind(metadata: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if metadata.is_dir() {
        "a folder"
    } else {
        "a special file"
    }
}

fn check_file_size(path: &Path, bytes: u64) -> Result<(), SpecError> {
    if bytes > MAX_FILE_BYTES {
        return Err(SpecError::whole_file(
            path,
            format!(
                "is {} bytes or more, above the limit of {MAX_FILE_BYTES} bytes (1 MiB) for \
                 one experiment file; it is not read. Is it an experiment? Payloads this \
                 large belong in the frontend",
                bytes.min(MAX_FILE_BYTES + 1)
            ),
        ));
    }
    Ok(())
}

fn check_file_count(dir: &Path, count: usize) -> Result<(), SpecError> {
    if count > MAX_FOLDER_FILES {
        return Err(SpecError::whole_file(
            dir,
            format!(
                "holds {count} experiment files, above the limit of {MAX_FOLDER_FILES} per \
                 folder; nothing was read. Archive concluded experiments elsewhere"
            ),
        ));
    }
    Ok(())
}

fn check_folder_bytes(dir: &Path, files: &[FoundFile]) -> Result<(), SpecError> {
    let total: u64 = files.iter().map(|f| f.metadata.len()).sum();
    if total > MAX_FOLDER_BYTES {
        return Err(SpecError::whole_file(
            dir,
            format!(
                "holds {total} bytes of experiment files, above the limit of \
                 {MAX_FOLDER_BYTES} bytes (64 MiB) per folder; nothing was read"
            ),
        ));
    }
    Ok(())
}

/// Whether two metadata describe one file (same device and inode): the file opened is the
/// file whose type and size were checked.
#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &Metadata, _b: &Metadata) -> bool {
    true
}
