//! One rollout's path, the same for the daemon's rollouts and `ringleader demo`:
//! inputs -> runtime -> prepare -> replay -> executor.
//!
//! [`Inputs`] is what a rollout is started from, kept in its log's `meta/inputs`
//! (`ringleader.inputs/v1`, `docs/schemas/inputs.v1.json`) so that it can be rebuilt
//! exactly. A [`Session`] holds what the rollouts of a process share: the plugins
//! chosen, the operator's grants and credentials, the simulated devices' state and the
//! plugins' kv store. [`Session::prepare`] validates the inputs, routes every device,
//! builds a runtime, loads the plugins, discovers and plans, and replays the log; the
//! [`Ready`] rollout it returns is run by [`Ready::run`].
//!
//! Nothing here knows the command line: what a command chose is passed in.

use crate::plugins::Chosen;
use jiff::Timestamp;
use ringleader_engine::clock::VirtualClock;
use ringleader_engine::core::Core;
use ringleader_engine::demo::{self, FleetConfig};
use ringleader_engine::executor::{
    Command, DeviceLeases, Executor, Installers, Metrics, Recovery, RunReport, Targets, Timing,
    replay,
};
use ringleader_engine::store::Store;
use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::{Inventory, Transport};
use ringleader_planner::policy::Policy;
use ringleader_runtime::services::{KvStore, SystemClock};
use ringleader_runtime::sim_device::SimDevices;
use ringleader_runtime::transport::{Route, Routes};
use ringleader_runtime::{Grants, OperatorConfig, Runtime, RuntimeConfig, Services};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The `schema` of a rollout's `meta/inputs`.
pub const INPUTS_SCHEMA: &str = "ringleader.inputs/v1";
/// The `schema` of a rollout's `meta/inputs` that plans from scanned components
/// (`observed`): v1 and the devices' last scans.
pub const INPUTS_SCHEMA_V2: &str = "ringleader.inputs/v2";

/// What the fleet registry's last scan found on a device, as a rollout started from
/// it plans with it (`observed` of `ringleader.inputs/v2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub components: Vec<ringleader_api::fleet::ComponentV1>,
    #[serde(default)]
    pub os: Option<ringleader_api::fleet::OsV1>,
}

/// What a rollout is started from; stored in its log's `meta/inputs` so that a
/// restarted daemon (or a demo run again) rebuilds it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The policy file's name (for messages) and text.
    pub policy_name: String,
    pub policy: String,
    pub fleet: Fleet,
    pub clock: Clock,
    /// When the rollout starts (virtual time), or started (real time).
    pub start: Timestamp,
    /// Devices whose scanned components the rollout plans with, instead of the
    /// inventory's (from the fleet registry when the rollout started).
    pub observed: BTreeMap<String, Observed>,
    /// Only these patches (by id) are rolled out: a scheduled run's selection, fixed
    /// when it starts. `None`: every patch the sources report.
    pub patches: Option<BTreeSet<String>>,
}

/// The devices a rollout covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fleet {
    /// An inventory file: its name and text.
    Inventory { name: String, text: String },
    /// The demo's simulated fleet.
    Simulated {
        devices: usize,
        seed: u64,
        fail_permille: u64,
        hang_permille: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Clock {
    Real,
    /// Virtual time with the simulated fleet's timing: install durations keyed by
    /// `seed`, and `hang_permille` installs after which the device never reports.
    Virtual {
        seed: u64,
        /// Inputs written before `ringleader.inputs/v1` name none: they ran with 1.
        #[serde(default = "one")]
        hang_permille: u64,
    },
}

fn one() -> u64 {
    1
}

/// `meta/inputs` as written: `ringleader.inputs/v1`.
#[derive(Serialize)]
struct StoredV1<'a> {
    schema: &'static str,
    policy_name: &'a str,
    policy: &'a str,
    fleet: &'a Fleet,
    clock: &'a Clock,
    start: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed: Option<&'a BTreeMap<String, Observed>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patches: Option<&'a BTreeSet<String>>,
}

