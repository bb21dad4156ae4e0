//! The plugin runtime: one engine, one linker, one pre-instantiated component per
//! plugin, and a fresh store for every call.

use crate::bindings::{
    Installer, Installer2, Installer2Pre, Installer3, Installer3Pre, InstallerPre, PatchSource,
    PatchSource2, PatchSource2Pre, PatchSource3, PatchSource3Pre, PatchSourcePre, PluginError,
    PluginInfo, wit, wit2, wit3,
};
use crate::cache::{CacheOutcome, ComponentCache};
use crate::caps::truncate;
use crate::error::{CallError, CallErrorKind, LoadError, RuntimeError, chain};
use crate::grants::{Access, Grants};
use crate::http_client::HttpClient;
use crate::limits;
use crate::manifest::{Manifest, World, wit_compatible};
use crate::measure::{Measure, Meter};
use crate::services::Services;
use crate::state::{CallScope, Fault, HostState};
use ringleader_types::{
    BootState, Device, DeviceScan, InstallOutcome, Patch, Readiness, RollbackTarget, VerifyReport,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

/// How the runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// What the operator grants each plugin.
    pub grants: Grants,
    /// What the capabilities reach: clock, key/value store, device transport.
    pub services: Services,
}

/// Loads plugins and runs their calls in the sandbox.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    grants: Grants,
    services: Services,
    http: HttpClient,
    /// One permit per pooling-allocator slot: calls beyond it wait instead of failing.
    slots: Semaphore,
    _ticker: EpochTicker,
}

/// Advances the engine's epoch every [`limits::EPOCH_TICK`], so deadlines fire.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringleader-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(limits::EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine configuration every plugin runs under. Public so that benchmarks can
/// compare against bare wasmtime on exactly the same configuration.
pub fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits::MAX_WASM_STACK_BYTES)
        // Plain (non-concurrent) calls: the concurrent path costs ~4x per call.
        .concurrency_support(false);
    if pooling {
        let slots = limits::MAX_CONCURRENT_INSTANCES;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(limits::MAX_MEMORY_BYTES as usize)
            // A slot's first pages are reset by memset instead of madvise when it is
            // reused: plugin calls are short and small, so this saves a syscall and
            // the page faults after it on every call.
            .linear_memory_keep_resident(limits::KEEP_RESIDENT_BYTES)
            .table_keep_resident(limits::KEEP_RESIDENT_BYTES)
            .async_stack_keep_resident(limits::KEEP_RESIDENT_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Makes the engine: pooling allocator when the machine allows its address-space
/// reservation, on-demand allocation otherwise.
pub fn new_engine() -> Result<Engine, RuntimeError> {
    match Engine::new(&engine_config(true)) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(
                "pooling allocator unavailable ({}); allocating instances on demand",
                chain(&e)
            );
            Engine::new(&engine_config(false)).map_err(|e| RuntimeError::Engine(chain(&e)))
        }
    }
}

