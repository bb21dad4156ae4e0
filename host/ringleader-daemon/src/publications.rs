//! The patches the daemon's sources have published (`DATA/publications/`, sled): each
//! patch's first sighting and revision (`ringleader_planner::continuous::Publications`
//! decides what is new or changed), and a log of `patch-published` entries, one per new
//! patch or revision, numbered from 0 for readers to follow by cursor. Each poll's
//! records are flushed before it returns: a first sighting is never taken back, so
//! time to patch is measured from the same instant after a restart.

use jiff::Timestamp;
use ringleader_planner::continuous::{Publication, Publications};
use ringleader_types::Patch;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

const CACHE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PublicationsError {
    #[error("cannot open the publications in {dir}: {message}")]
    Open { dir: String, message: String },
    #[error("the publications store failed: {0}")]
    Store(#[from] sled::Error),
    #[error("a publication record is unreadable: {0}")]
    Record(#[from] serde_json::Error),
}

/// One entry of the log: a patch new or changed, as first seen, with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub publication: Publication,
    pub source: String,
}

/// The durable publications.
#[derive(Debug)]
pub struct Watch {
    db: sled::Db,
    patches: sled::Tree,
    log: sled::Tree,
    known: Mutex<Publications>,
}

impl Watch {
    /// Opens (or creates) the publications in `dir`.
    pub fn open(dir: &Path) -> Result<Watch, PublicationsError> {
        let db = ringleader_runtime::durable::open(dir, CACHE_BYTES).map_err(|e| {
            PublicationsError::Open {
                dir: dir.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let patches = db.open_tree("patches")?;
        let log = db.open_tree("log")?;
        let mut known = Publications::default();
        for item in patches.iter() {
            let (_, value) = item?;
            known.restore(serde_json::from_slice(&value)?);
        }
        Ok(Watch {
            db,
            patches,
            log,
            known: Mutex::new(known),
        })
    }

    /// Records what a poll at `at` reported (each patch with its source): the new and
    /// changed ones, logged and flushed before this returns.
    pub fn observe(
        &self,
        at: Timestamp,
        reported: &[(Patch, String)],
    ) -> Result<Vec<Published>, PublicationsError> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut trial = known.clone();
        let new = trial.observe(at.as_second(), reported.iter().map(|(p, _)| p));
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.end()?;
        let mut out = Vec::new();
        for (seq, publication) in (first..).zip(new) {
            let source = reported
                .iter()
                .find(|(p, _)| p.id == publication.id)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let entry = Published {
                publication,
                source,
            };
            self.patches.insert(
                entry.publication.id.as_bytes(),
                serde_json::to_vec(&entry.publication)?,
            )?;
            self.log
                .insert(seq.to_be_bytes(), serde_json::to_vec(&entry)?)?;
            out.push(entry);
        }
        self.db.flush()?;
        // Only once durable is it known: a failed write is observed again next poll.
        *known = trial;
        Ok(out)
    }

    /// Log entries from cursor `since`, at most `limit`, each with its cursor.
    pub fn since(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Published)>, PublicationsError> {
        let mut out = Vec::new();
        for item in self.log.range(since.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            out.push((seq_of(&key), serde_json::from_slice(&value)?));
        }
        Ok(out)
    }

    /// The cursor the next entry will have (the log's length).
    pub fn end(&self) -> Result<u64, PublicationsError> {
        Ok(self.log.last()?.map_or(0, |(k, _)| seq_of(&k) + 1))
    }

    /// Every patch known, as last seen.
    pub fn known(&self) -> Publications {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A big-endian `u64` key (or value) read back; a short one is padded in front.
pub(crate) fn seq_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[8 - n..].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(id: &str, fixed: &str) -> Patch {
        Patch {
            id: id.into(),
            vendor: "v".into(),
            title: id.into(),
            component: "openssl".into(),
            fixed_version: fixed.into(),
            applies_to: String::new(),
            scheme: None,
            kind: ringleader_types::PatchKind::Security,
            severity: ringleader_types::Severity::Critical,
            cves: vec![],
            prerequisites: vec![],
            supersedes: vec![],
            reboot_required: false,
            artifact: ringleader_types::Artifact {
                url: String::new(),
                sha256: String::new(),
                size: 0,
            },
            released: 0,
        }
    }

    #[test]
    fn a_first_sighting_survives_a_restart_and_a_change_is_a_new_revision() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let feed = vec![(patch("a", "1"), "src".to_string())];
        {
            let watch = Watch::open(dir.path()).unwrap();
            let new = watch.observe(t(100), &feed).unwrap();
            assert_eq!(new.len(), 1);
            assert_eq!(new[0].source, "src");
            assert!(watch.observe(t(200), &feed).unwrap().is_empty());
        }
        let watch = Watch::open(dir.path()).unwrap();
        assert!(watch.observe(t(300), &feed).unwrap().is_empty());
        assert_eq!(watch.known().get("a").unwrap().first_seen, 100);
        let changed = vec![(patch("a", "2"), "src".to_string())];
        let new = watch.observe(t(400), &changed).unwrap();
        assert_eq!(new[0].publication.revision, 2);
        let log = watch.since(0, 10).unwrap();
        assert_eq!(
            log.iter()
                .map(|(c, p)| (*c, p.publication.revision))
                .collect::<Vec<_>>(),
            [(0, 1), (1, 2)]
        );
        assert_eq!(watch.since(1, 10).unwrap().len(), 1);
    }
}