/// `meta/inputs` as read: `ringleader.inputs/v1`, or the shape before it (the same
/// without `schema` and without the clock's `hang_permille`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(default)]
    schema: Option<String>,
    policy_name: String,
    policy: String,
    fleet: Fleet,
    clock: Clock,
    start: Timestamp,
    #[serde(default)]
    observed: Option<BTreeMap<String, Observed>>,
    #[serde(default)]
    patches: Option<BTreeSet<String>>,
}

/// Only the `schema` of `meta/inputs`, to name the format of inputs this version
/// cannot read.
#[derive(Deserialize)]
struct SchemaOnly {
    #[serde(default)]
    schema: Option<String>,
}

impl Inputs {
    /// The policy and inventory, validated: errors name the file, line and column.
    pub fn validate(&self) -> Result<(Policy, Inventory), String> {
        let (policy, diags) = Policy::parse(Path::new(&self.policy_name), &self.policy);
        let policy = policy.ok_or_else(|| diags.to_string())?;
        let mut inventory = match &self.fleet {
            Fleet::Inventory { name, text } => {
                Inventory::parse(Path::new(name), text).map_err(|e| e.to_string())?
            }
            Fleet::Simulated {
                devices,
                seed,
                fail_permille,
                hang_permille,
            } => demo::inventory(&FleetConfig {
                devices: *devices,
                seed: *seed,
                fail_permille: *fail_permille,
                hang_permille: *hang_permille,
                ..FleetConfig::default()
            }),
        };
        for device in &mut inventory.devices {
            if let Some(seen) = self.observed.get(&device.id) {
                let components: Vec<_> = seen
                    .components
                    .iter()
                    .cloned()
                    .map(crate::fleet::component_of)
                    .collect();
                let os = seen.os.clone().map(|o| ringleader_types::OsRelease {
                    id: o.id,
                    version_id: o.version_id,
                    codename: o.codename,
                    pretty_name: o.pretty_name,
                });
                for problem in device.observe(&components, os.as_ref()) {
                    tracing::warn!("{problem}; the inventory's version is planned with");
                }
            }
        }
        Ok((policy, inventory))
    }

    /// Writes the inputs to `store`'s `meta/inputs`, as `ringleader.inputs/v1`.
    pub fn record(&self, store: &Store) -> anyhow::Result<()> {
        let v2 = !self.observed.is_empty() || self.patches.is_some();
        let text = serde_json::to_string(&StoredV1 {
            schema: if v2 { INPUTS_SCHEMA_V2 } else { INPUTS_SCHEMA },
            policy_name: &self.policy_name,
            policy: &self.policy,
            fleet: &self.fleet,
            clock: &self.clock,
            start: self.start,
            observed: v2.then_some(&self.observed),
            patches: self.patches.as_ref(),
        })?;
        store.set_inputs(&text)?;
        Ok(())
    }

    /// The inputs `store` was started from (`None`: it holds none yet), or why they
    /// cannot be read.
    pub fn of_store(store: &Store) -> Result<Option<Inputs>, String> {
        match store.inputs().map_err(|e| e.to_string())? {
            Some(text) => Inputs::parse(&text).map(Some),
            None => Ok(None),
        }
    }

