//! Reloading when the experiment folder changes, from filesystem notifications.
//!
//! Why notifications: the watcher used to hash the whole folder every second, which cost an
//! idle server 1.4–6 CPU-seconds per 20 s with a large folder. The operating system says when
//! something changed (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows,
//! kqueue on the BSDs), so an idle server reads nothing. Where no notification backend
//! works (the platform has none, or the inotify watch limit is reached), the watcher falls
//! back to stat-ing the folder's entries every [`POLL_INTERVAL_MS`] (metadata only, never
//! the files' bytes), and logs which mode it runs in.
//!
//! What counts as a change: anything happening to an experiment file (`*.yaml`, `*.yml`,
//! not hidden) or to a `..`-prefixed entry, which is how a Kubernetes ConfigMap mount swaps
//! its files (`..data` is re-pointed at a new `..2026_…` folder in one rename). Editors'
//! swap and backup files and the server's own reads (open and close events) are not. The
//! watch is not recursive: a file edited in place inside a subfolder behind a link is not
//! noticed (SIGHUP or `POST /v1/admin/reload` reload it).
//!
//! A change is reloaded once the folder has held still for [`WATCH_DEBOUNCE_MS`], so an
//! editor's or `git checkout`'s burst of writes becomes one reload. The reload is the
//! engine's, all or nothing: an invalid set of files never replaces the running one, and
//! the refusal is logged and kept for `GET /v1/admin/config`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::engine::{Engine, WatchMode};

/// How long the folder must hold still after a change before it is reloaded.
pub const WATCH_DEBOUNCE_MS: u64 = 300;

/// How often the polling fallback stats the folder's entries.
pub const POLL_INTERVAL_MS: u64 = 2_000;

/// A running watch on the engine's folder. Started while the server is built, before it
/// answers anybody, so that no change made once the server is ready can go unnoticed (a
/// watch started after the first answers missed files written in that moment).
pub struct FolderWatch {
    engine: Arc<Engine>,
    /// Kept alive for as long as the loop runs: dropping it stops the notifications.
    _watcher: Box<dyn Watcher + Send>,
    changed: mpsc::UnboundedReceiver<()>,
}

impl FolderWatch {
    /// Starts watching the engine's folder. `None` when the engine has no folder or no
    /// watcher at all can be started (logged).
    pub fn start(engine: Arc<Engine>) -> Option<Self> {
        let dir = engine.source().map(|s| s.dir.clone())?;
        let (changes, changed) = mpsc::unbounded_channel();
        let handler = Relay {
            dir: dir.clone(),
            changes,
        };
        let (watcher, mode) = start(&dir, handler)?;
        engine.set_watch_mode(mode, Some(WATCH_DEBOUNCE_MS));
        Some(FolderWatch {
            engine,
            _watcher: watcher,
            changed,
        })
    }

