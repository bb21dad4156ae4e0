//! On-disk cache of compiled components, so a second start does not recompile.
//!
//! Keyed by the component's SHA-256 and the engine's compatibility hash (wasmtime
//! version, compiler settings, CPU features): a cached artifact is only ever loaded
//! into an engine that can run it. Files are written atomically (temp + rename).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code from the cache.
    Hit,
    /// Compiled, and stored for next time.
    Miss,
    /// Compiled; no cache is configured (or it could not be written).
    Uncached,
}

impl ComponentCache {
    /// Uses (and creates, owner-only) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<ComponentCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Loading from here runs native code: only the owner may write.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(ComponentCache { dir })
    }

    /// `$RINGLEADER_CACHE_DIR`, else `$XDG_CACHE_HOME/ringleader/components`, else
    /// `$HOME/.cache/ringleader/components`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("RINGLEADER_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("ringleader").join("components"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// The compiled component for `bytes` (whose hash is `sha256`): from the cache when
    /// present and loadable, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(engine, sha256);
        if path.exists() {
            match load_precompiled(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "ignoring unusable cached component, recompiling: {e}"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        let outcome = match component
            .serialize()
            .and_then(|serialized| Ok(write_atomically(&path, &serialized)?))
        {
            Ok(()) => CacheOutcome::Miss,
            Err(e) => {
                tracing::warn!(path = %path.display(), "failed to write component cache: {e}");
                CacheOutcome::Uncached
            }
        };
        Ok((component, outcome))
    }
}

#[expect(
    unsafe_code,
    reason = "deserializing runs native code; the file is ours: written by this cache, \
              in an owner-only directory, named by content hash and engine compatibility"
)]
fn load_precompiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // Read into memory rather than `deserialize_file`, which maps the file: a mapped
    // file truncated by someone else while in use kills the process with SIGBUS.
    let bytes = std::fs::read(path)?;
    // SAFETY: see the reason above; wasmtime also checks the engine compatibility
    // header and refuses an artifact from another engine configuration.
    unsafe { Component::deserialize(engine, &bytes) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
