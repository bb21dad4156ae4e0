//! Opening the sled databases Ringleader keeps its state in, so that whatever a crash,
//! a full disk or a damaged file left behind gives an error naming the place, never a
//! panic and never a silent fresh start.
//!
//! - sled writes a snapshot to `snap.<lsn>.generating` and renames it when complete; a
//!   stop in between (a full disk, a kill) leaves the `.generating` file, which sled
//!   would then read as its newest snapshot and refuse as corrupt. It is never
//!   complete, so it is removed before opening (the log it summarises is still there).
//! - sled panics on some damaged files (a truncated `db`): the panic is caught here and
//!   becomes an error naming the directory.
//! - Every database gets a marker key when it is created. A directory that held a
//!   database (its `db` file exists) but opens without the marker lost its data (a
//!   truncated file, removed snapshots): an error, not an empty state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// How many times a database locked by a handle that is closing is tried again, 50 ms
/// apart (another process holding it gets an error after these 10 s).
const LOCK_TRIES: u32 = 200;

/// The key every database created by Ringleader holds, in sled's default tree.
const MARKER: &[u8] = b"ringleader/created";

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database in {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error(
        "the database in {} is damaged ({message}); its files are left as they are: restore them from a backup, or move the directory aside to start it afresh",
        path.display()
    )]
    Damaged { path: PathBuf, message: String },
    #[error(
        "the database in {} holds no data where data was expected (its `db` file is there but empty or its snapshots are gone); its files are left as they are: restore them from a backup, or move the directory aside to start it afresh",
        path.display()
    )]
    Emptied { path: PathBuf },
}

/// Opens (or creates) the sled database in `dir` with the given page cache size.
pub fn open(dir: &Path, cache_bytes: u64) -> Result<sled::Db, OpenError> {
    let existed = match std::fs::metadata(dir.join("db")) {
        // Truncated: refused before sled sees it (sled would start it afresh).
        Ok(meta) if meta.len() == 0 => {
            return Err(OpenError::Emptied {
                path: dir.to_owned(),
            });
        }
        Ok(_) => true,
        Err(_) => false,
    };
    remove_unfinished_snapshots(dir);
    let open_once = || {
        catch_unwind(AssertUnwindSafe(|| {
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()
        }))
    };
    // sled holds a lock on its `db` file: a handle of this process that was just let
    // go releases it once sled's own threads have finished with it.
    let mut opened = open_once();
    for _ in 0..LOCK_TRIES {
        match &opened {
            Ok(Err(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
                opened = open_once();
            }
            _ => break,
        }
    }
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(sled::Error::Corruption { .. })) => {
            return Err(OpenError::Damaged {
                path: dir.to_owned(),
                message: "sled reports corrupted data".into(),
            });
        }
        Ok(Err(e)) => {
            return Err(OpenError::Open {
                path: dir.to_owned(),
                message: e.to_string(),
            });
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("sled panicked");
            return Err(OpenError::Damaged {
                path: dir.to_owned(),
                message: format!("sled panicked: {message}"),
            });
        }
    };
    let open_error = |e: sled::Error| OpenError::Open {
        path: dir.to_owned(),
        message: e.to_string(),
    };
    match db.get(MARKER).map_err(open_error)? {
        Some(_) => {}
        // A database written before the marker existed: it has trees of its own.
        None if existed && !has_data(&db) => {
            return Err(OpenError::Emptied {
                path: dir.to_owned(),
            });
        }
        None => {
            db.insert(MARKER, &b"1"[..]).map_err(open_error)?;
            db.flush().map_err(open_error)?;
        }
    }
    Ok(db)
}

/// Whether `db` holds anything beyond sled's own default tree.
fn has_data(db: &sled::Db) -> bool {
    db.tree_names().iter().any(|name| {
        name.as_ref() != b"__sled__default" && db.open_tree(name).is_ok_and(|t| !t.is_empty())
    }) || !db.is_empty()
}

/// Removes `snap.*.generating` files: snapshots sled did not finish writing.
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::warn!(
                    "removed {}: a snapshot the database did not finish writing (the disk was full or the process stopped)",
                    path.display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_some(dir: &Path) {
        let db = open(dir, 1 << 20).unwrap();
        let tree = db.open_tree("t").unwrap();
        for i in 0..100u32 {
            tree.insert(i.to_be_bytes(), &[7u8; 100][..]).unwrap();
        }
        db.flush().unwrap();
    }

    #[test]
    fn a_new_database_opens_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        write_some(dir.path());
        let db = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(db.open_tree("t").unwrap().len(), 100);
    }

    #[test]
    fn an_unfinished_snapshot_is_removed_not_read() {
        let dir = tempfile::tempdir().unwrap();
        write_some(dir.path());
        let stray = dir.path().join("snap.00000000FFFFFFFF.generating");
        std::fs::write(&stray, b"").unwrap();
        let db = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(db.open_tree("t").unwrap().len(), 100);
        assert!(!stray.exists());
    }

    #[test]
    fn a_truncated_database_is_an_error_naming_it_never_a_panic_or_an_empty_start() {
        let dir = tempfile::tempdir().unwrap();
        write_some(dir.path());
        std::fs::File::create(dir.path().join("db")).unwrap(); // truncate
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("snap.") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        let e = open(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains("backup"), "{e}");
        // Its files are left as they were.
        assert_eq!(std::fs::metadata(dir.path().join("db")).unwrap().len(), 0);
    }

    #[test]
    fn a_damaged_database_is_an_error_naming_it_never_a_panic() {
        for keep in [1u64, 20, 100, 600, 5000] {
            let dir = tempfile::tempdir().unwrap();
            write_some(dir.path());
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join("db"))
                .unwrap();
            file.set_len(keep).unwrap();
            drop(file);
            match open(dir.path(), 1 << 20) {
                Err(e) => assert!(e.to_string().contains(&dir.path().display().to_string())),
                // What sled could still read of it.
                Ok(db) => drop(db),
            }
        }
    }
}
