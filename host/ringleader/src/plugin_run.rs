//! `ringleader plugin run`: one call of one plugin, without the engine, for plugin
//! authors.
//!
//! Nothing here is a second way of doing what the engine does: devices come from the
//! planner's inventory parser and reach the plugin through `Device::to_plugin`, exec goes
//! through the daemon's own route building (`session::routes`), grants and
//! credentials through `OperatorConfig`, the operator config's one parser, and discovery through
//! the engine's `discover_in_chunks`. What is this command's own is the patch file
//! (`ringleader.patch/v1`) and the result (`ringleader.plugin-run/v1`).

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use ringleader_api::Schema;
use ringleader_api::exit::ExitStatus;
use ringleader_api::plugin::{
    self, ArtifactV1, DeviceV1, ErrorCase, ErrorKind, ErrorV1, InfoV1, OutcomeV1, PatchV1,
    ReadinessV1, ResultV1, RunV1, TargetV1, VerifyV1,
};
use ringleader_planner::inventory::{Inventory, InventoryError};
use ringleader_runtime::bindings::{PluginError, PluginInfo};
use ringleader_runtime::cache::ComponentCache;
use ringleader_runtime::services::{KvStore, MemoryKv, SledKv, SystemClock};
use ringleader_runtime::sim_device::SimDevices;
use ringleader_runtime::{
    CallError, CallErrorKind, Grants, OperatorConfig, Runtime, RuntimeConfig, Services, World,
};
use ringleader_types::{Device, InstallOutcome, Patch, Readiness, RollbackTarget, VerifyReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// What `--help` shows after the flags.
const EXAMPLES: &str = "\
Examples:
  # who the plugin says it is
  ringleader plugin run acme.plugin.toml info
  # the patches a source reports for every device of an inventory
  ringleader plugin run source.plugin.toml discover --inventory inventory.toml
  # one installer step on one device of the inventory, through its transport
  ringleader plugin run dpkg-installer.plugin.toml install \\
      --inventory inventory.toml --device dev-1 --patch hello-1.1.json
  # back to the version of another patch file (its artifact is passed too)
  ringleader plugin run dpkg-installer.plugin.toml rollback \\
      --inventory inventory.toml --device dev-1 --patch hello-1.1.json --to-patch hello-1.0.json
  # a bundled plugin, by its name, with the operator's grants, settings and
  # credentials instead of the manifest's
  ringleader plugin run csaf-source discover \\
      --inventory inventory.toml --config ringleader.toml

A patch file is one JSON object (docs/schemas/patch.v1.json):
  {\"id\": \"hello-1.1\", \"vendor\": \"example\", \"component\": \"hello\",
   \"fixed_version\": \"1.1\", \"kind\": \"bugfix\",
   \"artifact\": {\"url\": \"file:///srv/debs/hello_1.1_all.deb\", \"sha256\": \"<hex>\", \"size\": 788}}
Optional keys: title, applies_to, scheme (deb, rpm, apk, semver, vendor), severity,
cves, prerequisites, supersedes, reboot_required, released (RFC 3339).";

/// Call one function of one plugin, without the engine: a test bench for plugin authors.
///
/// The plugin is loaded as the engine loads it (manifest, checksum, world, compile,
/// `info`) and called once in the sandbox, under its limits. Devices come from an
/// inventory (docs/inventory.md) and are shown to the plugin exactly as the engine shows
/// them; an installer's `exec` reaches the device through its transport (`local`, `local`
/// with a `root`, `ssh`, `sim`), as in a rollout.
///
/// Grants: this is an author's tool, so by default the plugin gets exactly what its
/// manifest declares, and no settings. With --config it gets what the operator's config
/// grants it instead (`[plugins.NAME]`: capabilities and settings), and ssh and http
/// devices use the config's `[credentials.NAME]`, as under `ringleader serve --config`.
/// --setting adds or replaces settings on top of either.
///
/// Time is the real clock. The plugin's key/value store and the state of `sim` devices
/// are kept in memory and lost at exit, unless --state keeps them in a directory.
///
/// The result goes to stdout. The plugin's log lines and captured stdout/stderr go to
/// stderr: unless --log or RINGLEADER_LOG is given, the filter is
/// `warn,ringleader_runtime=trace` (every line of the plugin, other messages from
/// warnings up).
///
/// Exit status: 0 when the call returned a result (a `blocked` preflight too); 1 when it
/// returned a plugin-error (its case and message are printed) or failed in the host
/// (trap, timeout, a limit); 2 when an input cannot be used: the command line, the
/// manifest or plugin (as `plugin check` would say), the inventory, the device, a patch
/// file, the config, or a function the plugin's world does not have.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    /// The plugin: a bundled plugin's name (`ringleader plugin list`), its manifest
    /// (`NAME.plugin.toml` or `plugin.toml`), or its component (`.wasm`, with the
    /// manifest beside it). A path is anything with a `/` or ending in `.toml` or
    /// `.wasm`.
    #[arg(value_name = "PLUGIN")]
    manifest: PathBuf,
    /// The function to call: `info`, `discover` (patch sources), or `preflight`,
    /// `install`, `verify`, `rollback` (installers).
    #[arg(value_enum, value_name = "FUNCTION")]
    function: Function,
    /// The inventory holding the devices, TOML or JSON (docs/inventory.md). Needed by
    /// every function but `info`.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// The device of the call, by id. Installer functions: needed when the inventory has
    /// more than one device. `discover`: only this device instead of all of them.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// The patch, one JSON object (docs/schemas/patch.v1.json). Needed by `preflight`,
    /// `install`, `verify` and `rollback`.
    #[arg(long, value_name = "FILE")]
    patch: Option<PathBuf>,
    /// `rollback`: the version to return to. Default: the --to-patch file's
    /// `fixed_version`, else the device's version of the patch's component in the
    /// inventory (what the engine sends: the version before the patch).
    #[arg(long, value_name = "VERSION")]
    to_version: Option<String>,
    /// `rollback`: a patch file of the version to return to; its artifact is the rollback
    /// target's (as the engine passes it when a source published that version). Without
    /// it the target has no artifact.
    #[arg(long, value_name = "FILE")]
    to_patch: Option<PathBuf>,
    /// The operator's config: grants, settings and credentials from its
    /// `[plugins.NAME]` and `[credentials.NAME]` tables, as `ringleader serve --config`
    /// applies them. Default: what the manifest declares, no settings, no credentials.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A setting the plugin reads with `settings.get(KEY)`, added to (or replacing one
    /// of) those the config gives it. Repeat for several.
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Keep the plugin's key/value store (DIR/kv) and the `sim` devices' state
    /// (DIR/devices) on disk between runs. Default: in memory, lost at exit.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Print one JSON object (schema `ringleader.plugin-run/v1`,
    /// docs/schemas/plugin-run.v1.json) instead of text.
    #[arg(long)]
    json: bool,
}

/// The log filter of `plugin run` when neither --log nor RINGLEADER_LOG is given: the
/// plugin's own log lines and captured output (all from `ringleader_runtime`) are the
/// point of running it alone.
pub const DEFAULT_LOG: &str = "warn,ringleader_runtime=trace";

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// The plugin functions this command calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Function {
    Info,
    Discover,
    Preflight,
    Install,
    Verify,
    Rollback,
}

