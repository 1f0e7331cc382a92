//! The event log: how the in-memory set of applied event ids (`event_ids`) survives a restart
//! or a `kill -9`, written ahead of any acknowledgement.
//!
//! Each group commit appends the digests of the event ids it applied as a few sled values
//! under increasing keys, `KIND_EVENT_LOG · generation due time · commit seq · chunk` (all
//! big-endian), in the same atomic sled batch as the records and counters the events changed,
//! fsynced before anybody is answered. So one B-tree insert carries up to
//! [`MAX_LOG_VALUE_DIGESTS`] event ids, where each id used to be a new key of its own plus an
//! entry in the expiry index.
//!
//! **Generations.** An id must be kept at least until its retention deadline (arrival plus the
//! reward window, `rules::judge_reward`). Its generation is that deadline rounded up to a
//! whole [`GENERATION_MS`]; the key starts with it, so all the values of a generation sit
//! together and expire together: [`expire_due`] walks the values whose generation is due,
//! removes their digests from the set and deletes them, one key per few hundred ids. An id
//! is therefore kept up to [`GENERATION_MS`] past its deadline (a late retry is then answered
//! `Duplicate` rather than `OutsideWindow`: never applied either way).
//!
//! **Value size.** sled writes any log item larger than a quarter of its segment as a separate
//! file under `blobs/` that its flush never fsyncs. The item is a whole leaf when sled
//! consolidates one, and a leaf holds up to 17 entries before it splits (sled 0.34
//! `Node::should_split`), so 17 values must stay below a quarter of the smallest segment a
//! store has (512 KiB for stores created before `disk::SEGMENT_BYTES`); `disk` checks that at
//! compile time, and a test that `blobs/` stays empty under bulk ingest. Within that bound a
//! smaller value costs fewer device bytes, because sled rewrites every value with its leaf
//! (see `unit_log`): values hold 256 digests (2 KiB).
//!
//! **Token marks.** The at-most-once digests of credited tokens are logged here too, under
//! the mark's own generation, in values whose chunk has `mark_log::MARK_CHUNK_BIT` set: each
//! is paired with the mark log's payload value and expires with it (`mark_log::expire_due`,
//! which runs first; [`expire_due`] removes whatever is due after it).
//!
//! **Replay.** Startup reads every log value into the set (`replay`): 8 bytes of log per kept
//! id or mark, and nothing of the marks' payloads. [`REPLAY_THREADS`] threads read the log's
//! key ranges into shared buckets, and the table is built from them at once (`digest_build`).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::digest_build::{self, Collected, DigestBuckets};
use super::error::StoreError;
use super::event_ids::{DIGEST_KEY_LEN, DigestSet, Digester, EventIdSet};
use super::generations;
use super::keys::{self, KIND_EVENT_LOG, io};
use super::overlay::Txn;
use super::sealed_log::{self, GenerationBounds, SealedFile};
use super::state::KeyValue;

/// Width of a generation: ids whose deadlines fall in one such slice expire together.
pub const GENERATION_MS: u64 = 60 * 60 * 1000;

/// Threads that read the log at a restart ([`replay`]), more than a small machine has cores:
/// a thread reading sled waits for sled's page reads (a fragment at a time, ~370,000 of them
/// at 10M units and 50M ids), one reading a sealed file (`sealed_log`) for its blocks.
/// Measured on 2 cores with the store in the page cache, 10M units + 50M kept ids from sled
/// alone were ready in 4.95-5.26 s with 8 threads against 5.31-5.93 with 4 and 5.33-5.94 with
/// 2; from sealed files 8 and 4 did not differ (3.42-4.48 s and 3.86-4.48 alternated, 2:
/// 3.85-4.17), the unit log's replay beside them taking longer the more threads share the
/// cores (`benches/load/results/restart-s22-2026-12-02.md`).
pub const REPLAY_THREADS: usize = 8;

/// Most digests in one log value (8 bytes each): see the module docs on value size.
pub const MAX_LOG_VALUE_DIGESTS: usize = 256;

const DIGEST_LEN: usize = 8;
/// Bytes of a log key: kind, generation due time, commit seq, chunk.
pub const LOG_KEY_LEN: usize = 1 + 3 * 8;

/// The generation (its due time) of an id retained until `deadline_ms`: the deadline rounded up
/// to a whole [`GENERATION_MS`].
pub fn generation_due(deadline_ms: u64) -> u64 {
    deadline_ms
        .div_ceil(GENERATION_MS)
        .saturating_mul(GENERATION_MS)
}