/// What a component is, read from its exports alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSummary {
    pub world: World,
    pub wit_version: semver::Version,
    /// Everything the component imports (capabilities and WASI interfaces).
    pub imports: Vec<String>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = new_engine()?;
        let mut linker = Linker::<HostState>::new(&engine);
        // WASI with an empty context: guests built with std import it even when they
        // use nothing of it (see HostState::new for what is in the context).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Link(chain(&e)))?;
        // The installer world's imports are a superset of the patch-source world's;
        // each WIT version's imports are their own instances (`log@0.1.1`, `log@0.2.0`).
        Installer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(chain(&e)))?;
        Installer2::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(chain(&e)))?;
        Installer3::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Link(chain(&e)))?;
        let cache = config
            .cache_dir
            .and_then(|dir| match ComponentCache::new(&dir) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    // Not fatal: plugins still load, compiled at every start.
                    tracing::warn!(
                        dir = %dir.display(),
                        "component cache not used, compiling every plugin instead: {e}"
                    );
                    None
                }
            });
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                _ticker: EpochTicker::start(engine.clone()),
                engine,
                linker,
                cache,
                grants: config.grants,
                services: config.services,
                http: HttpClient::default(),
                slots: Semaphore::new(limits::MAX_CONCURRENT_INSTANCES as usize),
            }),
        })
    }

    /// The engine plugins run on.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles (or loads from cache) the component at `path` and says what it is,
    /// without a manifest.
    pub fn inspect(&self, path: &Path) -> Result<ComponentSummary, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::ReadComponent {
            path: path.to_owned(),
            error,
        })?;
        let (component, _) = self.compile(path, &bytes, &sha256_hex(&bytes))?;
        let (world, wit_version) = identify(&self.inner.engine, &component, path)?;
        let imports = component
            .component_type()
            .imports(&self.inner.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Ok(ComponentSummary {
            world,
            wit_version,
            imports,
        })
    }

    /// Loads the plugin whose manifest is at `manifest_path`.
    pub async fn load(&self, manifest_path: &Path) -> Result<Plugin, LoadError> {
        let manifest = Manifest::load(manifest_path)?;
        let bytes =
            std::fs::read(&manifest.component).map_err(|error| LoadError::ReadComponent {
                path: manifest.component.clone(),
                error,
            })?;
        self.load_parts(manifest, &bytes).await
    }

    /// Loads a plugin from a manifest text and component bytes held in memory (the
    /// plugins built into the binary). `origin` names it in messages.
    pub async fn load_embedded(
        &self,
        origin: &Path,
        manifest: &str,
        component: &[u8],
    ) -> Result<Plugin, LoadError> {
        let manifest = Manifest::parse(origin, manifest)?;
        self.load_parts(manifest, component).await
    }

    async fn load_parts(&self, mut manifest: Manifest, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let path = manifest.component.clone();
        let actual = sha256_hex(bytes);
        if actual != manifest.sha256 {
            return Err(LoadError::ChecksumMismatch {
                path,
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let grant = self.inner.grants.for_plugin(&manifest.name);
        let access = Access::new(manifest.capabilities.clone(), grant);
        // A setting that names the host a plugin may reach is checked at load, not at
        // the first request: the operator hears of a typo when the plugin is loaded.
        let problems = access.setting_problems();
        if !problems.is_empty() {
            return Err(LoadError::Setting {
                plugin: manifest.name.clone(),
                problems,
            });
        }
        let (component, cache) = self.compile(&path, bytes, &actual)?;
        let (world, wit_version) = identify(&self.inner.engine, &component, &path)?;
        if world != manifest.world {
            return Err(LoadError::WrongWorld {
                path,
                expected: manifest.world,
                found: world,
            });
        }
        if wit_version != manifest.wit_version {
            let declared = manifest.wit_version.clone();
            manifest.warn_at(
                &[ringleader_diag::Seg::Key("wit")],
                format!(
                    "the manifest says {declared}, but the component was built against ringleader:plugin@{wit_version}"
                ),
                &format!(
                    "write `wit = \"{wit_version}\"`, or rebuild the component against the WIT files of {declared}"
                ),
            );
        }
        for warning in manifest.warnings() {
            tracing::warn!(plugin = %manifest.name, "{warning}");
        }
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.clone(),
            message: chain(&e),
        };
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = match (world, wit_version.minor) {
            (World::PatchSource, 1) => {
                PluginPre::PatchSource(PatchSourcePre::new(instance_pre).map_err(link_error)?)
            }
            (World::Installer, 1) => {
                PluginPre::Installer(InstallerPre::new(instance_pre).map_err(link_error)?)
            }
            (World::PatchSource, 2) => {
                PluginPre::PatchSource2(PatchSource2Pre::new(instance_pre).map_err(link_error)?)
            }
            (World::Installer, 2) => {
                PluginPre::Installer2(Installer2Pre::new(instance_pre).map_err(link_error)?)
            }
            (World::PatchSource, _) => {
                PluginPre::PatchSource3(PatchSource3Pre::new(instance_pre).map_err(link_error)?)
            }
            (World::Installer, _) => {
                PluginPre::Installer3(Installer3Pre::new(instance_pre).map_err(link_error)?)
            }
        };
        let plugin = Plugin {
            inner: Arc::new(PluginInner {
                name: manifest.name.as_str().into(),
                access: Arc::new(access),
                manifest,
                wit_version,
                pre,
                cache,
                runtime: self.inner.clone(),
                warnings: Arc::default(),
            }),
        };
        let info = plugin.call_info().await.map_err(|error| LoadError::Info {
            path: path.clone(),
            error,
        })?;
        if info.name != plugin.inner.manifest.name {
            return Err(LoadError::NameMismatch {
                path,
                manifest: plugin.inner.manifest.name.clone(),
                reported: info.name,
            });
        }
        Ok(plugin)
    }

    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        check_header(path, bytes)?;
        let engine = &self.inner.engine;
        let result = match &self.inner.cache {
            Some(cache) => cache.load_or_compile(engine, bytes, sha256),
            None => Component::new(engine, bytes).map(|c| (c, CacheOutcome::Uncached)),
        };
        result.map_err(|e| LoadError::Compile {
            path: path.to_owned(),
            message: chain(&e),
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tells a component from a core module or a file that is not wasm at all, before the
/// compiler gives a less helpful message.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
        });
    }
    // Core modules are version 1, layer 0; components have layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The world and WIT version of a component, from its `ringleader:plugin` export.
fn identify(
    engine: &Engine,
    component: &Component,
    path: &Path,
) -> Result<(World, semver::Version), LoadError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for name in &exports {
        let Some(rest) = name.strip_prefix("ringleader:plugin/") else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let Ok(version) = semver::Version::parse(version) else {
            return Err(LoadError::UnknownInterface {
                path: path.to_owned(),
                interface: name.clone(),
            });
        };
        if !wit_compatible(&version) {
            return Err(LoadError::UnsupportedWit {
                path: path.to_owned(),
                found: version,
                supported: crate::manifest::WIT_VERSIONS_TEXT,
            });
        }
        return match World::from_export_interface(interface) {
            Some(world) => Ok((world, version)),
            None => Err(LoadError::UnknownInterface {
                path: path.to_owned(),
                interface: name.clone(),
            }),
        };
    }
    Err(LoadError::NotAPlugin {
        path: path.to_owned(),
        exports,
    })
}