    /// `meta/inputs` text: `ringleader.inputs/v1`, or the shape written before it.
    fn parse(text: &str) -> Result<Inputs, String> {
        let other = |schema: &str| {
            format!(
                "its inputs are `{}`, which this ringleader does not read (it reads {INPUTS_SCHEMA}, {INPUTS_SCHEMA_V2} and the format before it); run it with the ringleader that started it",
                ringleader_diag::escape(schema)
            )
        };
        let stored: Stored = match serde_json::from_str(text) {
            Ok(stored) => stored,
            Err(e) => {
                return Err(match serde_json::from_str::<SchemaOnly>(text) {
                    Ok(SchemaOnly {
                        schema: Some(schema),
                    }) if schema != INPUTS_SCHEMA && schema != INPUTS_SCHEMA_V2 => other(&schema),
                    _ => format!("its inputs are unreadable: {e}"),
                });
            }
        };
        match (stored.schema.as_deref(), &stored.observed) {
            (None | Some(INPUTS_SCHEMA), None) | (Some(INPUTS_SCHEMA_V2), Some(_)) => {}
            (Some(INPUTS_SCHEMA_V2), None) => {
                return Err("its inputs are ringleader.inputs/v2 without `observed`".into());
            }
            (None | Some(INPUTS_SCHEMA), Some(_)) => {
                return Err(
                    "its inputs are ringleader.inputs/v1 with `observed`, a key of v2".into(),
                );
            }
            (Some(schema), _) => return Err(other(schema)),
        }
        if stored.patches.is_some() && stored.schema.as_deref() != Some(INPUTS_SCHEMA_V2) {
            return Err("its inputs are ringleader.inputs/v1 with `patches`, a key of v2".into());
        }
        Ok(Inputs {
            policy_name: stored.policy_name,
            policy: stored.policy,
            fleet: stored.fleet,
            clock: stored.clock,
            start: stored.start,
            observed: stored.observed.unwrap_or_default(),
            patches: stored.patches,
        })
    }
}

/// What the rollouts of a process share: the plugins, the operator's grants (with the
/// plugins filled in by default granted as declared) and credentials, the simulated
/// devices' state, the plugins' kv store.
#[derive(Debug, Clone)]
pub struct Session {
    plugins: Chosen,
    /// The installers' names, the first the default.
    installer_names: Vec<String>,
    grants: Grants,
    devices: Arc<SimDevices>,
    kv: Arc<dyn KvStore>,
    /// The operator config's `[scan]`.
    scan: ringleader_runtime::config::ScanConfig,
    /// The operator config's `[sources]`.
    sources: ringleader_runtime::config::SourcesConfig,
    /// The operator config's `[webhooks.NAME]` and `[notifications]`.
    webhooks: Vec<ringleader_runtime::config::WebhookConfig>,
    notifications: ringleader_runtime::config::NotificationsConfig,
    /// Who works on each device now: the rollouts' steps and the fleet scans.
    leases: Arc<DeviceLeases>,
}

/// A rollout prepared and its log replayed: ready to run from where the log left off.
pub struct Ready {
    pub policy: Policy,
    /// The patches as planned, for explaining the plan.
    pub catalog: Arc<Catalog>,
    pub targets: Targets,
    /// The core as the log leaves it, at `now`.
    pub core: Core,
    pub now: Timestamp,
    /// What was under way when the rollout stopped: done first.
    pub recovery: Recovery,
    /// Records replayed from the log.
    pub records: u64,
    installers: Installers,
    timing: Timing,
    clock: Option<VirtualClock>,
    store: Option<Store>,
    devices: Arc<SimDevices>,
    leases: Arc<DeviceLeases>,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("policy", &self.policy.name)
            .field("now", &self.now)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

/// How a caller runs a [`Ready`] rollout.
#[derive(Debug, Default)]
pub struct Run {
    /// Approve rings that need approval after this delay (a simulated operator).
    pub auto_approve_after: Option<Duration>,
    /// Operator commands, while it runs.
    pub control: Option<mpsc::UnboundedReceiver<Command>>,
    pub metrics: Arc<Metrics>,
    /// Virtual time shared with other rollouts (the continuous demo's).
    pub horizon: Option<ringleader_engine::executor::horizon::Horizon>,
}

impl Session {
    /// The session of `plugins`, granted what `config` grants (and the plugins filled
    /// in by default what they declare), with the devices' state and kv store given.
    pub fn new(
        plugins: Chosen,
        config: &OperatorConfig,
        devices: Arc<SimDevices>,
        kv: Arc<dyn KvStore>,
    ) -> anyhow::Result<Session> {
        Ok(Session {
            installer_names: plugins.installer_names()?,
            grants: plugins.grants(config)?,
            plugins,
            devices,
            kv,
            scan: config.scan,
            sources: config.sources.clone(),
            webhooks: config.webhooks.clone(),
            notifications: config.notifications,
            leases: Arc::default(),
        })
    }

