//! The group commit's gather (`--redis-commit-gather-us`): after a commit returns, the next one
//! waits, a bounded time, for the requests it answered to come back, so that a closed loop of
//! clients fills one round instead of splitting into two cohorts that alternate.
//!
//! Why: a Redis round (`appendfsync always`) costs ~1.5 ms whatever the commit's size, and
//! with one commit in flight the requests answered by round N come back while round N+1 (the
//! other cohort) is in flight, so each waits about two rounds
//! (`benches/load/results/s16-round-2026-12-01.md` §2). This is PostgreSQL's `commit_delay`
//! with `commit_siblings`, or MySQL's `binlog_group_commit_sync_delay` with `_no_delay_count`,
//! made adaptive so that it never costs an idle server:
//!
//! - The count to wait for is the last commit's size, counted in commands that arrived *after*
//!   that commit's answers went out: in a closed loop every answered request comes back, and
//!   those queued during the round (the other cohort) do not count, so the two cohorts merge.
//!   One request in flight: the last commit answered 1, the one that arrives is the count, and
//!   nothing waits. A commit closes at once when the count is reached.
//! - The time bound follows the measured round: the mean of the last [`ROUNDS`] commits'
//!   durations, capped by the flag (0 turns the gather off). A wait longer than a round would
//!   cost more than the round it tries to save; an open-loop load (clients that do not come
//!   back when answered) pays at most that bound per commit.
//! - A `Shutdown` closes the batch at once (its sender marks it urgent), and a commit that
//!   only flushes exposures never waits: their `FLUSH_EVERY_MS` promise is not delayed.
//!
//! Why this rule and not the literal "fewer queued than the last commit answered" (which
//! waits only when the cohorts are unequal, and then for the other cohort's stragglers): at 64
//! connections the cohorts are often about equal (31 and 32 units), so that rule would never
//! wait, while counting only what arrives after the answers merges them into one commit of
//! ~63 (`benches/load/results/rgather19-2026-12-02-s19.md`: commits per second halved,
//! banditd's and Redis's CPU per new unit down). The time bound is the mean round because
//! the answered requests come back within about one (the HTTP worker answers them all, then
//! reads the next ones: 0.5–0.6 ms to the first, as long again to the last, in that run's
//! timeline); cap values of 300 and 800 µs merged the cohorts as well, so the cap is a
//! ceiling for slow rounds, not the usual bound.
//!
//! The decision is [`decide`], a pure function of the arrivals, the last commits and the time
//! waited; [`Arrivals`] is the senders' side: they count every command and wake the commit
//! task only when the count it waits for is reached (not on every arrival, which would cost a
//! cross-thread wake-up per request on the HTTP worker's core).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The default cap on a gather's wait (µs).
pub const DEFAULT_GATHER_US: u64 = 2_000;

/// How many of the last commits set the time bound.
pub const ROUNDS: usize = 4;

/// Gathers in a row that end by their time bound, short of their count, after which the
/// gather pauses; and the pause's first and longest lengths, in commits.
pub const MISSES_TO_PAUSE: u32 = 2;
pub const PAUSE_FIRST: u32 = 16;
const PAUSE_MAX: u32 = 1024;

/// `--redis-commit-gather-us`: the longest a group commit waits for the requests the last one
/// answered (0: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitGather {
    pub cap_us: u64,
}

impl Default for CommitGather {
    fn default() -> Self {
        Self {
            cap_us: DEFAULT_GATHER_US,
        }
    }
}

impl CommitGather {
    pub fn is_on(&self) -> bool {
        self.cap_us > 0
    }

    fn cap(&self) -> Duration {
        Duration::from_micros(self.cap_us)
    }
}

/// The last commits that answered requests: their sizes (in commands) and rounds, newest last;
/// and how the last gathers ended.
///
/// Why the pause: a gather merges the cohorts when the requests a commit answered come back
/// within about a round. Where they cannot (hundreds of connections, whose answered requests
/// the one HTTP worker turns around over several rounds; an open-loop load), every gather
/// waits out its bound and closes short of its count, while Redis has nothing in flight and,
/// once every connection waits on a commit, the worker nothing to do: at 384 connections the
/// gather cost a fifth of the new units per second
/// (`benches/load/results/sat20-2026-12-02-s20.md`). So after [`MISSES_TO_PAUSE`] such
/// gathers in a row the next [`PAUSE_FIRST`] commits close at once; then one gather tries
/// again, and a miss doubles the pause (up to 1,024 commits) while a gather that reaches its
/// count ends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    commits: Vec<(usize, Duration)>,
    /// Gathers in a row that closed by their bound, short of their count.
    missed: u32,
    /// Commits left to close without a gather.
    paused: u32,
    /// The next pause's length.
    next_pause: u32,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            commits: Vec::new(),
            missed: 0,
            paused: 0,
            next_pause: PAUSE_FIRST,
        }
    }
}

