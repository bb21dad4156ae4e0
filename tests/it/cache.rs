//! The compiled-component cache runs native code, so it trusts nothing it did not
//! write itself: a tampered or planted artifact is recompiled and replaced with a
//! warning, never run; a cache directory another user owns or can write is refused
//! (the plugin still loads, compiled, and the warning says what to fix).

use super::*;
use ringleader_runtime::cache::{CacheOutcome, ComponentCache};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A runtime caching compiled components in `dir`.
fn cached_runtime(dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        ..Default::default()
    })
    .expect("runtime")
}

/// The one `.cwasm` file in `dir`.
fn artifact(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// Loads `name` through a new runtime (a restart) on `dir`, checks it works, and
/// returns how it was loaded and what was logged meanwhile.
async fn load_fresh(dir: &Path, name: &str) -> (CacheOutcome, String) {
    let (logs, _capture) = Logs::capture();
    let rt = cached_runtime(dir);
    let plugin = load(&rt, name).await;
    assert_eq!(plugin.info().await.unwrap().name, name, "the plugin runs");
    (plugin.cache_outcome(), logs.text())
}

/// The effective uid of this process: the owner of a file it just created.
fn current_uid() -> u32 {
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid()
}

#[tokio::test]
async fn a_tampered_artifact_is_recompiled_and_replaced_with_a_warning() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("components");
    assert_eq!(
        load_fresh(&dir, "sim-vendor-source").await.0,
        CacheOutcome::Miss
    );
    let path = artifact(&dir);
    let good = std::fs::read(&path).unwrap();

    // One flipped byte in the middle (code that may run silently, wrongly), a run
    // of flipped bytes a third of the way in (in the code section: a crash), and the
    // last byte.
    let tampers = [
        ("one byte in the middle", good.len() / 2, 1, 0x01),
        ("a run of bytes", good.len() / 3, 256, 0xff),
        ("the last byte", good.len() - 1, 1, 0x80),
    ];
    for (what, at, len, flip) in tampers {
        let mut bad = std::fs::read(&path).unwrap();
        bad[at..at + len].iter_mut().for_each(|b| *b ^= flip);
        std::fs::write(&path, &bad).unwrap();

        let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
        assert_eq!(outcome, CacheOutcome::Miss, "{what}: recompiled\n{logs}");
        assert!(
            logs.contains("WARN") && logs.contains("failed authentication"),
            "{what}: a warning\n{logs}"
        );
        assert!(logs.contains(&path.display().to_string()), "{logs}");
        assert_ne!(std::fs::read(&path).unwrap(), bad, "{what}: replaced");
        // The replacement is good: the next start uses it, silently.
        let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
        assert_eq!(outcome, CacheOutcome::Hit, "{what}\n{logs}");
        assert!(!logs.contains("WARN"), "{logs}");
    }
}

#[tokio::test]
async fn an_artifact_planted_under_the_expected_name_is_never_run() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("components");
    load_fresh(&dir, "sim-vendor-source").await;
    let expected = artifact(&dir);

    // A genuine compiled component, of another plugin, from another cache (and so
    // authenticated by another key, for another name): loadable by wasmtime, so
    // without authentication the host would run the installer's code when asked for
    // the source.
    let other = scratch.path().join("other");
    load_fresh(&other, "sim-vendor-installer").await;
    std::fs::copy(artifact(&other), &expected).unwrap();
    let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
    assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
    assert!(logs.contains("failed authentication"), "{logs}");

    // The same with this cache's own key: an artifact it wrote for another name.
    load_fresh(&dir, "sim-vendor-installer").await;
    let names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(names.len(), 2);
    let installer = names.iter().find(|p| **p != expected).unwrap();
    std::fs::copy(installer, &expected).unwrap();
    let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
    assert_eq!(outcome, CacheOutcome::Miss, "{logs}");
    assert!(logs.contains("failed authentication"), "{logs}");
}

#[tokio::test]
async fn a_cache_dir_owned_by_another_user_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("components");
    let uid = current_uid();
    if uid == 0 {
        // As root (CI): the directory another user made beforehand, with a planted file.
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("planted.cwasm"), b"not ours").unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(dir.join("planted.cwasm"), Some(65534), None).unwrap();
    } else {
        // Not root: a directory root owns stands for the other user's.
        std::fs::create_dir(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/", &dir).unwrap();
    }
    let owner = std::fs::metadata(&dir).unwrap().uid();
    assert_ne!(owner, uid);

    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    let dir_text = dir.display().to_string();
    assert!(err.contains(&dir_text), "names the dir: {err}");
    assert!(
        err.contains(&format!("uid {owner}")),
        "names the owner: {err}"
    );
    assert!(err.contains(&format!("uid {uid}")), "names the user: {err}");
    assert!(err.contains("chown"), "says how to fix: {err}");

    // What the caller sees: a warning saying the same, and the plugin compiled and run
    // without the cache, which is left alone.
    let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
    assert_eq!(outcome, CacheOutcome::Uncached, "{logs}");
    assert!(logs.contains("WARN") && logs.contains(&err), "{logs}");
    if uid == 0 {
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "nothing written into it");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().uid(),
            65534,
            "not taken over"
        );
    }
}

#[tokio::test]
async fn a_cache_dir_others_can_write_is_refused() {
    for mode in [0o777, 0o770, 0o1777] {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("components");
        load_fresh(&dir, "sim-vendor-source").await;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();

        let err = ComponentCache::new(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains(&format!("mode {mode:o}")), "{err}");
        assert!(
            err.contains(&format!("chmod 0700 {}", dir.display())),
            "{err}"
        );
        let (outcome, logs) = load_fresh(&dir, "sim-vendor-source").await;
        assert_eq!(outcome, CacheOutcome::Uncached, "{mode:o}: {logs}");
        assert!(logs.contains(&err), "{logs}");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            mode,
            "left as it is: files may have been planted while it was writable"
        );
    }
}

#[tokio::test]
async fn a_cache_whose_key_dir_others_can_write_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let parent = scratch.path().join("ringleader");
    let dir = parent.join("components");
    load_fresh(&dir, "sim-vendor-source").await;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = ComponentCache::new(&dir).unwrap_err().to_string();
    assert!(err.contains(&parent.display().to_string()), "{err}");
    assert!(err.contains("chmod"), "{err}");
    let (outcome, _) = load_fresh(&dir, "sim-vendor-source").await;
    assert_eq!(outcome, CacheOutcome::Uncached);
}
