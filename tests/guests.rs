//! Plugins built from `plugins/`, loaded into a runtime as the host loads them, the
//! devices and patches they are given, and what they log: what the runtime's tests
//! (`it/`) and the source plugins' data cases (`case-runner/`) share.

use ringleader_runtime::{Grants, Plugin, Runtime, RuntimeConfig, Services};
use ringleader_types::{Artifact, Component, Device, Patch, PatchKind, Severity};
use std::path::PathBuf;

/// The sealed manifest of a plugin built from `plugins/`.
pub fn manifest(name: &str) -> PathBuf {
    ringleader_bundled_plugins::manifest_path(name)
}

/// A runtime granting `grants`, with in-memory kv and no cache.
pub fn runtime(grants: Grants, services: Services) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: None,
        grants,
        services,
    })
    .expect("runtime")
}

/// Loads the plugin `name` into `runtime`.
pub async fn load(runtime: &Runtime, name: &str) -> Plugin {
    runtime
        .load(&manifest(name))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

pub fn device(id: &str, components: &[(&str, &str)]) -> Device {
    Device {
        id: id.into(),
        hostname: format!("{id}.example"),
        tags: vec![],
        facts: vec![],
        components: components
            .iter()
            .map(|(name, version)| Component {
                name: (*name).into(),
                version: (*version).into(),
                scheme: None,
                source: None,
            })
            .collect(),
    }
}

pub fn patch(id: &str, component: &str, fixed: &str) -> Patch {
    Patch {
        id: id.into(),
        vendor: "test".into(),
        title: String::new(),
        component: component.into(),
        fixed_version: fixed.into(),
        applies_to: String::new(),
        scheme: None,
        kind: PatchKind::Bugfix,
        severity: Severity::Unknown,
        cves: vec![],
        prerequisites: vec![],
        supersedes: vec![],
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: 0,
    }
}

/// What `tracing` prints on this thread while a test runs.
///
/// One global subscriber (set once, at INFO) routes each line to the buffer of the
/// thread that logged it. Scoped subscribers per test would be simpler, but tracing
/// caches per call site whether anyone listens, and two threads racing to register a
/// call site while scoped subscribers come and go can cache "nobody" and lose lines.
#[derive(Debug, Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static SINK: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Routes a log line to the current thread's [`Logs`], if it has one.
struct Router;

impl std::io::Write for Router {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(logs) = &*sink.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops capturing on this thread when dropped.
#[derive(Debug)]
pub struct Capture;

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.with(|sink| *sink.borrow_mut() = None);
    }
}

impl Logs {
    /// Captures this thread's log lines (INFO and above) until the guard drops.
    pub fn capture() -> (Logs, Capture) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| Router)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let logs = Logs::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(logs.clone()));
        (logs, Capture)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The `csaf-source` plugin and its cases (`tests/cases/csaf/`).
pub mod csaf {
    use super::*;

    /// The case folders.
    pub fn cases() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/csaf")
    }

    /// The plugin, granted as it declares, reading the feed `index` (its `index`
    /// setting).
    pub async fn source(index: &str) -> Plugin {
        let manifest = ringleader_runtime::Manifest::load(&manifest("csaf-source")).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared("csaf-source", &manifest.capabilities);
        if let Some(grant) = grants.plugins.get_mut("csaf-source") {
            grant.settings.insert("index".into(), index.into());
        }
        let rt = runtime(grants, Services::default());
        load(&rt, "csaf-source").await
    }

    /// The devices the advisories are read for.
    pub fn fleet() -> Vec<Device> {
        vec![
            device(
                "rhel-1",
                &[
                    ("telnet", "1:0.17-64.el7"),
                    ("telnet-server", "1:0.17-64.el7"),
                ],
            ),
            device(
                "deb-1",
                &[
                    ("openssl", "3.0.11-1"),
                    ("libssl3", "3.0.11-1"),
                    ("shim", "15.7"),
                ],
            ),
            device(
                "deb-2",
                &[("hello", "1.0"), ("libhello", "1.0"), ("hello-doc", "1.0")],
            ),
        ]
    }
}

/// The `lvfs-source` plugin and its cases (`tests/cases/lvfs/`).
pub mod lvfs {
    use super::*;

