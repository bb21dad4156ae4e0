//! The fleet registry: every device of every inventory the daemon was given, with what
//! its last scan found, when, how long it took, and the last error (the reason kept),
//! and a history of what changed between scans. Durable in `DATA/fleet/` (sled): each
//! device's record and history entry is flushed as it is written, so a daemon killed
//! mid-scan keeps every device already recorded.
//!
//! Declared vs observed: the inventory file says what a device should have; a scan
//! says what it has. Rollouts plan from the observed components when there are any
//! ([`Registry::observed`]), and [`differences`] lists where the two disagree.

use jiff::Timestamp;
use ringleader_api::fleet::{
    BootV1, ComponentV1, DifferenceKind, DifferenceV1, HistoryKind, HistoryV1, OsV1, ScanErrorKind,
    ScanErrorV1, ScanV1,
};
use ringleader_planner::inventory::Inventory;
use ringleader_types::{Component, DeviceScan, Scheme};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

/// Page cache of the registry's database.
const CACHE_BYTES: u64 = 64 << 20;

/// A device as the registry keeps it (JSON in the `devices` tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// The inventory file it was last given in (its name).
    pub inventory: String,
    pub tags: Vec<String>,
    pub declared: Vec<ComponentV1>,
    pub last_scan: Option<ScanV1>,
    pub last_seen: Option<Timestamp>,
    /// The last scan's error and when, while the last scan failed.
    pub error: Option<(Timestamp, ScanErrorV1)>,
    /// A component was seen at a lower version than before, and is not back at the
    /// version it went down from: `!drifted.is_empty()`.
    #[serde(default)]
    pub drift: bool,
    /// The components that drifted, each with the version it went down from. A later
    /// scan that finds it at that version or higher clears it.
    #[serde(default)]
    pub drifted: BTreeMap<String, String>,
}