    /// Reloads on changes until the task is dropped.
    pub async fn run(mut self) {
        let debounce = Duration::from_millis(WATCH_DEBOUNCE_MS);
        while self.changed.recv().await.is_some() {
            // Wait until nothing has changed for the debounce interval.
            loop {
                match tokio::time::timeout(debounce, self.changed.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            // The outcome is logged and kept in the config status by `reload`.
            let _ = self.engine.reload("watch").await;
        }
    }
}

/// Starts the platform's notification watcher on `dir`, or the polling one where that fails.
fn start(dir: &Path, handler: Relay) -> Option<(Box<dyn Watcher + Send>, WatchMode)> {
    let notified = RecommendedWatcher::new(handler.clone(), notify::Config::default()).and_then(
        |mut watcher| {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        },
    );
    let error = match notified {
        Ok(watcher) => {
            tracing::info!(
                folder = %dir.display(),
                debounce_ms = WATCH_DEBOUNCE_MS,
                "watching the experiment folder with filesystem notifications"
            );
            return Some((Box::new(watcher), WatchMode::Notify));
        }
        Err(error) => error,
    };
    match start_polling(dir, handler) {
        Ok(watcher) => {
            tracing::warn!(
                folder = %dir.display(),
                %error,
                poll_interval_ms = POLL_INTERVAL_MS,
                debounce_ms = WATCH_DEBOUNCE_MS,
                "filesystem notifications are unavailable; polling the experiment folder"
            );
            Some((Box::new(watcher), WatchMode::Poll))
        }
        Err(poll_error) => {
            tracing::error!(
                folder = %dir.display(),
                %error,
                %poll_error,
                "cannot watch the experiment folder; reload with SIGHUP or POST /v1/admin/reload"
            );
            None
        }
    }
}

/// The fallback: stats the entries (following links, so a ConfigMap's swap is seen) and
/// compares modification times; the files' bytes are never read.
fn start_polling(dir: &Path, handler: Relay) -> notify::Result<PollWatcher> {
    let config = notify::Config::default()
        .with_poll_interval(Duration::from_millis(POLL_INTERVAL_MS))
        .with_compare_contents(false);
    let mut watcher = PollWatcher::new(handler, config)?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Passes the events that concern experiment files on to the debounce loop. Runs on the
/// notification backend's own thread, so it only sends.
#[derive(Clone)]
struct Relay {
    dir: PathBuf,
    changes: mpsc::UnboundedSender<()>,
}

impl notify::EventHandler for Relay {
    fn handle_event(&mut self, event: notify::Result<Event>) {
        let relevant = match &event {
            Ok(event) => is_relevant(event, &self.dir),
            Err(error) => {
                // A lost watch or an overflowed queue: the folder may have changed unseen,
                // so look again.
                tracing::warn!(%error, "the folder watcher reported an error; re-reading");
                true
            }
        };
        if relevant {
            let _ = self.changes.send(());
        }
    }
}

/// Whether `event` may have changed the experiment set.
fn is_relevant(event: &Event, dir: &Path) -> bool {
    match event.kind {
        // A file written and closed: the clearest "done writing" there is.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        // Opens and reads, the server's own among them, change nothing.
        EventKind::Access(_) => return false,
        _ => {}
    }
    if event.need_rescan() || event.paths.is_empty() {
        return true;
    }
    event
        .paths
        .iter()
        .any(|path| path == dir || names_experiment_entry(path))
}

/// An experiment file, or a ConfigMap's `..data` / `..2026_…` entry.
fn names_experiment_entry(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    if name.starts_with("..") {
        return true;
    }
    let is_yaml = Path::new(name.as_ref())
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
    is_yaml && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn writes_renames_and_configmap_swaps_are_changes() {
        let dir = Path::new("/srv/experiments");
        for (kind, path) in [
            (
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                "/srv/experiments/home.yaml",
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/srv/experiments/home.yml",
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/srv/experiments/home.yaml",
            ),
            (
                EventKind::Create(CreateKind::File),
                "/srv/experiments/..data_tmp",
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/srv/experiments/..data",
            ),
            (
                EventKind::Remove(notify::event::RemoveKind::Folder),
                "/srv/experiments",
            ),
        ] {
            assert!(is_relevant(&event(kind, path), dir), "{kind:?} {path}");
        }
    }

    #[test]
    fn the_polling_fallback_reports_a_new_experiment_file() {
        let dir = tempfile::tempdir().unwrap();
        let (changes, mut changed) = mpsc::unbounded_channel();
        let relay = Relay {
            dir: dir.path().to_path_buf(),
            changes,
        };
        let _watcher = start_polling(dir.path(), relay).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an experiment").unwrap();
        std::fs::write(dir.path().join("home.yaml"), "id: home").unwrap();
        // Bounded so a broken fallback fails instead of hanging; a poll comes every 2 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match changed.try_recv() {
                Ok(()) => break,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("no change reported by polling: {error}"),
            }
        }
    }

    #[test]
    fn reads_and_other_files_are_not_changes() {
        let dir = Path::new("/srv/experiments");
        for (kind, path) in [
            (
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/srv/experiments/home.yaml",
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                "/srv/experiments/home.yaml",
            ),
            (
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/srv/experiments",
            ),
            (
                EventKind::Create(CreateKind::File),
                "/srv/experiments/.home.yaml.swp",
            ),
            (
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                "/srv/experiments/home.yaml~",
            ),
            (
                EventKind::Create(CreateKind::File),
                "/srv/experiments/README.md",
            ),
        ] {
            assert!(!is_relevant(&event(kind, path), dir), "{kind:?} {path}");
        }
    }
}
