//! The daemon's named API tokens: `ringleader.tokens/v1` (`ringleader token list
//! --json`), and what `token new --json` prints.

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `ringleader.tokens/v1` (docs/schemas/tokens.v1.json). Never the tokens themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensV1 {
    pub schema: Schema<TokensV1>,
    /// By name.
    pub tokens: Vec<TokenV1>,
}

impl Document for TokensV1 {
    const SCHEMA: &'static str = "ringleader.tokens/v1";
}

/// One named token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenV1 {
    /// As audit entries give it (`by`).
    pub name: String,
    /// The file holding the token (DATA/tokens/NAME).
    pub path: String,
    /// When the file was last written, if known.
    pub created: Option<Timestamp>,
    /// Why the daemon refuses this token; none when it accepts it.
    pub ignored: Option<String>,
}

/// What `ringleader token new NAME --json` prints: the token's name and its file (no
/// `schema` key: it is that command's own answer, not a published document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub name: String,
    pub path: String,
}
