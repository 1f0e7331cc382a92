//! What the store reads at open: the small, whole-in-memory part of its state (arm and epoch
//! records, the last commit's sequence number, the expiry watermark), so that startup time does
//! not depend on how many units or events are stored.

use std::sync::Arc;

use super::codec;
use super::error::StoreError;
use super::event_ids::Digester;
use super::event_log;
use super::keys::{self, KIND_ARM, KIND_EPOCH, KIND_FOLDED, KIND_MOVED_AWAY, KIND_PER_REQUEST, io};
use super::migrate;
use super::size_hint::{self, TableSizes};
use super::state::{ArmMap, CounterMap, DurableState, EpochMap};
use super::sticky_table::StickyTable;

/// Checks that `db` holds this build's layout ([`keys::STORE_FORMAT`]) and marks a new, empty
/// store with it. A store of another version, or one written before stores were marked (its
/// keys are not empty but it has no mark), is refused: reading it with this build's layout
/// could misread records or fail at the first expiry, long after startup said all was well.
pub fn check_format(db: &sled::Db, dir: &std::path::Path) -> Result<(), StoreError> {
    let found = match db.get(keys::META_FORMAT).map_err(io)? {
        Some(value) => Some(codec::decode_u64(&value, "store format")?),
        None if db.first().map_err(io)?.is_none() => {
            // One atomic batch: a store with a mark always has its digest key.
            let mut batch = sled::Batch::default();
            batch.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT));
            batch.insert(keys::META_EVENT_ID_KEY, &Digester::random_key());
            db.apply_batch(batch).map_err(io)?;
            db.flush().map_err(io)?;
            return Ok(());
        }
        None => None,
    };
    if found == Some(keys::STORE_FORMAT) {
        // A migration a crash interrupted is finished before anything reads the store.
        return migrate::resume(db, dir, usize::MAX);
    }
    if let Some(older) = found.filter(|f| keys::UPGRADABLE_FORMATS.contains(f)) {
        return migrate::start(db, dir, older);
    }
    let written_by = match found {
        Some(format) => format!("a banditd whose store format is {format}"),
        None => "a banditd from before store formats were marked".to_owned(),
    };
    Err(StoreError::Incompatible(format!(
        "store directory {} was written by {written_by}; this banditd reads format {} only. \
         Start it on a new, empty data directory, or keep running the build that wrote this one",
        dir.display(),
        keys::STORE_FORMAT
    )))
}

/// Loads what the writer needs at open: the arm and epoch states, the last commit's sequence
/// number and the expiry watermark, the applied event ids (`event_log`) and every sticky
/// assignment (`sticky_table`, replayed from `unit_log`). `sealed`: where the event log's
/// sealed generations are (`sealed_log`), if the replay may read them.
pub fn load(
    db: &sled::Db,
    sealed: Option<&event_log::Sealed>,
) -> Result<(DurableState, u64, u64), StoreError> {
    let mut arms = ArmMap::default();
    for kind in [KIND_ARM, KIND_PER_REQUEST, KIND_FOLDED, KIND_MOVED_AWAY] {
        for item in db.scan_prefix([kind]) {
            let (key, value) = item.map_err(io)?;
            let (_, epoch, variant) = keys::parse_epoch_key(&key)?;
            let arm = arms.entry(epoch).or_default().entry(variant).or_default();
            match kind {
                KIND_ARM => arm.counters = codec::decode_arm(&value)?,
                KIND_PER_REQUEST => {
                    arm.per_request = codec::decode_u64(&value, "per-request exposures")?
                }
                KIND_FOLDED => arm.folded_reward = codec::decode_f64(&value, "folded reward")?,
                _ => arm.moved_away = codec::decode_moved_away(&value)?,
            }
        }
    }
    let mut epochs = EpochMap::default();
    for item in db.scan_prefix([KIND_EPOCH]) {
        let (key, value) = item.map_err(io)?;
        let (_, epoch, _) = keys::parse_epoch_key(&key)?;
        epochs.insert(epoch, codec::decode_epoch_info(&value)?);
    }
    let meta = |key: &[u8], what: &str| -> Result<u64, StoreError> {
        match db.get(key).map_err(io)? {
            Some(value) => codec::decode_u64(&value, what),
            None => Ok(0),
        }
    };
    let last_seq = meta(keys::META_SEQ, "commit sequence number")?;
    let expired_through = meta(keys::META_EXPIRED_THROUGH, "expiry watermark")?;
    let hint = size_hint::read(db);
    let (event_ids, (sticky, unit_log_entries)) = replay_logs(db, hint, sealed)?;
    let sizes = TableSizes {
        units: sticky.len() as u64,
        ids: event_ids.kept.len() as u64,
    };
    super::table_memory::return_freed_memory();
    if sizes.moved_from(&hint) {
        // A hint (`size_hint`): a store that cannot write it now fails at its first commit.
        let _ = size_hint::write(db, sizes);
    }
    Ok((
        DurableState {
            arms,
            epochs,
            event_ids,
            sticky: Arc::new(sticky),
            unit_log_entries,
        },
        last_seq,
        expired_through,
    ))
}

