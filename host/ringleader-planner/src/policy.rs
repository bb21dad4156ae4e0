//! Rollout policies (`rollout-policies/*.toml`): rings, batches, gates, windows,
//! freezes, expedite and deferral rules, the operator's approved versions, and what to
//! do on halt.
//!
//! Format documented in `docs/policies.md`. Parsed raw (unknown keys refused), then
//! validated into [`Policy`]; every problem is reported, each with file, line, column,
//! key, what is wrong and a hint. Rings that can never hold a device are warnings.

use ringleader_diag::{Diagnostics, Seg};
use ringleader_types::{PatchKind, Severity};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub description: String,
    pub windows: BTreeMap<String, Window>,
    pub freezes: Vec<Freeze>,
    pub rings: Vec<Ring>,
    pub expedite: Option<Expedite>,
    pub deferrals: Vec<Deferral>,
    /// The operator's approved versions, by component: for these components only
    /// patches to a listed version are rolled out, whatever the vendor publishes.
    pub approved: BTreeMap<String, Approved>,
    pub on_halt: OnHalt,
    /// `[on_halt] failed_devices`: whether a rollback after a halt takes the devices
    /// whose install failed back too.
    pub failed_devices: FailedDevices,
}

/// The versions of one component the operator approved (their known-good list).
#[derive(Debug, Clone)]
pub struct Approved {
    /// Read in the entry's `scheme`, else as `vendor`.
    pub versions: Vec<crate::version::AnyVersion>,
    /// Whether the entry names its scheme. When it does not, each version is read
    /// again in the scheme a patch's fixed version is compared in.
    pub declared: bool,
    /// Why, for explanations (may be empty).
    pub reason: String,
}

impl Approved {
    /// Whether `version` (a patch's fixed version) is one of the approved ones: equal
    /// by its scheme's order. A version of another scheme is approved only when the
    /// entry names no scheme and its text reads in `version`'s scheme as equal.
    pub fn allows(&self, version: &crate::version::AnyVersion) -> bool {
        use crate::version::AnyVersion;
        self.versions.iter().any(|v| {
            if v.scheme() == version.scheme() {
                v.try_cmp(version).is_ok_and(|o| o.is_eq())
            } else {
                !self.declared
                    && AnyVersion::parse(version.scheme(), v.as_str())
                        .is_ok_and(|v| v.try_cmp(version).is_ok_and(|o| o.is_eq()))
            }
        })
    }
}

/// Equal when the same texts are approved in the same schemes for the same reason.
impl PartialEq for Approved {
    fn eq(&self, other: &Approved) -> bool {
        let texts = |a: &Approved| -> Vec<(crate::version::Scheme, String)> {
            a.versions
                .iter()
                .map(|v| (v.scheme(), v.as_str().to_string()))
                .collect()
        };
        self.declared == other.declared
            && self.reason == other.reason
            && texts(self) == texts(other)
    }
}

impl Eq for Approved {}

/// A weekly maintenance window, in each device's own time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Days the window opens on, Monday first.
    pub days: [bool; 7],
    pub start: jiff::civil::Time,
    /// When `end <= start` the window crosses midnight and closes the next day.
    pub end: jiff::civil::Time,
}

/// Dates (inclusive, in each device's time zone) on which nothing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub from: jiff::civil::Date,
    pub to: jiff::civil::Date,
    pub reason: String,
}

/// A count of devices or a share of a ring's devices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(u64),
    Percent(f64),
}

impl Amount {
    /// The amount of `total`, rounded up (a share of a non-empty ring is at least one
    /// device once it is above 0%).
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => usize::try_from(n).unwrap_or(usize::MAX).min(total),
            Amount::Percent(p) => ((total as f64) * p / 100.0).ceil() as usize,
        }
    }
}

/// Which devices a ring takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// Every device not taken by an earlier ring.
    Rest,
    /// Devices matching every given filter.
    Filter {
        /// The device has all of these tags.
        tags: Vec<String>,
        /// The device has none of these tags.
        exclude_tags: Vec<String>,
        /// The device's id is one of these.
        ids: Vec<String>,
        /// The device is at one of these sites.
        sites: Vec<String>,
        /// A stable sample of this share of the matching devices, spread over sites.
        percent: Option<f64>,
    },
}