impl Function {
    /// As the result names it.
    fn v1(self) -> plugin::Function {
        match self {
            Function::Info => plugin::Function::Info,
            Function::Discover => plugin::Function::Discover,
            Function::Preflight => plugin::Function::Preflight,
            Function::Install => plugin::Function::Install,
            Function::Verify => plugin::Function::Verify,
            Function::Rollback => plugin::Function::Rollback,
        }
    }

    fn name(self) -> &'static str {
        self.v1().as_str()
    }

    /// The world that has this function; `None` for `info`, which both have.
    fn world(self) -> Option<World> {
        match self {
            Function::Info => None,
            Function::Discover => Some(World::PatchSource),
            Function::Preflight | Function::Install | Function::Verify | Function::Rollback => {
                Some(World::Installer)
            }
        }
    }
}

fn functions_of(world: World) -> &'static str {
    match world {
        World::PatchSource => "info and discover",
        World::Installer => "info, preflight, install, verify and rollback",
    }
}

pub async fn run(args: RunArgs) -> ExitCode {
    match run_checked(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Usage)
        }
    }
}

/// Everything a call needs, read and checked before the plugin is compiled.
struct Call {
    function: Function,
    devices: Vec<Device>,
    patch: Option<Patch>,
    target: Option<RollbackTarget>,
}

