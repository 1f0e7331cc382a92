//! Sealed generations against the log values they come from: written, read back, refused
//! when stale, corrupt, due, of another store or past the durable commits, and removed with
//! their generation.

use std::collections::HashSet;

use rand::{RngExt, SeedableRng};

use super::*;
use crate::store::event_ids::Digester;
use crate::store::event_log::{GENERATION_MS, Sealed, log_key, log_values, planned_files, replay};

/// sled directly, with a durable sequence number the test sets.
struct Direct {
    db: sled::Db,
    durable: u64,
}

impl SledSource for Direct {
    fn with_db<T>(&self, read: impl FnOnce(&sled::Db) -> T) -> Option<T> {
        Some(read(&self.db))
    }

    fn durable_seq(&self) -> u64 {
        self.durable
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    files: PathBuf,
    source: Direct,
    digester: Digester,
    logged: HashSet<u64>,
    rng: rand::rngs::StdRng,
}

/// Three generations (due at 1, 2 and 5 hours), one of them past a block, with mark-digest
/// values in some commits, every commit durable.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .open()
        .unwrap();
    let digester = Digester::new([7; crate::store::event_ids::DIGEST_KEY_LEN]);
    let mut fixture = Fixture {
        files: dir.path().join(DIR_NAME),
        _dir: dir,
        source: Direct {
            db,
            durable: u64::MAX,
        },
        digester,
        logged: HashSet::new(),
        rng: rand::rngs::StdRng::seed_from_u64(31),
    };
    for (hours, commits, per_commit) in [(1u64, 200u64, 400), (2, 1, 3), (5, 40, 2_000)] {
        for commit in 0..commits {
            fixture.append(hours, hours * 10_000 + commit * 3, per_commit);
        }
    }
    fixture
}

impl Fixture {
    /// Appends commit `seq`'s values to the generation due at `hours`: `count` ids, and a
    /// mark digest for every seventh commit.
    fn append(&mut self, hours: u64, seq: u64, count: usize) -> Vec<u64> {
        let due_ms = hours * GENERATION_MS;
        let added: Vec<(u64, u64)> = (0..count)
            .map(|_| (due_ms, self.rng.random::<u64>()))
            .collect();
        for (key, value) in log_values(seq, &added) {
            self.source.db.insert(key, value).unwrap();
        }
        let mut digests: Vec<u64> = added.iter().map(|&(_, digest)| digest).collect();
        if seq.is_multiple_of(7) {
            let mark: u64 = self.rng.random();
            let key = log_key(due_ms, seq, crate::store::mark_log::MARK_CHUNK_BIT);
            self.source
                .db
                .insert(key, mark.to_le_bytes().to_vec())
                .unwrap();
            digests.push(mark);
        }
        self.logged.extend(&digests);
        digests
    }

    fn pass(&self, now_ms: u64) -> usize {
        pass(
            &self.source,
            &self.files,
            &self.digester,
            now_ms,
            &AtomicBool::new(false),
        )
        .unwrap()
    }

    fn sealed(&self, now_ms: u64) -> Sealed {
        Sealed {
            dir: self.files.clone(),
            now_ms,
        }
    }

    fn used(&self, now_ms: u64) -> Vec<bool> {
        planned_files(&self.source.db, &self.digester, Some(&self.sealed(now_ms)))
    }

    /// Replays with the sealed files and checks the set is exactly the logged digests.
    fn replays_exactly(&self, now_ms: u64) {
        let set = replay(
            &self.source.db,
            self.digester,
            self.logged.len(),
            Some(&self.sealed(now_ms)),
        )
        .unwrap();
        assert_eq!(set.kept.len(), self.logged.len());
        assert!(self.logged.iter().all(|&digest| set.kept.contains(digest)));
    }

    fn file_of(&self, hours: u64) -> PathBuf {
        file_path(&self.files, hours * GENERATION_MS)
    }
}

#[test]
fn sealed_generations_replay_as_their_values() {
    let fixture = fixture();
    assert_eq!(fixture.used(0), [false, false, false]);
    assert_eq!(fixture.pass(0), 3);
    assert_eq!(fixture.used(0), [true, true, true]);
    fixture.replays_exactly(0);
    // The one past a block: 40 commits of 2,000 ids and some marks.
    let big = SealedFile::open_matching(
        &fixture.files,
        &event_log::generations(&fixture.source.db, None).unwrap()[2],
        fingerprint(&fixture.digester),
    )
    .unwrap();
    assert_eq!(big.blocks(), 2);
    // A second pass finds nothing to do.
    assert_eq!(fixture.pass(0), 0);
}

