//! Checkpoints of the redo log (`wal`): sled flushed on a thread of its own, off the commit path.
//!
//! The writer starts one when the log passes its size or age (`wal::DEFAULT_CHECKPOINT_BYTES`,
//! `wal::CHECKPOINT_AGE_MS`), right after a commit: every record written so far is then
//! applied to sled, the writer moves to a fresh segment and hands the sealed ones here. This
//! thread calls sled's flush (which writes every buffer sled holds, so every batch applied
//! before it) and then `fdatasync`s sled's log file (sled's flush on Linux ends in
//! `sync_file_range`, which survives `kill -9` but not a power cut: `disk::OpenDb`). Once both
//! returned, sled holds the sealed segments' records durably and they are freed; the writer
//! reuses them. Meanwhile commits go on into the fresh segment (sled's flush runs alongside
//! the writer's op-by-op apply; a record it may or may not cover stays in the log until the next
//! checkpoint).
//!
//! A failed flush leaves sled with its global I/O error (`disk`): the writer is told, fails its
//! next commit before writing anything, and reopens the store, whose replay puts every
//! record back (`wal_replay`).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use super::disk::OpenDb;
use super::error::StoreError;

/// How a checkpoint ended.
#[derive(Debug)]
pub enum CheckpointDone {
    /// sled holds these segment slots' records durably.
    Flushed(Vec<usize>),
    Failed(StoreError),
}

struct Request {
    open: Arc<OpenDb>,
    slots: Vec<usize>,
}

/// The writer's handle on its checkpoint thread (one per opened log; the thread ends when
/// the handle is dropped, after the checkpoint it runs).
pub struct Checkpointer {
    requests: mpsc::Sender<Request>,
    done: Arc<Mutex<Option<CheckpointDone>>>,
    /// Set with `done`, so that the writer's per-commit look takes no lock.
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    pub fn start() -> Result<Self, StoreError> {
        let (requests, receiver) = mpsc::channel::<Request>();
        let done: Arc<Mutex<Option<CheckpointDone>>> = Arc::default();
        let ready: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (thread_done, thread_ready) = (Arc::clone(&done), Arc::clone(&ready));
        std::thread::Builder::new()
            .name("banditd-store-checkpoint".to_owned())
            .spawn(move || {
                for request in receiver {
                    let outcome = checkpoint(&request.open);
                    // The database handle goes before the writer hears: a reopen must not wait
                    // for this thread's handle (sled's directory lock).
                    drop(request.open);
                    release_deferred_frees();
                    let done = match outcome {
                        Ok(()) => CheckpointDone::Flushed(request.slots),
                        Err(error) => CheckpointDone::Failed(error),
                    };
                    *thread_done.lock().unwrap_or_else(PoisonError::into_inner) = Some(done);
                    thread_ready.store(true, std::sync::atomic::Ordering::Release);
                }
            })
            .map_err(|error| {
                StoreError::Io(format!("cannot start the checkpoint thread: {error}"))
            })?;
        Ok(Checkpointer {
            requests,
            done,
            ready,
        })
    }

    /// Hands a checkpoint of `slots` to the thread (the writer starts one at a time).
    pub fn request(&self, open: Arc<OpenDb>, slots: Vec<usize>) {
        // The thread ends only when this handle is dropped: the send cannot fail.
        let _ = self.requests.send(Request { open, slots });
    }

    /// The outcome of the last checkpoint, once (`None` while it runs or none finished).
    pub fn finished(&self) -> Option<CheckpointDone> {
        if !self.ready.swap(false, std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Hands the frees this thread deferred to crossbeam-epoch's global queue, where any thread's
/// next pins collect them once no reader can see them.
///
/// sled's flush seals its log buffer and defers the drop of the sealed buffer's handle on the
/// calling thread (`pin().defer(..)` without a flush: sled-0.34.7 pagecache/iobuf.rs,
/// `maybe_seal_and_write_iobuf`), and crossbeam-epoch keeps a thread's deferred functions in
/// the thread's own bag until 64 are there. This thread pins for nothing else and flushes about
/// once a second, so each sled log segment's 8 MiB buffer (`disk::SEGMENT_BYTES`), shared by
/// every seal within the segment, stayed allocated for ~64 checkpoints: under the soak's mixed
/// load RSS rose ~1.5–3.5 MiB/s and fell back every ~60 s, when the bag filled
/// (`benches/load/results/rss8-2026-12-01-s13.md`).
fn release_deferred_frees() {
    crossbeam_epoch::pin().flush();
}

fn checkpoint(open: &OpenDb) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    #[cfg(test)]
    open.checkpoint_hook()?;
    let flushed = open.sync()?;
    tracing::debug!(
        flushed,
        millis = started.elapsed().as_millis() as u64,
        "store checkpoint"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::{CheckpointDone, Checkpointer};
    use crate::store::disk::Location;

    /// Pins and flushes on this thread until `freed` or the deadline: each flush collects
    /// the global queue's expired bags, never another thread's own bag.
    fn collect_until(freed: &AtomicBool, deadline: Instant) -> bool {
        while !freed.load(Ordering::SeqCst) && Instant::now() < deadline {
            crossbeam_epoch::pin().flush();
            std::thread::sleep(Duration::from_millis(1));
        }
        freed.load(Ordering::SeqCst)
    }

    #[test]
    fn a_free_deferred_during_a_checkpoint_runs_while_the_thread_waits_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location {
            dir: dir.path().to_path_buf(),
            page_cache_mb: 4,
        };
        let open = Arc::new(location.open().unwrap().open);
        open.db.insert(b"k", b"v").unwrap();
        let freed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&freed);
        // As sled's flush does with a sealed log buffer: one free deferred on this thread.
        *open.on_checkpoint.lock().unwrap() = Some(Box::new(move || {
            crossbeam_epoch::pin().defer(move || flag.store(true, Ordering::SeqCst));
        }));
        let checkpointer = Checkpointer::start().unwrap();
        checkpointer.request(Arc::clone(&open), vec![0]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let outcome = loop {
            if let Some(done) = checkpointer.finished() {
                break done;
            }
            assert!(Instant::now() < deadline, "the checkpoint did not finish");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(matches!(outcome, CheckpointDone::Flushed(slots) if slots == [0]));
        // The thread is alive, waiting for the next request: its bag is not flushed by an exit.
        assert!(
            collect_until(&freed, Instant::now() + Duration::from_secs(10)),
            "the free deferred on the checkpoint thread was never run"
        );
        drop(checkpointer);
    }
}
