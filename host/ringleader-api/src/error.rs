//! `ringleader.error/v1`: every error the daemon's API answers with.

use crate::{Document, Schema};
use serde::{Deserialize, Serialize};

/// `ringleader.error/v1` (docs/schemas/error.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorV1 {
    pub schema: Schema<ErrorV1>,
    /// What went wrong and how to fix it, for people.
    pub error: String,
    /// The request field concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Document for ErrorV1 {
    const SCHEMA: &'static str = "ringleader.error/v1";
}

impl ErrorV1 {
    pub fn new(error: impl Into<String>, field: Option<&str>) -> ErrorV1 {
        ErrorV1 {
            schema: Schema::new(),
            error: error.into(),
            field: field.map(str::to_string),
        }
    }
}