/// One stage of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    pub name: String,
    pub select: Select,
    /// Cumulative share (or count) of the ring done by the end of each batch; the last
    /// batch always reaches the whole ring.
    pub batches: Vec<Amount>,
    /// Devices installing at once; `None` means no limit beyond the batch.
    pub max_parallel: Option<u32>,
    /// Wait after the ring completes before the next ring starts.
    pub soak: Duration,
    /// Share of the ring's devices that must succeed for the ring to pass.
    pub success_threshold: Option<f64>,
    /// Failures allowed; the rollout halts when failures exceed it.
    pub max_failures: Amount,
    /// A device that has not reported within this time counts as failed.
    pub unresponsive_after: Duration,
    /// A person must approve before the ring starts.
    pub approval: bool,
    /// The approval is granted without a person when the ring before passed this way
    /// (`auto_approve`); otherwise it waits for one.
    pub auto_approve: Option<AutoApprove>,
    /// Name of the maintenance window installs must start in.
    pub window: Option<String>,
    /// Whether devices restart after the steps that need it (`reboot`).
    pub reboot: Reboot,
    /// Name of the window reboots must start in (`reboot_window`); the ring's own
    /// `window` when not given.
    pub reboot_window: Option<String>,
    /// A device that has not come back (another boot id, answering, verified) this
    /// long after its reboot started counts as failed, unresponsive (`reboot_timeout`).
    pub reboot_timeout: Duration,
}

/// A ring's `reboot`: whether devices restart for the patches that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reboot {
    /// After the last step that needs a restart (the patch says `reboot-required`, or
    /// the installer reported the change pending a restart), once.
    #[default]
    IfNeeded,
    /// After the device's last step, whether or not one asked.
    Always,
    /// Never: steps that need a restart stay "installed, reboot pending".
    Never,
}

impl Reboot {
    /// The policy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reboot::IfNeeded => "if-needed",
            Reboot::Always => "always",
            Reboot::Never => "never",
        }
    }
}

/// Faster handling of urgent patches.
#[derive(Debug, Clone, PartialEq)]
pub struct Expedite {
    pub severities: Vec<Severity>,
    /// Soak times are multiplied by this (0 to 1).
    pub soak_factor: f64,
    /// Expedited patches may start outside maintenance windows.
    pub skip_window: bool,
}

/// Patches of a kind wait this long after their release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub kind: PatchKind,
    pub days: u32,
}

/// What happens when a ring halts the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHalt {
    /// Roll back the devices of the failing ring that installed, at its own pace.
    RollbackFailedRing,
    /// Stop; leave devices as they are.
    Stop,
}

/// What a rollback after a halt does with the devices whose install failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedDevices {
    /// Return them to the version they ran before their install, as the devices that
    /// installed (the installer repairs first where it can, e.g. `dpkg --configure -a`).
    Rollback,
    /// Leave them as the failure left them, for inspection.
    Leave,
}

/// A policy that could not be read or is not valid.
pub type PolicyError = ringleader_diag::FileError;

/// Default time after which a silent device counts as failed.
pub const DEFAULT_UNRESPONSIVE_AFTER: Duration = Duration::from_secs(4 * 60 * 60);

/// How long a device may take to come back from a reboot when the ring does not say
/// (`reboot_timeout`): servers with long firmware POSTs take 10-20 minutes.
pub const DEFAULT_REBOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    windows: BTreeMap<String, RawWindow>,
    #[serde(default)]
    freeze: Vec<RawFreeze>,
    #[serde(default)]
    rings: Vec<RawRing>,
    expedite: Option<RawExpedite>,
    #[serde(default)]
    defer: Vec<RawDeferral>,
    #[serde(default)]
    approved: Vec<RawApproved>,
    on_halt: Option<RawOnHalt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproved {
    component: String,
    versions: Vec<String>,
    scheme: Option<String>,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    days: Vec<String>,
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    from: String,
    to: String,
    #[serde(default)]
    reason: String,
}

