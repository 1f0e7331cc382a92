//! A bench-only timeline of the replica's group commits, to see where one commit's round goes
//! under load (`benches/load/results/rnew2-2026-11-30-s7.md`).
//!
//! Off unless the environment names a file in `BANDITD_REDIS_TIMELINE` when the store opens;
//! then the commit task appends one line per commit, every time in µs since the store opened:
//! `oldest woken closed sent replied answered commands calls`, where `oldest` is when the
//! commit's oldest command was queued, `woken` when the task took its first command, `closed`
//! when it stopped taking what was queued, `sent` when its script calls were
//! built and handed to the connection, `replied` when every reply was read and `answered` when
//! every waiting request was sent its result. Then the reward step, where a bulk commit spends
//! its round (its rewards are judged by calls of their own after `replied`, `direct`):
//! `begun built rewarded judged rewards`, where `begun` is when the reward step started,
//! `built` when the single-primary reward calls were built (before they were handed to the
//! connection), `rewarded` when their replies were read, `judged` when every outcome was set,
//! and `rewards` how many reward ops those calls carried (every time is `replied` and
//! `rewards` is 0 in a commit without rewards; under Cluster the three steps are not split).
//! What is left of `answered` after `judged` is the rest: three-step fallbacks, fixing epoch
//! starts, answering. Off, it costs one branch per commit.

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
    /// The reward step (see the module doc).
    pub begun: Instant,
    pub built: Instant,
    pub rewarded: Instant,
    pub judged: Instant,
    pub rewards: usize,
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
            begun: now,
            built: now,
            rewarded: now,
            judged: now,
            rewards: 0,
        }
    }

    /// The reward step did not run: its moments are the sticky calls' reply.
    pub fn no_rewards(&mut self) {
        self.begun = self.replied;
        self.built = self.replied;
        self.rewarded = self.replied;
        self.judged = self.replied;
        self.rewards = 0;
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
            "{} {} {} {} {} {} {commands} {calls} {} {} {} {} {}",
            us(stamps.oldest),
            us(stamps.woken),
            us(stamps.closed),
            us(stamps.sent),
            us(stamps.replied),
            us(stamps.answered),
            us(stamps.begun),
            us(stamps.built),
            us(stamps.rewarded),
            us(stamps.judged),
            stamps.rewards,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A timeline writing to `path`, its origin `origin`.
    fn to_file(path: &std::path::Path, origin: Instant) -> Timeline {
        Timeline {
            origin,
            out: File::create(path).ok().map(BufWriter::new),
            pending: 0,
        }
    }

    #[test]
    fn a_commit_line_carries_its_reward_step_after_its_eight_fields() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("timeline.txt");
        let origin = Instant::now();
        let at = |us: u64| origin + Duration::from_micros(us);
        let mut stamps = Stamps::at(at(1));
        stamps.woken = at(2);
        stamps.closed = at(3);
        stamps.sent = at(4);
        stamps.replied = at(5);
        stamps.begun = at(6);
        stamps.built = at(7);
        stamps.rewarded = at(8);
        stamps.judged = at(9);
        stamps.answered = at(10);
        stamps.rewards = 1000;
        let mut plain = Stamps::at(at(20));
        plain.replied = at(25);
        plain.answered = at(26);
        plain.begun = at(99);
        plain.no_rewards();
        let mut timeline = to_file(&path, origin);
        timeline.record(&stamps, 2, 1);
        timeline.record(&plain, 3, 1);
        drop(timeline);
        let text = std::fs::read_to_string(&path).expect("the timeline");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "1 2 3 4 5 10 2 1 6 7 8 9 1000",
                "20 20 20 20 25 26 3 1 25 25 25 25 0"
            ]
        );
    }
}
