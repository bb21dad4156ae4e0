//! Loading plugins: manifests, checksums, worlds, WIT versions and the compile cache.

use super::*;
use ringleader_runtime::LoadError;
use ringleader_runtime::cache::CacheOutcome;
use std::path::Path;

/// Copies the plugin `name` (component and manifest) into `dir`, applying `edit` to the
/// manifest text; returns the new manifest's path.
fn copy_plugin(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let component = ringleader_bundled_plugins::component_path(name);
    std::fs::copy(&component, dir.join(format!("{name}.wasm"))).unwrap();
    let text = std::fs::read_to_string(manifest(name)).unwrap();
    let path = dir.join(format!("{name}.plugin.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn replace_line(text: String, key: &str, line: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with(&format!("{key} =")) {
                line
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_plugin_in_plugins_loads() {
    let rt = runtime(Grants::default(), Services::default());
    for name in ringleader_bundled_plugins::ALL {
        let plugin = load(&rt, name).await;
        assert_eq!(plugin.name(), *name);
        assert_eq!(plugin.info().await.unwrap().name, *name);
    }
}

#[tokio::test]
async fn a_component_that_does_not_match_its_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_plugin(dir.path(), "sim-vendor-source", |t| t);
    let wasm = dir.path().join("sim-vendor-source.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();
    let rt = runtime(Grants::default(), Services::default());
    let err = rt.load(&path).await.unwrap_err();
    assert!(matches!(err, LoadError::ChecksumMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("does not match its manifest"), "{message}");
    assert!(message.contains("ringleader plugin seal"), "{message}");
}

#[tokio::test]
async fn a_manifest_naming_the_wrong_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_plugin(dir.path(), "sim-vendor-source", |t| {
        replace_line(t, "world", "world = \"installer\"")
    });
    let rt = runtime(Grants::default(), Services::default());
    let err = rt.load(&path).await.unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::WrongWorld {
                expected: ringleader_runtime::World::Installer,
                found: ringleader_runtime::World::PatchSource,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_whose_name_disagrees_with_the_plugin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_plugin(dir.path(), "sim-vendor-source", |t| {
        replace_line(t, "name", "name = \"someone-else\"")
    });
    let rt = runtime(Grants::default(), Services::default());
    let err = rt.load(&path).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("says its name is `sim-vendor-source` but its manifest says `someone-else`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_broken_manifest_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_plugin(dir.path(), "sim-vendor-source", |t| {
        t.replace("[capabilities]", "[capabilities]\nnetwork = true")
    });
    let rt = runtime(Grants::default(), Services::default());
    let err = rt.load(&path).await.unwrap_err().to_string();
    assert!(err.contains("sim-vendor-source.plugin.toml:"), "{err}");
    assert!(err.contains("`network`: unknown field"), "{err}");
}

#[tokio::test]
async fn components_that_are_not_plugins_are_named_for_what_they_are() {
    let rt = runtime(Grants::default(), Services::default());
    let dir = tempfile::tempdir().unwrap();

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not wasm at all").unwrap();
    assert!(matches!(rt.inspect(&text), Err(LoadError::NotWasm { .. })));

    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let err = rt.inspect(&module).unwrap_err();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");

    let command = ringleader_bundled_plugins::component_path("test-cli-command");
    let err = rt.inspect(&command).unwrap_err();
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err}");
    assert!(err.to_string().contains("wasi:cli/run"), "{err}");

    let future = ringleader_bundled_plugins::component_path("test-future-wit");
    let err = rt.inspect(&future).unwrap_err();
    assert!(
        matches!(&err, LoadError::UnsupportedWit { found, .. } if found.major == 2),
        "{err}"
    );
}

#[tokio::test]
async fn the_second_load_comes_from_the_cache_and_a_corrupt_entry_is_recompiled() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("components");
    let config = || ringleader_runtime::RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let first = Runtime::new(config()).unwrap();
    let plugin = load(&first, "sim-vendor-source").await;
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Miss);

    // A new runtime (a restart) finds the compiled code.
    let second = Runtime::new(config()).unwrap();
    let plugin = load(&second, "sim-vendor-source").await;
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Hit);

    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(config()).unwrap();
    let plugin = load(&third, "sim-vendor-source").await;
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Miss);
    assert_eq!(plugin.info().await.unwrap().name, "sim-vendor-source");
}