/// When a ring that needs approval is approved by rule: the ring before it completed
/// with at least `success` percent of its devices done and at most `failures` of them
/// failed (a device unhealthy after its install counts as failed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoApprove {
    pub success: f64,
    pub failures: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoApprove {
    success: Option<String>,
    failures: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    name: String,
    select: Option<toml::Value>,
    batches: Option<Vec<toml::Value>>,
    max_parallel: Option<i64>,
    soak: Option<String>,
    success_threshold: Option<String>,
    max_failures: Option<toml::Value>,
    unresponsive_after: Option<String>,
    approval: Option<String>,
    auto_approve: Option<RawAutoApprove>,
    window: Option<String>,
    reboot: Option<String>,
    reboot_window: Option<String>,
    reboot_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpedite {
    severity: Vec<String>,
    #[serde(default = "one")]
    soak_factor: f64,
    #[serde(default)]
    skip_window: bool,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeferral {
    kind: String,
    days: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnHalt {
    rollback: Option<String>,
    failed_devices: Option<String>,
}

/// The longest deferral, in days: [`crate::schedule::MAX_DURATION`].
const MAX_DEFERRAL_DAYS: i64 = (crate::schedule::MAX_DURATION.as_secs() / 86_400) as i64;

const HINT: &str = "see docs/policies.md for the policy format";

impl Policy {
    /// Reads and validates the policy at `path`. Warnings are in the `Diagnostics` of
    /// [`Policy::check`]; this fails only on errors.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let (policy, diags) = Policy::check(path)?;
        match policy {
            Some(p) if !diags.has_errors() => Ok(p),
            _ => Err(PolicyError::Invalid(diags)),
        }
    }

    /// Reads the policy at `path` and reports everything wrong with it (errors and
    /// warnings), with the policy when it has no errors.
    pub fn check(path: &Path) -> Result<(Option<Policy>, Diagnostics), PolicyError> {
        match ringleader_diag::read_file("policy", path) {
            Ok(text) => Ok(Policy::parse(path, &text)),
            // Not UTF-8: a located problem like any other.
            Err(PolicyError::Invalid(diags)) => Ok((None, diags)),
            Err(e) => Err(e),
        }
    }

    /// Validates policy `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> (Option<Policy>, Diagnostics) {
        let mut diags = Diagnostics::new(path, text);
        // Unknown keys and values of the wrong type are recorded and left out, so that
        // the rest is still validated: every problem at once.
        let Some(raw) = diags.toml_from_str::<RawPolicy>(text, HINT) else {
            diags.sort();
            return (None, diags);
        };
        let policy = validate(raw, &mut diags);
        diags.sort();
        let policy = (!diags.has_errors()).then_some(policy);
        (policy, diags)
    }
}

fn duration(text: &str, path: &[Seg<'_>], d: &mut Diagnostics) -> Option<Duration> {
    match humantime::parse_duration(text) {
        Ok(v) if v > crate::schedule::MAX_DURATION => {
            d.error_at(
                path,
                format!("`{text}` is longer than a rollout can be scheduled: at most 100 years (36525d)"),
                "the scheduling limit is `36525d`; a ring that waits for a person wants `approval = \"required\"`",
            );
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            d.error_at(
                path,
                format!("`{text}` is not a duration: {e}"),
                "write e.g. `30m`, `24h` or `2d`",
            );
            None
        }
    }
}

/// `"98%"` -> 98.0, within 0..=100.
fn percent(text: &str, path: &[Seg<'_>], d: &mut Diagnostics) -> Option<f64> {
    let value = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok());
    match value {
        Some(p) if (0.0..=100.0).contains(&p) => Some(p),
        Some(p) => {
            d.error_at(
                path,
                format!("{p}% is outside 0-100%"),
                "a percentage between 0% and 100%",
            );
            None
        }
        None => {
            d.error_at(
                path,
                format!("`{text}` is not a percentage"),
                "write it like `98%`",
            );
            None
        }
    }
}

/// An integer count or a `"N%"` share.
fn amount(value: &toml::Value, path: &[Seg<'_>], d: &mut Diagnostics) -> Option<Amount> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Some(Amount::Count(*n as u64)),
        toml::Value::String(s) => percent(s, path, d).map(Amount::Percent),
        other => {
            d.error_at(
                path,
                format!("{other} is neither a count nor a percentage"),
                "write a whole number of devices (`5`) or a share (`\"10%\"`)",
            );
            None
        }
    }
}

fn time_of_day(text: &str, path: &[Seg<'_>], d: &mut Diagnostics) -> Option<jiff::civil::Time> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
        jiff::civil::Time::new(h, m, 0, 0).ok()
    });
    if parsed.is_none() {
        d.error_at(
            path,
            format!("`{text}` is not a time of day"),
            "write it as HH:MM, e.g. `22:00`",
        );
    }
    parsed
}

fn date(text: &str, path: &[Seg<'_>], d: &mut Diagnostics) -> Option<jiff::civil::Date> {
    match text.parse::<jiff::civil::Date>() {
        Ok(v) if v > crate::schedule::LAST_DATE => {
            d.error_at(
                path,
                format!("{v} is past the scheduling limit: dates must be before 9000-01-01"),
                "the latest date a policy can name is 8999-12-31",
            );
            None
        }
        Ok(v) => Some(v),
        Err(_) => {
            d.error_at(
                path,
                format!("`{text}` is not a date"),
                "write it as YYYY-MM-DD",
            );
            None
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A severity as files and JSON name it.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Unknown => "unknown",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// A patch kind as files and JSON name it.
pub fn kind_name(k: PatchKind) -> &'static str {
    match k {
        PatchKind::Security => "security",
        PatchKind::Bugfix => "bugfix",
        PatchKind::Feature => "feature",
        PatchKind::Firmware => "firmware",
    }
}

/// The severity files and JSON name `name` ([`severity_name`]'s inverse).
pub fn severity_named(name: &str) -> Option<Severity> {
    crate::compliance::SEVERITIES
        .into_iter()
        .find(|s| severity_name(*s) == name)
}

/// The patch kind files and JSON name `name` ([`kind_name`]'s inverse).
pub fn kind_named(name: &str) -> Option<PatchKind> {
    [
        PatchKind::Security,
        PatchKind::Bugfix,
        PatchKind::Feature,
        PatchKind::Firmware,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// The policy as the planner reads it, every problem recorded in `d`: each part is
/// checked by its own function, in the file's order.
fn validate(raw: RawPolicy, d: &mut Diagnostics) -> Policy {
    if raw.name.trim().is_empty() {
        d.error_at(
            &[Seg::Key("name")],
            "the policy has no name",
            "name it, e.g. `monthly-standard`",
        );
    }

    let windows = windows(&raw.windows, d);
    let freezes = freezes(&raw.freeze, d);
    let rings = rings(&raw.rings, &windows, d);
    let expedite = expedite(raw.expedite.as_ref(), d);
    let deferrals = deferrals(&raw.defer, d);
    let approved = approved(&raw.approved, d);
    let on_halt = on_halt(raw.on_halt.as_ref(), d);
    let failed_devices = failed_devices(raw.on_halt.as_ref(), d);

    Policy {
        name: raw.name,
        description: raw.description,
        windows,
        freezes,
        rings,
        expedite,
        deferrals,
        approved,
        on_halt,
        failed_devices,
    }
}

/// `[windows.NAME]`: days and times of day, each checked.
fn windows(raw: &BTreeMap<String, RawWindow>, d: &mut Diagnostics) -> BTreeMap<String, Window> {
    let mut windows = BTreeMap::new();
    for (name, w) in raw {
        let at = |key: &'static str| [Seg::Key("windows"), Seg::Key(name), Seg::Key(key)];
        let mut days = [false; 7];
        for (i, day) in w.days.iter().enumerate() {
            match DAYS.iter().position(|d| d == &day.to_ascii_lowercase()) {
                Some(index) => days[index] = true,
                None => d.error_at(
                    &[
                        Seg::Key("windows"),
                        Seg::Key(name),
                        Seg::Key("days"),
                        Seg::Index(i),
                    ],
                    format!("`{day}` is not a day"),
                    "use mon, tue, wed, thu, fri, sat, sun",
                ),
            }
        }
        if w.days.is_empty() {
            d.error_at(
                &at("days"),
                "the window has no days",
                "list the days it opens, e.g. [\"sat\", \"sun\"]",
            );
        }
        let start = time_of_day(&w.start, &at("start"), d);
        let end = time_of_day(&w.end, &at("end"), d);
        if let (Some(start), Some(end)) = (start, end) {
            if start == end {
                d.error_at(
                    &at("end"),
                    "the window starts and ends at the same time",
                    "for a whole day use start = \"00:00\", end = \"23:59\"",
                );
            }
            windows.insert(name.clone(), Window { days, start, end });
        }
    }
    windows
}

/// `[[freeze]]`: dates, each freeze ending after it starts.
fn freezes(raw: &[RawFreeze], d: &mut Diagnostics) -> Vec<Freeze> {
    let mut freezes = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let at = |key: &'static str| [Seg::Key("freeze"), Seg::Index(i), Seg::Key(key)];
        let from = date(&f.from, &at("from"), d);
        let to = date(&f.to, &at("to"), d);
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                d.error_at(
                    &at("to"),
                    format!("the freeze ends ({to}) before it starts ({from})"),
                    "swap `from` and `to`",
                );
            }
            freezes.push(Freeze {
                from,
                to,
                reason: f.reason.clone(),
            });
        }
    }
    freezes
}

/// `[[rings]]`: at least one, each valid, names unique, none that can never hold a
/// device.
fn rings(raw: &[RawRing], windows: &BTreeMap<String, Window>, d: &mut Diagnostics) -> Vec<Ring> {
    if raw.is_empty() {
        d.error_at(
            &[Seg::Key("rings")],
            "the policy has no rings",
            "add at least one [[rings]] table",
        );
    }
    let mut rings = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        if let Some(ring) = ring(i, r, windows, d) {
            if !names.insert(ring.name.clone()) {
                d.error_at(
                    &[Seg::Key("rings"), Seg::Index(i), Seg::Key("name")],
                    format!("ring name `{}` is used twice", ring.name),
                    "give every ring its own name",
                );
            }
            rings.push((i, ring));
        }
    }
    unreachable_rings(&rings, d);
    rings.into_iter().map(|(_, r)| r).collect()
}

/// `[expedite]`: severities it covers and a soak factor within 0-1.
fn expedite(raw: Option<&RawExpedite>, d: &mut Diagnostics) -> Option<Expedite> {
    raw.map(|e| {
        let mut severities = Vec::new();
        for (i, s) in e.severity.iter().enumerate() {
            match severity_named(s) {
                Some(v) => severities.push(v),
                None => d.error_at(
                    &[Seg::Key("expedite"), Seg::Key("severity"), Seg::Index(i)],
                    format!("`{s}` is not a severity"),
                    "use low, medium, high, critical or unknown",
                ),
            }
        }
        if !(0.0..=1.0).contains(&e.soak_factor) {
            d.error_at(
                &[Seg::Key("expedite"), Seg::Key("soak_factor")],
                format!("{} is outside 0-1", e.soak_factor),
                "expedite shortens soaks: 0.25 means a quarter of each soak",
            );
        }
        Expedite {
            severities,
            soak_factor: e.soak_factor,
            skip_window: e.skip_window,
        }
    })
}

/// `[[defer]]`: a patch kind and 0 to 100 years of days.
fn deferrals(raw: &[RawDeferral], d: &mut Diagnostics) -> Vec<Deferral> {
    let mut deferrals = Vec::new();
    for (i, def) in raw.iter().enumerate() {
        match kind_named(&def.kind) {
            Some(_) if def.days > MAX_DEFERRAL_DAYS => d.error_at(
                &[Seg::Key("defer"), Seg::Index(i), Seg::Key("days")],
                format!(
                    "{} days is longer than a rollout can be scheduled: at most 100 years ({MAX_DEFERRAL_DAYS} days)",
                    def.days
                ),
                "0 to 36525 days after release",
            ),
            Some(kind) if def.days >= 0 => deferrals.push(Deferral {
                kind,
                days: def.days as u32,
            }),
            Some(_) => d.error_at(
                &[Seg::Key("defer"), Seg::Index(i), Seg::Key("days")],
                "a deferral cannot be negative",
                "days after release, 0 or more",
            ),
            None => d.error_at(
                &[Seg::Key("defer"), Seg::Index(i), Seg::Key("kind")],
                format!("`{}` is not a patch kind", def.kind),
                "use security, bugfix, feature or firmware",
            ),
        }
    }
    deferrals
}

/// `[[approved]]`: per component, the versions that may be rolled out, once each.
fn approved(raw: &[RawApproved], d: &mut Diagnostics) -> BTreeMap<String, Approved> {
    let mut approved: BTreeMap<String, Approved> = BTreeMap::new();
    for (i, entry) in raw.iter().enumerate() {
        let at = |key| [Seg::Key("approved"), Seg::Index(i), Seg::Key(key)];
        if entry.component.trim().is_empty() {
            d.error_at(
                &at("component"),
                "the component is empty",
                "name it as inventories and patch sources do, e.g. `openssl` or `com.dell.r650.bios`",
            );
            continue;
        }
        if entry.versions.is_empty() {
            d.error_at(
                &at("versions"),
                "no version is approved",
                "list the versions that may be rolled out, e.g. [\"2.19.1\"]",
            );
        }
        let scheme = match entry
            .scheme
            .as_deref()
            .map(str::parse::<crate::version::Scheme>)
        {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                d.error_at(
                    &at("scheme"),
                    e.to_string(),
                    "the scheme of the component's versions, as the inventory reads them",
                );
                None
            }
        };
        let mut versions = Vec::new();
        for (j, text) in entry.versions.iter().enumerate() {
            let read = match scheme {
                Some(s) => crate::version::AnyVersion::parse(s, text),
                None => {
                    crate::version::Version::parse(text).map(crate::version::AnyVersion::Vendor)
                }
            };
            match read {
                Ok(v) => versions.push(v),
                Err(e) => d.error_at(
                    &[
                        Seg::Key("approved"),
                        Seg::Index(i),
                        Seg::Key("versions"),
                        Seg::Index(j),
                    ],
                    e.to_string(),
                    match scheme {
                        None | Some(crate::version::Scheme::Vendor) => {
                            "a vendor version such as `2.19.1` or `7.10.30.00`"
                        }
                        Some(_) => "a version as the component's package manager writes it",
                    },
                ),
            }
        }
        if approved.contains_key(&entry.component) {
            d.error_at(
                &at("component"),
                format!(
                    "`{}` is approved by an earlier [[approved]] too",
                    entry.component
                ),
                "list all its versions in one entry",
            );
            continue;
        }
        approved.insert(
            entry.component.clone(),
            Approved {
                versions,
                declared: scheme.is_some(),
                reason: entry.reason.clone(),
            },
        );
    }
    approved
}

/// `[on_halt]`: what a halt rolls back.
fn on_halt(raw: Option<&RawOnHalt>, d: &mut Diagnostics) -> OnHalt {
    match raw.and_then(|h| h.rollback.as_deref()) {
        None | Some("failed-ring") => OnHalt::RollbackFailedRing,
        Some("none") => OnHalt::Stop,
        Some(other) => {
            d.error_at(
                &[Seg::Key("on_halt"), Seg::Key("rollback")],
                format!("`{other}` is not a rollback rule"),
                "use `failed-ring` (roll back the failing ring) or `none` (stop only)",
            );
            OnHalt::Stop
        }
    }
}

/// `[on_halt] failed_devices`: whether the rollback takes failed devices back too.
fn failed_devices(raw: Option<&RawOnHalt>, d: &mut Diagnostics) -> FailedDevices {
    match raw.and_then(|h| h.failed_devices.as_deref()) {
        None | Some("rollback") => FailedDevices::Rollback,
        Some("leave") => FailedDevices::Leave,
        Some(other) => {
            d.error_at(
                &[Seg::Key("on_halt"), Seg::Key("failed_devices")],
                format!("`{other}` is not a rule for failed devices"),
                "use `rollback` (return them to their previous version) or `leave` (keep them as they are, for inspection)",
            );
            FailedDevices::Rollback
        }
    }
}

fn strings(value: Option<&toml::Value>, path: &[Seg<'_>], d: &mut Diagnostics) -> Vec<String> {
    let hint = "e.g. [\"lab\", \"critical\"]";
    match value {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => {
            let mut out = Vec::new();
            for (j, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => {
                        let mut at = path.to_vec();
                        at.push(Seg::Index(j));
                        d.error_at(&at, format!("{item} is not a string"), hint);
                    }
                }
            }
            out
        }
        Some(_) => {
            d.error_at(path, "expected a list of strings", hint);
            Vec::new()
        }
    }
}

fn select(i: usize, value: Option<&toml::Value>, d: &mut Diagnostics) -> Option<Select> {
    let base = [Seg::Key("rings"), Seg::Index(i), Seg::Key("select")];
    let hint = "write `select = \"rest\"` or a table of tags, exclude_tags, ids, sites, percent";
    match value {
        None => {
            d.error_at(&base[..2], "the ring has no `select`", hint);
            None
        }
        Some(toml::Value::String(s)) if s == "rest" => Some(Select::Rest),
        Some(toml::Value::Table(t)) => {
            for key in t.keys() {
                if !["tags", "exclude_tags", "ids", "sites", "percent"].contains(&key.as_str()) {
                    d.error_at(
                        &[
                            Seg::Key("rings"),
                            Seg::Index(i),
                            Seg::Key("select"),
                            Seg::Key(key),
                        ],
                        format!("unknown selector `{key}`"),
                        "use tags, exclude_tags, ids, sites or percent",
                    );
                }
            }
            let at = |key: &'static str| {
                [
                    Seg::Key("rings"),
                    Seg::Index(i),
                    Seg::Key("select"),
                    Seg::Key(key),
                ]
            };
            let percent = match t.get("percent") {
                None => None,
                Some(toml::Value::Integer(n)) if (0..=100).contains(n) => Some(*n as f64),
                Some(toml::Value::Float(f)) if (0.0..=100.0).contains(f) => Some(*f),
                Some(other) => {
                    d.error_at(
                        &at("percent"),
                        format!("{other} is not a percentage between 0 and 100"),
                        "e.g. percent = 5",
                    );
                    None
                }
            };
            Some(Select::Filter {
                tags: strings(t.get("tags"), &at("tags"), d),
                exclude_tags: strings(t.get("exclude_tags"), &at("exclude_tags"), d),
                ids: strings(t.get("ids"), &at("ids"), d),
                sites: strings(t.get("sites"), &at("sites"), d),
                percent,
            })
        }
        Some(_) => {
            d.error_at(&base, "`select` must be \"rest\" or a table", hint);
            None
        }
    }
}

