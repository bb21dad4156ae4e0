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
const HINT: &str = "the operator config holds `[plugins.NAME]` tables (http, exec, kv, settings), `[credentials.NAME]` tables (ssh_key, known_hosts, username, password_file, ca_file) a `[scan]` table (every, concurrency, timeout), a `[sources]` table (poll, and `[sources.intervals]` by source), `[webhooks.NAME]` tables (url, secret_file, events, severities, attempts, timeout, retry_max) and a `[notifications]` table (not_scanned_after): see docs/operations.md, \"The operator config\", and docs/notifications.md";

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcesConfig {
    /// Poll every source this often (`poll = "1h"`), recording each patch's first
    /// sighting; `None`: sources are asked only when a rollout or compliance needs them.
    pub poll: Option<std::time::Duration>,
    /// A source's own interval, by its plugin name (`[sources.intervals]`), instead of
    /// `poll`.
    pub intervals: std::collections::BTreeMap<String, std::time::Duration>,
}

impl SourcesConfig {
    /// How often the source named `name` is polled, if it is.
    pub fn interval(&self, name: &str) -> Option<std::time::Duration> {
        self.intervals.get(name).copied().or(self.poll)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    poll: Option<Human>,
    #[serde(default)]
    intervals: std::collections::BTreeMap<String, Human>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    every: Option<Human>,
    concurrency: Option<std::num::NonZeroUsize>,
    timeout: Option<Human>,
}

/// What a webhook may be told about (`events`), as `ringleader.notification/v1`
/// names them (the daemon's `NotificationKind`).
pub const WEBHOOK_EVENTS: &[&str] = &[
    "awaiting-approval",
    "halted",
    "completed",
    "device-failed",
    "rollback-failed",
    "patch-published",
    "device-not-scanned",
];

const SEVERITIES: &[&str] = &["unknown", "low", "medium", "high", "critical"];

/// `[webhooks.NAME]`: where notifications of the kinds in `events` are POSTed
/// (docs/notifications.md).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub name: String,
    /// `https://...`, or `http://` to a loopback address.
    pub url: String,
    /// The HMAC-SHA256 key every body is signed with: the bytes of `secret_file`, its
    /// trailing newline removed.
    pub secret: Vec<u8>,
    /// The notification kinds it wants (of [`WEBHOOK_EVENTS`]).
    pub events: Vec<String>,
    /// `patch-published` only for patches of these severities (default `critical`).
    pub severities: Vec<String>,
    /// Tries of one notification before it is dropped (default 10).
    pub attempts: u32,
    /// How long one try may take (default 10 s).
    pub timeout: std::time::Duration,
    /// The longest wait between two tries (the wait doubles from 1 s up to it;
    /// default 5 min).
    pub retry_max: std::time::Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// `[notifications]`: what the daemon notifies about beyond rollouts' events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// A registry device not scanned for this long is notified (`device-not-scanned`),
    /// once until it is scanned again; `None`: never.
    pub not_scanned_after: Option<std::time::Duration>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    secret_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    severities: Option<Vec<String>>,
    attempts: Option<std::num::NonZeroU32>,
    timeout: Option<Human>,
    retry_max: Option<Human>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    not_scanned_after: Option<Human>,
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
    #[serde(default)]
    webhooks: std::collections::BTreeMap<String, RawWebhook>,
    notifications: Option<RawNotifications>,
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
    /// `[webhooks.NAME]`, by name.
    pub webhooks: Vec<WebhookConfig>,
    /// `[notifications]`.
    pub notifications: NotificationsConfig,
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
        let webhooks = match &raw {
            Some(raw) => webhooks(path, &raw.webhooks, &mut diags),
            None => Vec::new(),
        };
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
                    sources: raw
                        .sources
                        .map_or_else(SourcesConfig::default, |s| SourcesConfig {
                            poll: s.poll.map(|h| h.0),
                            intervals: s.intervals.into_iter().map(|(k, h)| (k, h.0)).collect(),
                        }),
                    webhooks,
                    notifications: NotificationsConfig {
                        not_scanned_after: raw
                            .notifications
                            .and_then(|n| n.not_scanned_after.map(|h| h.0)),
                    },
                })
            }
            _ => Err(ConfigError::Invalid(diags)),
        }
    }
}