/// The case the last key guards: a value appended after the seal (a later commit) must be
/// read, so that generation goes back to sled; the others keep their files.
#[test]
fn a_value_appended_after_the_seal_sends_its_generation_back_to_sled() {
    let mut fixture = fixture();
    fixture.pass(0);
    let added = fixture.append(2, 20_000 + 99, 5);
    assert_eq!(fixture.used(0), [true, false, true]);
    fixture.replays_exactly(0);
    let set = replay(
        &fixture.source.db,
        fixture.digester,
        0,
        Some(&fixture.sealed(0)),
    )
    .unwrap();
    assert!(added.iter().all(|&digest| set.kept.contains(digest)));
    // The next pass seals it again.
    assert_eq!(fixture.pass(0), 1);
    assert_eq!(fixture.used(0), [true, true, true]);
}

/// A file covers only commits known durable: values after the durable sequence number are
/// left out, and the file is not used while sled holds them past its last key.
#[test]
fn values_of_commits_not_known_durable_are_not_sealed() {
    let mut fixture = fixture();
    // Generation 1's commits are 10,000 ..= 10,597; durable through 10,300.
    fixture.source.durable = 10_300;
    fixture.pass(0);
    let files = event_log::generations(&fixture.source.db, Some(10_300)).unwrap();
    assert_eq!(files.len(), 1, "only generation 1 has a durable commit");
    assert_eq!(fixture.used(0), [false, false, false]);
    let file = SealedFile::open_matching(&fixture.files, &files[0], fingerprint(&fixture.digester))
        .unwrap();
    let mut sealed = Vec::new();
    assert!(file.read_blocks(0, file.blocks(), |digest| sealed.push(digest)));
    let durable: usize = fixture
        .source
        .db
        .range(log_key(GENERATION_MS, 0, 0)..=log_key(GENERATION_MS, 10_300, u64::MAX))
        .map(|item| item.unwrap().1.len() / 8)
        .sum();
    assert_eq!(sealed.len(), durable);
    fixture.replays_exactly(0);
}

#[test]
fn a_corrupt_block_sends_its_generation_back_to_sled_and_a_corrupt_header_is_not_read() {
    let fixture = fixture();
    fixture.pass(0);
    // A digest of the big generation's second block.
    let path = fixture.file_of(5);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (HEADER_BYTES + BLOCK_DIGESTS * 8 + 4 + 8 * 100) as usize;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        fixture.used(0),
        [true, true, true],
        "the header still matches"
    );
    fixture.replays_exactly(0);
    // A header byte: the file is not opened at all.
    let path = fixture.file_of(1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(fixture.used(0), [false, true, true]);
    // A truncated file.
    let path = fixture.file_of(2);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(fixture.used(0), [false, false, true]);
    fixture.replays_exactly(0);
}

#[test]
fn due_generations_and_other_stores_files_are_read_from_sled() {
    let mut fixture = fixture();
    fixture.pass(0);
    assert_eq!(fixture.used(GENERATION_MS), [false, true, true]);
    assert_eq!(fixture.used(5 * GENERATION_MS), [false, false, false]);
    fixture.replays_exactly(2 * GENERATION_MS);
    fixture.digester = Digester::new([8; crate::store::event_ids::DIGEST_KEY_LEN]);
    assert_eq!(fixture.used(0), [false, false, false]);
}

#[test]
fn a_pass_seals_only_generations_not_due_and_removes_what_sled_no_longer_has() {
    let fixture = fixture();
    assert_eq!(fixture.pass(GENERATION_MS), 2);
    assert!(!fixture.file_of(1).exists());
    fixture.pass(0);
    std::fs::write(fixture.files.join("gen-7.tmp"), b"left by a stopped pass").unwrap();
    // Generation 2 expires.
    let keys: Vec<_> = fixture
        .source
        .db
        .range(log_key(2 * GENERATION_MS, 0, 0)..log_key(3 * GENERATION_MS, 0, 0))
        .keys()
        .map(Result::unwrap)
        .collect();
    for key in keys {
        fixture.source.db.remove(key).unwrap();
    }
    fixture.pass(0);
    let mut left: Vec<String> = std::fs::read_dir(&fixture.files)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut expected = [GENERATION_MS, 5 * GENERATION_MS].map(|due| format!("gen-{due}.bin"));
    expected.sort();
    assert_eq!(left, expected);
}