/// What one scan of one device gave.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub installer: String,
    pub at: Timestamp,
    pub duration_ms: u64,
    pub result: Result<DeviceScan, ScanErrorV1>,
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    db: sled::Db,
    devices: sled::Tree,
    inventories: sled::Tree,
    history: sled::Tree,
    /// Bumped at every write: what was computed from the registry at one generation
    /// (compliance) is still right while it stays.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the fleet registry in {dir}: {message}")]
    Open { dir: String, message: String },
    #[error("the fleet registry: {0}")]
    Storage(#[from] sled::Error),
    #[error("the fleet registry holds a record that cannot be read: {0}")]
    Corrupt(String),
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Registry {
    /// Opens (or creates) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        let db = ringleader_runtime::durable::open(dir, CACHE_BYTES).map_err(|e| {
            RegistryError::Open {
                dir: dir.display().to_string(),
                message: e.to_string(),
            }
        })?;
        Ok(Registry {
            devices: db.open_tree("devices")?,
            inventories: db.open_tree("inventories")?,
            history: db.open_tree("history")?,
            db,
            generation: Default::default(),
        })
    }

    /// Adds (or updates) the devices of the inventory file `name`: their tags and
    /// declared components; what scans found is kept. The file's text is kept for
    /// periodic scans.
    pub fn register(
        &self,
        name: &str,
        text: &str,
        inventory: &Inventory,
    ) -> Result<(), RegistryError> {
        self.inventories.insert(name, text.as_bytes())?;
        for device in &inventory.devices {
            let mut entry = self.get(&device.id)?.unwrap_or_else(|| Entry {
                id: device.id.clone(),
                inventory: String::new(),
                tags: Vec::new(),
                declared: Vec::new(),
                last_scan: None,
                last_seen: None,
                error: None,
                drift: false,
                drifted: BTreeMap::new(),
            });
            entry.inventory = name.to_string();
            entry.tags = device.tags.clone();
            entry.declared = device
                .to_plugin()
                .components
                .into_iter()
                .map(component_v1)
                .collect();
            self.devices.insert(device.id.as_bytes(), json(&entry))?;
        }
        self.db.flush()?;
        self.bump();
        Ok(())
    }

    /// How many writes this process made to the registry: equal generations, the same
    /// registry.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The inventory files given so far: (name, text).
    pub fn inventories(&self) -> Result<Vec<(String, String)>, RegistryError> {
        self.inventories
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Option<Entry>, RegistryError> {
        match self.devices.get(id.as_bytes())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::Corrupt(format!("device {id}: {e}"))),
        }
    }

    /// Every device, by id.
    pub fn list(&self) -> Result<Vec<Entry>, RegistryError> {
        self.devices
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| {
                    RegistryError::Corrupt(format!("device {}: {e}", String::from_utf8_lossy(&k)))
                })
            })
            .collect()
    }

    /// Records a scan's outcome for its device (durable when this returns): a
    /// success replaces the last scan, with a history entry per component that
    /// changed; a failure keeps the last scan and records the error. Returns how many
    /// components changed.
    ///
    /// A component found at a lower version than the scan before is drift, unless
    /// `rolled_back(component, since)` names a rollout that rolled this device's
    /// component back after `since` (the scan before). A drifted component found
    /// again at the version it went down from, or higher, is no longer drift.
    pub fn record(
        &self,
        outcome: Outcome,
        rolled_back: impl Fn(&str, Timestamp) -> Option<String>,
    ) -> Result<usize, RegistryError> {
        let Some(mut entry) = self.get(&outcome.id)? else {
            return Ok(0);
        };
        let mut changed = 0;
        match outcome.result {
            Ok(scan) => {
                let components: Vec<ComponentV1> =
                    scan.components.into_iter().map(component_v1).collect();
                if let Some(before) = &entry.last_scan {
                    for (mut kind, name, from, to) in changes(&before.components, &components) {
                        changed += 1;
                        let was = from.as_deref().unwrap_or("(none)");
                        let now = to.as_deref().unwrap_or("(gone)");
                        let by = match kind {
                            HistoryKind::Drift => rolled_back(&name, before.at),
                            _ => None,
                        };
                        let mut detail = match (&kind, &by) {
                            (HistoryKind::Drift, Some(rollout)) => {
                                format!("{name}: {was} -> {now} (rolled back by rollout {rollout})")
                            }
                            (HistoryKind::Drift, None) => format!(
                                "{name} went back from {was} to {now}: restored or downgraded outside Ringleader"
                            ),
                            _ => format!("{name}: {was} -> {now}"),
                        };
                        if by.is_some() {
                            kind = HistoryKind::Changed;
                        } else if kind == HistoryKind::Drift {
                            // The highest version it went down from is kept.
                            entry
                                .drifted
                                .entry(name.clone())
                                .or_insert_with(|| was.into());
                        } else if let Some(high) = entry.drifted.get(&name)
                            && let Some(now) = components.iter().find(|c| c.name == name)
                            && order(
                                now,
                                &ComponentV1 {
                                    version: high.clone(),
                                    ..now.clone()
                                },
                            )
                            .is_some_and(|o| o != Ordering::Less)
                        {
                            detail
                                .push_str(&format!(" (back at {high} or later: no longer drift)"));
                            entry.drifted.remove(&name);
                        }
                        self.append(
                            &outcome.id,
                            &HistoryV1 {
                                at: outcome.at,
                                kind,
                                component: Some(name),
                                from,
                                to,
                                detail,
                            },
                        )?;
                    }
                }
                entry.last_scan = Some(ScanV1 {
                    at: outcome.at,
                    duration_ms: outcome.duration_ms,
                    installer: outcome.installer,
                    components,
                    os: scan.os.map(|o| OsV1 {
                        id: o.id,
                        version_id: o.version_id,
                        codename: o.codename,
                        pretty_name: o.pretty_name,
                    }),
                    boot: BootV1 {
                        boot_id: scan.boot.boot_id,
                        booted_at: scan
                            .boot
                            .booted_at
                            .and_then(|s| Timestamp::from_second(s).ok()),
                        reboot_pending: scan.boot.reboot_pending,
                        pending_reasons: scan.boot.pending_reasons,
                    },
                    facts: scan.facts,
                });
                entry.last_seen = Some(outcome.at);
                entry.error = None;
                entry.drift = !entry.drifted.is_empty();
            }
            Err(error) => {
                if error.kind != ScanErrorKind::Busy {
                    self.append(
                        &outcome.id,
                        &HistoryV1 {
                            at: outcome.at,
                            kind: HistoryKind::ScanFailed,
                            component: None,
                            from: None,
                            to: None,
                            detail: format!("{}: {}", error.kind, error.message),
                        },
                    )?;
                }
                entry.error = Some((outcome.at, error));
            }
        }
        self.devices.insert(outcome.id.as_bytes(), json(&entry))?;
        self.db.flush()?;
        self.bump();
        Ok(changed)
    }

    fn append(&self, id: &str, item: &HistoryV1) -> Result<(), RegistryError> {
        let mut key = id.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.history.insert(key, json(item))?;
        Ok(())
    }

    /// A device's history, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryV1>, RegistryError> {
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        self.history
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v)
                    .map_err(|e| RegistryError::Corrupt(format!("history of {id}: {e}")))
            })
            .collect()
    }
}