/// Replays the event log (`event_log::replay`) and the unit log (`StickyTable::load`), into
/// tables presized from `hint` (`size_hint`). Both are most of a restart's time with many ids
/// and units, and neither reads what the other builds, so once the store's digest key is read
/// (or made) they run at once: the unit log on a thread of its own and its decoder
/// (`unit_log::replay`), the event log on this thread and helpers (`event_log::replay`), so a
/// restart with 10M units and 50M ids takes the longer of the two, not their sum
/// (`benches/load/results/mem-2026-11-30.md`).
fn replay_logs(
    db: &sled::Db,
    hint: TableSizes,
    sealed: Option<&event_log::Sealed>,
) -> Result<(super::event_ids::EventIdSet, (StickyTable, u64)), StoreError> {
    let digester = event_log::digester(db)?;
    let units_hint = usize::try_from(hint.units).unwrap_or(usize::MAX);
    let ids_hint = usize::try_from(hint.ids).unwrap_or(usize::MAX);
    std::thread::scope(|scope| {
        let units = std::thread::Builder::new()
            .name("unit-log-replay".to_owned())
            .spawn_scoped(scope, || StickyTable::load(db, digester, units_hint))
            .map_err(|error| {
                StoreError::Io(format!("could not start the replay thread: {error}"))
            })?;
        // The event log is not settled: at 50M ids its point reads cost ~2 s of CPU on this
        // thread, the longer of the two at that size, for ~2.4 B per id
        // (`benches/load/results/marks-2026-11-30-s8.md`).
        let event_ids = event_log::replay(db, digester, ids_hint, sealed);
        let sticky = units
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (event_ids, sticky) = (event_ids?, sticky?);
        // After both scans, not on the unit replay's own thread once its scan ends: the
        // settle's accesses then also push the event log's last leaves out of sled's cache,
        // and the allocator's pages they pinned go with them: 1,150-1,154 MiB settled at 10M
        // units + 50M ids with the settle on the unit side, 1,112-1,114 MiB here (15.6 B per
        // id, `benches/load/results/restart9-2026-12-01-s14.md`), for ~0.2 s after the replays.
        settle_pages(db, keys::KIND_UNIT_LOG)?;
        Ok((event_ids, sticky))
    })
}

/// Hands the pages a log replay read back to sled's cache limit, so the log does not stay in
/// memory after a restart (`benches/load/results/marks-2026-11-30-s8.md`).
///
/// sled 0.34 counts a page against its cache capacity only once the page's LRU shard (one of
/// 256, by page id) has queued 64 accesses. A replay's scan reads each leaf page of the log
/// once, so until a log has ~16,000 leaves no shard's queue ever fills: every page the scan
/// read stays in memory whatever `--store-cache-mb` says, about 13 B per sticky unit, and an
/// idle server never reads them again to let them go. One point read per log key gives each
/// leaf as many accesses as it has keys (up to 16), which fills the queues, and sled pages out
/// all but its cache's worth. It costs ~0.2 s per 70,000 log values (10M units), once both
/// logs are replayed (`replay_logs` says why then).
pub(super) fn settle_pages(db: &sled::Db, kind: u8) -> Result<(), StoreError> {
    for key in db.scan_prefix([kind]).keys() {
        db.get(key.map_err(io)?).map_err(io)?;
    }
    Ok(())
}

