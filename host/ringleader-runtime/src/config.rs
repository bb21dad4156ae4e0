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
const HINT: &str = "the operator config holds `[plugins.NAME]` tables (http, exec, kv, settings), `[credentials.NAME]` tables (ssh_key, known_hosts, username, password_file, ca_file) a `[scan]` table (every, concurrency, timeout) and a `[sources]` table (poll): see docs/operations.md, \"The operator config\"";

/// `[scan]`: the daemon's fleet scans (docs/operations.md, "Fleet scans").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanConfig {
    /// Scan every device of the registry this often (`every = "6h"`); `None`: only
    /// when asked (`ringleader fleet scan`).
    pub every: Option<std::time::Duration>,
    /// Devices scanned at once.
    pub concurrency: usize,
    /// How long one device's scan may take before it counts as failed (`timeout`).
    pub timeout: std::time::Duration,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            every: None,
            concurrency: 16,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// A duration as people write it (`6h`, `30m`, `2d`).
#[derive(Debug, Clone, Copy)]
struct Human(std::time::Duration);

impl<'de> serde::Deserialize<'de> for Human {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Human, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(v) if !v.is_zero() => Ok(Human(v)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "`{text}` is no time at all: give a duration such as `6h` or `30m`"
            ))),
            Err(e) => Err(serde::de::Error::custom(format!(
                "`{}` is not a duration ({e}): write e.g. `6h`, `30m`, `2d`",
                ringleader_diag::escape(&text)
            ))),
        }
    }
}

/// `[sources]`: how the daemon watches the patch sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourcesConfig {
    /// Poll every source this often (`poll = "1h"`), recording each patch's first
    /// sighting; `None`: sources are asked only when a rollout or compliance needs them.
    pub poll: Option<std::time::Duration>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    poll: Option<Human>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    every: Option<Human>,
    concurrency: Option<std::num::NonZeroUsize>,
    timeout: Option<Human>,
}

/// The file as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    plugins: std::collections::BTreeMap<String, crate::grants::Grant>,
    #[serde(default)]
    credentials: std::collections::BTreeMap<String, crate::transport::Credential>,
    scan: Option<RawScan>,
    sources: Option<RawSources>,
}

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
    /// `[scan]`.
    pub scan: ScanConfig,
    /// `[sources]`.
    pub sources: SourcesConfig,
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
        let raw = diags.toml_from_str::<RawConfig>(text, HINT);
        diags.sort();
        match raw {
            Some(raw) if !diags.has_errors() => {
                let defaults = ScanConfig::default();
                let scan = raw.scan.map_or(defaults, |s| ScanConfig {
                    every: s.every.map(|h| h.0),
                    concurrency: s.concurrency.map_or(defaults.concurrency, |n| n.get()),
                    timeout: s.timeout.map_or(defaults.timeout, |h| h.0),
                });
                Ok(OperatorConfig {
                    path: Some(path.to_owned()),
                    grants: Grants {
                        plugins: raw.plugins,
                        credentials: raw.credentials,
                    },
                    scan,
                    sources: SourcesConfig {
                        poll: raw.sources.and_then(|s| s.poll.map(|h| h.0)),
                    },
                })
            }
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
            found[3].starts_with("ringleader.toml:8:2: `plugin`: unknown field `plugin`, expected one of `plugins`, `credentials`, `scan`"),
            "{found:#?}"
        );
    }

    #[test]
    fn the_scan_table_sets_the_periodic_scan_and_bad_values_are_located() {
        let config = OperatorConfig::parse(
            Path::new("ringleader.toml"),
            "[scan]\nevery = \"6h\"\nconcurrency = 4\ntimeout = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(
            config.scan,
            ScanConfig {
                every: Some(std::time::Duration::from_secs(6 * 3600)),
                concurrency: 4,
                timeout: std::time::Duration::from_secs(30),
            }
        );
        let found = problems("[scan]\nevery = \"often\"\nconcurrency = 0\nevry = 1\n");
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("ringleader.toml:2:9: `every`: `often` is not a duration"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("ringleader.toml:3:15: `concurrency`: invalid value: integer `0`, expected a nonzero usize"),
            "{found:#?}"
        );
        assert!(found[2].contains("unknown field `evry`"), "{found:#?}");
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