fn ring(
    i: usize,
    r: &RawRing,
    windows: &BTreeMap<String, Window>,
    d: &mut Diagnostics,
) -> Option<Ring> {
    let at = |key: &'static str| [Seg::Key("rings"), Seg::Index(i), Seg::Key(key)];
    if r.name.trim().is_empty() {
        d.error_at(
            &at("name"),
            "the ring has no name",
            "e.g. name = \"canary\"",
        );
    }
    let select = select(i, r.select.as_ref(), d);
    let mut batches = Vec::new();
    if let Some(list) = &r.batches {
        for (j, v) in list.iter().enumerate() {
            let path = [
                Seg::Key("rings"),
                Seg::Index(i),
                Seg::Key("batches"),
                Seg::Index(j),
            ];
            if let Some(a) = amount(v, &path, d) {
                batches.push(a);
            }
        }
        let increasing = batches.windows(2).all(|w| match (w[0], w[1]) {
            (Amount::Count(a), Amount::Count(b)) => a < b,
            (Amount::Percent(a), Amount::Percent(b)) => a < b,
            _ => true,
        });
        if !increasing {
            d.error_at(
                &at("batches"),
                "batches must grow: each is the cumulative share done by its end",
                "e.g. [\"10%\", \"50%\", \"100%\"] or [1, 10, 50]",
            );
        }
    }
    let max_parallel = match r.max_parallel {
        None => None,
        Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(n) => {
            d.error_at(
                &at("max_parallel"),
                format!("{n} devices at once can never make progress"),
                "1 or more",
            );
            None
        }
    };
    let soak = match &r.soak {
        Some(s) => duration(s, &at("soak"), d).unwrap_or_default(),
        None => Duration::ZERO,
    };
    let success_threshold = r
        .success_threshold
        .as_ref()
        .and_then(|s| percent(s, &at("success_threshold"), d));
    let max_failures = match &r.max_failures {
        Some(v) => amount(v, &at("max_failures"), d).unwrap_or(Amount::Count(0)),
        None => Amount::Count(0),
    };
    let unresponsive_after = match &r.unresponsive_after {
        Some(s) => duration(s, &at("unresponsive_after"), d).unwrap_or(DEFAULT_UNRESPONSIVE_AFTER),
        None => DEFAULT_UNRESPONSIVE_AFTER,
    };
    let approval = match r.approval.as_deref() {
        None | Some("none") => false,
        Some("required") => true,
        Some(other) => {
            d.error_at(
                &at("approval"),
                format!("`{other}` is not an approval rule"),
                "use `required` or `none`",
            );
            false
        }
    };
    let auto_approve = r.auto_approve.as_ref().and_then(|a| {
        let place = |key: &'static str| {
            [
                Seg::Key("rings"),
                Seg::Index(i),
                Seg::Key("auto_approve"),
                Seg::Key(key),
            ]
        };
        if !approval {
            d.error_at(
                &at("auto_approve"),
                "`auto_approve` is for a ring that needs approval",
                "set `approval = \"required\"` on this ring, or remove `auto_approve`",
            );
            return None;
        }
        if i == 0 {
            d.error_at(
                &at("auto_approve"),
                "the first ring has no ring before it to judge",
                "put `auto_approve` on a later ring, or remove it",
            );
            return None;
        }
        let success = match &a.success {
            Some(text) => percent(text, &place("success"), d),
            None => Some(100.0),
        };
        let failures = match a.failures {
            None => Some(0),
            Some(n) => {
                let n32 = u32::try_from(n).ok();
                if n32.is_none() {
                    d.error_at(
                        &place("failures"),
                        format!("`failures` is {n}"),
                        "give the most devices of the ring before that may have failed: 0 or more",
                    );
                }
                n32
            }
        };
        Some(AutoApprove {
            success: success?,
            failures: failures?,
        })
    });
    for (key, name) in [("window", &r.window), ("reboot_window", &r.reboot_window)] {
        if let Some(w) = name
            && !windows.contains_key(w)
        {
            let known: Vec<&str> = windows.keys().map(String::as_str).collect();
            d.error_at(
                &at(key),
                format!("no window is named `{w}`"),
                &if known.is_empty() {
                    "define it under [windows.NAME]".to_string()
                } else {
                    format!("defined windows: {}", known.join(", "))
                },
            );
        }
    }
    let reboot = match r.reboot.as_deref() {
        None | Some("if-needed") => Reboot::IfNeeded,
        Some("always") => Reboot::Always,
        Some("never") => Reboot::Never,
        Some(other) => {
            d.error_at(
                &at("reboot"),
                format!("`{other}` is not a reboot rule"),
                "use `if-needed` (the default), `always` or `never`",
            );
            Reboot::IfNeeded
        }
    };
    let reboot_timeout = match &r.reboot_timeout {
        Some(s) => match duration(s, &at("reboot_timeout"), d) {
            Some(t) if t.is_zero() => {
                d.error_at(
                    &at("reboot_timeout"),
                    "no device comes back from a reboot in no time",
                    "e.g. reboot_timeout = \"20m\"",
                );
                DEFAULT_REBOOT_TIMEOUT
            }
            Some(t) => t,
            None => DEFAULT_REBOOT_TIMEOUT,
        },
        None => DEFAULT_REBOOT_TIMEOUT,
    };
    Some(Ring {
        name: r.name.clone(),
        select: select?,
        batches,
        max_parallel,
        soak,
        success_threshold,
        max_failures,
        unresponsive_after,
        approval,
        auto_approve,
        window: r.window.clone(),
        reboot,
        reboot_window: r.reboot_window.clone(),
        reboot_timeout,
    })
}

