//! Key layout of the sled store: every kind of record lives in ONE tree, told apart by a leading
//! kind byte, because sled batches are atomic per tree and each group commit must be one atomic
//! write (records and the counters they imply change together or not at all).
//!
//! Keys are unambiguous without escaping: every component except the last is self-delimiting
//! (a LEB128 length prefix or a fixed-width integer), and the last component takes the rest of
//! the key. So a unit, variant or event id may hold any bytes, `0x00` and `/` included. The
//! epoch comes first so that one epoch's sticky records form one contiguous range.

use super::error::StoreError;
use super::types::Epoch;

/// `meta/<name>`: store-wide values (batch sequence, expiry watermark; secrets written by a
/// banditd from before they moved to their own files, see `secret_file`).
pub const KIND_META: u8 = 0x00;
/// `(epoch, variant)` → N and R as the engine sees them.
pub const KIND_ARM: u8 = 0x01;
/// `(epoch, variant)` → per-request exposures (sticky exposures are their own records).
pub const KIND_PER_REQUEST: u8 = 0x02;
/// `(epoch, variant)` → rewards of token marks that have expired, folded into one number.
pub const KIND_FOLDED: u8 = 0x03;
/// `(epoch, "")` → the epoch's start time and stopping decision.
pub const KIND_EPOCH: u8 = 0x04;
/// `(epoch, variant)` → exposures and rewards that re-assignments moved off the arm.
pub const KIND_MOVED_AWAY: u8 = 0x05;
/// `(epoch, "")` → the spec the epoch is served under (`records::EpochSpec`).
pub const KIND_EPOCH_SPEC: u8 = 0x06;
/// `(epoch, "metric/variant")` → a guardrail halt (`halts`), written once.
pub const KIND_HALT: u8 = 0x07;
/// `(epoch, variant, histogram, bin BE)` → one bin of an arm's delay histograms (see
/// `sled_delay`).
pub const KIND_DELAY: u8 = 0x08;
/// `(epoch, unit)` → the unit's sticky assignment: formats 1 to 4 only. Format 5 keeps them in
/// memory (`sticky_table`) and in `KIND_UNIT_LOG`; the key is still what the table's digest is
/// taken over, and what a format-4 store is migrated from (`migrate`).
pub const KIND_STICKY: u8 = 0x10;
/// `(experiment, event id)` → the event's retention deadline: formats 1 and 2 only (format 3
/// keeps applied event ids in memory and in `KIND_EVENT_LOG`); tests check none is written.
#[cfg(test)]
pub const KIND_EVENT_ID: u8 = 0x11;
/// `(epoch, assignment id)` → the at-most-once credit mark of one token assignment: formats 1
/// to 6 only. Format 7 keeps the mark's digest in the event-id set and event log and its
/// payload in `KIND_MARK_LOG` (`mark_log`); the key is still what the mark's digest is made of.
pub const KIND_TOKEN_MARK: u8 = 0x12;
/// `(epoch, at_ms BE)` → one history point; big-endian so an epoch's points sort by time.
pub const KIND_HISTORY: u8 = 0x13;
/// `(epoch, assignment id)` → the at-most-once confirmation mark of one per-request token of
/// an `exposure: on_render` experiment (see `confirm_apply`).
pub const KIND_CONFIRM_MARK: u8 = 0x14;
/// `(due_ms BE, commit seq BE, chunk BE)` → the confirmation marks one group commit created
/// (formats 3 to 6: also its token marks) that are all due by `due_ms`, with their exact deadlines (see `expiry`): expiry is a
/// range scan over a few values per commit instead of a full scan or one key per record.
pub const KIND_EXPIRY: u8 = 0x20;
/// `(generation due BE, commit seq BE, chunk BE)` → digests of the event ids one group commit
/// applied whose retention ends in that generation (see `event_log`).
pub const KIND_EVENT_LOG: u8 = 0x21;
/// `(epoch, commit seq BE, chunk BE)` → the sticky records one group commit wrote in that
/// epoch (see `unit_log`).
pub const KIND_UNIT_LOG: u8 = 0x22;
/// `(generation due BE, epoch, commit seq BE, chunk BE)` → the token credit marks one group
/// commit wrote in that epoch whose retention ends in that generation (see `mark_log`).
pub const KIND_MARK_LOG: u8 = 0x23;