/// The webhooks as written, validated: every problem located at its key.
fn webhooks(
    path: &Path,
    raw: &std::collections::BTreeMap<String, RawWebhook>,
    d: &mut Diagnostics,
) -> Vec<WebhookConfig> {
    use ringleader_diag::Seg;
    const HOOK_HINT: &str = "a webhook needs url, secret_file and events: docs/notifications.md";
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (name, w) in raw {
        let at = |key: &'static str| [Seg::Key("webhooks"), Seg::Key(name), Seg::Key(key)];
        let before = d.errors().count();
        let missing = |key: &'static str, d: &mut Diagnostics| {
            d.error_at(
                &[Seg::Key("webhooks"), Seg::Key(name)],
                format!("webhook `{name}` has no `{key}`"),
                HOOK_HINT,
            );
        };
        match &w.url {
            None => missing("url", d),
            Some(url) => {
                if let Err(why) = webhook_url(url) {
                    d.error_at(
                        &at("url"),
                        format!("`{}` {why}", ringleader_diag::escape(url)),
                        "give an https:// URL, or http://127.0.0.1:PORT/... for a receiver on this machine",
                    );
                }
            }
        }
        let mut secret = Vec::new();
        match &w.secret_file {
            None => missing("secret_file", d),
            Some(file) => {
                let file = base.join(file);
                match read_secret(&file) {
                    Ok(mut bytes) => {
                        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            bytes.pop();
                        }
                        if bytes.is_empty() {
                            d.error_at(
                                &at("secret_file"),
                                format!("{} is empty", file.display()),
                                "write a long random secret into it, e.g. `openssl rand -hex 32 > FILE`",
                            );
                        }
                        secret = bytes;
                    }
                    Err(e) => {
                        d.error_at(
                            &at("secret_file"),
                            format!("cannot read {}: {e}", file.display()),
                            "the path is read as given, or beside the config when relative; the daemon's user must be able to read it",
                        );
                    }
                }
            }
        }
        let mut events = Vec::new();
        match &w.events {
            None => missing("events", d),
            Some(list) if list.is_empty() => {
                d.error_at(
                    &at("events"),
                    format!("webhook `{name}` asks for no events"),
                    &format!("name some of {}", WEBHOOK_EVENTS.join(", ")),
                );
            }
            Some(list) => {
                for (i, e) in list.iter().enumerate() {
                    if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                        d.error_at(
                            &[
                                Seg::Key("webhooks"),
                                Seg::Key(name),
                                Seg::Key("events"),
                                Seg::Index(i),
                            ],
                            format!("`{}` is no notification kind", ringleader_diag::escape(e)),
                            &format!("the kinds are {}", WEBHOOK_EVENTS.join(", ")),
                        );
                    } else if !events.contains(e) {
                        events.push(e.clone());
                    }
                }
            }
        }
        let mut severities = Vec::new();
        for (i, s) in w.severities.iter().flatten().enumerate() {
            if SEVERITIES.contains(&s.as_str()) {
                severities.push(s.clone());
            } else {
                d.error_at(
                    &[
                        Seg::Key("webhooks"),
                        Seg::Key(name),
                        Seg::Key("severities"),
                        Seg::Index(i),
                    ],
                    format!("`{}` is no severity", ringleader_diag::escape(s)),
                    &format!("the severities are {}", SEVERITIES.join(", ")),
                );
            }
        }
        if w.severities.is_none() {
            severities.push("critical".to_string());
        }
        if d.errors().count() == before {
            out.push(WebhookConfig {
                name: name.clone(),
                url: w.url.clone().unwrap_or_default(),
                secret,
                events,
                severities,
                attempts: w.attempts.map_or(10, |n| n.get()),
                timeout: w
                    .timeout
                    .map_or(std::time::Duration::from_secs(10), |h| h.0),
                retry_max: w
                    .retry_max
                    .map_or(std::time::Duration::from_secs(300), |h| h.0),
            });
        }
    }
    out
}

/// The most bytes a webhook's secret file may hold.
const MAX_SECRET: u64 = 4096;

