//! A bench-only timeline of the replica's group commits, to see where one commit's round goes
//! under load (`benches/load/results/rnew2-2026-11-30-s7.md`).
//!
//! Off unless the environment names a file in `BANDITD_REDIS_TIMELINE` when the store opens;
//! then the commit task appends one line per commit, every time in µs since the store opened:
//! `oldest woken closed sent replied answered commands calls`, where `oldest` is when the
//! commit's oldest command was queued, `woken` when the task took its first command, `closed`
//! when it stopped taking what was queued, `sent` when its script calls were
//! built and handed to the connection, `replied` when every reply was read and `answered` when
//! every waiting request was sent its result. Off, it costs one branch per commit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

/// The environment variable that switches the timeline on (a file path).
pub const TIMELINE_ENV: &str = "BANDITD_REDIS_TIMELINE";

/// Lines kept in memory before they are written out.
const FLUSH_EVERY: u32 = 256;

/// The moments of one commit.
#[derive(Clone, Copy)]
pub struct Stamps {
    pub oldest: Instant,
    pub woken: Instant,
    pub closed: Instant,
    pub sent: Instant,
    pub replied: Instant,
    pub answered: Instant,
}

impl Stamps {
    pub fn at(now: Instant) -> Self {
        Self {
            oldest: now,
            woken: now,
            closed: now,
            sent: now,
            replied: now,
            answered: now,
        }
    }
}

/// The commit task's timeline file, if the bench asked for one.
pub struct Timeline {
    origin: Instant,
    out: Option<BufWriter<File>>,
    pending: u32,
}

impl Timeline {
    /// Opens the file the environment names; a file that cannot be created leaves it off (the
    /// store works the same) and says so once.
    pub fn from_env() -> Self {
        let out = std::env::var_os(TIMELINE_ENV).and_then(|path| match File::create(&path) {
            Ok(file) => Some(BufWriter::new(file)),
            Err(error) => {
                tracing::warn!(%error, "cannot create the redis commit timeline file");
                None
            }
        });
        Self {
            origin: Instant::now(),
            out,
            pending: 0,
        }
    }

    pub fn is_on(&self) -> bool {
        self.out.is_some()
    }

    pub fn record(&mut self, stamps: &Stamps, commands: usize, calls: usize) {
        let origin = self.origin;
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let us = |at: Instant| at.saturating_duration_since(origin).as_micros();
        let written = writeln!(
            out,
            "{} {} {} {} {} {} {commands} {calls}",
            us(stamps.oldest),
            us(stamps.woken),
            us(stamps.closed),
            us(stamps.sent),
            us(stamps.replied),
            us(stamps.answered),
        );
        self.pending += 1;
        if written.is_err() || (self.pending >= FLUSH_EVERY && out.flush().is_err()) {
            // A bench aid: a full disk switches it off rather than the store.
            self.out = None;
        }
        if self.pending >= FLUSH_EVERY {
            self.pending = 0;
        }
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }
}