/// An error here is an input that cannot be used (exit 2); the call's own failure is
/// an exit code.
async fn run_checked(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plugin_ref = ringleader_daemon::plugins::PluginRef::resolve(&args.manifest)?;
    let manifest = match plugin_ref.manifest() {
        Ok(m) => m,
        Err(ringleader_runtime::manifest::ManifestError::Invalid(d)) => {
            bail!("the plugin manifest is not valid:\n{d}")
        }
        Err(e) => return Err(e.into()),
    };
    let function = args.function;
    if let Some(world) = function.world()
        && world != manifest.world
    {
        bail!(
            "`{}` is a function of the {world} world, and `{}` is a {} plugin: its functions are {}",
            function.name(),
            manifest.name,
            manifest.world,
            functions_of(manifest.world)
        );
    }
    check_flags(&args)?;

    let mut grants = match OperatorConfig::load(args.config.as_deref())? {
        OperatorConfig {
            path: Some(path),
            grants,
            ..
        } => {
            if !grants.plugins.contains_key(&manifest.name) {
                eprintln!(
                    "warning: {} has no [plugins.{}] table: the plugin is granted no capability (logging, the clock and settings only)",
                    path.display(),
                    manifest.name
                );
            }
            grants
        }
        OperatorConfig { path: None, .. } => {
            let mut grants = Grants::default();
            grants.allow_as_declared(&manifest.name, &manifest.capabilities);
            grants
        }
    };
    if !args.settings.is_empty() {
        grants
            .plugins
            .entry(manifest.name.clone())
            .or_default()
            .settings
            .extend(args.settings.iter().cloned());
    }

    // The devices of the call, as an inventory of their own.
    let chosen = match &args.inventory {
        Some(path) => match Inventory::load(path) {
            Ok(inventory) => choose_devices(&inventory, path, &args)?,
            Err(InventoryError::Invalid(d)) => bail!("the inventory is not valid:\n{d}"),
            Err(e) => return Err(e.into()),
        },
        None => Inventory::default(),
    };
    let patch = args.patch.as_deref().map(load_patch).transpose()?;
    let target = match (function, &patch) {
        (Function::Rollback, Some(patch)) => Some(rollback_target(&args, patch, &chosen)?),
        _ => None,
    };

    let (kv, sim): (Arc<dyn KvStore>, Arc<SimDevices>) = match &args.state {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("failed to create the state directory {}", dir.display())
            })?;
            let kv = SledKv::open(&dir.join("kv")).map_err(|e| {
                anyhow!(
                    "failed to open the key/value store in {}: {e}",
                    dir.display()
                )
            })?;
            let sim = SimDevices::open(&dir.join("devices")).map_err(|e| {
                anyhow!(
                    "failed to open the simulated devices' state in {}: {e}",
                    dir.display()
                )
            })?;
            (Arc::new(kv), Arc::new(sim))
        }
        None => (
            Arc::new(MemoryKv::default()),
            Arc::new(SimDevices::in_memory()),
        ),
    };
    let mut services = Services {
        clock: Arc::new(SystemClock),
        kv,
        ..Services::default()
    };
    if manifest.world == World::Installer && !chosen.devices.is_empty() {
        // The daemon's own route building: the same transports, the same credentials.
        let routes = ringleader_daemon::session::routes(&chosen, &grants, sim.clone())
            .map_err(anyhow::Error::msg)?;
        let routes = Arc::new(routes);
        services.exec = routes.clone();
        services.auth = routes;
    }
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: ComponentCache::default_dir(),
        grants,
        services,
    })?;
    let plugin = plugin_ref.load(&runtime).await?;

    let call = Call {
        function,
        devices: chosen.devices.iter().map(|d| d.to_plugin()).collect(),
        patch,
        target,
    };
    let started = std::time::Instant::now();
    let result = perform(&plugin, &call).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Ok(Returned::Patches(patches)) = &result {
        // What `plan` would refuse of these, said as `plan` says it: the planner's own
        // catalog checks.
        let reported = patches
            .iter()
            .map(|p| (p.clone(), plugin.name().to_string()))
            .collect();
        match ringleader_planner::catalog::Catalog::build(reported) {
            Ok(catalog) => crate::plan_cmd::warn_refused(&catalog),
            Err(cycle) => {
                for line in cycle.to_string().lines() {
                    eprintln!("warning: {line} (`ringleader plan` stops on it)");
                }
            }
        }
    }
    if args.state.is_some()
        && let Err(e) = sim.flush()
    {
        eprintln!("warning: failed to save the simulated devices' state: {e}");
    }

    let ok = result.is_ok();
    let report = RunV1 {
        schema: Schema::new(),
        plugin: plugin.name().to_string(),
        plugin_version: manifest.version.to_string(),
        world: ringleader_daemon::plugins::world_v1(manifest.world),
        function: function.v1(),
        devices: call.devices.iter().map(DeviceV1::from).collect(),
        patch: call.patch.as_ref().map(PatchV1::from),
        target: call.target.as_ref().map(|t| TargetV1 {
            version: t.version.clone(),
            artifact: t.artifact.as_ref().map(ArtifactV1::from),
        }),
        ok,
        result: result.as_ref().ok().map(result_v1),
        error: result.as_ref().err().map(error_v1),
        duration_ms,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).context("failed to write JSON")?;
        println!("{text}");
    } else {
        print_human(&report);
    }
    if let Err(e) = &result
        && !args.json
    {
        eprintln!("error: {}", sentence(e));
    }
    Ok(ExitCode::from(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }))
}