#[test]
fn a_stopped_pass_leaves_no_file() {
    let fixture = fixture();
    let stop = AtomicBool::new(true);
    let sealed = pass(&fixture.source, &fixture.files, &fixture.digester, 0, &stop).unwrap();
    assert_eq!(sealed, 0);
    let bounds = &event_log::generations(&fixture.source.db, None).unwrap()[0];
    assert!(!seal(&fixture.source, &fixture.files, bounds, 1, &stop).unwrap());
    assert_eq!(std::fs::read_dir(&fixture.files).unwrap().count(), 0);
}

/// The thread: its first pass seals, and a stop ends it at once.
#[test]
fn the_sealer_thread_seals_after_its_delay_and_stops_when_asked() {
    let fixture = fixture();
    let Fixture {
        source,
        files,
        digester,
        _dir,
        ..
    } = fixture;
    let db = source.db.clone();
    let mut sealer = Sealer::start(
        source,
        files.clone(),
        digester,
        (Duration::from_millis(10), Duration::from_secs(3600)),
        || 0,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sealed = || {
        std::fs::read_dir(&files)
            .map(|entries| entries.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    while sealed() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sealed(), 3);
    let stopping = std::time::Instant::now();
    sealer.stop();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    drop(db);
}

/// The whole path through the store: ids applied at the wall clock's time, sealed by the
/// store's own sealer, are duplicates after a reopen that reads the sealed file, and so is
/// one applied after the seal (its hour then reads from sled).
#[test]
fn a_reopened_store_keeps_its_ids_through_the_sealed_files() {
    use crate::store::test_support::{
        assert_all_applied, block_on, epoch, open, raw_db, record, tally, unit_reward,
    };
    use crate::store::{RewardOutcome, Store};

    let now_ms = crate::store::health::wall_clock_ms();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join(DIR_NAME);
    let rewards = |range: std::ops::Range<usize>| -> Vec<_> {
        range
            .map(|n| unit_reward(&format!("e{n}"), &format!("u{n}"), 1.0, now_ms + 1))
            .collect()
    };
    let resend = |store: &crate::store::SledStore, range: std::ops::Range<usize>| {
        let outcomes = block_on(store.apply_rewards(rewards(range))).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|outcome| matches!(outcome, RewardOutcome::Duplicate)),
            "{outcomes:?}"
        );
    };
    let units = |store: &crate::store::SledStore| {
        let inserts: Vec<_> = (0..301)
            .map(|n| {
                store.insert_sticky(
                    &epoch(),
                    &format!("u{n}"),
                    record("control", now_ms),
                    tally(now_ms),
                )
            })
            .collect();
        block_on(async {
            for insert in inserts {
                insert.await.unwrap();
            }
        });
    };
    {
        let store = open(dir.path());
        units(&store);
        assert_all_applied(&block_on(store.apply_rewards(rewards(0..300))).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::read_dir(&files).map_or(0, |entries| entries.count()) == 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        block_on(store.shutdown()).unwrap();
    }
    let matching = |dir: &Path| {
        let db = raw_db(dir);
        let digester = event_log::digester(&db).unwrap();
        planned_files(
            &db,
            &digester,
            Some(&Sealed {
                dir: dir.join(DIR_NAME),
                now_ms,
            }),
        )
    };
    assert_eq!(matching(dir.path()), [true], "the store sealed its hour");
    {
        // No sealer this time: the hour must stay as the seal left it.
        let store = crate::store::SledStore::open_with(
            dir.path(),
            crate::store::StoreOptions {
                seal_event_log: false,
                ..Default::default()
            },
        )
        .unwrap();
        resend(&store, 0..300);
        assert_all_applied(&block_on(store.apply_rewards(rewards(300..301))).unwrap());
        block_on(store.shutdown()).unwrap();
    }
    assert_eq!(
        matching(dir.path()),
        [false],
        "an id was added after the seal"
    );
    let store = open(dir.path());
    resend(&store, 0..301);
}
