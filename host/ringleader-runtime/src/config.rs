//! The operator's config file (`--config ringleader.toml`), read once per process into
//! an [`OperatorConfig`]: what each plugin is granted and told (`[plugins.NAME]`:
//! `http`, `exec`, `kv`, `settings`) and the credentials devices name
//! (`[credentials.NAME]`). Keys: `docs/operations.md`, "The operator config".
//!
//! Like every file people write, it is parsed with every unknown key and wrongly typed
//! value reported at once, each at its file:line:col (`ringleader-diag`).

use crate::grants::Grants;
use ringleader_diag::{Diagnostics, FileError};
use std::path::{Path, PathBuf};

/// An operator config that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read the operator config {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Every problem found, each with file, line, column, key and hint.
    #[error("the operator config is not valid:\n{0}")]
    Invalid(Diagnostics),
}

impl From<FileError> for ConfigError {
    fn from(e: FileError) -> ConfigError {
        match e {
            FileError::Read { path, error, .. } => ConfigError::Read { path, error },
            FileError::Invalid(d) => ConfigError::Invalid(d),
        }
    }
}

/// What a problem's hint points to.
const HINT: &str = "the operator config holds `[plugins.NAME]` tables (http, exec, kv, settings) and `[credentials.NAME]` tables (ssh_key, known_hosts, username, password_file, ca_file): see docs/operations.md, \"The operator config\"";

/// The operator's config, as parsed: the one value every part of a process that needs
/// grants, settings or credentials reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorConfig {
    /// The file it was read from; `None` when the command was given none (nothing is
    /// granted, no credentials).
    pub path: Option<PathBuf>,
    /// `[plugins.NAME]` (capabilities and settings, by plugin name) and
    /// `[credentials.NAME]`.
    pub grants: Grants,
}

impl OperatorConfig {
    /// Reads the config at `path`, or the empty config when there is none.
    pub fn load(path: Option<&Path>) -> Result<OperatorConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(OperatorConfig::default());
        };
        let text = ringleader_diag::read_file("config", path)?;
        OperatorConfig::parse(path, &text)
    }

    /// Parses config `text` read from `path`: every problem at once, located.
    pub fn parse(path: &Path, text: &str) -> Result<OperatorConfig, ConfigError> {
        let mut diags = Diagnostics::new(path, text);
        if let Err(e) = toml::de::DeTable::parse(text) {
            // Not TOML: where, and the line as it reads (escaped when shown).
            let span = e.span().unwrap_or(0..0);
            let (line, _) = diags.locate(span.start);
            let quoted = text.lines().nth(line - 1).unwrap_or_default();
            let message = format!("{} (the line reads `{quoted}`)", e.message().trim());
            diags.error(span, "", message, HINT);
            return Err(ConfigError::Invalid(diags));
        }
        let grants = diags.toml_from_str::<Grants>(text, HINT);
        diags.sort();
        match grants {
            Some(grants) if !diags.has_errors() => Ok(OperatorConfig {
                path: Some(path.to_owned()),
                grants,
            }),
            _ => Err(ConfigError::Invalid(diags)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match OperatorConfig::parse(Path::new("ringleader.toml"), text) {
            Err(ConfigError::Invalid(d)) => d.errors().map(|p| d.format(p)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grants_settings_and_credentials_parse_from_the_operator_config() {
        let text = "[plugins.acme-bios]\nhttp = [\"{device}\"]\nkv = true\nsettings = { poll = \"5\" }\n\n[credentials.bmc]\nusername = \"root\"\n";
        let config = OperatorConfig::parse(Path::new("ringleader.toml"), text).unwrap();
        assert_eq!(config.path.as_deref(), Some(Path::new("ringleader.toml")));
        let grant = config.grants.for_plugin("acme-bios");
        assert_eq!(grant.http, ["{device}"]);
        assert!(grant.kv);
        assert_eq!(grant.settings["poll"], "5");
        assert_eq!(config.grants.for_plugin("other"), crate::Grant::default());
        let bmc = &config.grants.credentials["bmc"];
        assert_eq!(bmc.username.as_deref(), Some("root"));
        assert_eq!(
            OperatorConfig::load(None).unwrap(),
            OperatorConfig::default()
        );
    }

    #[test]
    fn every_unknown_key_and_wrong_type_of_the_grants_is_reported_at_once_with_its_place() {
        let found = problems(
            "[plugins.x]\nhtp = []\nkv = \"yes\"\n\n[credentials.bmc]\npassword = \"x\"\n\n[plugin.y]\n",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].starts_with("ringleader.toml:2:1: `htp`: unknown field `htp`, expected one of `http`, `exec`, `kv`, `settings` (hint: remove the key or fix its spelling)"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("ringleader.toml:3:6: `kv`: "),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with("ringleader.toml:6:1: `password`: unknown field `password`"),
            "{found:#?}"
        );
        assert!(
            found[3].starts_with("ringleader.toml:8:2: `plugin`: unknown field `plugin`, expected `plugins` or `credentials`"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_config_that_is_not_toml_is_located_and_its_line_quoted_escaped() {
        let found = problems("[plugins.x]\nhttp = [\"a\u{202e}\" \r 1]\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("ringleader.toml:2:15: carriage return must be followed by newline, expected newline (the line reads `http = [\"a\\u{202e}\" \\r 1]`) (hint: the operator config holds"),
            "{found:#?}"
        );
    }
}