/// The devices of the registry with at least one of some tags, as one inventory
/// ([`Registry::tagged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// `registry:tags=web,edge.json`: what the rollout's inventory is called.
    pub name: String,
    /// The devices' tables, each as its own file gives it (with that file's
    /// `version-scheme`), as a JSON inventory.
    pub text: String,
    /// Their ids, in the registry's order.
    pub ids: Vec<String>,
}

impl Registry {
    /// The registry's devices with at least one of `tags`, each from the inventory file
    /// it was last given in, as one inventory a rollout can record and plan. A file that
    /// no longer parses as TOML or JSON is an error naming it (its devices cannot be
    /// told apart from those it lost).
    pub fn tagged(&self, tags: &[String]) -> Result<Tagged, RegistryError> {
        let mut files: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
        for (name, text) in self.inventories()? {
            files.insert(name.clone(), device_tables(&name, &text)?);
        }
        let mut devices = Vec::new();
        let mut ids = Vec::new();
        for entry in self.list()? {
            if !entry.tags.iter().any(|t| tags.contains(t)) {
                continue;
            }
            if let Some(table) = files
                .get_mut(&entry.inventory)
                .and_then(|f| f.remove(&entry.id))
            {
                devices.push(table);
                ids.push(entry.id);
            }
        }
        Ok(Tagged {
            name: format!("registry:tags={}.json", tags.join(",")),
            text: serde_json::to_string_pretty(&serde_json::json!({ "devices": devices }))
                .unwrap_or_default(),
            ids,
        })
    }
}

/// The device tables of inventory file `name` by id, each with the file's
/// `version-scheme` unless it has its own.
fn device_tables(
    name: &str,
    text: &str,
) -> Result<BTreeMap<String, serde_json::Value>, RegistryError> {
    let corrupt =
        |e: String| RegistryError::Corrupt(format!("inventory {name} no longer reads: {e}"));
    let file: serde_json::Value = if Path::new(name).extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?
    } else {
        let table: toml::Table = toml::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        serde_json::to_value(table).map_err(|e| corrupt(e.to_string()))?
    };
    let scheme = file.get("version-scheme").cloned();
    let mut tables = BTreeMap::new();
    for device in file
        .get("devices")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(table)) = (
            device.get("id").and_then(|i| i.as_str()),
            device.as_object(),
        ) else {
            continue;
        };
        let mut table = table.clone();
        if let Some(scheme) = &scheme {
            table
                .entry("version-scheme")
                .or_insert_with(|| scheme.clone());
        }
        tables.insert(id.to_string(), serde_json::Value::Object(table));
    }
    Ok(tables)
}

