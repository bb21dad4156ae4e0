//! Plugins: the patch file `plugin run` reads (`ringleader.patch/v1`), its result
//! (`ringleader.plugin-run/v1`), `plugin check --json` (`ringleader.plugin-check/v1`)
//! and `plugin list --json` (`ringleader.plugin-list/v1`).

use crate::{Document, Schema};
use jiff::Timestamp;
use ringleader_types::{
    Artifact, Device, HealthReport, InstallOutcome, Patch, PatchKind, Readiness, Severity,
    VerifyReport,
};
use serde::{Deserialize, Serialize};

named! {
    /// Which WIT world a plugin implements.
    pub enum World {
        PatchSource = "patch-source",
        Installer = "installer",
    }
}

// ---- The patch file: `ringleader.patch/v1` (docs/schemas/patch.v1.json) ----

/// A patch as a file holds it and as `plugin run` prints it: the WIT `patch` record with
/// snake_case keys and `released` in RFC 3339. Optional keys default to empty; unknown
/// keys are refused (a person writes this file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchV1 {
    pub id: String,
    pub vendor: String,
    #[serde(default)]
    pub title: String,
    pub component: String,
    pub fixed_version: String,
    #[serde(default)]
    pub applies_to: String,
    /// How the versions are read (WIT 0.2.0 sources name it); left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<ringleader_types::Scheme>,
    pub kind: KindV1,
    #[serde(default)]
    pub severity: SeverityV1,
    #[serde(default)]
    pub cves: Vec<String>,
    #[serde(default)]
    pub prerequisites: Vec<String>,
    #[serde(default)]
    pub supersedes: Vec<String>,
    #[serde(default)]
    pub reboot_required: bool,
    pub artifact: ArtifactV1,
    #[serde(default = "epoch")]
    pub released: Timestamp,
}

/// The patch file has no `schema` key (people write it); this is its schema's title.
impl Document for PatchV1 {
    const SCHEMA: &'static str = "ringleader.patch/v1";
}

fn epoch() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

named! {
    pub enum KindV1 {
        Security = "security",
        Bugfix = "bugfix",
        Feature = "feature",
        Firmware = "firmware",
    }
}