impl Recent {
    /// Whether this commit may gather: false during a pause, which it counts down.
    pub fn take_turn(&mut self) -> bool {
        if self.paused > 0 {
            self.paused -= 1;
            return false;
        }
        true
    }

    /// Notes how a gather that waited ended: `merged` if its count arrived within the bound.
    /// Returns whether this gather started a pause.
    pub fn gathered(&mut self, merged: bool) -> bool {
        if merged {
            self.missed = 0;
            self.next_pause = PAUSE_FIRST;
            return false;
        }
        self.missed += 1;
        if self.missed < MISSES_TO_PAUSE {
            return false;
        }
        self.paused = self.next_pause;
        self.next_pause = (self.next_pause * 2).min(PAUSE_MAX);
        // After the pause, one gather tries: a miss pauses again at once.
        self.missed = MISSES_TO_PAUSE - 1;
        true
    }

    /// Notes a commit of `commands` that took `round` from closing to answering.
    pub fn record(&mut self, commands: usize, round: Duration) {
        if self.commits.len() == ROUNDS {
            self.commits.remove(0);
        }
        self.commits.push((commands, round));
    }

    fn last_size(&self) -> Option<usize> {
        self.commits.last().map(|(size, _)| *size)
    }

    fn mean_round(&self) -> Duration {
        let total: Duration = self.commits.iter().map(|(_, round)| *round).sum();
        match u32::try_from(self.commits.len()) {
            Ok(count) if count > 0 => total / count,
            _ => Duration::ZERO,
        }
    }
}

/// What the commit task does with the batch it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it now.
    Close,
    /// Wait until `arrivals` commands have arrived since the last answers, or until `until`
    /// has passed since the gather began, whichever comes first.
    Wait { arrivals: usize, until: Duration },
}

/// The gather's rule (see the module doc): `arrived` commands have arrived since the last
/// commit's answers went out, `waited` has passed since the batch could have closed.
pub fn decide(arrived: usize, recent: &Recent, waited: Duration, cap: Duration) -> Verdict {
    let Some(expected) = recent.last_size() else {
        return Verdict::Close;
    };
    if arrived >= expected {
        return Verdict::Close;
    }
    let until = recent.mean_round().min(cap);
    if waited >= until {
        return Verdict::Close;
    }
    Verdict::Wait {
        arrivals: expected,
        until,
    }
}

/// The senders' count of commands and the commit task's wake-up at a count.
pub struct Arrivals {
    sent: AtomicU64,
    /// The count at which a sender wakes the commit task (`u64::MAX`: nobody waits).
    wake_at: AtomicU64,
    /// A `Shutdown` was sent: close whatever is gathered.
    urgent: AtomicBool,
    notify: Notify,
    pub setting: CommitGather,
    /// Commits whose close the gather delayed, their waits in total (µs), and the pauses
    /// begun (the store's stats).
    pub delayed: AtomicU64,
    pub waited_us: AtomicU64,
    pub pauses: AtomicU64,
    /// Tests: how long each commit's Redis round is made to last, at least (ms).
    #[cfg(test)]
    pub round_floor_ms: AtomicU64,
}

impl Arrivals {
    pub fn new(setting: CommitGather) -> Self {
        Self {
            sent: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            urgent: AtomicBool::new(false),
            notify: Notify::new(),
            setting,
            delayed: AtomicU64::new(0),
            waited_us: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            #[cfg(test)]
            round_floor_ms: AtomicU64::new(0),
        }
    }