    /// How fleet scans run (the operator config's `[scan]`).
    pub fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            concurrency: self.scan.concurrency,
            timeout: self.scan.timeout,
        }
    }

    /// How often the registry is scanned on its own (`[scan] every`), if it is.
    pub fn scan_every(&self) -> Option<Duration> {
        self.scan.every
    }

    /// The sources' names (from their manifests).
    pub fn source_names(&self) -> anyhow::Result<Vec<String>> {
        self.plugins.source_names()
    }

    /// Each source the daemon polls on its own (`[sources] poll`, `[sources.intervals]`)
    /// with its interval; a source with neither is left out. An interval for a source
    /// the daemon does not have is an error.
    pub fn poll_plan(&self) -> anyhow::Result<Vec<(String, Duration)>> {
        let names = self.plugins.source_names()?;
        for named in self.sources.intervals.keys() {
            if !names.contains(named) {
                anyhow::bail!(
                    "the operator config's [sources.intervals] names `{named}`, which is not a source of this daemon (its sources: {}); name one of them, or give it with --source",
                    names.join(", ")
                );
            }
        }
        Ok(names
            .into_iter()
            .filter_map(|n| self.sources.interval(&n).map(|every| (n, every)))
            .collect())
    }

    /// The webhooks (`[webhooks.NAME]`) and what else is notified (`[notifications]`).
    pub fn webhooks(
        &self,
    ) -> (
        &[ringleader_runtime::config::WebhookConfig],
        ringleader_runtime::config::NotificationsConfig,
    ) {
        (&self.webhooks, self.notifications)
    }

    /// The simulated devices' state.
    pub fn devices(&self) -> &Arc<SimDevices> {
        &self.devices
    }

    /// Whether every device can be reached and patched: its transport can be used with
    /// the operator's config (the credentials it names exist), and the installer it
    /// names is loaded.
    pub fn check_devices(&self, inventory: &Inventory) -> Result<(), String> {
        routes(inventory, &self.grants, self.devices.clone())?;
        self.check_installers(inventory)
    }

    /// Whether every device that names an installer names one of these.
    fn check_installers(&self, inventory: &Inventory) -> Result<(), String> {
        for device in &inventory.devices {
            if let Some(name) = &device.installer
                && !self.installer_names.contains(name)
            {
                let how = if ringleader_bundled_plugins::embedded(name).is_some() {
                    format!("start it with --installer {name}, a bundled plugin")
                } else {
                    "start it with --installer for that plugin's manifest".to_string()
                };
                return Err(format!(
                    "device `{}` names the installer `{name}`, which this daemon does not load (it has: {}; {how})",
                    device.id,
                    self.installer_names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Prepares the rollout of `inputs`: validates them, routes every device with the
    /// operator's credentials, builds a runtime (virtual clock or real), loads the
    /// plugins, discovers and plans, and replays `store`'s log (none: a rollout in
    /// memory, from its start).
    pub async fn prepare(&self, inputs: &Inputs, store: Option<Store>) -> anyhow::Result<Ready> {
        let (policy, inventory) = inputs.validate().map_err(anyhow::Error::msg)?;
        let clock = match inputs.clock {
            Clock::Virtual { .. } => Some(VirtualClock::new(inputs.start)),
            Clock::Real => None,
        };
        let routes =
            routes(&inventory, &self.grants, self.devices.clone()).map_err(anyhow::Error::msg)?;
        let routes = Arc::new(routes);
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: ringleader_runtime::cache::ComponentCache::default_dir(),
            grants: self.grants.clone(),
            services: Services {
                exec: routes.clone(),
                auth: routes,
                kv: self.kv.clone(),
                clock: match &clock {
                    Some(clock) => Arc::new(clock.clone()),
                    None => Arc::new(SystemClock),
                },
            },
        })?;
        self.check_installers(&inventory)
            .map_err(anyhow::Error::msg)?;
        let (sources, installers) = self.plugins.load(&runtime).await?;
        let prepared = ringleader_engine::spec::prepare(
            &policy,
            &inventory,
            &sources,
            inputs.start,
            inputs.patches.as_ref(),
        )
        .await?;
        // The rollout runs from its spec and targets; the inventory is not needed again.
        drop(inventory);
        let (core, now, recovery, records) = match &store {
            Some(store) => {
                let replayed = replay(prepared.spec, store, inputs.start)?;
                let (core, now) = (replayed.core, replayed.now);
                (core, now, replayed.recovery, replayed.records)
            }
            None => (
                Core::new(prepared.spec),
                inputs.start,
                Recovery::default(),
                0,
            ),
        };
        let timing = match inputs.clock {
            Clock::Virtual {
                seed,
                hang_permille,
            } => Timing::Virtual(demo::timing(&FleetConfig {
                seed,
                hang_permille,
                ..FleetConfig::default()
            })),
            Clock::Real => Timing::Real,
        };
        Ok(Ready {
            policy,
            catalog: Arc::new(prepared.catalog),
            targets: prepared.targets,
            core,
            now,
            recovery,
            records,
            installers,
            timing,
            clock,
            store,
            devices: self.devices.clone(),
            leases: self.leases.clone(),
        })
    }
}

impl Session {
    /// A runtime on the real clock whose plugins reach `inventory`'s devices (each by
    /// its transport, with the operator's credentials): what scans and compliance's
    /// discovery run in.
    fn runtime_now(&self, inventory: &Inventory) -> anyhow::Result<Runtime> {
        let routes =
            routes(inventory, &self.grants, self.devices.clone()).map_err(anyhow::Error::msg)?;
        let routes = Arc::new(routes);
        Ok(Runtime::new(RuntimeConfig {
            cache_dir: ringleader_runtime::cache::ComponentCache::default_dir(),
            grants: self.grants.clone(),
            services: Services {
                exec: routes.clone(),
                auth: routes,
                kv: self.kv.clone(),
                clock: Arc::new(SystemClock),
            },
        })?)
    }
}

/// How a fleet scan runs.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Devices scanned at once.
    pub concurrency: usize,
    /// How long one device's scan may take before it counts as failed (`timeout`).
    pub timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions {
            concurrency: 16,
            timeout: Duration::from_secs(120),
        }
    }
}