named! {
    #[derive(Default)]
    pub enum SeverityV1 {
        #[default]
        Unknown = "unknown",
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactV1 {
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

impl From<&Artifact> for ArtifactV1 {
    fn from(a: &Artifact) -> ArtifactV1 {
        ArtifactV1 {
            url: a.url.clone(),
            sha256: a.sha256.clone(),
            size: a.size,
        }
    }
}

impl From<ArtifactV1> for Artifact {
    fn from(a: ArtifactV1) -> Artifact {
        Artifact {
            url: a.url,
            sha256: a.sha256,
            size: a.size,
        }
    }
}

impl From<PatchKind> for KindV1 {
    fn from(kind: PatchKind) -> KindV1 {
        match kind {
            PatchKind::Security => KindV1::Security,
            PatchKind::Bugfix => KindV1::Bugfix,
            PatchKind::Feature => KindV1::Feature,
            PatchKind::Firmware => KindV1::Firmware,
        }
    }
}

impl From<KindV1> for PatchKind {
    fn from(kind: KindV1) -> PatchKind {
        match kind {
            KindV1::Security => PatchKind::Security,
            KindV1::Bugfix => PatchKind::Bugfix,
            KindV1::Feature => PatchKind::Feature,
            KindV1::Firmware => PatchKind::Firmware,
        }
    }
}

impl From<Severity> for SeverityV1 {
    fn from(severity: Severity) -> SeverityV1 {
        match severity {
            Severity::Unknown => SeverityV1::Unknown,
            Severity::Low => SeverityV1::Low,
            Severity::Medium => SeverityV1::Medium,
            Severity::High => SeverityV1::High,
            Severity::Critical => SeverityV1::Critical,
        }
    }
}

impl From<SeverityV1> for Severity {
    fn from(severity: SeverityV1) -> Severity {
        match severity {
            SeverityV1::Unknown => Severity::Unknown,
            SeverityV1::Low => Severity::Low,
            SeverityV1::Medium => Severity::Medium,
            SeverityV1::High => Severity::High,
            SeverityV1::Critical => Severity::Critical,
        }
    }
}

impl From<&Patch> for PatchV1 {
    fn from(p: &Patch) -> PatchV1 {
        PatchV1 {
            id: p.id.clone(),
            vendor: p.vendor.clone(),
            title: p.title.clone(),
            component: p.component.clone(),
            fixed_version: p.fixed_version.clone(),
            applies_to: p.applies_to.clone(),
            scheme: p.scheme,
            kind: p.kind.into(),
            severity: p.severity.into(),
            cves: p.cves.clone(),
            prerequisites: p.prerequisites.clone(),
            supersedes: p.supersedes.clone(),
            reboot_required: p.reboot_required,
            artifact: ArtifactV1::from(&p.artifact),
            // A time beyond what RFC 3339 can write (years past 9999) is shown at the
            // nearest end of the range.
            released: Timestamp::from_second(p.released).unwrap_or(if p.released < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            }),
        }
    }
}

impl From<PatchV1> for Patch {
    fn from(p: PatchV1) -> Patch {
        Patch {
            id: p.id,
            vendor: p.vendor,
            title: p.title,
            component: p.component,
            fixed_version: p.fixed_version,
            applies_to: p.applies_to,
            scheme: p.scheme,
            kind: p.kind.into(),
            severity: p.severity.into(),
            cves: p.cves,
            prerequisites: p.prerequisites,
            supersedes: p.supersedes,
            reboot_required: p.reboot_required,
            artifact: p.artifact.into(),
            released: p.released.as_second(),
        }
    }
}

// ---- The result of one call: `ringleader.plugin-run/v1` ----

named! {
    /// The plugin functions `plugin run` calls.
    pub enum Function {
        Info = "info",
        Discover = "discover",
        Preflight = "preflight",
        Install = "install",
        Verify = "verify",
        Rollback = "rollback",
    }
}

/// `ringleader.plugin-run/v1` (docs/schemas/plugin-run.v1.json). Read back, `result`
/// takes the shape its `function` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RunFields")]
pub struct RunV1 {
    pub schema: Schema<RunV1>,
    pub plugin: String,
    pub plugin_version: String,
    pub world: World,
    pub function: Function,
    /// The devices the call was about, as the plugin saw them.
    pub devices: Vec<DeviceV1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchV1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetV1>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultV1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorV1>,
    pub duration_ms: u64,
}

impl Document for RunV1 {
    const SCHEMA: &'static str = "ringleader.plugin-run/v1";
}

/// [`RunV1`] as read, before `result` is read by its `function`.
#[derive(Deserialize)]
struct RunFields {
    schema: Schema<RunV1>,
    plugin: String,
    plugin_version: String,
    world: World,
    function: Function,
    devices: Vec<DeviceV1>,
    #[serde(default)]
    patch: Option<PatchV1>,
    #[serde(default)]
    target: Option<TargetV1>,
    ok: bool,
    #[serde(default)]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<ErrorV1>,
    duration_ms: u64,
}

impl TryFrom<RunFields> for RunV1 {
    type Error = String;

    fn try_from(r: RunFields) -> Result<RunV1, String> {
        let result = match r.result {
            None => None,
            Some(value) => Some(
                ResultV1::read(r.function, value)
                    .map_err(|e| format!("`result` is not what `{}` returns: {e}", r.function))?,
            ),
        };
        Ok(RunV1 {
            schema: r.schema,
            plugin: r.plugin,
            plugin_version: r.plugin_version,
            world: r.world,
            function: r.function,
            devices: r.devices,
            patch: r.patch,
            target: r.target,
            ok: r.ok,
            result,
            error: r.error,
            duration_ms: r.duration_ms,
        })
    }
}

/// A device as the plugin saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceV1 {
    pub id: String,
    pub hostname: String,
    pub tags: Vec<String>,
    /// `[key, value]` pairs.
    pub facts: Vec<(String, String)>,
    pub components: Vec<ComponentV1>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentV1 {
    pub name: String,
    pub version: String,
}

impl From<&Device> for DeviceV1 {
    fn from(d: &Device) -> DeviceV1 {
        DeviceV1 {
            id: d.id.clone(),
            hostname: d.hostname.clone(),
            tags: d.tags.clone(),
            facts: d.facts.clone(),
            components: d
                .components
                .iter()
                .map(|c| ComponentV1 {
                    name: c.name.clone(),
                    version: c.version.clone(),
                })
                .collect(),
        }
    }
}

/// What `rollback` returns the device to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetV1 {
    pub version: String,
    pub artifact: Option<ArtifactV1>,
}

/// What the function returned; its shape depends on the run's `function` (the schema
/// says which), and JSON shows the inner value alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ResultV1 {
    /// `info`.
    Info(InfoV1),
    /// `discover`.
    Patches(Vec<PatchV1>),
    /// `preflight`.
    Readiness(ReadinessV1),
    /// `install`, `rollback`.
    Outcome(OutcomeV1),
    /// `verify`.
    Verify(VerifyV1),
}

impl ResultV1 {
    /// The result of `function`, from its JSON.
    pub fn read(function: Function, value: serde_json::Value) -> serde_json::Result<ResultV1> {
        Ok(match function {
            Function::Info => ResultV1::Info(serde_json::from_value(value)?),
            Function::Discover => ResultV1::Patches(serde_json::from_value(value)?),
            Function::Preflight => ResultV1::Readiness(serde_json::from_value(value)?),
            Function::Install | Function::Rollback => {
                ResultV1::Outcome(serde_json::from_value(value)?)
            }
            Function::Verify => ResultV1::Verify(serde_json::from_value(value)?),
        })
    }
}