    /// The case folders.
    pub fn cases() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/lvfs")
    }

    /// The plugin, granted as it declares, with `metadata` set when given.
    pub async fn source(metadata: Option<&str>) -> Plugin {
        let manifest = ringleader_runtime::Manifest::load(&manifest("lvfs-source")).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared("lvfs-source", &manifest.capabilities);
        if let Some(url) = metadata
            && let Some(grant) = grants.plugins.get_mut("lvfs-source")
        {
            grant.settings.insert("metadata".into(), url.into());
        }
        load(&runtime(grants, Services::default()), "lvfs-source").await
    }
}

/// The `debian-security-source` plugin and its cases (`tests/cases/debian-security/`).
pub mod debsec {
    use super::*;

    /// The case folders.
    pub fn cases() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/debian-security")
    }

    /// The plugin, granted as it declares, with `feed` set when given.
    pub async fn source(feed: Option<&str>) -> Plugin {
        let name = "debian-security-source";
        let manifest = ringleader_runtime::Manifest::load(&manifest(name)).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared(name, &manifest.capabilities);
        if let Some(url) = feed
            && let Some(grant) = grants.plugins.get_mut(name)
        {
            grant.settings.insert("feed".into(), url.into());
        }
        load(&runtime(grants, Services::default()), name).await
    }
}

/// The `catalog-source` plugin: an operator's own catalog, at a `file://` or `http://` URL.
pub mod catalog {
    use super::*;

    /// The plugin with `settings.catalog = url`, the manifest's `http` declared as
    /// `declared` (the sealed manifest's when `None`) and granted as `granted`.
    pub async fn source(url: &str, declared: Option<&[&str]>, granted: &[&str]) -> Plugin {
        let name = "catalog-source";
        let dir = std::env::temp_dir().join(format!(
            "ringleader-catalog-manifest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let path = match declared {
            None => manifest(name),
            Some(hosts) => {
                // The sealed manifest with other `capabilities.http`: the seal is the
                // component's checksum, which stays.
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(
                    ringleader_bundled_plugins::component_path(name),
                    dir.join(format!("{name}.wasm")),
                )
                .unwrap();
                let text = std::fs::read_to_string(manifest(name)).unwrap();
                let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
                let text = text.replace(
                    "http = [\"{setting:catalog}\"]",
                    &format!("http = [{}]", list.join(", ")),
                );
                let path = dir.join(format!("{name}.plugin.toml"));
                std::fs::write(&path, text).unwrap();
                path
            }
        };
        let mut grants = Grants::default();
        grants.plugins.insert(
            name.into(),
            ringleader_runtime::Grant {
                http: granted.iter().map(|h| h.to_string()).collect(),
                settings: [("catalog".to_string(), url.to_string())].into(),
                ..Default::default()
            },
        );
        let rt = runtime(grants, Services::default());
        let plugin = rt
            .load(&path)
            .await
            .unwrap_or_else(|e| panic!("load {name}: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        plugin
    }

    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
}

/// Compressed feeds without a compressor in the test crate: valid streams of stored
/// (uncompressed) blocks, for the LVFS cases and the fuzzer.
pub mod encode {
    /// CRC-32 (IEEE), for the gzip trailer.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }
    /// `data` as a gzip file of stored (uncompressed) deflate blocks: a valid gzip
    /// stream, without a compressor in the test crate.
    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        let mut chunks = data.chunks(0xffff).peekable();
        if chunks.peek().is_none() {
            out.extend([1, 0, 0, 0xff, 0xff]);
        }
        while let Some(chunk) = chunks.next() {
            out.push(u8::from(chunks.peek().is_none()));
            let len = chunk.len() as u16;
            out.extend(len.to_le_bytes());
            out.extend((!len).to_le_bytes());
            out.extend(chunk);
        }
        out.extend(crc32(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }
    /// `data` as a zstd frame of raw (uncompressed) blocks.
    pub fn zstd(data: &[u8]) -> Vec<u8> {
        // Magic; frame header: single segment, 8-byte content size, no checksum.
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0b1110_0000];
        out.extend((data.len() as u64).to_le_bytes());
        let mut chunks = data.chunks(64 << 10).peekable();
        if chunks.peek().is_none() {
            out.extend([1, 0, 0]);
        }
        while let Some(chunk) = chunks.next() {
            let last = u32::from(chunks.peek().is_none());
            // Block header: last flag, type 0 (raw), size.
            out.extend(((chunk.len() as u32) << 3 | last).to_le_bytes()[..3].iter());
            out.extend(chunk);
        }
        out
    }
}