/// Warns about rings that can never hold a device.
fn unreachable_rings(rings: &[(usize, Ring)], d: &mut Diagnostics) {
    let mut rest_before: Option<&str> = None;
    for (pos, (i, ring)) in rings.iter().enumerate() {
        let at = [Seg::Key("rings"), Seg::Index(*i), Seg::Key("select")];
        if let Some(rest) = rest_before {
            d.warning_at(
                &at,
                format!("ring `{}` can never contain a device: ring `{rest}` before it takes every remaining device", ring.name),
                "move the `rest` ring last",
            );
            continue;
        }
        match &ring.select {
            Select::Rest => rest_before = Some(&ring.name),
            Select::Filter {
                tags,
                exclude_tags,
                percent,
                ..
            } => {
                if let Some(tag) = tags.iter().find(|t| exclude_tags.contains(t)) {
                    d.warning_at(
                        &at,
                        format!("ring `{}` can never contain a device: it both requires and excludes tag `{tag}`", ring.name),
                        "remove the tag from one of the lists",
                    );
                } else if *percent == Some(0.0) {
                    d.warning_at(
                        &at,
                        format!(
                            "ring `{}` can never contain a device: percent = 0",
                            ring.name
                        ),
                        "raise the percentage or remove the ring",
                    );
                } else if let Some((_, earlier)) = rings[..pos]
                    .iter()
                    .find(|(_, e)| same_unsampled(&e.select, &ring.select))
                {
                    d.warning_at(
                        &at,
                        format!("ring `{}` can never contain a device: ring `{}` before it selects the same devices", ring.name, earlier.name),
                        "give the earlier ring a percent, or this ring other filters",
                    );
                }
            }
        }
    }
}