/// Refuses flags the function does not use, and requires those it needs.
fn check_flags(args: &RunArgs) -> anyhow::Result<()> {
    let f = args.function;
    let given = [
        ("--inventory", args.inventory.is_some()),
        ("--device", args.device.is_some()),
        ("--patch", args.patch.is_some()),
        ("--to-version", args.to_version.is_some()),
        ("--to-patch", args.to_patch.is_some()),
    ];
    let used: &[&str] = match f {
        Function::Info => &[],
        Function::Discover => &["--inventory", "--device"],
        Function::Preflight | Function::Install | Function::Verify => {
            &["--inventory", "--device", "--patch"]
        }
        Function::Rollback => &[
            "--inventory",
            "--device",
            "--patch",
            "--to-version",
            "--to-patch",
        ],
    };
    for (flag, present) in given {
        if present && !used.contains(&flag) {
            bail!("`{}` takes no {flag}", f.name());
        }
    }
    if f != Function::Info && args.inventory.is_none() {
        bail!(
            "`{}` needs --inventory FILE: the devices come from an inventory (see docs/inventory.md)",
            f.name()
        );
    }
    if f.world() == Some(World::Installer) && args.patch.is_none() {
        bail!(
            "`{}` needs --patch FILE: a patch as one JSON object (see docs/schemas/patch.v1.json)",
            f.name()
        );
    }
    Ok(())
}

/// The inventory's devices the call is about, as a smaller inventory.
fn choose_devices(inventory: &Inventory, path: &Path, args: &RunArgs) -> anyhow::Result<Inventory> {
    let ids = || {
        const SHOWN: usize = 10;
        let mut ids: Vec<&str> = inventory
            .devices
            .iter()
            .take(SHOWN)
            .map(|d| d.id.as_str())
            .collect();
        if inventory.devices.len() > SHOWN {
            ids.push("...");
        }
        ids.join(", ")
    };
    if inventory.devices.is_empty() {
        bail!("the inventory {} has no devices", path.display());
    }
    let devices = match &args.device {
        Some(id) => match inventory.devices.iter().find(|d| &d.id == id) {
            Some(device) => vec![device.clone()],
            None => bail!(
                "device `{id}` is not in the inventory {} (its devices: {})",
                path.display(),
                ids()
            ),
        },
        None if args.function == Function::Discover => inventory.devices.clone(),
        None if inventory.devices.len() == 1 => inventory.devices.clone(),
        None => bail!(
            "the inventory {} has {} devices: say which with --device ID (one of: {})",
            path.display(),
            inventory.devices.len(),
            ids()
        ),
    };
    Ok(Inventory { devices })
}

