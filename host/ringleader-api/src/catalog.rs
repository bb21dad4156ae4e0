//! `ringleader catalog check --json` (`ringleader.catalog-check/v1`): an operator's
//! catalog file checked.

use crate::{Document, Schema};
use serde::{Deserialize, Serialize};

/// `ringleader.catalog-check/v1` (docs/schemas/catalog-check.v1.json): one line of
/// `catalog check --json`, one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCheckV1 {
    pub schema: Schema<CatalogCheckV1>,
    /// The path given.
    pub path: String,
    pub valid: bool,
    /// When valid: the ids of its patches, in the file's order.
    #[serde(default)]
    pub patches: Vec<String>,
    /// When not valid: every problem, in the file's order.
    #[serde(default)]
    pub problems: Vec<ProblemV1>,
    /// When the file could not be read at all: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Document for CatalogCheckV1 {
    const SCHEMA: &'static str = "ringleader.catalog-check/v1";
}

/// One problem of a file, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemV1 {
    /// 1-based line and column (columns count characters).
    pub line: u64,
    pub column: u64,
    /// The key concerned (`patches[2].fixed-version`); empty when none applies.
    pub key: String,
    pub message: String,
    /// How to fix it; empty when there is nothing useful to say.
    pub hint: String,
    /// The whole problem as the text output prints it:
    /// `FILE:LINE:COL: `key`: message (hint: ...)`.
    pub text: String,
}