/// A secret file's bytes, at most [`MAX_SECRET`] (a device or a huge file is refused,
/// not read to its end).
fn read_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SECRET {
        return Err(std::io::Error::other(format!(
            "longer than {MAX_SECRET} bytes: a secret is a line such as `openssl rand -hex 32` prints"
        )));
    }
    Ok(bytes)
}

/// Why `url` cannot be a webhook's: only `https`, or `http` to a loopback address
/// (a secret-signed body still crosses the network readable over plain `http`).
pub fn webhook_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("is not a URL ({e})"))?;
    let host = uri.host().ok_or("has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare == "localhost"
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "is plain http to `{host}`: only https, or http to a loopback address, may receive notifications"
                ))
            }
        }
        _ => Err("is neither https:// nor http://".into()),
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

    #[test]
    fn webhooks_read_their_secret_and_every_mistake_is_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ops.secret"), "s3cret\n").unwrap();
        let path = dir.path().join("ringleader.toml");
        let good = "[webhooks.ops]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"ops.secret\"\nevents = [\"halted\", \"patch-published\"]\nretry_max = \"2s\"\n\n[notifications]\nnot_scanned_after = \"2d\"\n";
        let config = OperatorConfig::parse(&path, good).unwrap();
        let hook = &config.webhooks[0];
        assert_eq!(hook.name, "ops");
        assert_eq!(hook.secret, b"s3cret");
        assert_eq!(hook.events, ["halted", "patch-published"]);
        assert_eq!(hook.severities, ["critical"]);
        assert_eq!((hook.attempts, hook.retry_max.as_secs()), (10, 2));
        assert!(!format!("{hook:?}").contains("s3cret"));
        let zero = OperatorConfig::parse(&path, &good.replace("ops.secret", "/dev/zero"));
        assert!(
            matches!(&zero, Err(ConfigError::Invalid(d)) if d.to_string().contains("/dev/zero: not a regular file")),
            "{zero:?}"
        );
        assert_eq!(
            config.notifications.not_scanned_after,
            Some(std::time::Duration::from_secs(2 * 86400))
        );

        let bad = "[webhooks.a]\nurl = \"http://hooks.example.com/x\"\nsecret_file = \"missing.secret\"\nevents = [\"halted\", \"exploded\"]\nseverities = [\"urgent\"]\n\n[webhooks.b]\nurl = \"https://hooks.example.com/y\"\n";
        let found = match OperatorConfig::parse(&path, bad) {
            Err(ConfigError::Invalid(d)) => d.errors().map(|p| d.format(p)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let file = path.display().to_string();
        let expect = [
            format!(
                "{file}:2:7: `webhooks.a.url`: `http://hooks.example.com/x` is plain http to `hooks.example.com`"
            ),
            format!("{file}:3:15: `webhooks.a.secret_file`: cannot read "),
            format!("{file}:4:21: `webhooks.a.events[1]`: `exploded` is no notification kind"),
            format!("{file}:5:15: `webhooks.a.severities[0]`: `urgent` is no severity"),
            format!("{file}:7:1: `webhooks.b`: webhook `b` has no `secret_file`"),
            format!("{file}:7:1: `webhooks.b`: webhook `b` has no `events`"),
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for (got, want) in found.iter().zip(&expect) {
            assert!(got.starts_with(want.as_str()), "{got}\nwanted {want}");
        }
    }

    #[test]
    fn a_source_may_have_its_own_interval_and_a_bad_one_is_located() {
        let text = "[sources]\npoll = \"1h\"\n[sources.intervals]\ncsaf-source = \"15m\"\n";
        let config = OperatorConfig::parse(Path::new("ringleader.toml"), text).unwrap();
        let minutes = |m: u64| Some(std::time::Duration::from_secs(m * 60));
        assert_eq!(config.sources.interval("csaf-source"), minutes(15));
        assert_eq!(config.sources.interval("lvfs-source"), minutes(60));
        let found = problems("[sources.intervals]\ncsaf-source = \"soon\"\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("ringleader.toml:2:15: `csaf-source`: `soon` is not a duration"),
            "{found:#?}"
        );
    }
}