/// Who the plugin says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoV1 {
    pub name: String,
    pub version: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "case", rename_all = "kebab-case")]
pub enum ReadinessV1 {
    Ready,
    AlreadyInstalled { version: String },
    Blocked { reason: String },
}

impl From<&Readiness> for ReadinessV1 {
    fn from(r: &Readiness) -> ReadinessV1 {
        match r {
            Readiness::Ready => ReadinessV1::Ready,
            Readiness::AlreadyInstalled(version) => ReadinessV1::AlreadyInstalled {
                version: version.clone(),
            },
            Readiness::Blocked(reason) => ReadinessV1::Blocked {
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeV1 {
    pub installed_version: String,
    pub reboot_pending: bool,
    pub detail: String,
}

impl From<&InstallOutcome> for OutcomeV1 {
    fn from(o: &InstallOutcome) -> OutcomeV1 {
        OutcomeV1 {
            installed_version: o.installed_version.clone(),
            reboot_pending: o.reboot_pending,
            detail: o.detail.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyV1 {
    pub installed_version: Option<String>,
    pub health: HealthV1,
}

impl From<&VerifyReport> for VerifyV1 {
    fn from(v: &VerifyReport) -> VerifyV1 {
        VerifyV1 {
            installed_version: v.installed_version.clone(),
            health: HealthV1::from(&v.health),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthV1 {
    pub healthy: bool,
    pub checks: Vec<CheckV1>,
}

impl From<&HealthReport> for HealthV1 {
    fn from(h: &HealthReport) -> HealthV1 {
        HealthV1 {
            healthy: h.healthy,
            checks: h
                .checks
                .iter()
                .map(|c| CheckV1 {
                    name: c.name.clone(),
                    ok: c.ok,
                    detail: c.detail.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckV1 {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

named! {
    /// Why a call failed: the plugin returned a plugin-error, or the host stopped it.
    pub enum ErrorKind {
        Plugin = "plugin",
        Timeout = "timeout",
        MemoryLimit = "memory-limit",
        HostcallBudget = "hostcall-budget",
        StackOverflow = "stack-overflow",
        ResultTooLarge = "result-too-large",
        Trap = "trap",
        Instantiate = "instantiate",
        Unsupported = "unsupported",
    }
}

named! {
    /// The case of a plugin-error.
    pub enum ErrorCase {
        Transient = "transient",
        Permanent = "permanent",
        Denied = "denied",
    }
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorV1 {
    pub kind: ErrorKind,
    /// The plugin-error's case, when `kind` is `plugin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<ErrorCase>,
    pub message: String,
}

// ---- `plugin check --json`, `plugin list --json` ----

/// `ringleader.plugin-check/v1` (docs/schemas/plugin-check.v1.json): one line of `plugin
/// check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginCheckV1 {
    pub schema: Schema<PluginCheckV1>,
    /// The path given, or `bundled:NAME`.
    pub path: String,
    pub valid: bool,
    /// When not valid: what is wrong and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When valid: what the plugin is (its keys beside the others'). Read back, keys
    /// that do not make a whole [`CheckedPluginV1`] read as none (serde's `flatten` of
    /// an `Option`); `valid` says which to expect.
    #[serde(flatten)]
    pub plugin: Option<CheckedPluginV1>,
}

impl Document for PluginCheckV1 {
    const SCHEMA: &'static str = "ringleader.plugin-check/v1";
}

named! {
    /// Whether compiled code came from the on-disk cache.
    pub enum CacheOutcome {
        Hit = "hit",
        Miss = "miss",
        Uncached = "uncached",
    }
}

/// A valid plugin, as `plugin check` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedPluginV1 {
    pub name: String,
    pub version: String,
    pub description: String,
    pub world: World,
    pub wit_version: String,
    pub component: String,
    pub sha256: String,
    pub capabilities: CapabilitiesV1,
    pub limits: LimitsV1,
    pub imports: Vec<String>,
    pub cache: CacheOutcome,
    /// What is valid but probably not as meant, each `file:line:col: warning: ...`
    /// (absent from older output).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a plugin may ask for: the operator grants it (or not) in `[plugins.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesV1 {
    pub http: Vec<String>,
    pub exec: Vec<String>,
    pub kv: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsV1 {
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub hostcalls: u64,
}

/// `ringleader.plugin-list/v1` (docs/schemas/plugin-list.v1.json): the plugins built
/// into the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginListV1 {
    pub schema: Schema<PluginListV1>,
    pub plugins: Vec<ListedPluginV1>,
}

impl Document for PluginListV1 {
    const SCHEMA: &'static str = "ringleader.plugin-list/v1";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedPluginV1 {
    pub name: String,
    pub world: World,
    pub version: String,
    pub description: String,
    pub wit_version: String,
    pub sha256: String,
    pub capabilities: CapabilitiesV1,
}