impl Session {
    /// Scans the devices of `inventory` named in `ids` (all when empty), each through
    /// its installer's `scan`, `options.concurrency` at a time, each within
    /// `options.timeout`; a device a rollout step works on is not scanned and comes
    /// back as `busy` (and no step starts on a device while it is scanned). `record` is given each outcome as it arrives (the
    /// registry writes it durably), so that a stop mid-scan loses none already done.
    pub async fn scan(
        &self,
        inventory: &Inventory,
        ids: &[String],
        options: ScanOptions,
        mut record: impl FnMut(crate::fleet::Outcome),
    ) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        use ringleader_api::fleet::{ScanErrorKind, ScanErrorV1};
        let runtime = self.runtime_now(inventory)?;
        let installers = self.plugins.load_installers(&runtime).await?;
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let devices: Vec<_> = inventory
            .devices
            .iter()
            .filter(|d| wanted.is_empty() || wanted.contains(d.id.as_str()))
            .map(|d| d.to_plugin())
            .collect();
        let installers = &installers;
        let mut scans = futures_util::stream::iter(devices.into_iter().map(|device| async move {
            let at = Timestamp::now();
            let started = std::time::Instant::now();
            let lease = self.leases.for_scan(&device.id);
            let (installer, result) = if lease.is_none() {
                (
                    String::new(),
                    Err(ScanErrorV1 {
                        kind: ScanErrorKind::Busy,
                        message: "a rollout step runs on it: scanned later".into(),
                    }),
                )
            } else {
                match installers.for_device(&device) {
                    Err(e) => (
                        String::new(),
                        Err(ScanErrorV1 {
                            kind: ScanErrorKind::Failed,
                            message: e,
                        }),
                    ),
                    Ok(plugin) => {
                        let name = plugin.name().to_string();
                        let result =
                            match tokio::time::timeout(options.timeout, plugin.scan(&device)).await
                            {
                                Err(_) => Err(ScanErrorV1 {
                                    kind: ScanErrorKind::Timeout,
                                    message: format!(
                                        "the scan took longer than {}s",
                                        options.timeout.as_secs()
                                    ),
                                }),
                                Ok(Err(e)) => Err(ScanErrorV1 {
                                    kind: crate::fleet::error_kind(&e),
                                    message: e.to_string(),
                                }),
                                Ok(Ok(scan)) => Ok(scan),
                            };
                        (name, result)
                    }
                }
            };
            crate::fleet::Outcome {
                id: device.id.clone(),
                installer,
                at: Timestamp::from_second(at.as_second()).unwrap_or(at),
                duration_ms: started.elapsed().as_millis() as u64,
                result,
            }
        }))
        .buffer_unordered(options.concurrency.max(1));
        while let Some(outcome) = scans.next().await {
            record(outcome);
        }
        Ok(())
    }
}