/// Key of the `chunk`-th log value of commit `seq` in the generation due at `due_ms`.
pub fn log_key(due_ms: u64, seq: u64, chunk: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(LOG_KEY_LEN);
    key.push(KIND_EVENT_LOG);
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The generation due time of a log key made by [`log_key`].
pub fn parse_log_key(key: &[u8]) -> Result<u64, StoreError> {
    match key.split_first() {
        Some((&KIND_EVENT_LOG, rest)) if key.len() == LOG_KEY_LEN => Ok(keys::take_u64(rest)?.0),
        _ => Err(keys::corrupt("not an event-log key")),
    }
}

/// The digests of one log value.
pub fn decode_value(bytes: &[u8]) -> Result<impl Iterator<Item = u64> + '_, StoreError> {
    if !bytes.len().is_multiple_of(DIGEST_LEN) {
        return Err(keys::corrupt(
            "event-log value is not a whole number of digests",
        ));
    }
    Ok(bytes.chunks_exact(DIGEST_LEN).map(|chunk| {
        let mut digest = [0; DIGEST_LEN];
        digest.copy_from_slice(chunk);
        u64::from_le_bytes(digest)
    }))
}

/// The log values commit `seq` writes for the ids it added, given as (generation due time,
/// digest) in the order they were applied: per generation, cut into values of at most
/// [`MAX_LOG_VALUE_DIGESTS`].
pub fn log_values(seq: u64, added: &[(u64, u64)]) -> Vec<KeyValue> {
    let mut order = added.to_vec();
    // Stable: a commit's ids usually share one generation and keep their order.
    order.sort_by_key(|&(due_ms, _)| due_ms);
    let mut values = Vec::new();
    let mut chunk = 0;
    for generation in order.chunk_by(|a, b| a.0 == b.0) {
        for part in generation.chunks(MAX_LOG_VALUE_DIGESTS) {
            let mut value = Vec::with_capacity(part.len() * DIGEST_LEN);
            for &(_, digest) in part {
                value.extend_from_slice(&digest.to_le_bytes());
            }
            values.push((log_key(part[0].0, seq, chunk), value));
            chunk += 1;
        }
    }
    values
}

/// The store's digest key (the event ids' and the sticky table's).
///
/// A store is given its key when it is created (`load::check_format`). One without a key but
/// also without any logged id (marked by hand, as some tests do) gets one now, made durable
/// before use; one with logged ids and no key cannot tell its ids apart any more: corrupt.
pub fn digester(db: &sled::Db) -> Result<Digester, StoreError> {
    let key = match db.get(keys::META_EVENT_ID_KEY).map_err(io)? {
        Some(bytes) => <[u8; DIGEST_KEY_LEN]>::try_from(&*bytes)
            .map_err(|_| keys::corrupt("the event-id digest key has the wrong length"))?,
        None if db.scan_prefix([KIND_EVENT_LOG]).next().is_none() => {
            let key = Digester::random_key();
            db.insert(keys::META_EVENT_ID_KEY, &key).map_err(io)?;
            db.flush().map_err(io)?;
            key
        }
        None => return Err(keys::corrupt("the store has event ids but no digest key")),
    };
    Ok(Digester::new(key))
}