/// The published view of freshly loaded arm states.
pub fn counter_view(arms: &ArmMap) -> CounterMap {
    arms.iter()
        .map(|(epoch, arms)| {
            let view = arms
                .iter()
                .map(|(variant, arm)| (variant.clone(), arm.counters))
                .collect();
            (epoch.clone(), Arc::new(view))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::store::keys::{self, META_FORMAT, STORE_FORMAT};
    use crate::store::test_support::{T0_MS, block_on, epoch, open, raw_db, record, tally};
    use crate::store::{SledStore, Store, StoreError, codec};

    fn format_of(dir: &std::path::Path) -> Option<u64> {
        let db = raw_db(dir);
        let value = db.get(META_FORMAT).unwrap()?;
        Some(codec::decode_u64(&value, "format").unwrap())
    }

    fn refusal(dir: &std::path::Path) -> String {
        match SledStore::open(dir) {
            Err(StoreError::Incompatible(message)) => message,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an incompatible store opened"),
        }
    }

    #[test]
    fn a_new_store_is_marked_with_this_builds_format_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
        assert_eq!(format_of(dir.path()), Some(STORE_FORMAT));
        let store = open(dir.path());
        assert_eq!(
            block_on(store.sticky(&epoch(), "u1")).unwrap(),
            Some(record("bold", T0_MS))
        );
    }

    #[test]
    fn a_store_of_another_format_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        {
            let db = raw_db(dir.path());
            db.insert(META_FORMAT, codec::encode_u64(STORE_FORMAT + 1).to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        let message = refusal(dir.path());
        assert!(
            message.contains(&dir.path().display().to_string())
                && message.contains(&format!("store format is {}", STORE_FORMAT + 1))
                && message.contains(&format!("reads format {STORE_FORMAT} only")),
            "{message}"
        );
        assert_eq!(format_of(dir.path()), Some(STORE_FORMAT + 1));
    }

    /// Formats 1 and 2 kept each applied event id as a key of its own, which format 3 never
    /// reads: opened as format 3, every event id they hold would be applied again.
    #[test]
    fn a_format_1_or_2_store_with_event_ids_as_keys_is_refused_with_the_clear_message() {
        for old in [1u64, 2] {
            let dir = tempfile::tempdir().unwrap();
            {
                let db = raw_db(dir.path());
                db.insert(META_FORMAT, codec::encode_u64(old).to_vec())
                    .unwrap();
                let mut id_key = vec![keys::KIND_EVENT_ID];
                id_key.extend_from_slice(b"\x03expe1");
                db.insert(id_key, codec::encode_u64(T0_MS).to_vec())
                    .unwrap();
                db.flush().unwrap();
            }
            let message = refusal(dir.path());
            assert!(
                message.contains(&format!("store format is {old}"))
                    && message.contains(&format!("reads format {STORE_FORMAT} only"))
                    && message.contains("Start it on a new, empty data directory"),
                "{message}"
            );
            assert_eq!(format_of(dir.path()), Some(old), "left as it was");
        }
    }

    /// Format 4 only added guardrail halts: a format-3 store (event ids in the log) reads
    /// unchanged, keeps its applied ids, and is re-marked.
    #[test]
    fn a_format_3_store_reads_unchanged_and_is_re_marked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            block_on(store.insert_sticky(&epoch(), "u1", record("bold", T0_MS), tally(T0_MS)))
                .unwrap();
        }
        {
            let db = raw_db(dir.path());
            db.insert(META_FORMAT, codec::encode_u64(3).to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path());
        assert_eq!(
            block_on(store.sticky(&epoch(), "u1")).unwrap(),
            Some(record("bold", T0_MS))
        );
        drop(store);
        assert_eq!(format_of(dir.path()), Some(STORE_FORMAT));
    }

    /// A restart presizes the tables from the sizes the last shutdown kept (`size_hint`).
    #[test]
    fn a_clean_shutdown_keeps_the_tables_sizes_for_the_next_start() {
        use crate::store::size_hint::{self, TableSizes};
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            for unit in ["u1", "u2", "u3"] {
                block_on(store.insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS)))
                    .unwrap();
            }
            block_on(store.shutdown()).unwrap();
        }
        let db = raw_db(dir.path());
        assert_eq!(size_hint::read(&db), TableSizes { units: 3, ids: 0 });
    }

    #[test]
    fn an_unmarked_store_with_records_is_refused_as_older_and_not_marked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw_db(dir.path());
            db.insert(keys::META_SEQ, codec::encode_u64(7).to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        let message = refusal(dir.path());
        assert!(
            message.contains("from before store formats were marked"),
            "{message}"
        );
        assert_eq!(format_of(dir.path()), None);
    }

    #[test]
    fn an_unreadable_mark_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw_db(dir.path());
            db.insert(META_FORMAT, b"one".to_vec()).unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(
            SledStore::open(dir.path()),
            Err(StoreError::Corrupt(_))
        ));
    }
}