/// Meta key of the sequence number of the last committed group commit.
pub const META_SEQ: &[u8] = b"\x00seq";
/// Meta key of the store's layout version, [`STORE_FORMAT`].
pub const META_FORMAT: &[u8] = b"\x00format";
/// The layout version this build writes and reads. Bump it with any change to the key
/// layout or a value encoding, so that a build never misreads another's data dir.
/// Format 2 added, compatibly, the epoch spec records (`KIND_EPOCH_SPEC`) and the reward's
/// arrival time in sticky records and token marks: a format-1 store reads as it is and is
/// re-marked 2 when opened (see [`UPGRADABLE_FORMATS`]), while a format-1 build refuses the
/// result at startup instead of failing at its first new record.
/// Format 3 moved the applied event ids out of the B-tree into an in-memory set made durable
/// by the event log (`event_log`), with a per-store digest key ([`META_EVENT_ID_KEY`]): the
/// event ids of a format-1 or 2 store would not be seen, so those are refused.
/// Format 4 added, compatibly, guardrail halts (`KIND_HALT`): a build that ignored them would
/// give a halted arm traffic again, so an older build must refuse a store that may hold one;
/// and the delay histograms (`KIND_DELAY`): a format-3 store has none, and its epochs read as
/// having no pending exposures until new ones accrue.
/// Format 5 moved the sticky records out of the B-tree into an in-memory table made durable
/// by the unit log (`unit_log`): a format-3 or 4 store is migrated at open (`migrate`), and an
/// older build must refuse the result, whose units it would not see.
/// Format 6 writes unit-log entries in a compact layout (`unit_log_entry`) a format-5 build
/// would misread; it reads format-5 values as they are (compaction rewrites them), so a
/// format-5 store is only re-marked at open, through the migration's crash-safe marks.
/// Format 7 moved the token credit marks out of the B-tree: each mark's at-most-once check is
/// a digest in the event-id set, logged in the event log under the mark's generation, and its
/// payload sits in per-commit values of the mark log (`mark_log`); a format-3 to 6 store is
/// migrated at open (`migrate`), and an older build must refuse the result, whose marks it
/// would not see.
/// Format 8 made commits durable in the store's redo log (`wal`) instead of sled's flush: a
/// format-8 dir may hold acknowledged commits only in `<data dir>/wal/`, which an older build
/// would not replay. A format-7 dir has no log, so it is only re-marked at open (`migrate`).
pub const STORE_FORMAT: u64 = 8;
/// Earlier formats this build migrates at open (`migrate`).
pub const UPGRADABLE_FORMATS: &[u64] = &[3, 4, 5, 6, 7];
/// Meta key present while a migration to [`STORE_FORMAT`] is under way (the format mark
/// already says this build's, so an older build refuses the half-moved store); a restart
/// finishes it.
pub const META_MIGRATING: &[u8] = b"\x00migrating";
/// Meta key of the store's 128-bit key for event-id digests (`event_ids`), made with the store.
pub const META_EVENT_ID_KEY: &[u8] = b"\x00event_id_key";
/// Meta key of the expiry watermark: the latest due time of an expiry-index value that
/// `expire` worked on, so at least the deadline of every record it ever removed. Written
/// only by the commits that move it (absent: 0).
pub const META_EXPIRED_THROUGH: &[u8] = b"\x00expired_through";
/// Meta key of the sticky table's and the event-id set's sizes at the last open or clean
/// shutdown, a hint for presizing them at the next (`size_hint`).
pub const META_TABLE_SIZES: &[u8] = b"\x00table_sizes";

/// Appends `value` as unsigned LEB128 (1 byte below 128, at most 10).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation intended: the low 7 bits plus the continuation flag.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one LEB128 value from the front of `bytes`, returning it and the remaining bytes.
pub fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if i == 9 && byte > 1 {
            return Err(corrupt("varint overflows u64"));
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(corrupt("truncated varint"))
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads one length-prefixed byte string from the front of `bytes`.
pub fn take_bytes(bytes: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let (len, rest) = take_varint(bytes)?;
    let len = usize::try_from(len).map_err(|_| corrupt("length does not fit in memory"))?;
    if rest.len() < len {
        return Err(corrupt("truncated byte string"));
    }
    Ok(rest.split_at(len))
}

/// Reads a fixed-width big-endian u64 from the front of `bytes`.
pub fn take_u64(bytes: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("truncated u64"))?;
    Ok((u64::from_be_bytes(*head), rest))
}