/// What `rollback` returns the device to: --to-version, else the --to-patch file's
/// fixed version, else the device's version of the component in the inventory.
fn rollback_target(
    args: &RunArgs,
    patch: &Patch,
    chosen: &Inventory,
) -> anyhow::Result<RollbackTarget> {
    let earlier = args.to_patch.as_deref().map(load_patch).transpose()?;
    let inventory_version = chosen.devices.first().and_then(|d| {
        d.components
            .iter()
            .find(|(name, _)| *name == &patch.component)
            .map(|(_, v)| v.as_str().to_string())
    });
    let version = match (&args.to_version, &earlier, inventory_version) {
        (Some(v), _, _) => v.clone(),
        (None, Some(p), _) => p.fixed_version.clone(),
        (None, None, Some(v)) => v,
        (None, None, None) => bail!(
            "`rollback` needs the version to return to: the device has no `{}` in the inventory; give --to-version VERSION or --to-patch FILE",
            patch.component
        ),
    };
    Ok(RollbackTarget {
        version,
        artifact: earlier.map(|p| p.artifact),
    })
}

/// What a call returned.
enum Returned {
    Info(PluginInfo),
    Patches(Vec<Patch>),
    Readiness(Readiness),
    Outcome(InstallOutcome),
    Verify(VerifyReport),
}

async fn perform(plugin: &ringleader_runtime::Plugin, call: &Call) -> Result<Returned, CallError> {
    // `check_flags` and `choose_devices` made sure these are present; the fallbacks only
    // keep this function total.
    let device = call.devices.first();
    let missing = |what: &str| CallError {
        plugin: plugin.name().to_string(),
        func: call.function.name(),
        kind: CallErrorKind::Instantiate(format!("no {what} to call it with")),
    };
    let one = || -> Result<(&Device, &Patch), CallError> {
        Ok((
            device.ok_or_else(|| missing("device"))?,
            call.patch.as_ref().ok_or_else(|| missing("patch"))?,
        ))
    };
    Ok(match call.function {
        Function::Info => Returned::Info(plugin.info().await?),
        Function::Discover => Returned::Patches(
            ringleader_engine::spec::discover_in_chunks(plugin, &call.devices).await?,
        ),
        Function::Preflight => {
            let (d, p) = one()?;
            Returned::Readiness(plugin.preflight(d, p).await?)
        }
        Function::Install => {
            let (d, p) = one()?;
            Returned::Outcome(plugin.install(d, p).await?)
        }
        Function::Verify => {
            let (d, p) = one()?;
            Returned::Verify(plugin.verify(d, p).await?)
        }
        Function::Rollback => {
            let (d, p) = one()?;
            let target = call
                .target
                .as_ref()
                .ok_or_else(|| missing("rollback target"))?;
            Returned::Outcome(plugin.rollback(d, p, target).await?)
        }
    })
}

/// The failed call as one sentence, the plugin-error's case first.
fn sentence(e: &CallError) -> String {
    match &e.kind {
        CallErrorKind::Plugin(error) => {
            let (case, message) = plugin_error(error);
            format!("`{}` returned plugin-error `{case}`: {message}", e.func)
        }
        _ => e.to_string(),
    }
}

fn plugin_error(error: &PluginError) -> (ErrorCase, &str) {
    match error {
        PluginError::Transient(m) => (ErrorCase::Transient, m),
        PluginError::Permanent(m) => (ErrorCase::Permanent, m),
        PluginError::Denied(m) => (ErrorCase::Denied, m),
    }
}