impl Session {
    /// The catalog the patch sources report for `inventory`'s devices (for
    /// compliance): every source asked as a rollout asks them, with the real clock.
    pub async fn discover(
        &self,
        inventory: &Inventory,
    ) -> anyhow::Result<ringleader_planner::catalog::Catalog> {
        let runtime = self.runtime_now(inventory)?;
        let sources = self.plugins.load_sources(&runtime).await?;
        let devices: Vec<_> = inventory.devices.iter().map(|d| d.to_plugin()).collect();
        let reported = ringleader_engine::spec::discover_all(&sources, &devices).await?;
        Ok(ringleader_planner::catalog::Catalog::build(reported)?)
    }
}

/// The patch sources, loaded once on the real clock for a set of devices: what a
/// watcher polls again and again (each poll asks every source, whose feeds the host
/// revalidates: an unchanged feed is not downloaded again).
pub struct Sources {
    // Kept for the plugins' lifetime.
    _runtime: Runtime,
    sources: Vec<ringleader_runtime::Plugin>,
    devices: Vec<ringleader_types::Device>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("sources", &self.sources.len())
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The sources, loaded to poll for `inventory`'s devices.
    pub async fn sources_for(&self, inventory: &Inventory) -> anyhow::Result<Sources> {
        let runtime = self.runtime_now(inventory)?;
        let sources = self.plugins.load_sources(&runtime).await?;
        Ok(Sources {
            _runtime: runtime,
            sources,
            devices: inventory.devices.iter().map(|d| d.to_plugin()).collect(),
        })
    }
}

impl Sources {
    /// Every patch the sources report for the devices now, each with its source.
    pub async fn poll(&self) -> anyhow::Result<Vec<(ringleader_types::Patch, String)>> {
        Ok(ringleader_engine::spec::discover_all(&self.sources, &self.devices).await?)
    }

