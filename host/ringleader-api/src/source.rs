//! `ringleader.publications/v1`: the patches the daemon's sources published, each as
//! first seen (`GET /v1/publications`, `ringleader publications --json`).

use crate::plugin::{KindV1, SeverityV1};
use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `ringleader.publications/v1` (docs/schemas/publications.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationsV1 {
    pub schema: Schema<PublicationsV1>,
    /// `patch-published` entries from the cursor asked for, oldest first.
    pub publications: Vec<PublishedV1>,
    /// The cursor to ask from next (`?since=`).
    pub next: u64,
}

impl Document for PublicationsV1 {
    const SCHEMA: &'static str = "ringleader.publications/v1";
}

/// A patch new or changed, as a poll first saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedV1 {
    pub cursor: u64,
    pub id: String,
    pub kind: KindV1,
    pub severity: SeverityV1,
    pub source: String,
    pub released: Timestamp,
    pub first_seen: Timestamp,
    /// 1 when new; one more each time what decides its install changed.
    pub revision: u32,
}