// ---- The patch file: `ringleader.patch/v1` (docs/schemas/patch.v1.json, the type
// `ringleader_api::plugin::PatchV1`) ----

const PATCH_HINT: &str =
    "a patch file is one JSON object shaped as docs/schemas/patch.v1.json describes";

/// Reads a patch file; an error names the file, line, column and key.
fn load_patch(path: &Path) -> anyhow::Result<Patch> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the patch file {}", path.display()))?;
    let mut json = serde_json::Deserializer::from_str(&text);
    let parsed: Result<PatchV1, _> = serde_path_to_error::deserialize(&mut json);
    let located = |e: &serde_json::Error, key: String| {
        // serde_json ends its message with " at line L column C": we print our own.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_string();
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("`{key}`: ")
        };
        anyhow!(
            "{}:{}:{}: {key}{message} (hint: {PATCH_HINT})",
            path.display(),
            e.line(),
            e.column()
        )
    };
    match parsed {
        Ok(patch) => {
            json.end().map_err(|e| located(&e, String::new()))?;
            Ok(Patch::from(patch))
        }
        Err(e) => {
            let inner = e.inner();
            let at = e.path().to_string();
            let at = if at == "." { String::new() } else { at };
            // A missing key is reported at the object that lacks it: name the key.
            let message = inner.to_string();
            let key = match message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((field, _)) if at.is_empty() => field.to_string(),
                Some((field, _)) => format!("{at}.{field}"),
                None => at,
            };
            Err(located(inner, key))
        }
    }
}

// ---- The result: `ringleader.plugin-run/v1` (docs/schemas/plugin-run.v1.json, the
// type `ringleader_api::plugin::RunV1`) ----

/// What the call returned, as the result shows it.
fn result_v1(r: &Returned) -> ResultV1 {
    match r {
        Returned::Info(info) => ResultV1::Info(InfoV1 {
            name: info.name.clone(),
            version: info.version.clone(),
            description: info.description.clone(),
        }),
        Returned::Patches(patches) => {
            ResultV1::Patches(patches.iter().map(PatchV1::from).collect())
        }
        Returned::Readiness(r) => ResultV1::Readiness(ReadinessV1::from(r)),
        Returned::Outcome(o) => ResultV1::Outcome(OutcomeV1::from(o)),
        Returned::Verify(v) => ResultV1::Verify(VerifyV1::from(v)),
    }
}

/// A failed call, as the result shows it.
fn error_v1(e: &CallError) -> ErrorV1 {
    let kind = match &e.kind {
        CallErrorKind::Plugin(error) => {
            let (case, message) = plugin_error(error);
            return ErrorV1 {
                kind: ErrorKind::Plugin,
                case: Some(case),
                message: message.to_string(),
            };
        }
        CallErrorKind::Timeout { .. } => ErrorKind::Timeout,
        CallErrorKind::MemoryLimit { .. } => ErrorKind::MemoryLimit,
        CallErrorKind::HostcallBudget { .. } => ErrorKind::HostcallBudget,
        CallErrorKind::StackOverflow => ErrorKind::StackOverflow,
        CallErrorKind::ResultTooLarge(_) => ErrorKind::ResultTooLarge,
        CallErrorKind::Trap(_) => ErrorKind::Trap,
        CallErrorKind::Instantiate(_) => ErrorKind::Instantiate,
        CallErrorKind::Unsupported(_) => ErrorKind::Unsupported,
    };
    ErrorV1 {
        kind,
        case: None,
        message: e.kind.to_string(),
    }
}

// ---- Text output ----

