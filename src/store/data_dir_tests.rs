//! The data dir is private: created 0700, every file the store writes 0600; an existing dir
//! is left as the operator made it, and the store's files inside it are tightened.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::store::Store;
use crate::store::test_support::*;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn every_file_and_dir_of_a_fresh_data_dir_is_private_to_the_server_user() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested").join("data");
    {
        let store = open(&dir);
        write_a_little_of_everything(&store);
        block_on(store.secret("token", Box::new(|| vec![9; 32]))).unwrap();
        block_on(store.shutdown()).unwrap();
    }
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let paths = every_path(&dir);
    assert!(paths.iter().any(|p| p.ends_with("db")), "{paths:?}");
    for path in paths {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}

#[test]
fn an_open_existing_dir_is_kept_and_the_files_in_it_are_tightened() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_file = dir.path().join("left-by-an-older-banditd");
    std::fs::write(&old_file, b"x").unwrap();
    std::fs::set_permissions(&old_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sub = dir.path().join("blobs");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    prepare(dir.path()).unwrap();
    assert_eq!(mode(dir.path()), 0o755, "the operator's choice for the dir");
    assert_eq!(mode(&old_file), 0o600);
    assert_eq!(mode(&sub), 0o700);
}