/// Checks that stored bytes are the UTF-8 a `&str` of the API came from.
pub fn utf8(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| corrupt(&format!("{what} is not UTF-8")))
}

/// A [`StoreError::Corrupt`] with a message.
pub fn corrupt(message: &str) -> StoreError {
    StoreError::Corrupt(message.to_owned())
}

/// Maps a sled failure to the store's error.
pub fn io(error: sled::Error) -> StoreError {
    StoreError::Io(error.to_string())
}

fn epoch_prefix(kind: u8, epoch: &Epoch, tail_len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 2 + epoch.experiment.len() + 4 + tail_len);
    put_epoch_prefix(&mut key, kind, epoch);
    key
}

/// Appends the prefix [`epoch_prefix`] makes to `key`.
fn put_epoch_prefix(key: &mut Vec<u8>, kind: u8, epoch: &Epoch) {
    key.push(kind);
    put_bytes(key, epoch.experiment.as_bytes());
    key.extend_from_slice(&epoch.revision.to_be_bytes());
}

/// Key of a record that belongs to one epoch and is named by `tail` (unit, variant, token id).
pub fn epoch_key(kind: u8, epoch: &Epoch, tail: &str) -> Vec<u8> {
    let mut key = epoch_prefix(kind, epoch, tail.len());
    key.extend_from_slice(tail.as_bytes());
    key
}

