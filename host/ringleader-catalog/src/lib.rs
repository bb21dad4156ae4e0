//! An operator's own catalog: a plain TOML or JSON file of the patches an operator
//! writes for internal packages and firmware (the `catalog-source` plugin's file, and
//! `ringleader catalog check`'s). Format: `docs/bundled-plugins.md`, "catalog-source";
//! JSON Schema of its JSON form: `docs/schemas/catalog.v1.json`.
//!
//! One schema, two syntaxes: JSON when the file's name ends in `.json`, TOML otherwise.
//! Parsed raw (unknown keys refused), then validated into [`ringleader_types::Patch`]es
//! with every problem reported at once, each located (file:line:col, `ringleader-diag`):
//! versions read in the patch's scheme (`vendor` when it names none), `applies-to` a
//! range of that scheme, ids unique, prerequisites among the file's patches, SHA-256s
//! of 64 hex digits, artifact URLs `https://`, `http://` or `file://`.
//!
//! Pure: no I/O but [`load`], no clock. It builds for `wasm32-wasip2` (the plugin uses
//! it), so it depends on nothing that does not.

mod released;
mod validate;

pub use released::parse_released;
use ringleader_diag::{Diagnostics, FileError, Format};
use ringleader_types::Patch;
use serde::Deserialize;
use std::path::Path;

/// A catalog that could not be read or is not valid: [`FileError::Invalid`] holds every
/// problem, located.
pub type CatalogError = FileError;

/// Where the format is documented, for every hint that has nothing better to say.
const HINT: &str = "see docs/bundled-plugins.md (catalog-source) for the catalog format";

/// Reads the catalog at `path`: JSON when it ends in `.json`, TOML otherwise.
pub fn load(path: &Path) -> Result<Vec<Patch>, CatalogError> {
    let text = ringleader_diag::read_file("catalog", path)?;
    parse(path, &text)
}

/// Validates catalog `bytes` read from `path` (a file's path, or the URL it came from:
/// only its name's ending is looked at, for the syntax). Bytes that are not UTF-8 are an
/// error located at the first bad one.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<Patch>, CatalogError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(_) => Err(FileError::Invalid(ringleader_diag::not_utf8(
            "catalog", path, bytes,
        ))),
    }
}

/// Validates catalog `text` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Patch>, CatalogError> {
    let format = format_of(path);
    let mut diags = Diagnostics::with_format(path, text, format);
    // TOML: unknown keys and values of the wrong type are each recorded and left out,
    // so that the rest is still validated (every problem at once). JSON: serde_json
    // stops at the first.
    let raw: Option<RawCatalog> = match format {
        Format::Toml => diags.toml_from_str(text, HINT),
        Format::Json => serde_json::from_str(text)
            .map_err(|e| diags.json_error(&e, HINT))
            .ok(),
    };
    let patches = raw.map(|raw| validate::validate(raw, &mut diags));
    diags.sort();
    match patches {
        Some(patches) if !diags.has_errors() => Ok(patches),
        _ => Err(FileError::Invalid(diags)),
    }
}

/// The syntax of the file at `path`: JSON when its name ends in `.json` (a URL's query
/// is not its name), TOML otherwise.
pub fn format_of(path: &Path) -> Format {
    let text = path.to_string_lossy();
    let name = text.split(['?', '#']).next().unwrap_or_default();
    if name.to_ascii_lowercase().ends_with(".json") {
        Format::Json
    } else {
        Format::Toml
    }
}

/// The file as written: every key of the format, nothing more.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    /// The vendor of every patch that names none.
    vendor: Option<String>,
    #[serde(default)]
    patches: Vec<RawPatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPatch {
    // Required keys are options here: one missing is reported beside every other
    // problem (serde would stop at it).
    id: Option<String>,
    vendor: Option<String>,
    title: Option<String>,
    component: Option<String>,
    fixed_version: Option<String>,
    scheme: Option<String>,
    applies_to: Option<String>,
    severity: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    cves: Vec<String>,
    #[serde(default, deserialize_with = "released::string_or_datetime")]
    released: Option<String>,
    artifact: Option<RawArtifact>,
    #[serde(default)]
    prerequisites: Vec<String>,
    #[serde(default)]
    supersedes: Vec<String>,
    #[serde(default)]
    reboot: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    url: String,
    sha256: String,
    size: u64,
}

#[cfg(test)]
mod tests;