/// Replays the whole log into a fresh set of ids digested with `digester`, collected for
/// `expected` ids (the last size kept, `size_hint`) and built at once (`digest_build`).
/// With `sealed`, a generation whose sealed file matches it is read from the file instead of
/// its sled values (`sealed_log`).
///
/// [`REPLAY_THREADS`] threads read the log, this one and helpers of its own. They take the
/// pieces of the log ([`plan`]) one at a time as they go, so none waits while another has
/// work. `BANDITD_EVENT_REPLAY_THREADS=N` in the environment (1 to 64) reads it on N threads
/// instead: an A/B switch for one binary, not a setting.
pub fn replay(
    db: &sled::Db,
    digester: Digester,
    expected: usize,
    sealed: Option<&Sealed>,
) -> Result<EventIdSet, StoreError> {
    let started = std::time::Instant::now();
    let mut set = EventIdSet::new(digester);
    let plan = plan(db, &digester, sealed)?;
    let taken = AtomicUsize::new(0);
    let threads = std::env::var("BANDITD_EVENT_REPLAY_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(REPLAY_THREADS);
    let buckets = DigestBuckets::new(expected, threads);
    let collect = || -> Result<Collected, StoreError> {
        let mut collector = buckets.collector();
        while let Some(piece) = plan.pieces.get(taken.fetch_add(1, Ordering::Relaxed)) {
            match piece {
                Piece::Sled(start, end) => read_range(db, start, end, &mut collector)?,
                Piece::File {
                    generation,
                    from,
                    to,
                } => {
                    let file = &plan.generations[*generation].file;
                    let read = file.as_ref().is_some_and(|file| {
                        file.read_blocks(*from, *to, |digest| collector.push(digest))
                    });
                    if !read {
                        plan.generations[*generation]
                            .failed
                            .store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(collector.finish())
    };
    let mut collected = std::thread::scope(|scope| {
        let helpers = (1..threads)
            .map(|_| {
                std::thread::Builder::new()
                    .name("event-log-replay".to_owned())
                    .spawn_scoped(scope, collect)
                    .map_err(|error| {
                        StoreError::Io(format!("could not start a replay thread: {error}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut collected = vec![collect()?];
        for helper in helpers {
            collected.push(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            );
        }
        Ok::<_, StoreError>(collected)
    })?;
    // A sealed file that failed a block's check: its generation again, from sled (the digests
    // the file gave already are kept once).
    let mut from_files = 0;
    let mut fell_back = 0;
    for generation in &plan.generations {
        if generation.file.is_none() {
            continue;
        }
        if generation.failed.load(Ordering::Relaxed) {
            let mut collector = buckets.collector();
            read_range(db, &generation.start, &generation.end, &mut collector)?;
            collected.push(collector.finish());
            fell_back += 1;
        } else {
            from_files += 1;
        }
    }
    if fell_back > 0 {
        tracing::warn!(
            generations = fell_back,
            "sealed event-log files failed their checks and were read from the store instead"
        );
    }
    set.kept = DigestSet::from_table(digest_build::build(buckets, collected));
    tracing::info!(
        event_ids = set.kept.len(),
        table_bytes = set.kept.heap_bytes(),
        generations = plan.generations.len(),
        from_sealed_files = from_files,
        millis = started.elapsed().as_millis() as u64,
        "replayed the event log"
    );
    Ok(set)
}

/// Reads the log values in `start..end` into `collector`.
fn read_range(
    db: &sled::Db,
    start: &[u8],
    end: &[u8],
    collector: &mut digest_build::DigestCollector<'_>,
) -> Result<(), StoreError> {
    for item in db.range(start..end) {
        let (key, value) = item.map_err(io)?;
        parse_log_key(&key)?;
        for digest in decode_value(&value)? {
            collector.push(digest);
        }
    }
    Ok(())
}

/// Where a replay may read sealed generations (`sealed_log`): their directory, and the clock
/// a file's generation must not be due at.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub dir: std::path::PathBuf,
    pub now_ms: u64,
}

/// One piece of a replay's work.
#[derive(Debug)]
enum Piece {
    /// Log values in a key range (start inclusive, end exclusive).
    Sled(Vec<u8>, Vec<u8>),
    /// Blocks `from..to` of a generation's sealed file.
    File {
        generation: usize,
        from: u64,
        to: u64,
    },
}

/// A generation of a replay's plan: its whole key range, its sealed file if one matches it,
/// and whether reading that file failed.
#[derive(Debug)]
struct PlannedGeneration {
    start: Vec<u8>,
    end: Vec<u8>,
    file: Option<SealedFile>,
    failed: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Plan {
    pieces: Vec<Piece>,
    generations: Vec<PlannedGeneration>,
}

/// Pieces each generation's key range is cut into for the replay's threads.
const REPLAY_PIECES_PER_GENERATION: u64 = 64;

/// Sealed-file blocks per piece (`sealed_log::BLOCK_DIGESTS` digests each).
const BLOCKS_PER_PIECE: u64 = 4;

/// The replay's pieces, covering the whole log in order: a generation with a matching sealed
/// file as its file's blocks, a few at a time, any other as its key range cut into
/// [`REPLAY_PIECES_PER_GENERATION`] spans of commit sequence numbers (how evenly they split
/// the values only decides how well the threads share the work).
fn plan(db: &sled::Db, digester: &Digester, sealed: Option<&Sealed>) -> Result<Plan, StoreError> {
    let fingerprint = sealed_log::fingerprint(digester);
    let mut pieces = Vec::new();
    let mut generations = Vec::new();
    let mut start = vec![KIND_EVENT_LOG];
    for bounds in self::generations(db, None)? {
        let end = keys::due_end(KIND_EVENT_LOG, bounds.due_ms);
        let file = sealed
            .filter(|sealed| bounds.due_ms > sealed.now_ms)
            .and_then(|sealed| SealedFile::open_matching(&sealed.dir, &bounds, fingerprint));
        match &file {
            Some(file) => {
                let mut from = 0;
                while from < file.blocks() {
                    let to = (from + BLOCKS_PER_PIECE).min(file.blocks());
                    pieces.push(Piece::File {
                        generation: generations.len(),
                        from,
                        to,
                    });
                    from = to;
                }
            }
            None => {
                let (first_seq, last_seq) = (log_seq(&bounds.first)?, log_seq(&bounds.last)?);
                let span = (last_seq - first_seq).saturating_add(1);
                let step = span.div_ceil(REPLAY_PIECES_PER_GENERATION).max(1);
                let mut from = start.clone();
                let mut seq = first_seq.saturating_add(step);
                while seq <= last_seq {
                    let to = log_key(bounds.due_ms, seq, 0);
                    pieces.push(Piece::Sled(from, to.clone()));
                    from = to;
                    seq = seq.saturating_add(step);
                }
                pieces.push(Piece::Sled(from, end.clone()));
            }
        }
        generations.push(PlannedGeneration {
            start: start.clone(),
            end: end.clone(),
            file,
            failed: std::sync::atomic::AtomicBool::new(false),
        });
        start = end;
    }
    Ok(Plan {
        pieces,
        generations,
    })
}

/// The log's generations in key order, each with its first and last keys. With `durable`,
/// a generation's last key is its last of a commit numbered at most `durable`, and a
/// generation with none is left out: what a sealed file may cover (`sealed_log`).
pub fn generations(
    db: &sled::Db,
    durable: Option<u64>,
) -> Result<Vec<GenerationBounds>, StoreError> {
    let mut generations = Vec::new();
    let mut start = vec![KIND_EVENT_LOG];
    let log_end = vec![KIND_EVENT_LOG + 1];
    while let Some(first) = db.range(start.as_slice()..log_end.as_slice()).next() {
        let (first, _) = first.map_err(io)?;
        let due_ms = parse_log_key(&first)?;
        let generation_end = keys::due_end(KIND_EVENT_LOG, due_ms);
        let last = match durable {
            // No value of a durable commit: nothing to take.
            Some(seq) if log_seq(&first)? > seq => None,
            Some(seq) => db
                .range(first.as_ref()..=log_key(due_ms, seq, u64::MAX).as_slice())
                .next_back(),
            None => db
                .range(first.as_ref()..generation_end.as_slice())
                .next_back(),
        }
        .transpose()
        .map_err(io)?;
        if let Some((last, _)) = last {
            generations.push(GenerationBounds {
                due_ms,
                first: first.to_vec(),
                last: last.to_vec(),
            });
        }
        start = generation_end;
    }
    Ok(generations)
}

/// The commit sequence number of a log key made by [`log_key`].
fn log_seq(key: &[u8]) -> Result<u64, StoreError> {
    parse_log_key(key)?;
    Ok(keys::take_u64(&key[1 + 8..])?.0)
}

/// Event ids in the log, token marks' digests apart (`mark_log`): what the set holds after a
/// replay besides the marks, duplicates aside (an id is logged once per application, and
/// applied again only after its generation was deleted).
pub fn logged_ids(db: &sled::Db) -> Result<u64, StoreError> {
    let mut ids = 0;
    for item in db.scan_prefix([KIND_EVENT_LOG]) {
        let (key, value) = item.map_err(io)?;
        if !super::mark_log::is_mark_digest_key(&key) {
            ids += decode_value(&value)?.count() as u64;
        }
    }
    Ok(ids)
}

/// Deletes the log values of every generation due at `now_ms`, removing their ids from the
/// set once the commit is durable, while `budget` lasts (`generations::expire_due`). Answers
/// the ids removed and whether it got through everything due.
pub fn expire_due(
    txn: &mut Txn<'_>,
    now_ms: u64,
    budget: &mut usize,
) -> Result<(u64, bool), StoreError> {
    generations::expire_due(txn, KIND_EVENT_LOG, now_ms, budget, |txn, key, value| {
        parse_log_key(key)?;
        let mut ids = 0;
        for digest in decode_value(value)? {
            txn.remove_event_id(digest);
            ids += 1;
        }
        Ok(ids)
    })
}

/// For each generation of a replay's plan, whether it would be read from a sealed file.
#[cfg(test)]
pub(super) fn planned_files(
    db: &sled::Db,
    digester: &Digester,
    sealed: Option<&Sealed>,
) -> Vec<bool> {
    plan(db, digester, sealed)
        .unwrap()
        .generations
        .iter()
        .map(|generation| generation.file.is_some())
        .collect()
}

#[cfg(test)]
#[path = "event_log_tests.rs"]
mod tests;