/// Whether `earlier` takes every device `later` could select.
fn same_unsampled(earlier: &Select, later: &Select) -> bool {
    match (earlier, later) {
        (
            Select::Filter {
                tags: t1,
                exclude_tags: e1,
                ids: i1,
                sites: s1,
                percent: None,
            },
            Select::Filter {
                tags: t2,
                exclude_tags: e2,
                ids: i2,
                sites: s2,
                ..
            },
        ) => t1 == t2 && e1 == e2 && i1 == i2 && s1 == s2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_briefs_example_validates() {
        let text = r#"
name = "monthly-standard"
[windows.weeknights]
days = ["mon", "tue", "wed", "thu"]
start = "22:00"
end = "04:00"

[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "24h"
max_failures = 0

[[rings]]
name = "canary"
select = { percent = 5, exclude_tags = ["critical"] }
soak = "48h"
success_threshold = "98%"
max_failures = "2%"
window = "weeknights"

[[rings]]
name = "pilot"
select = { percent = 25 }
approval = "required"

[[rings]]
name = "broad"
select = "rest"
batches = ["10%", "50%", "100%"]
max_parallel = 200
window = "weeknights"

[expedite]
severity = ["critical"]
soak_factor = 0.25

[on_halt]
rollback = "failed-ring"
"#;
        let (policy, diags) = Policy::parse(Path::new("p.toml"), text);
        assert!(diags.list.is_empty(), "{:?}", diags.list);
        let policy = policy.unwrap();
        assert_eq!(policy.rings.len(), 4);
        assert_eq!(policy.rings[1].max_failures, Amount::Percent(2.0));
        assert!(policy.rings[2].approval);
        assert_eq!(policy.rings[3].select, Select::Rest);
        let w = &policy.windows["weeknights"];
        assert!(w.end < w.start, "crosses midnight");
    }

    #[test]
    fn amounts_round_up() {
        assert_eq!(Amount::Percent(10.0).of(15), 2);
        assert_eq!(Amount::Percent(100.0).of(15), 15);
        assert_eq!(Amount::Count(50).of(15), 15);
        assert_eq!(Amount::Percent(0.0).of(15), 0);
    }
}
