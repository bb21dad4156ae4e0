//! Ringleader's domain types, shared by the planner, the engine and the binary: what a
//! device is, what a patch is, what an installer answers, and how the host reaches a
//! device. Plain data, no I/O, no wasmtime.
//!
//! The records and variants mirror the plugin contract's `types` interface
//! (`wit/ringleader-plugin@0.3.0/types.wit`) field for field (older versions lack
//! some fields, `scheme` before 0.2.0 and `source` before 0.3.0: `None` from their
//! plugins, left out towards them); `ringleader-runtime`
//! converts them to and from the types `bindgen!` generates, at the plugin boundary.
//! Plugin-call errors (`plugin-error`) and what a plugin says about itself
//! (`plugin-info`) are the runtime's own.
//!
//! Nothing here is a file format: what is stored or printed has its own serde layer
//! (the engine's `StoredDevice`, the binary's `PatchV1`), derived from these types.
//! The one exception is [`Credential`], a table of the operator's config file.

pub mod transport;

pub use ringleader_version::Scheme;
pub use transport::{Credential, Route};

/// Seconds since 1970-01-01T00:00:00Z, UTC (the contract's `timestamp`).
pub type Timestamp = i64;

/// Something on a device that has a version: `openssl`, `bios`, `bmc-firmware`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Name as the inventory and the patch catalog spell it, e.g. `bios`.
    pub name: String,
    /// Installed version, exactly as the device reports it.
    pub version: String,
    /// How its versions are ordered, when the inventory (or the device's installer)
    /// says; `None`: not said (read in the patch's scheme, else `vendor`; see
    /// docs/policies.md, "Versions"). Plugins on WIT 0.1.x never see it.
    pub scheme: Option<Scheme>,
    /// The source package a binary package was built from (`glibc` for `libc6`), when
    /// the device's package manager or the inventory says. Plugins before WIT 0.3.0
    /// never see it.
    pub source: Option<String>,
}

/// One managed machine or component holder, as plugins see it. Credentials are never
/// part of a device (see [`Route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Unique id in the inventory, stable for the device's life.
    pub id: String,
    /// Host name or address. For a BMC-managed server this is the BMC's address.
    pub hostname: String,
    /// Free-form labels from the inventory (`lab`, `critical`, `site:ams`).
    pub tags: Vec<String>,
    /// Key/value facts from the inventory or discovery (`model`, `os`, `serial`).
    pub facts: Vec<(String, String)>,
    /// What is installed, with versions.
    pub components: Vec<Component>,
}

/// How urgent a patch is, from the vendor's advisory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The vendor gave no rating.
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

/// What kind of change a patch is; policies may treat kinds differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchKind {
    /// Fixes a vulnerability.
    Security,
    /// Fixes bugs without security impact.
    Bugfix,
    /// Adds or changes features.
    Feature,
    /// Device firmware (BIOS, BMC, NIC, disk).
    Firmware,
}

/// Where the bits of a patch live, and how to check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute `http://` or `https://` URL of the image or package.
    pub url: String,
    /// Lower-case hex SHA-256 of the artifact's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A vendor update, as a patch-source plugin reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Unique id across all sources, e.g. `RHSA-2021:5186` or `dell-bios-2.19.1`.
    pub id: String,
    /// Who publishes it, e.g. `dell`, `debian`.
    pub vendor: String,
    /// Human title, one line.
    pub title: String,
    /// Component it updates; matches [`Component::name`] on devices.
    pub component: String,
    /// Version a device has after installing it.
    pub fixed_version: String,
    /// Installed versions this patch applies to (`>=2.0.0, <2.19.1`); empty: any
    /// version below `fixed_version`.
    pub applies_to: String,
    /// How `fixed_version` and `applies_to` are read, when the source says (WIT 0.2.0
    /// and later); `None`: in the device component's scheme, else `vendor`.
    pub scheme: Option<Scheme>,
    pub kind: PatchKind,
    pub severity: Severity,
    /// CVE ids fixed, e.g. `CVE-2021-44228`.
    pub cves: Vec<String>,
    /// Ids of patches that must be installed on the device first.
    pub prerequisites: Vec<String>,
    /// Ids of older patches this one replaces.
    pub supersedes: Vec<String>,
    /// True when the device must reboot for the patch to take effect.
    pub reboot_required: bool,
    pub artifact: Artifact,
    /// When the vendor released it.
    pub released: Timestamp,
}

/// An installer's answer to `preflight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The device can take the patch now.
    Ready,
    /// The device already runs the patch's fixed version (or newer); nothing to do.
    AlreadyInstalled(String),
    /// The device cannot take the patch now; the text says why.
    Blocked(String),
}

/// Result of a successful install or rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOutcome {
    /// Version the device reports after the operation.
    pub installed_version: String,
    /// True when the change only takes effect after a reboot the plugin did not do.
    pub reboot_pending: bool,
    /// Free text for the event log, e.g. the BMC task id.
    pub detail: String,
}

/// One named health check on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Short name, e.g. `service:sshd` or `bmc:health`.
    pub name: String,
    pub ok: bool,
    /// Free text shown to operators.
    pub detail: String,
}

/// How the device is doing; `healthy` is false when any check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub healthy: bool,
    pub checks: Vec<HealthCheck>,
}

/// An installer's answer to `verify`: what is really on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Version of the patch's component the device reports; `None` if absent.
    pub installed_version: Option<String>,
    pub health: HealthReport,
}

/// What a rollback returns the device to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackTarget {
    /// Version the device ran before the patch.
    pub version: String,
    /// Artifact of that version when the host knows it (from the catalog).
    pub artifact: Option<Artifact>,
}

/// The operating system a device runs, from its `/etc/os-release` (WIT 0.3.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, `rhel`.
    pub id: String,
    /// `VERSION_ID`: `12`; `None` on rolling releases.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`: `bookworm`.
    pub codename: Option<String>,
    /// `PRETTY_NAME`, for people.
    pub pretty_name: Option<String>,
}

/// Whether a device has restarted, and whether it needs to (WIT 0.3.0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootState {
    /// Changes at every start of the device and at nothing else; `None` when the
    /// device cannot tell.
    pub boot_id: Option<String>,
    /// When the device last started, when it says.
    pub booted_at: Option<Timestamp>,
    /// True when a change waits for a restart to take effect.
    pub reboot_pending: bool,
    /// Why, one short line each (`/run/reboot-required: linux-image-...`).
    pub pending_reasons: Vec<String>,
}

/// What a device really has, as its installer reads it (`installer.scan`, WIT 0.3.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceScan {
    /// Every component the installer manages on the device.
    pub components: Vec<Component>,
    /// The operating system, when the installer can read it.
    pub os: Option<OsRelease>,
    pub boot: BootState,
    /// Other facts worth keeping (`model`, `serial`, `arch`).
    pub facts: Vec<(String, String)>,
}