/// Store data for linking by hand: only what WASI needs.
struct Bare {
    ctx: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for Bare {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The promise to plugin authors: a component built against 0.1.0 keeps working on a
/// host that implements a later 0.1.x, without a rebuild. A later host registers its
/// imports and looks up exports under its own version; this does exactly that, as a
/// hypothetical 0.1.7 host, with the engine configuration the runtime uses.
#[tokio::test]
async fn a_0_1_0_component_links_and_runs_on_a_later_0_1_x_host() {
    use wasmtime::component::{Component, Linker, Val};
    let engine = ringleader_runtime::new_engine().unwrap();
    let path = ringleader_bundled_plugins::component_path("sim-vendor-source");
    let component = Component::from_file(&engine, path).unwrap();
    let mut linker = Linker::<Bare>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.instance("ringleader:plugin/types@0.1.7").unwrap();
    linker
        .instance("ringleader:plugin/log@0.1.7")
        .unwrap()
        .func_new_async("log", |_store, _ty, _params, _results| {
            Box::new(async { Ok(()) })
        })
        .unwrap();
    let pre = linker
        .instantiate_pre(&component)
        .expect("0.1.0 imports are satisfied by 0.1.7 definitions");
    let api = component
        .get_export_index(None, "ringleader:plugin/patch-source-api@0.1.7")
        .expect("the 0.1.0 export is found under a 0.1.7 name");
    let info = component.get_export_index(Some(&api), "info").unwrap();

    let mut store = wasmtime::Store::new(
        &engine,
        Bare {
            ctx: wasmtime_wasi::WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(1_000);
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    let func = instance.get_func(&mut store, info).unwrap();
    let mut results = [Val::Bool(false)];
    func.call_async(&mut store, &[], &mut results)
        .await
        .unwrap();
    let Val::Record(fields) = &results[0] else {
        panic!("{:?}", results[0])
    };
    assert_eq!(
        fields[0],
        ("name".to_string(), Val::String("sim-vendor-source".into()))
    );
}

/// One runtime links every WIT version it implements: plugins built against 0.1.0,
/// 0.1.1, 0.2.0 and 0.3.0 load side by side and run. A 0.1.x source's patches name no
/// scheme; a 0.2.0 plugin's errors reach the host as 0.1.x ones do; what only 0.3.0
/// has (`scan`) is not called on an older installer, which is said.
#[tokio::test]
async fn plugins_of_wit_0_1_0_to_0_3_0_load_and_run_side_by_side() {
    let rt = runtime(Grants::default(), Services::default());
    let cases = [
        ("sim-vendor-source", "0.1.0"),
        ("lvfs-source", "0.1.1"),
        ("csaf-source", "0.2.0"),
        ("dpkg-installer", "0.3.0"),
        ("redfish-firmware", "0.3.0"),
        ("debian-security-source", "0.3.0"),
        ("test-hostile-installer", "0.1.0"),
    ];
    let mut plugins = Vec::new();
    for (name, wit) in cases {
        let plugin = load(&rt, name).await;
        assert_eq!(plugin.wit_version().to_string(), wit, "{name}");
        assert_eq!(plugin.info().await.unwrap().name, name);
        plugins.push(plugin);
    }
    let fleet = vec![device("d1", &[("bios", "2.10.0"), ("openssl", "3.0.11")])];
    let patches = plugins[0].discover(&fleet).await.unwrap();
    assert!(!patches.is_empty());
    assert!(patches.iter().all(|p| p.scheme.is_none()), "{patches:?}");
    // csaf-source (0.2.0) without its feed's setting: its error, converted.
    let err = plugins[2].discover(&fleet).await.unwrap_err().to_string();
    assert!(
        err.contains("permanent error: no advisory index configured"),
        "{err}"
    );
    // The 0.3.0 installer is called with a device and a patch of 0.3.0's types.
    let readiness = plugins[3]
        .preflight(&fleet[0], &patch("ssl", "openssl", "3.0.15"))
        .await;
    assert!(readiness.is_err(), "{readiness:?}");
    // A 0.1.0 installer cannot scan: the host says so without calling it.
    let err = plugins[6].scan(&fleet[0]).await.unwrap_err();
    assert!(
        matches!(err.kind, ringleader_runtime::CallErrorKind::Unsupported(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not support this"), "{err}");
    // The 0.3.0 source, given no device of a Debian release, has nothing to say.
    let patches = plugins[5].discover(&fleet).await.unwrap();
    assert!(patches.is_empty(), "{patches:?}");
}