pub fn component_v1(c: Component) -> ComponentV1 {
    ComponentV1 {
        name: c.name,
        version: c.version,
        scheme: c.scheme.map(|s| s.to_string()),
        source: c.source,
    }
}

pub fn component_of(c: ComponentV1) -> Component {
    Component {
        scheme: c.scheme.as_deref().and_then(|s| s.parse::<Scheme>().ok()),
        name: c.name,
        version: c.version,
        source: c.source,
    }
}

/// `a` against `b` in the scheme either names (else vendor); `None` when they cannot
/// be compared.
fn order(a: &ComponentV1, b: &ComponentV1) -> Option<Ordering> {
    let scheme = a
        .scheme
        .as_deref()
        .or(b.scheme.as_deref())
        .and_then(|s| s.parse::<Scheme>().ok())
        .unwrap_or(Scheme::Vendor);
    let x = ringleader_version::AnyVersion::parse(scheme, &a.version).ok()?;
    let y = ringleader_version::AnyVersion::parse(scheme, &b.version).ok()?;
    x.try_cmp(&y).ok()
}

/// What changed from one scan to the next: (kind, component, from, to).
fn changes(
    before: &[ComponentV1],
    after: &[ComponentV1],
) -> Vec<(HistoryKind, String, Option<String>, Option<String>)> {
    let old: BTreeMap<&str, &ComponentV1> = before.iter().map(|c| (c.name.as_str(), c)).collect();
    let new: BTreeMap<&str, &ComponentV1> = after.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = Vec::new();
    for (name, now) in &new {
        match old.get(name) {
            None => out.push((
                HistoryKind::Changed,
                name.to_string(),
                None,
                Some(now.version.clone()),
            )),
            Some(was) if was.version != now.version => {
                let kind = if order(now, was) == Some(Ordering::Less) {
                    HistoryKind::Drift
                } else {
                    HistoryKind::Changed
                };
                out.push((
                    kind,
                    name.to_string(),
                    Some(was.version.clone()),
                    Some(now.version.clone()),
                ));
            }
            Some(_) => {}
        }
    }
    for (name, was) in &old {
        if !new.contains_key(name) {
            out.push((
                HistoryKind::Changed,
                name.to_string(),
                Some(was.version.clone()),
                None,
            ));
        }
    }
    out
}

/// Where the inventory file and the last scan disagree (nothing before a scan).
pub fn differences(entry: &Entry) -> Vec<DifferenceV1> {
    let Some(scan) = &entry.last_scan else {
        return Vec::new();
    };
    let declared: BTreeMap<&str, &ComponentV1> = entry
        .declared
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let observed: BTreeMap<&str, &ComponentV1> = scan
        .components
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let mut out = Vec::new();
    for (name, d) in &declared {
        match observed.get(name) {
            None => out.push(DifferenceV1 {
                kind: DifferenceKind::Missing,
                component: name.to_string(),
                declared: Some(d.version.clone()),
                observed: None,
            }),
            Some(o) if o.version != d.version => out.push(DifferenceV1 {
                kind: DifferenceKind::Version,
                component: name.to_string(),
                declared: Some(d.version.clone()),
                observed: Some(o.version.clone()),
            }),
            Some(_) => {}
        }
    }
    for (name, o) in &observed {
        if !declared.contains_key(name) {
            out.push(DifferenceV1 {
                kind: DifferenceKind::Undeclared,
                component: name.to_string(),
                declared: None,
                observed: Some(o.version.clone()),
            });
        }
    }
    out
}

