//! The token secret lives in its own private file, never in sled's log; a secret an older
//! banditd kept in sled moves there on open and keeps its value.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::RngExt;

use super::*;
use crate::store::test_support::*;
use crate::store::{Store, StoreError};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn a_fresh_stores_secret_is_in_its_own_private_file_and_in_no_other_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let mut secret = vec![0u8; 32];
    rand::rng().fill(&mut secret[..]);
    {
        let store = open(&dir);
        write_a_little_of_everything(&store);
        let made = secret.clone();
        assert_eq!(
            block_on(store.secret("token", Box::new(move || made))).unwrap(),
            secret
        );
        write_a_little_of_everything(&store);
        block_on(store.shutdown()).unwrap();
    }
    let secret_path = path(&dir, "token");
    assert_eq!(std::fs::read(&secret_path).unwrap(), secret);
    assert_eq!(mode(&secret_path), 0o600);
    for file in every_path(&dir) {
        if file == secret_path || file.is_dir() {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, &secret),
            "the secret's bytes are in {}",
            file.display()
        );
    }
}

#[test]
fn a_secret_kept_in_sled_by_an_older_banditd_moves_to_its_file_and_keeps_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let legacy: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
    {
        let db = raw_db(dir.path());
        db.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT))
            .unwrap();
        db.insert(keys::secret_key("token"), codec::encode_secret(&legacy, 7))
            .unwrap();
        db.flush().unwrap();
    }
    {
        let store = open(dir.path());
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let secret = block_on(store.secret(
            "token",
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                vec![1; 32]
            }),
        ));
        assert_eq!(
            secret.unwrap(),
            legacy,
            "tokens issued before keep verifying"
        );
        assert_eq!(made.load(Ordering::SeqCst), 0);
    }
    assert_eq!(std::fs::read(path(dir.path(), "token")).unwrap(), legacy);
    assert_eq!(mode(&path(dir.path(), "token")), 0o600);
    let db = raw_db(dir.path());
    assert_eq!(db.get(keys::secret_key("token")).unwrap(), None);
}

#[test]
fn an_existing_secret_file_wins_over_a_leftover_sled_copy() {
    // A crash after the file was published and before the sled key was removed.
    let dir = tempfile::tempdir().unwrap();
    read_or_create(dir.path(), "token", &mut || vec![2; 32]).unwrap();
    {
        let db = raw_db(dir.path());
        db.insert(keys::META_FORMAT, &codec::encode_u64(keys::STORE_FORMAT))
            .unwrap();
        db.insert(keys::secret_key("token"), codec::encode_secret(&[3; 32], 7))
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        block_on(store.secret("token", Box::new(|| vec![4; 32]))).unwrap(),
        vec![2; 32]
    );
}

#[test]
fn a_temporary_file_left_by_a_crash_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".token.secret.tmp"), b"half a ke").unwrap();
    let secret = read_or_create(dir.path(), "token", &mut || vec![5; 32]).unwrap();
    assert_eq!(secret, vec![5; 32]);
    assert_eq!(
        std::fs::read(path(dir.path(), "token")).unwrap(),
        vec![5; 32]
    );
    assert!(!dir.path().join(".token.secret.tmp").exists());
}

#[test]
fn an_empty_secret_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(path(dir.path(), "token"), b"").unwrap();
    let error = read_or_create(dir.path(), "token", &mut || vec![6; 32]).unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt(message) if message.contains("token.secret")),
        "{error}"
    );
}

#[test]
fn a_secret_name_that_is_not_a_plain_file_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "../token", "a/b", "Token"] {
        assert!(
            read_or_create(dir.path(), name, &mut || vec![7; 32]).is_err(),
            "{name:?}"
        );
    }
}