    /// What the sources named `only` report now, each patch with its source.
    pub async fn poll_only(
        &self,
        only: &[String],
    ) -> anyhow::Result<Vec<(ringleader_types::Patch, String)>> {
        let mut reported = Vec::new();
        for source in self
            .sources
            .iter()
            .filter(|s| only.iter().any(|n| n == s.name()))
        {
            reported.extend(
                ringleader_engine::spec::discover_all(std::slice::from_ref(source), &self.devices)
                    .await?,
            );
        }
        Ok(reported)
    }
}

impl Ready {
    /// Runs the rollout to its end (or until it is stopped or its log stalls);
    /// `progress` sees the core whenever time moves or a command was applied.
    pub async fn run(self, run: Run, progress: impl FnMut(&Core, Timestamp)) -> (Core, RunReport) {
        let executor = Executor {
            core: self.core,
            installers: self.installers,
            targets: self.targets,
            timing: self.timing,
            concurrency: 64,
            auto_approve_after: run.auto_approve_after,
            now: self.now,
            store: self.store,
            recovery: self.recovery,
            devices: Some(self.devices),
            clock: self.clock,
            scheduled: Vec::new(),
            leases: Some(self.leases),
            control: run.control,
            metrics: run.metrics,
            horizon: run.horizon,
        };
        executor.run(progress).await
    }
}

/// How each device of `inventory` is reached: its own transport, with the operator's
/// credentials; simulated devices through `sim`. An error names the device. Also used
/// by `ringleader plugin run`, so that a plugin tried alone reaches devices exactly as
/// in a rollout.
pub fn routes(
    inventory: &Inventory,
    grants: &Grants,
    sim: Arc<SimDevices>,
) -> Result<Routes, String> {
    let routes = Routes::new(sim);
    for device in &inventory.devices {
        let route = device
            .transport
            .route(&grants.credentials)
            .and_then(|route| ca_file_readable(&device.transport, &route).map(|()| route))
            .map_err(|e| format!("device {}: {e}", device.id))?;
        routes.set(&device.id, route);
    }
    Ok(routes)
}