    /// Counts a command before it goes on the queue (so the count never lags what the commit
    /// task can take: a lone request it takes is already counted, and does not wait for its
    /// own count). Returns the count, for [`Arrivals::queued`].
    pub fn counting(&self, urgent: bool) -> u64 {
        if urgent {
            self.urgent.store(true, Ordering::Release);
        }
        self.sent.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Called once the command counted as `count` is on the queue: wakes the commit task if it
    /// waits for that count (after the send, so that the task it wakes finds the command).
    pub fn queued(&self, count: u64, urgent: bool) {
        if urgent || count >= self.wake_at.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    /// Both steps, for a command that is on the queue at once (tests).
    #[cfg(test)]
    pub fn arrive(&self, urgent: bool) {
        let count = self.counting(urgent);
        self.queued(count, urgent);
    }

    /// Commands sent so far (the commit task notes it when it answers).
    pub fn count(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Waits, as [`decide`] says, for the commands that arrive after `mark` (the count when
    /// the last commit answered), unless `recent` pauses the gather, and notes in `recent`
    /// whether a wait reached its count. Returns how long it waited.
    pub async fn gather(&self, mark: u64, recent: &mut Recent) -> Duration {
        if !self.setting.is_on() || !recent.take_turn() {
            return Duration::ZERO;
        }
        let began = std::time::Instant::now();
        // Whether the rule said wait at all: the record a test reads (not a clock's).
        let mut delayed = false;
        let mut target = mark;
        loop {
            if self.urgent.load(Ordering::Acquire) {
                break;
            }
            let arrived = usize::try_from(self.count().saturating_sub(mark)).unwrap_or(usize::MAX);
            let waited = began.elapsed();
            let Verdict::Wait { arrivals, until } =
                decide(arrived, recent, waited, self.setting.cap())
            else {
                break;
            };
            delayed = true;
            target = mark.saturating_add(arrivals as u64);
            self.wake_at.store(target, Ordering::Release);
            // A sender that counted before `wake_at` was set did not wake us: look again.
            if self.count() < target && !self.urgent.load(Ordering::Acquire) {
                let deadline = tokio::time::Instant::from_std(began + until);
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
            self.wake_at.store(u64::MAX, Ordering::Release);
        }
        if !delayed {
            return Duration::ZERO;
        }
        // A shutdown's close is neither: it says nothing of how the clients come back.
        if !self.urgent.load(Ordering::Acquire) && recent.gathered(self.count() >= target) {
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
        let waited = began.elapsed();
        self.delayed.fetch_add(1, Ordering::Relaxed);
        self.waited_us.fetch_add(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        waited
    }
}

#[cfg(test)]
impl Arrivals {
    /// Makes every commit's Redis round last at least `floor` (tests: a round long enough
    /// for a second cohort to queue during it, as on a loaded server).
    pub fn set_round_floor(&self, floor: Duration) {
        let ms = u64::try_from(floor.as_millis()).unwrap_or(u64::MAX);
        self.round_floor_ms.store(ms, Ordering::Relaxed);
    }

    pub async fn hold_round(&self) {
        let ms = self.round_floor_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn recent(commits: &[(usize, u64)]) -> Recent {
        let mut recent = Recent::default();
        for (size, round_us) in commits {
            recent.record(*size, Duration::from_micros(*round_us));
        }
        recent
    }

    #[test]
    fn the_first_commit_and_a_lone_request_close_at_once() {
        assert_eq!(
            decide(1, &Recent::default(), Duration::ZERO, MS),
            Verdict::Close
        );
        let lone = recent(&[(1, 1_500), (1, 1_500)]);
        assert_eq!(decide(1, &lone, Duration::ZERO, 2 * MS), Verdict::Close);
    }

    #[test]
    fn fewer_arrivals_than_the_last_commit_answered_wait_up_to_the_mean_round() {
        let two_cohorts = recent(&[(10, 1_000), (54, 2_000)]);
        assert_eq!(
            decide(0, &two_cohorts, Duration::ZERO, 5 * MS),
            Verdict::Wait {
                arrivals: 54,
                until: Duration::from_micros(1_500)
            }
        );
        assert_eq!(
            decide(53, &two_cohorts, Duration::from_micros(1_499), 5 * MS),
            Verdict::Wait {
                arrivals: 54,
                until: Duration::from_micros(1_500)
            }
        );
        // The count reached, or the bound passed: close.
        assert_eq!(
            decide(54, &two_cohorts, Duration::ZERO, 5 * MS),
            Verdict::Close
        );
        assert_eq!(
            decide(3, &two_cohorts, Duration::from_micros(1_500), 5 * MS),
            Verdict::Close
        );
    }

    #[test]
    fn the_flag_caps_the_wait_and_zero_turns_it_off() {
        let slow = recent(&[(64, 9_000)]);
        assert_eq!(
            decide(0, &slow, Duration::ZERO, MS),
            Verdict::Wait {
                arrivals: 64,
                until: MS
            }
        );
        assert_eq!(decide(0, &slow, MS, MS), Verdict::Close);
        assert_eq!(
            decide(0, &slow, Duration::ZERO, Duration::ZERO),
            Verdict::Close
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    /// Arrivals waiting on a slow round: the bound is 10 s, so a return well before it is
    /// the wake-up's doing.
    fn waiting() -> (Arrivals, Recent) {
        let arrivals = Arrivals::new(CommitGather { cap_us: 10_000_000 });
        (arrivals, recent(&[(3, 10_000_000)]))
    }

    #[test]
    fn the_senders_wake_the_gather_when_the_count_is_reached() {
        let (arrivals, mut recent) = waiting();
        let waited = std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_millis(5));
                    arrivals.arrive(false);
                }
            });
            runtime().block_on(arrivals.gather(0, &mut recent))
        });
        assert!(waited >= Duration::from_millis(10), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(arrivals.delayed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_shutdown_ends_the_gather_at_once() {
        let (arrivals, mut recent) = waiting();
        let waited = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(5));
                arrivals.arrive(true);
            });
            runtime().block_on(arrivals.gather(0, &mut recent))
        });
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Once shut down, nothing waits again.
        let again = runtime().block_on(arrivals.gather(arrivals.count(), &mut recent));
        assert!(again.is_zero());
    }

    /// Turns `recent` takes until it gathers again.
    fn paused_turns(recent: &mut Recent) -> u32 {
        let mut turns = 0;
        while !recent.take_turn() {
            turns += 1;
            assert!(turns <= PAUSE_MAX, "the pause never ends");
        }
        turns
    }

    #[test]
    fn misses_in_a_row_pause_the_gather_and_a_merge_ends_the_pauses() {
        let mut recent = Recent::default();
        assert!(recent.take_turn());
        // One miss, then a merge: no pause.
        assert!(!recent.gathered(false));
        assert!(!recent.gathered(true));
        assert!(!recent.gathered(false));
        assert_eq!(paused_turns(&mut recent), 0);
        // Two in a row: the next PAUSE_FIRST commits close at once, then one gathers.
        assert!(
            recent.gathered(false),
            "the second miss in a row starts a pause"
        );
        assert_eq!(paused_turns(&mut recent), PAUSE_FIRST);
        // That one misses too: paused again at once, twice as long, and so on up to the most.
        assert!(recent.gathered(false));
        assert_eq!(paused_turns(&mut recent), 2 * PAUSE_FIRST);
        for _ in 0..10 {
            recent.gathered(false);
            paused_turns(&mut recent);
        }
        recent.gathered(false);
        assert_eq!(paused_turns(&mut recent), PAUSE_MAX);
        // A gather that reaches its count ends it: two misses again to pause, PAUSE_FIRST long.
        recent.gathered(true);
        recent.gathered(false);
        assert_eq!(paused_turns(&mut recent), 0);
        recent.gathered(false);
        assert_eq!(paused_turns(&mut recent), PAUSE_FIRST);
    }

    #[test]
    fn a_gather_that_times_out_is_a_miss_and_one_that_reaches_its_count_is_not() {
        // Three expected, none comes: the bound (1 ms) passes.
        let arrivals = Arrivals::new(CommitGather { cap_us: 1_000 });
        let mut recent = recent(&[(3, 1_000)]);
        for _ in 0..MISSES_TO_PAUSE {
            assert!(
                !runtime()
                    .block_on(arrivals.gather(0, &mut recent))
                    .is_zero()
            );
        }
        assert!(
            runtime()
                .block_on(arrivals.gather(0, &mut recent))
                .is_zero(),
            "paused after {MISSES_TO_PAUSE} misses"
        );
        assert_eq!(
            arrivals.delayed.load(Ordering::Relaxed),
            u64::from(MISSES_TO_PAUSE)
        );
        assert_eq!(
            arrivals.pauses.load(Ordering::Relaxed),
            1,
            "one pause begun"
        );
        // Reaching the count is no miss: the misses before it are forgotten.
        let (arrivals, mut recent) = waiting();
        recent.gathered(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_millis(2));
                    arrivals.arrive(false);
                }
            });
            runtime().block_on(arrivals.gather(0, &mut recent))
        });
        assert_eq!(arrivals.pauses.load(Ordering::Relaxed), 0);
        recent.gathered(false);
        assert_eq!(paused_turns(&mut recent), 0, "one miss since the merge");
    }

    #[test]
    fn only_the_last_rounds_set_the_bound_and_the_last_commit_the_count() {
        let mut many = recent(&[(1, 100_000)]);
        for _ in 0..ROUNDS {
            many.record(8, Duration::from_micros(1_000));
        }
        assert_eq!(
            decide(2, &many, Duration::ZERO, 50 * MS),
            Verdict::Wait {
                arrivals: 8,
                until: MS
            }
        );
    }
}
