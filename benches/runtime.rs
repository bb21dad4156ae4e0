//! Plugin runtime benchmarks.
//!
//! - `call/*`: one call of a trivial plugin function (`info` of the simulated source),
//!   instantiation included, through Ringleader's runtime (fresh store, limits,
//!   capture, grants, result caps) and through bare wasmtime on the same engine
//!   configuration. Target: Ringleader <= 2x bare.
//! - `load/*`: loading a plugin (manifest, checksum, compile or cache, pre-instantiate,
//!   `info`) cold (compiling) and from the on-disk cache.
//!
//! Run: `cargo bench -p ringleader-benches --bench runtime`

use criterion::{Criterion, criterion_group, criterion_main};
use ringleader_runtime::{Runtime, RuntimeConfig};
use std::time::Duration;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentType, InstancePre, Lift, Linker, ResourceTable,
};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const PLUGIN: &str = "sim-vendor-source";

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The plugin's `plugin-info` record, bound by hand: no Ringleader code.
#[derive(ComponentType, Lift)]
#[component(record)]
struct Info {
    name: String,
    version: String,
    description: String,
}

/// The `log.level` enum, bound by hand.
#[derive(ComponentType, Lift, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
#[expect(dead_code, reason = "the baseline's log import ignores the level")]
enum Level {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

/// Store data of the bare baseline: only what WASI needs.
struct Bare {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

struct Baseline {
    engine: Engine,
    pre: InstancePre<Bare>,
    info: ComponentExportIndex,
}

impl Baseline {
    fn new() -> Baseline {
        // The same engine configuration the runtime uses (pooling, epochs, no
        // concurrency support), so only the per-call path differs.
        let engine = ringleader_runtime::new_engine().unwrap();
        let path = ringleader_bundled_plugins::component_path(PLUGIN);
        let component = Component::from_file(&engine, path).unwrap();
        let mut linker = Linker::<Bare>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        linker.instance("ringleader:plugin/types@0.1.0").unwrap();
        linker
            .instance("ringleader:plugin/log@0.1.0")
            .unwrap()
            .func_wrap_async("log", |_store, (_level, _msg): (Level, String)| {
                Box::new(async { Ok(()) })
            })
            .unwrap();
        let pre = linker.instantiate_pre(&component).unwrap();
        let api = component
            .get_export_index(None, "ringleader:plugin/patch-source-api@0.1.0")
            .unwrap();
        let info = component.get_export_index(Some(&api), "info").unwrap();
        Baseline { engine, pre, info }
    }

    async fn call(&self) -> Info {
        let mut store = Store::new(
            &self.engine,
            Bare {
                ctx: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_epoch_deadline(1_000);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        let func = instance
            .get_typed_func::<(), (Info,)>(&mut store, &self.info)
            .unwrap();
        func.call_async(&mut store, ()).await.unwrap().0
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let manifest = ringleader_bundled_plugins::manifest_path(PLUGIN);
    let plugin = rt.block_on(runtime.load(&manifest)).unwrap();
    let baseline = Baseline::new();
    let info = rt.block_on(baseline.call());
    assert_eq!(info.name, PLUGIN);
    assert!(!info.version.is_empty() && !info.description.is_empty());

    let mut group = c.benchmark_group("call");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("ringleader_info", |b| {
        b.to_async(&rt)
            .iter(|| async { plugin.info().await.unwrap() })
    });
    group.bench_function("bare_wasmtime_info", |b| {
        b.to_async(&rt).iter(|| async { baseline.call().await })
    });
    group.finish();
}

fn loads(c: &mut Criterion) {
    let rt = tokio();
    let manifest = ringleader_bundled_plugins::manifest_path("sim-vendor-installer");
    // The cache's key is kept beside its directory: both inside the scratch directory.
    let scratch = tempfile::tempdir().unwrap();
    let uncached = Runtime::new(RuntimeConfig::default()).unwrap();
    let cached = Runtime::new(RuntimeConfig {
        cache_dir: Some(scratch.path().join("components")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    rt.block_on(cached.load(&manifest)).unwrap();

    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("cold_compile", |b| {
        b.to_async(&rt)
            .iter(|| async { uncached.load(&manifest).await.unwrap() })
    });
    group.bench_function("from_cache", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.load(&manifest).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, calls, loads);
criterion_main!(benches);