fn print_human(r: &RunV1) {
    let mut head = format!("{} {}", r.plugin, r.function);
    if let Some(patch) = &r.patch {
        head.push_str(&format!(" {}", patch.id));
    }
    match r.devices.as_slice() {
        [] => {}
        [one] if r.function != plugin::Function::Discover => {
            head.push_str(&format!(" on {}", one.id))
        }
        [one] => head.push_str(&format!(" for {}", one.id)),
        many => head.push_str(&format!(" for {} devices", many.len())),
    }
    let took = humantime::format_duration(std::time::Duration::from_millis(r.duration_ms));
    let Some(result) = &r.result else {
        println!("{head}: failed after {took}");
        return;
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    match result {
        ResultV1::Info(InfoV1 {
            name,
            version,
            description,
        }) => {
            println!("{name} {version} ({} plugin)", r.world);
            if !description.is_empty() {
                println!("  {description}");
            }
        }
        ResultV1::Patches(patches) => {
            println!("{head}: {} patches ({took})", patches.len());
            for p in patches {
                println!(
                    "  {}  {} {}  {} {}  {}",
                    p.id, p.component, p.fixed_version, p.kind, p.severity, p.title
                );
            }
        }
        ResultV1::Readiness(readiness) => match readiness {
            ReadinessV1::Ready => println!("{head}: ready ({took})"),
            ReadinessV1::AlreadyInstalled { version } => {
                println!("{head}: already installed: {version} ({took})")
            }
            ReadinessV1::Blocked { reason } => println!("{head}: blocked: {reason} ({took})"),
        },
        ResultV1::Outcome(OutcomeV1 {
            installed_version,
            reboot_pending,
            detail,
        }) => {
            println!("{head}: done ({took})");
            if let Some(target) = &r.target {
                let artifact = target
                    .artifact
                    .as_ref()
                    .map_or("none".to_string(), |a| a.url.clone());
                println!(
                    "  target             {} (artifact: {artifact})",
                    target.version
                );
            }
            println!("  installed version  {installed_version}");
            println!("  reboot pending     {}", yes(*reboot_pending));
            if !detail.is_empty() {
                println!("  detail             {detail}");
            }
        }
        ResultV1::Verify(VerifyV1 {
            installed_version,
            health,
        }) => {
            println!("{head}: done ({took})");
            println!(
                "  installed version  {}",
                installed_version.as_deref().unwrap_or("none")
            );
            println!("  healthy            {}", yes(health.healthy));
            for check in &health.checks {
                println!(
                    "  check {}: {}{}",
                    check.name,
                    if check.ok { "ok" } else { "FAILED" },
                    if check.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", check.detail)
                    }
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringleader_types::Severity;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patch.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const GOOD: &str = r#"{"id": "p-1", "vendor": "v", "component": "c",
        "fixed_version": "1.1", "kind": "bugfix",
        "artifact": {"url": "file:///p.deb", "sha256": "ab", "size": 3}}"#;

    #[test]
    fn a_minimal_patch_file_fills_in_the_optional_keys() {
        let (_dir, path) = write(GOOD);
        let p = load_patch(&path).unwrap();
        assert_eq!(p.fixed_version, "1.1");
        assert_eq!(p.severity, Severity::Unknown);
        assert_eq!(p.released, 0);
        assert!(p.cves.is_empty());
    }

    #[test]
    fn patch_errors_name_file_line_column_and_key() {
        let (_dir, path) = write(&GOOD.replace("\"size\": 3", "\"size\": \"3\""));
        let e = load_patch(&path).unwrap_err().to_string();
        assert!(e.contains(":3:"), "{e}");
        assert!(e.contains("`artifact.size`"), "{e}");
        let (_dir, path) = write(&GOOD.replace("\"fixed_version\": \"1.1\",", ""));
        let e = load_patch(&path).unwrap_err().to_string();
        assert!(e.contains("`fixed_version`: missing field"), "{e}");
        let (_dir, path) = write(&GOOD.replace("\"vendor\"", "\"vendr\""));
        let e = load_patch(&path).unwrap_err().to_string();
        assert!(e.contains("vendr"), "{e}");
        let (_dir, path) = write(&format!("{GOOD} x"));
        let e = load_patch(&path).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn patches_print_as_they_are_read() {
        let (_dir, path) = write(GOOD);
        let p = load_patch(&path).unwrap();
        let again: PatchV1 =
            serde_json::from_str(&serde_json::to_string(&PatchV1::from(&p)).unwrap()).unwrap();
        assert_eq!(Patch::from(again), p);
    }
}