/// The kind of a failed scan call.
pub fn error_kind(e: &ringleader_runtime::CallError) -> ScanErrorKind {
    use ringleader_runtime::CallErrorKind as K;
    use ringleader_runtime::bindings::PluginError as P;
    match &e.kind {
        K::Plugin(P::Denied(_)) => ScanErrorKind::Denied,
        K::Plugin(P::Transient(_)) => ScanErrorKind::Unreachable,
        K::Timeout { .. } => ScanErrorKind::Timeout,
        K::Unsupported(_) => ScanErrorKind::Unsupported,
        _ => ScanErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, version: &str, scheme: Option<&str>) -> ComponentV1 {
        ComponentV1 {
            name: name.into(),
            version: version.into(),
            scheme: scheme.map(Into::into),
            source: None,
        }
    }

    #[test]
    fn changes_between_scans_and_drift_in_the_component_s_scheme() {
        let before = [
            c("libc6", "2.36-9+deb12u7", Some("deb")),
            c("bios", "2.19.1", None),
            c("gone", "1.0", None),
        ];
        let after = [
            // Lower as dpkg orders it: a snapshot restored.
            c("libc6", "2.36-9+deb12u4", Some("deb")),
            c("bios", "2.21.0", None),
            c("new", "3.0", None),
        ];
        let got = changes(&before, &after);
        let kinds: Vec<(HistoryKind, &str)> =
            got.iter().map(|(k, n, _, _)| (*k, n.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (HistoryKind::Changed, "bios"),
                (HistoryKind::Drift, "libc6"),
                (HistoryKind::Changed, "new"),
                (HistoryKind::Changed, "gone"),
            ]
        );
    }

    #[test]
    fn the_registry_s_tagged_devices_make_one_inventory_each_as_its_last_file_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let register = |name: &str, text: &str| {
            let parsed = Inventory::parse(Path::new(name), text).unwrap();
            registry.register(name, text, &parsed).unwrap();
        };
        register(
            "/etc/ringleader/web.toml",
            "version-scheme = \"deb\"\n[[devices]]\nid = \"web-1\"\ntags = [\"web\"]\nsite = \"ams\"\ncomponents = { openssl = \"3.0.11-1~deb12u2\" }\n\n[[devices]]\nid = \"db-1\"\ntags = [\"db\"]\n\n[[devices]]\nid = \"moved\"\ntags = [\"web\"]\n",
        );
        // `moved` is now in this file, without the tag; `edge-1` has a scheme of its own.
        register(
            "/etc/ringleader/edge.json",
            r#"{"version-scheme": "rpm", "devices": [
                {"id": "edge-1", "tags": ["edge"], "version-scheme": "semver", "components": {"agent": "1.2.0"}},
                {"id": "moved", "tags": ["lab"]}
            ]}"#,
        );
        let tagged = registry
            .tagged(&["web".to_string(), "edge".to_string()])
            .unwrap();
        assert_eq!(tagged.name, "registry:tags=web,edge.json");
        assert_eq!(tagged.ids, ["edge-1", "web-1"]);
        let inventory = Inventory::parse(Path::new(&tagged.name), &tagged.text).unwrap();
        let by_id: BTreeMap<&str, &ringleader_planner::inventory::Device> = inventory
            .devices
            .iter()
            .map(|d| (d.id.as_str(), d))
            .collect();
        assert_eq!(by_id.len(), 2);
        assert_eq!(by_id["web-1"].site, "ams");
        let scheme = |id: &str| by_id[id].to_plugin().components[0].scheme;
        assert_eq!(scheme("web-1"), Some(Scheme::Deb), "the file's scheme");
        assert_eq!(scheme("edge-1"), Some(Scheme::Semver), "its own");

        let none = registry.tagged(&["nowhere".to_string()]).unwrap();
        assert!(none.ids.is_empty());
    }

    #[test]
    fn a_scan_is_recorded_with_its_history_and_errors_keep_the_last_scan() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let inventory = Inventory::parse(
            Path::new("fleet.toml"),
            "[[devices]]\nid = \"d1\"\ntags = [\"lab\"]\ncomponents = { bios = \"2.10.0\" }\n",
        )
        .unwrap();
        registry.register("fleet.toml", "x", &inventory).unwrap();
        let at = |s: i64| Timestamp::from_second(1_764_662_400 + s).unwrap();
        let scan = |version: &str| DeviceScan {
            components: vec![Component {
                name: "bios".into(),
                version: version.into(),
                scheme: None,
                source: None,
            }],
            os: None,
            boot: Default::default(),
            facts: Vec::new(),
        };
        let none = |_: &str, _: Timestamp| None;
        let ok = |s: i64, version: &str| Outcome {
            id: "d1".into(),
            installer: "sim-vendor-installer".into(),
            at: at(s),
            duration_ms: 3,
            result: Ok(scan(version)),
        };
        assert_eq!(registry.record(ok(0, "2.19.1"), none).unwrap(), 0);
        let entry = registry.get("d1").unwrap().unwrap();
        assert_eq!(
            differences(&entry),
            [DifferenceV1 {
                kind: DifferenceKind::Version,
                component: "bios".into(),
                declared: Some("2.10.0".into()),
                observed: Some("2.19.1".into()),
            }]
        );
        registry
            .record(
                Outcome {
                    id: "d1".into(),
                    installer: "sim-vendor-installer".into(),
                    at: at(60),
                    duration_ms: 5000,
                    result: Err(ScanErrorV1 {
                        kind: ScanErrorKind::Unreachable,
                        message: "ssh: connection refused".into(),
                    }),
                },
                none,
            )
            .unwrap();
        // Reopened: everything recorded is there.
        drop(registry);
        let registry = Registry::open(dir.path()).unwrap();
        let entry = registry.get("d1").unwrap().unwrap();
        assert_eq!(entry.last_seen, Some(at(0)));
        assert_eq!(
            entry.last_scan.as_ref().unwrap().components[0].version,
            "2.19.1"
        );
        let (when, error) = entry.error.clone().unwrap();
        assert_eq!((when, error.kind), (at(60), ScanErrorKind::Unreachable));
        assert_eq!(registry.record(ok(120, "2.10.0"), none).unwrap(), 1);
        let entry = registry.get("d1").unwrap().unwrap();
        assert!(entry.drift);
        assert_eq!(entry.error, None);
        let history = registry.history("d1").unwrap();
        let kinds: Vec<HistoryKind> = history.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [HistoryKind::ScanFailed, HistoryKind::Drift]);
        assert_eq!(history[1].from.as_deref(), Some("2.19.1"));
        assert_eq!(history[1].to.as_deref(), Some("2.10.0"));
        // Planning sees what the device has.
        let scan = registry.get("d1").unwrap().unwrap().last_scan.unwrap();
        assert_eq!(scan.components[0].version, "2.10.0");

        // Up again, but not as far as it was: still drift.
        registry.record(ok(180, "2.15.0"), none).unwrap();
        let entry = registry.get("d1").unwrap().unwrap();
        assert!(entry.drift);
        assert_eq!(entry.drifted["bios"], "2.19.1");
        // Back at the version it went down from: no longer drift, and the history
        // says so.
        registry.record(ok(240, "2.19.1"), none).unwrap();
        let entry = registry.get("d1").unwrap().unwrap();
        assert!(!entry.drift);
        assert!(entry.drifted.is_empty());
        let last = registry.history("d1").unwrap().pop().unwrap();
        assert_eq!(last.kind, HistoryKind::Changed);
        assert!(last.detail.contains("no longer drift"), "{}", last.detail);

        // Down again, rolled back by a rollout since the scan before: a change, not
        // drift.
        let asked = std::cell::Cell::new(None);
        registry
            .record(ok(300, "2.10.0"), |component: &str, since: Timestamp| {
                asked.set(Some((component.to_string(), since)));
                Some("r7".into())
            })
            .unwrap();
        assert_eq!(asked.take(), Some(("bios".to_string(), at(240))));
        let entry = registry.get("d1").unwrap().unwrap();
        assert!(!entry.drift);
        let last = registry.history("d1").unwrap().pop().unwrap();
        assert_eq!(last.kind, HistoryKind::Changed);
        assert_eq!(
            last.detail,
            "bios: 2.19.1 -> 2.10.0 (rolled back by rollout r7)"
        );
    }
}