/// Refuses an `http` route whose CA file cannot be read, before any plugin is called
/// (the planner builds routes without I/O; the file is read again at each request).
fn ca_file_readable(transport: &Transport, route: &Route) -> Result<(), String> {
    let (Route::Http { ca: Some(ca), .. }, Transport::Http { credentials, .. }) =
        (route, transport)
    else {
        return Ok(());
    };
    std::fs::metadata(ca).map(|_| ()).map_err(|e| {
        format!(
            "the ca_file {} of credentials `{}` cannot be read: {e}",
            ca.display(),
            credentials.as_deref().unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_cannot_be_read_is_refused_naming_the_device_and_credentials() {
        let inventory = Inventory::parse(
            Path::new("i.toml"),
            "[[devices]]\nid = \"bmc-1\"\ntransport = { kind = \"http\", address = \"https://10.0.0.5\", credentials = \"bmc\" }\n",
        )
        .unwrap();
        let grants = |ca: &str| {
            let text = format!("[credentials.bmc]\nca_file = \"{ca}\"\n");
            OperatorConfig::parse(Path::new("c.toml"), &text)
                .unwrap()
                .grants
        };
        let sim = Arc::new(SimDevices::in_memory());
        let missing = "/nonexistent/ringleader/ca.pem";
        let err = routes(&inventory, &grants(missing), sim.clone()).unwrap_err();
        let cause = std::fs::metadata(missing).unwrap_err();
        assert_eq!(
            err,
            format!(
                "device bmc-1: the ca_file {missing} of credentials `bmc` cannot be read: {cause}"
            )
        );
        let readable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(routes(&inventory, &grants(readable), sim).is_ok());
    }

    fn sample() -> Inputs {
        Inputs {
            policy_name: "p.toml".into(),
            policy: "name = \"p\"\n".into(),
            fleet: Fleet::Simulated {
                devices: 10,
                seed: 3,
                fail_permille: 2,
                hang_permille: 5,
            },
            clock: Clock::Virtual {
                seed: 3,
                hang_permille: 5,
            },
            start: "2026-11-02T08:00:00Z".parse().unwrap(),
            observed: BTreeMap::new(),
            patches: None,
        }
    }

    #[test]
    fn inputs_are_written_as_v1_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(Inputs::of_store(&store), Ok(None));
        sample().record(&store).unwrap();
        let text = store.inputs().unwrap().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["schema"], INPUTS_SCHEMA);
        assert_eq!(Inputs::of_store(&store), Ok(Some(sample())));
    }

    /// Inputs that plan with scans are `ringleader.inputs/v2` (docs/schemas/
    /// inputs.v2.json) and read back the same; without scans they stay v1.
    #[test]
    fn inputs_with_scans_are_written_as_v2_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut inputs = sample();
        inputs.policy = "name = \"p\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\n".into();
        inputs.fleet = Fleet::Inventory {
            name: "fleet.toml".into(),
            text: "[[devices]]\nid = \"d1\"\ncomponents = { libc6 = \"2.36-9\" }\n".into(),
        };
        inputs.observed.insert(
            "d1".into(),
            Observed {
                components: vec![ringleader_api::fleet::ComponentV1 {
                    name: "libc6".into(),
                    version: "2.36-9+deb12u7".into(),
                    scheme: Some("deb".into()),
                    source: Some("glibc".into()),
                }],
                os: Some(ringleader_api::fleet::OsV1 {
                    id: "debian".into(),
                    version_id: Some("12".into()),
                    codename: Some("bookworm".into()),
                    pretty_name: None,
                }),
            },
        );
        inputs.record(&store).unwrap();
        let text = store.inputs().unwrap().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["schema"], INPUTS_SCHEMA_V2);
        ringleader_tests::daemon::assert_valid("inputs.v2.json", &doc);
        assert_eq!(Inputs::of_store(&store), Ok(Some(inputs.clone())));
        // The rollout plans with what the scan found, and the release it read.
        let (_, inventory) = inputs.validate().unwrap();
        let d1 = &inventory.devices[0];
        assert_eq!(
            d1.components.get("libc6").unwrap().as_str(),
            "2.36-9+deb12u7"
        );
        assert_eq!(
            d1.facts.get("os-codename").map(String::as_str),
            Some("bookworm")
        );
    }

    /// A scheduled run's selection makes the inputs v2 (an older ringleader refuses
    /// them rather than roll out every patch), read back the same; v1 with `patches`
    /// is refused.
    #[test]
    fn inputs_with_a_patch_selection_are_v2_and_v1_with_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut inputs = sample();
        inputs.patches = Some(BTreeSet::from(["debian-sim-openssl-3.0.15".to_string()]));
        inputs.record(&store).unwrap();
        let text = store.inputs().unwrap().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["schema"], INPUTS_SCHEMA_V2);
        assert_eq!(doc["observed"], serde_json::json!({}));
        ringleader_tests::daemon::assert_valid("inputs.v2.json", &doc);
        assert_eq!(Inputs::of_store(&store), Ok(Some(inputs)));
        let mut v1 = doc.clone();
        v1["schema"] = INPUTS_SCHEMA.into();
        v1.as_object_mut().unwrap().remove("observed");
        let err = Inputs::parse(&v1.to_string()).unwrap_err();
        assert_eq!(
            err,
            "its inputs are ringleader.inputs/v1 with `patches`, a key of v2"
        );
    }

    #[test]
    fn inputs_of_another_schema_are_refused_naming_it() {
        let err = Inputs::parse("{\"schema\":\"ringleader.inputs/v9\",\"policy\":1}").unwrap_err();
        assert!(
            err.starts_with(
                "its inputs are `ringleader.inputs/v9`, which this ringleader does not read"
            ),
            "{err}"
        );
        let err = Inputs::parse("{\"policy\":1}").unwrap_err();
        assert!(err.starts_with("its inputs are unreadable: "), "{err}");
    }
}