/// A plugin ready to instantiate, by world and WIT version (0.1.x, 0.2.x, 0.3.x).
enum PluginPre {
    PatchSource(PatchSourcePre<HostState>),
    Installer(InstallerPre<HostState>),
    PatchSource2(PatchSource2Pre<HostState>),
    Installer2(Installer2Pre<HostState>),
    PatchSource3(PatchSource3Pre<HostState>),
    Installer3(Installer3Pre<HostState>),
}

enum Instance {
    PatchSource(PatchSource),
    Installer(Installer),
    PatchSource2(PatchSource2),
    Installer2(Installer2),
    PatchSource3(PatchSource3),
    Installer3(Installer3),
}

/// A loaded plugin, ready to call. Cheap to clone; calls may run concurrently, each in
/// its own store.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: Arc<str>,
    manifest: Manifest,
    wit_version: semver::Version,
    access: Arc<Access>,
    pre: PluginPre,
    cache: CacheOutcome,
    runtime: Arc<RuntimeInner>,
    /// Lines logged at `warn` or `error`, over all calls.
    warnings: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("world", &self.inner.manifest.world)
            .finish_non_exhaustive()
    }
}

/// Why a call failed before the guest produced a result.
enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The WIT package version the component was built against (from its exports).
    pub fn wit_version(&self) -> &semver::Version {
        &self.inner.wit_version
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    /// Lines the plugin logged at `warn` or `error` level, over all its calls since it
    /// was loaded. A patch source logs one for each document or entry of its feed it
    /// refuses (docs/plugin-authors.md), so `plan` can tell refused input apart.
    pub fn warnings_logged(&self) -> u64 {
        self.inner
            .warnings
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn new_store(&self, device: Option<&Device>) -> Store<HostState> {
        let runtime = &self.inner.runtime;
        let limits = self.inner.manifest.limits;
        let scope = CallScope {
            plugin: self.inner.name.clone(),
            access: self.inner.access.clone(),
            device: device.cloned(),
            services: runtime.services.clone(),
            http: runtime.http.clone(),
            deadline: Instant::now() + limits.timeout,
            timeout: limits.timeout,
            hostcall_limit: limits.hostcalls,
            hostcalls: 0,
            fault: None,
            warnings: self.inner.warnings.clone(),
        };
        let mut store = Store::new(&runtime.engine, HostState::new(scope, limits.memory_bytes));
        store.limiter(|state| &mut state.limiter);
        let ticks = limits.timeout.as_nanos() / limits::EPOCH_TICK.as_nanos() + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }

    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match &self.inner.pre {
            PluginPre::PatchSource(pre) => {
                Instance::PatchSource(pre.instantiate_async(store).await?)
            }
            PluginPre::Installer(pre) => Instance::Installer(pre.instantiate_async(store).await?),
            PluginPre::PatchSource2(pre) => {
                Instance::PatchSource2(pre.instantiate_async(store).await?)
            }
            PluginPre::Installer2(pre) => Instance::Installer2(pre.instantiate_async(store).await?),
            PluginPre::PatchSource3(pre) => {
                Instance::PatchSource3(pre.instantiate_async(store).await?)
            }
            PluginPre::Installer3(pre) => Instance::Installer3(pre.instantiate_async(store).await?),
        })
    }

    /// Runs one call in a fresh store, under every limit, and turns whatever happened
    /// into a result or a [`CallError`].
    async fn call<R: Measure>(
        &self,
        func: &'static str,
        device: Option<&Device>,
        body: impl AsyncFnOnce(
            &mut Store<HostState>,
            Instance,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, CallError> {
        let limits = self.inner.manifest.limits;
        let error = |kind| CallError {
            plugin: self.inner.name.to_string(),
            func,
            kind,
        };
        let _slot = self
            .inner
            .runtime
            .slots
            .acquire()
            .await
            .map_err(|e| error(CallErrorKind::Instantiate(e.to_string())))?;
        let mut store = self.new_store(device);
        let deadline = store.data().scope.deadline + limits::TIMEOUT_GRACE;
        let run = async {
            let instance = self
                .instantiate(&mut store)
                .await
                .map_err(Failure::Instantiate)?;
            body(&mut store, instance).await.map_err(Failure::Call)
        };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        let state = store.data();
        let stderr = self.forward_output(state);
        let kind = match outcome {
            Err(_elapsed) => CallErrorKind::Timeout {
                limit: limits.timeout,
            },
            Ok(Err(Failure::Instantiate(e))) => match memory_denied(state) {
                Some(kind) => kind,
                None => CallErrorKind::Instantiate(chain(&e)),
            },
            Ok(Err(Failure::Call(e))) => classify(&e, state, &stderr),
            Ok(Ok(Err(plugin_error))) => CallErrorKind::Plugin(cap_error(plugin_error)),
            Ok(Ok(Ok(value))) => match value.measure(&mut Meter::default()) {
                Ok(()) => return Ok(value),
                Err(what) => CallErrorKind::ResultTooLarge(what),
            },
        };
        Err(error(kind))
    }

    /// Sends the call's captured stdout/stderr to `tracing`; returns stderr's text.
    fn forward_output(&self, state: &HostState) -> String {
        let plugin = &*self.inner.name;
        let mut stderr_text = String::new();
        for (stream, capture) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let captured = capture.take();
            let text = String::from_utf8_lossy(&captured.bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(plugin = %plugin, stream, "{line}");
            }
            if captured.dropped > 0 {
                tracing::warn!(
                    plugin = %plugin,
                    stream,
                    dropped_bytes = captured.dropped,
                    "plugin output beyond {} bytes was dropped",
                    limits::MAX_CAPTURED_OUTPUT
                );
            }
            if stream == "stderr" {
                stderr_text = text.into_owned();
            }
        }
        stderr_text
    }

    async fn call_info(&self) -> Result<PluginInfo, CallError> {
        self.call("info", None, async |store, instance| {
            Ok(Ok(match instance {
                Instance::PatchSource(i) => {
                    i.ringleader_plugin_patch_source_api()
                        .call_info(store)
                        .await?
                }
                Instance::Installer(i) => {
                    i.ringleader_plugin_installer_api().call_info(store).await?
                }
                Instance::PatchSource2(i) => i
                    .ringleader_plugin_patch_source_api()
                    .call_info(store)
                    .await?
                    .into(),
                Instance::Installer2(i) => i
                    .ringleader_plugin_installer_api()
                    .call_info(store)
                    .await?
                    .into(),
                Instance::PatchSource3(i) => i
                    .ringleader_plugin_patch_source_api()
                    .call_info(store)
                    .await?
                    .into(),
                Instance::Installer3(i) => i
                    .ringleader_plugin_installer_api()
                    .call_info(store)
                    .await?
                    .into(),
            }))
        })
        .await
    }

    /// Asks the plugin who it is.
    pub async fn info(&self) -> Result<PluginInfo, CallError> {
        self.call_info().await
    }

    fn wrong_world(&self, func: &'static str, wanted: World) -> CallError {
        CallError {
            plugin: self.inner.name.to_string(),
            func,
            kind: CallErrorKind::Instantiate(format!(
                "`{func}` is a function of the {wanted} world, and this plugin is a {}",
                self.inner.manifest.world
            )),
        }
    }

    /// `patch-source.discover`: the patches this source knows for `devices`.
    pub async fn discover(&self, devices: &[Device]) -> Result<Vec<Patch>, CallError> {
        if self.inner.manifest.world != World::PatchSource {
            return Err(self.wrong_world("discover", World::PatchSource));
        }
        self.call("discover", None, async |store, instance| match instance {
            Instance::PatchSource(i) => {
                let devices: Vec<wit::Device> = devices.iter().cloned().map(Into::into).collect();
                Ok(i.ringleader_plugin_patch_source_api()
                    .call_discover(store, &devices)
                    .await?
                    .map(|patches| patches.into_iter().map(Into::into).collect()))
            }
            Instance::PatchSource2(i) => {
                let devices: Vec<wit2::Device> = devices.iter().cloned().map(Into::into).collect();
                Ok(i.ringleader_plugin_patch_source_api()
                    .call_discover(store, &devices)
                    .await?
                    .map(|patches| patches.into_iter().map(Into::into).collect::<Vec<Patch>>())
                    .map_err(Into::into))
            }
            Instance::PatchSource3(i) => {
                let devices: Vec<wit3::Device> = devices.iter().cloned().map(Into::into).collect();
                Ok(i.ringleader_plugin_patch_source_api()
                    .call_discover(store, &devices)
                    .await?
                    .map(|patches| patches.into_iter().map(Into::into).collect::<Vec<Patch>>())
                    .map_err(Into::into))
            }
            Instance::Installer(_) | Instance::Installer2(_) | Instance::Installer3(_) => {
                unreachable_world()
            }
        })
        .await
    }

    /// `installer.preflight`: can `device` take `patch` now?
    pub async fn preflight(&self, device: &Device, patch: &Patch) -> Result<Readiness, CallError> {
        self.installer("preflight")?;
        self.call(
            "preflight",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer(i) => {
                    let (d, p) = boundary(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_preflight(store, &d, &p)
                        .await?
                        .map(Into::into))
                }
                Instance::Installer2(i) => {
                    let (d, p) = boundary2(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_preflight(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::Installer3(i) => {
                    let (d, p) = boundary3(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_preflight(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::PatchSource(_)
                | Instance::PatchSource2(_)
                | Instance::PatchSource3(_) => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.install`: install `patch` on `device`.
    pub async fn install(
        &self,
        device: &Device,
        patch: &Patch,
    ) -> Result<InstallOutcome, CallError> {
        self.installer("install")?;
        self.call(
            "install",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer(i) => {
                    let (d, p) = boundary(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_install(store, &d, &p)
                        .await?
                        .map(Into::into))
                }
                Instance::Installer2(i) => {
                    let (d, p) = boundary2(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_install(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::Installer3(i) => {
                    let (d, p) = boundary3(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_install(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::PatchSource(_)
                | Instance::PatchSource2(_)
                | Instance::PatchSource3(_) => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.verify`: what is really on `device`.
    pub async fn verify(&self, device: &Device, patch: &Patch) -> Result<VerifyReport, CallError> {
        self.installer("verify")?;
        self.call(
            "verify",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer(i) => {
                    let (d, p) = boundary(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_verify(store, &d, &p)
                        .await?
                        .map(Into::into))
                }
                Instance::Installer2(i) => {
                    let (d, p) = boundary2(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_verify(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::Installer3(i) => {
                    let (d, p) = boundary3(device, patch);
                    Ok(i.ringleader_plugin_installer_api()
                        .call_verify(store, &d, &p)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::PatchSource(_)
                | Instance::PatchSource2(_)
                | Instance::PatchSource3(_) => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.rollback`: return `device` from `patch` to `target`.
    pub async fn rollback(
        &self,
        device: &Device,
        patch: &Patch,
        target: &RollbackTarget,
    ) -> Result<InstallOutcome, CallError> {
        self.installer("rollback")?;
        self.call(
            "rollback",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer(i) => {
                    let (d, p) = boundary(device, patch);
                    let target = wit::RollbackTarget::from(target.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_rollback(store, &d, &p, &target)
                        .await?
                        .map(Into::into))
                }
                Instance::Installer2(i) => {
                    let (d, p) = boundary2(device, patch);
                    let target = wit2::RollbackTarget::from(target.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_rollback(store, &d, &p, &target)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::Installer3(i) => {
                    let (d, p) = boundary3(device, patch);
                    let target = wit3::RollbackTarget::from(target.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_rollback(store, &d, &p, &target)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                Instance::PatchSource(_)
                | Instance::PatchSource2(_)
                | Instance::PatchSource3(_) => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.scan` (WIT 0.3.0): what is really on `device`, its OS release and its
    /// boot state. An installer built against an older contract has no `scan`: the
    /// answer is [`CallErrorKind::Unsupported`], without calling the plugin.
    pub async fn scan(&self, device: &Device) -> Result<DeviceScan, CallError> {
        self.installer("scan")?;
        self.since_0_3("scan")?;
        self.call(
            "scan",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer3(i) => {
                    let d = wit3::Device::from(device.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_scan(store, &d)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                _ => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.boot-state` (WIT 0.3.0): the device's boot id and whether it waits
    /// for a restart. [`CallErrorKind::Unsupported`] for older installers.
    pub async fn boot_state(&self, device: &Device) -> Result<BootState, CallError> {
        self.installer("boot-state")?;
        self.since_0_3("boot-state")?;
        self.call(
            "boot-state",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer3(i) => {
                    let d = wit3::Device::from(device.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_boot_state(store, &d)
                        .await?
                        .map(Into::into)
                        .map_err(Into::into))
                }
                _ => unreachable_world(),
            },
        )
        .await
    }

    /// `installer.reboot` (WIT 0.3.0): restart `device`; the answer says what was done.
    /// [`CallErrorKind::Unsupported`] for older installers.
    pub async fn reboot(&self, device: &Device) -> Result<String, CallError> {
        self.installer("reboot")?;
        self.since_0_3("reboot")?;
        self.call(
            "reboot",
            Some(device),
            async |store, instance| match instance {
                Instance::Installer3(i) => {
                    let d = wit3::Device::from(device.clone());
                    Ok(i.ringleader_plugin_installer_api()
                        .call_reboot(store, &d)
                        .await?
                        .map_err(Into::into))
                }
                _ => unreachable_world(),
            },
        )
        .await
    }

    /// Refuses a function that only plugins on WIT 0.3.0 and later have.
    fn since_0_3(&self, func: &'static str) -> Result<(), CallError> {
        if self.inner.wit_version.minor >= 3 {
            return Ok(());
        }
        Err(CallError {
            plugin: self.inner.name.to_string(),
            func,
            kind: CallErrorKind::Unsupported(format!(
                "`{func}` is new in WIT 0.3.0, and this plugin is built against WIT {}; rebuild it against wit/ringleader-plugin@0.3.0 to use it",
                self.inner.wit_version
            )),
        })
    }

    fn installer(&self, func: &'static str) -> Result<(), CallError> {
        if self.inner.manifest.world == World::Installer {
            Ok(())
        } else {
            Err(self.wrong_world(func, World::Installer))
        }
    }
}

/// An installer call's arguments as the 0.1.1 bindings take them.
fn boundary(device: &Device, patch: &Patch) -> (wit::Device, wit::Patch) {
    (device.clone().into(), patch.clone().into())
}

/// The same for 0.2.0.
fn boundary2(device: &Device, patch: &Patch) -> (wit2::Device, wit2::Patch) {
    (device.clone().into(), patch.clone().into())
}

/// The same for 0.3.0.
fn boundary3(device: &Device, patch: &Patch) -> (wit3::Device, wit3::Patch) {
    (device.clone().into(), patch.clone().into())
}

/// The instance always matches the pre it came from, and the world was checked before
/// the call; this arm exists only for the type checker.
fn unreachable_world<T>() -> wasmtime::Result<T> {
    Err(wasmtime::format_err!("plugin instance of the wrong world"))
}

fn memory_denied(state: &HostState) -> Option<CallErrorKind> {
    state
        .limiter
        .denied_memory
        .map(|requested| CallErrorKind::MemoryLimit {
            limit: state.limiter.memory_limit() as u64,
            requested: requested as u64,
        })
}

/// Names why a guest stopped: a limit the host enforced, or the guest's own trap.
fn classify(e: &wasmtime::Error, state: &HostState, stderr: &str) -> CallErrorKind {
    match state.scope.fault {
        Some(Fault::HostcallBudget) => {
            return CallErrorKind::HostcallBudget {
                limit: state.scope.hostcall_limit,
            };
        }
        Some(Fault::Deadline) => {
            return CallErrorKind::Timeout {
                limit: state.scope.timeout,
            };
        }
        None => {}
    }
    if let Some(kind) = memory_denied(state) {
        return kind;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallErrorKind::Timeout {
            limit: state.scope.timeout,
        },
        Some(Trap::StackOverflow) => CallErrorKind::StackOverflow,
        Some(trap) => match panic_message(stderr) {
            Some(message) => CallErrorKind::Trap(format!("panicked: {message}")),
            None => CallErrorKind::Trap(trap.to_string()),
        },
        None => CallErrorKind::Trap(chain(e)),
    }
}

/// The message of a Rust guest's panic, from what it printed to stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let header = lines.next()?;
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    let message = if message.is_empty() {
        header.to_string()
    } else {
        message.join(" ")
    };
    // A guest language's own report before the panic (a Python traceback from a
    // componentize-py plugin): its last line names the exception.
    let exception = stderr
        .split_once("Traceback (most recent call last):")
        .and_then(|(_, after)| {
            after
                .lines()
                .take_while(|l| !l.contains("panicked at"))
                .filter(|l| !l.trim().is_empty())
                .last()
        })
        .map(str::trim);
    let message = match exception {
        Some(exception) => format!("{exception} ({message})"),
        None => message,
    };
    Some(truncate(message, limits::MAX_LOG_MESSAGE))
}

/// Keeps a plugin's own error message to a readable size.
fn cap_error(e: PluginError) -> PluginError {
    let cap = |m| truncate(m, limits::MAX_LOG_MESSAGE);
    match e {
        PluginError::Transient(m) => PluginError::Transient(cap(m)),
        PluginError::Permanent(m) => PluginError::Permanent(cap(m)),
        PluginError::Denied(m) => PluginError::Denied(cap(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_found_in_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("boom"));
        assert_eq!(panic_message("just noise"), None);
        let python = "Traceback (most recent call last):\n  File \"app.py\", line 9, in discover\n    raise ValueError(\"boom from python\")\nValueError: boom from python\n\nthread '<unnamed>' panicked at src/lib.rs:1:1:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(python).as_deref(),
            Some("ValueError: boom from python (Python function threw an unexpected exception)")
        );
    }

    #[test]
    fn headers_tell_modules_from_components() {
        let p = Path::new("x.wasm");
        assert!(matches!(
            check_header(p, b"hello world"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(p, b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
    }
}
