use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A cache in a fresh scratch directory: (scratch, cache dir).
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("ringleader").join("components");
    (scratch, dir)
}

#[test]
fn a_new_cache_makes_an_owner_only_dir_and_key_beside_it() {
    let (_scratch, dir) = scratch();
    let cache = ComponentCache::new(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    let key = cache.key_path();
    assert_eq!(key, dir.with_file_name("components.key"));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::read(&key).unwrap(), cache.key.0);
    // No temporary file left behind.
    let entries: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");

    // The next start reads the same key.
    let again = ComponentCache::new(&dir).unwrap();
    assert_eq!(again.key.0, cache.key.0);
}

#[test]
fn a_damaged_or_exposed_key_is_replaced() {
    let (_scratch, dir) = scratch();
    let first = ComponentCache::new(&dir).unwrap();
    let key = first.key_path();

    for damaged in [&b""[..], b"short", &[7; KEY_LEN + 1]] {
        std::fs::write(&key, damaged).unwrap();
        let cache = ComponentCache::new(&dir).unwrap();
        assert_ne!(cache.key.0, first.key.0);
        assert_eq!(std::fs::read(&key).unwrap(), cache.key.0);
        assert_eq!(mode(&key), 0o600);
    }

    let before = ComponentCache::new(&dir).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cache = ComponentCache::new(&dir).unwrap();
    assert_ne!(cache.key.0, before.key.0, "others may have read it");
    assert_eq!(mode(&key), 0o600);
}

#[test]
fn a_key_that_is_not_a_file_of_ours_is_refused() {
    let (_scratch, dir) = scratch();
    std::fs::create_dir_all(dir.with_file_name("components.key")).unwrap();
    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    assert!(err.contains("components.key"), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("rm "), "{err}");

    let (_scratch, dir) = scratch();
    let key = dir.with_file_name("components.key");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &key).unwrap();
    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn another_users_key_is_refused() {
    let (_scratch, dir) = scratch();
    let cache = ComponentCache::new(&dir).unwrap();
    if rustix::process::geteuid().as_raw() != 0 {
        // Only root can give a file away; CI runs as root.
        return;
    }
    std::os::unix::fs::chown(cache.key_path(), Some(65534), None).unwrap();
    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    assert!(err.contains("uid 65534"), "{err}");
    assert!(
        err.contains(&format!("rm {}", cache.key_path().display())),
        "{err}"
    );
    assert_eq!(std::fs::metadata(cache.key_path()).unwrap().uid(), 65534);
}

#[test]
fn a_sticky_world_writable_parent_is_accepted_and_a_plain_one_refused() {
    let (scratch, dir) = scratch();
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
    ComponentCache::new(&dir).unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    assert!(err.contains("writable by its group (mode 775)"), "{err}");
    assert!(
        err.contains(&format!("chmod go-w {}", parent.display())),
        "{err}"
    );
    drop(scratch);
}

#[test]
fn a_tag_covers_the_name_and_every_byte() {
    let (_scratch, dir) = scratch();
    let cache = ComponentCache::new(&dir).unwrap();
    let artifact = b"compiled code".to_vec();
    let tag = cache.mac("a.cwasm", &artifact).finalize().into_bytes();
    let file = [MAGIC.as_slice(), &tag, &artifact].concat();
    assert_eq!(cache.authenticate("a.cwasm", &file), Some(&artifact[..]));
    assert_eq!(cache.authenticate("b.cwasm", &file), None);
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 1;
        assert_eq!(cache.authenticate("a.cwasm", &bad), None, "byte {i}");
    }
    assert_eq!(cache.authenticate("a.cwasm", &file[..file.len() - 1]), None);
    assert_eq!(cache.authenticate("a.cwasm", &file[..20]), None);
    assert_eq!(cache.authenticate("a.cwasm", &artifact), None);

    let other = ComponentCache::new(dir.with_file_name("other")).unwrap();
    assert_eq!(other.authenticate("a.cwasm", &file), None, "another key");
}