std::thread_local! {
    /// [`with_epoch_key`]'s buffer, kept between calls.
    static KEY_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the key [`epoch_key`] makes, written into this thread's buffer instead of a
/// new `Vec`: a lookup by key on every request (the sticky table's, `SledStore::sticky`)
/// then allocates nothing. The buffer is taken out while `f` runs, so a nested call only
/// allocates its own.
pub fn with_epoch_key<T>(kind: u8, epoch: &Epoch, tail: &str, f: impl FnOnce(&[u8]) -> T) -> T {
    let mut key = KEY_BUFFER
        .try_with(|buffer| buffer.take())
        .unwrap_or_default();
    key.clear();
    put_epoch_prefix(&mut key, kind, epoch);
    key.extend_from_slice(tail.as_bytes());
    let out = f(&key);
    // Fails only while the thread is being torn down; the buffer is then dropped.
    let _ = KEY_BUFFER.try_with(|buffer| buffer.replace(key));
    out
}

/// Splits a key made by [`epoch_key`] back into its epoch and tail.
pub fn parse_epoch_key(key: &[u8]) -> Result<(u8, Epoch, String), StoreError> {
    let (kind, epoch, tail) = split_epoch_key(key)?;
    Ok((kind, epoch, utf8(tail, "key tail")?))
}

fn split_epoch_key(key: &[u8]) -> Result<(u8, Epoch, &[u8]), StoreError> {
    let (&kind, rest) = key.split_first().ok_or_else(|| corrupt("empty key"))?;
    let (experiment, rest) = take_bytes(rest)?;
    let (revision, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("key lacks a revision"))?;
    let epoch = Epoch {
        experiment: utf8(experiment, "experiment id")?,
        revision: u32::from_be_bytes(*revision),
    };
    Ok((kind, epoch, tail))
}

/// Key of the epoch's own record (start time, decision).
pub fn epoch_info_key(epoch: &Epoch) -> Vec<u8> {
    epoch_key(KIND_EPOCH, epoch, "")
}

/// Key of the spec the epoch is served under.
pub fn epoch_spec_key(epoch: &Epoch) -> Vec<u8> {
    epoch_key(KIND_EPOCH_SPEC, epoch, "")
}

/// Key of the epoch's history point at `at_ms`. All of one epoch's points share the prefix
/// and end in the 8-byte time, so sled's byte order is their time order.
pub fn history_key(epoch: &Epoch, at_ms: u64) -> Vec<u8> {
    let mut key = epoch_prefix(KIND_HISTORY, epoch, 8);
    key.extend_from_slice(&at_ms.to_be_bytes());
    key
}

/// Splits a key made by [`history_key`] into its epoch and time.
pub fn parse_history_key(key: &[u8]) -> Result<(Epoch, u64), StoreError> {
    match split_epoch_key(key)? {
        (KIND_HISTORY, epoch, tail) => {
            let (at_ms, rest) = take_u64(tail)?;
            if rest.is_empty() {
                Ok((epoch, at_ms))
            } else {
                Err(corrupt("trailing bytes after a history time"))
            }
        }
        _ => Err(corrupt("not a history key")),
    }
}

/// Key of the `chunk`-th expiry-index value written by commit `seq`, whose records are all due
/// by `due_ms`. Big-endian so that sled's byte order is due order; the commit and chunk only
/// keep values of different commits (or one big commit) with the same due time apart.
pub fn expiry_key(due_ms: u64, seq: u64, chunk: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(EXPIRY_KEY_LEN);
    key.push(KIND_EXPIRY);
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

const EXPIRY_KEY_LEN: usize = 1 + 3 * 8;

/// The due time of an expiry-index key made by [`expiry_key`].
pub fn parse_expiry_key(key: &[u8]) -> Result<u64, StoreError> {
    match key.split_first() {
        Some((&KIND_EXPIRY, rest)) if key.len() == EXPIRY_KEY_LEN => Ok(take_u64(rest)?.0),
        _ => Err(corrupt("not an expiry-index key")),
    }
}

/// Exclusive upper bound of the keys of `kind` whose leading big-endian due time is due at
/// `now_ms` (due time <= now): the expiry index, and the event and mark logs' generations.
pub fn due_end(kind: u8, now_ms: u64) -> Vec<u8> {
    match now_ms.checked_add(1) {
        Some(next) => {
            let mut end = vec![kind];
            end.extend_from_slice(&next.to_be_bytes());
            end
        }
        None => vec![kind + 1],
    }
}

/// Meta key where a banditd from before issue 9 kept the named secret; read only to move it to
/// its own file (`secret_file::migrate_from_sled`), never written.
pub fn secret_key(name: &str) -> Vec<u8> {
    let mut key = vec![KIND_META];
    key.extend_from_slice(b"secret/");
    key.extend_from_slice(name.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::epoch_of as epoch;

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            out.push(0xAB);
            let (back, rest) = take_varint(&out).unwrap();
            assert_eq!(back, value);
            assert_eq!(rest, &[0xAB]);
        }
    }

    #[test]
    fn small_varints_take_one_byte() {
        let mut out = Vec::new();
        put_varint(&mut out, 127);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn truncated_and_overlong_varints_are_corrupt() {
        assert!(matches!(take_varint(&[0x80]), Err(StoreError::Corrupt(_))));
        assert!(matches!(take_varint(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            take_varint(&[0xFF; 11]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            take_bytes(&[5, 1, 2]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn unit_keys_round_trip_for_awkward_units() {
        let units = [
            "",
            "\0",
            "a\0b",
            "a/b",
            "/",
            "\0\0\0",
            "ünïcødé-🎯",
            "x".repeat(300).as_str(),
        ]
        .map(str::to_owned);
        for unit in &units {
            let ep = epoch("exp\0/odd", 7);
            let key = epoch_key(KIND_STICKY, &ep, unit);
            let (kind, back_epoch, back_unit) = parse_epoch_key(&key).unwrap();
            assert_eq!(kind, KIND_STICKY);
            assert_eq!(back_epoch, ep);
            assert_eq!(&back_unit, unit);
        }
    }

    #[test]
    fn distinct_epoch_and_unit_pairs_never_share_a_key() {
        // Without the length prefix, ("a", "b…") and ("ab", "…") could collide.
        let pairs = [
            (epoch("a", 1), "b"),
            (epoch("ab", 1), ""),
            (epoch("a", 1), "\0b"),
            (epoch("a", 2), "b"),
            (epoch("a\0", 1), "b"),
            (epoch("", 1), "ab"),
        ];
        let keys: std::collections::HashSet<Vec<u8>> = pairs
            .iter()
            .map(|(ep, unit)| epoch_key(KIND_STICKY, ep, unit))
            .collect();
        assert_eq!(keys.len(), pairs.len());
    }

    #[test]
    fn expiry_keys_sort_by_due_time_then_commit_and_parse_back() {
        let early = expiry_key(5, 900, 3);
        let late = expiry_key(256, 1, 0);
        assert!(early < late);
        assert!(expiry_key(256, 1, 0) < expiry_key(256, 1, 1));
        assert!(expiry_key(256, 1, u64::MAX) < expiry_key(256, 2, 0));
        assert!(late < due_end(KIND_EXPIRY, 256));
        assert!(late >= due_end(KIND_EXPIRY, 255));
        assert!(expiry_key(u64::MAX, u64::MAX, u64::MAX) < due_end(KIND_EXPIRY, u64::MAX));
        assert_eq!(parse_expiry_key(&early).unwrap(), 5);
        assert_eq!(parse_expiry_key(&late).unwrap(), 256);
    }

    #[test]
    fn meta_keys_sort_before_every_other_kind_and_never_collide() {
        let secret = secret_key("seq");
        for key in [META_SEQ, META_EXPIRED_THROUGH, secret.as_slice()] {
            assert_eq!(key[0], KIND_META);
        }
        assert_ne!(secret.as_slice(), META_SEQ);
        assert!(META_SEQ < [KIND_ARM].as_slice());
    }

    #[test]
    fn history_keys_sort_by_epoch_then_time_and_round_trip() {
        let ep = epoch("exp", 1);
        let times = [0, 1, 255, 256, 1 << 40, u64::MAX];
        for pair in times.windows(2) {
            assert!(history_key(&ep, pair[0]) < history_key(&ep, pair[1]));
        }
        // Another epoch's points never fall inside this epoch's range.
        let (low, high) = (history_key(&ep, 0), history_key(&ep, u64::MAX));
        for other in [
            epoch("exp", 0),
            epoch("exp", 2),
            epoch("ex", 1),
            epoch("expa", 1),
        ] {
            for at in [0, u64::MAX] {
                let key = history_key(&other, at);
                assert!(key < low || key > high, "{other:?} at {at}");
            }
        }
        for at in times {
            assert_eq!(
                parse_history_key(&history_key(&ep, at)).unwrap(),
                (ep.clone(), at)
            );
        }
        let (kind, back, tail) = parse_epoch_key(&epoch_info_key(&ep)).unwrap();
        assert_eq!((kind, back, tail.as_str()), (KIND_EPOCH, ep, ""));
    }

    #[test]
    fn malformed_history_keys_are_corrupt_not_panics() {
        let ep = epoch("exp", 1);
        let key = history_key(&ep, 42);
        for len in 0..key.len() {
            assert!(matches!(
                parse_history_key(&key[..len]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut long = key.clone();
        long.push(0);
        assert!(matches!(
            parse_history_key(&long),
            Err(StoreError::Corrupt(_))
        ));
        let sticky = epoch_key(KIND_STICKY, &ep, "12345678");
        assert!(matches!(
            parse_history_key(&sticky),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_key_built_in_the_thread_buffer_is_the_key_epoch_key_makes() {
        let epoch = epoch("checkout-ü", 7);
        for tail in [
            "",
            "u1",
            "a much longer unit id than the first, to grow the buffer",
            "x",
        ] {
            let expected = epoch_key(KIND_STICKY, &epoch, tail);
            with_epoch_key(KIND_STICKY, &epoch, tail, |key| assert_eq!(key, expected));
        }
        // A nested call builds its own key; the outer one is untouched.
        with_epoch_key(KIND_STICKY, &epoch, "outer", |outer| {
            with_epoch_key(KIND_EPOCH, &epoch, "inner", |inner| {
                assert_eq!(inner, epoch_key(KIND_EPOCH, &epoch, "inner"));
            });
            assert_eq!(outer, epoch_key(KIND_STICKY, &epoch, "outer"));
        });
    }

    #[test]
    fn malformed_keys_are_corrupt_not_panics() {
        assert!(matches!(parse_epoch_key(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            parse_epoch_key(&[KIND_STICKY, 3, b'a']),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_epoch_key(&[KIND_STICKY, 1, b'a', 0]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_epoch_key(&[KIND_STICKY, 1, 0xFF, 0, 0, 0, 1]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_expiry_key(&[KIND_EXPIRY, 1]),
            Err(StoreError::Corrupt(_))
        ));
        let mut long = expiry_key(1, 2, 3);
        long.push(0);
        assert!(matches!(
            parse_expiry_key(&long),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_expiry_key(&[KIND_STICKY]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
