//! On-disk cache of compiled components, so a second start does not recompile.
//!
//! Keyed by the component's SHA-256 and the engine's compatibility hash (wasmtime
//! version, compiler settings, CPU features): a cached artifact is only ever loaded
//! into an engine that can run it. Files are written atomically (temp + rename).
//!
//! Loading a cached artifact runs it as native code, so the cache trusts nothing it
//! did not write itself:
//! - the directory must be owned by the current user and writable by nobody else, and
//!   every directory above it (where the key lives) owned by that user or root and
//!   not writable by others (unless sticky, like `/tmp`); otherwise the cache is
//!   refused ([`CacheError`]) and the runtime compiles every load;
//! - every artifact carries an HMAC-SHA256, under a per-installation key kept beside
//!   the directory (`components.key`, mode 0600), over its file name and contents; one
//!   that fails it (corrupted, tampered with, planted, written for another component)
//!   is never deserialized: it is recompiled and replaced, with a warning.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    key: Key,
}

/// Whether a load came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code from the cache.
    Hit,
    /// Compiled, and stored for next time (nothing usable was cached, or what was
    /// failed authentication and was replaced).
    Miss,
    /// Compiled; no cache is configured (or it was refused, or could not be written).
    Uncached,
}

/// Why a cache directory is not used. Each message names the path, what is wrong and
/// the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("failed to create the component cache directory {dir}: {source}")]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refused the component cache directory {dir}: it is owned by {owner}, not by the \
         current user ({user}), and code compiled into it would run as this user; fix: \
         `chown -R {uid} {dir}` (what it holds is then checked against this user's key) or \
         remove it (`rm -rf {dir}`) and let ringleader create it",
        owner = user_name(*owner),
        user = user_name(*user),
        uid = user,
        dir = dir.display()
    )]
    NotOwned { dir: PathBuf, owner: u32, user: u32 },
    #[error(
        "refused the component cache directory {dir}: it is writable by {who} (mode {mode:o}), \
         who could plant code that would run as this user; fix: `chmod 0700 {dir}`",
        who = writers(*mode),
        dir = dir.display()
    )]
    Writable { dir: PathBuf, mode: u32 },
    #[error(
        "refused the component cache directory {cache}: {dir} above it is {problem}, so \
         another user could replace the cache or its key; fix: {fix}",
        cache = cache.display(),
        dir = dir.display()
    )]
    UnsafeParent {
        cache: PathBuf,
        dir: PathBuf,
        problem: String,
        fix: String,
    },
    #[error(
        "refused the component cache key {path}: {problem}; fix: `rm {path}` (a new key is \
         made, and every cached component is compiled once again)",
        path = path.display()
    )]
    Key { path: PathBuf, problem: String },
    #[error("the component cache needs a Unix system (file owners and modes)")]
    Unsupported,
}

/// The key that authenticates cached artifacts. Never printed.
#[derive(Clone)]
struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

const KEY_LEN: usize = 32;
/// The first bytes of a cached artifact: the file format, then the HMAC tag.
const MAGIC: &[u8; 16] = b"ringleader-cw-1\n";
const TAG_LEN: usize = 32;

impl ComponentCache {
    /// Uses `dir` (created owner-only when missing) once it is safe: owned by the
    /// current user, writable by nobody else, under directories others cannot change;
    /// reads the key beside it (`DIR.key`), creating it when missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<ComponentCache, CacheError> {
        let dir = dir.into();
        #[cfg(unix)]
        {
            let dir = secure::prepare_dir(&dir)?;
            let key = secure::load_or_create_key(&key_path(&dir))?;
            Ok(ComponentCache { dir, key })
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Err(CacheError::Unsupported)
        }
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

    /// The directory, as resolved (symbolic links followed).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the key authenticating `dir`'s artifacts is kept.
    pub fn key_path(&self) -> PathBuf {
        key_path(&self.dir)
    }

    fn file_name_for(engine: &Engine, sha256: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{sha256}-{:016x}.cwasm", hasher.finish())
    }

    /// The tag of `artifact` stored as `name`: the name is covered too, so an artifact
    /// authenticated for one component is refused under another's name.
    fn mac(&self, name: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key.0)
            .expect("HMAC takes a key of any length");
        mac.update(MAGIC);
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(artifact);
        mac
    }

    /// The artifact of a cached file when its tag is right.
    fn authenticate<'a>(&self, name: &str, file: &'a [u8]) -> Option<&'a [u8]> {
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        let (tag, artifact) = rest.split_at_checked(TAG_LEN)?;
        self.mac(name, artifact).verify_slice(tag).ok()?;
        Some(artifact)
    }

    /// The compiled component for `bytes` (whose hash is `sha256`): from the cache when
    /// present, authentic and loadable, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let name = Self::file_name_for(engine, sha256);
        let path = self.dir.join(&name);
        // Read into memory rather than `deserialize_file`, which maps the file: a
        // mapped file truncated by someone else while in use kills the process with
        // SIGBUS. What is read is what is authenticated and loaded.
        match std::fs::read(&path) {
            Ok(file) => match self.authenticate(&name, &file) {
                Some(artifact) => match load_authenticated(engine, artifact) {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::warn!(
                        path = %path.display(),
                        "ignoring unusable cached component, recompiling: {e}"
                    ),
                },
                None => tracing::warn!(
                    path = %path.display(),
                    key = %self.key_path().display(),
                    "cached component failed authentication (corrupted, tampered with, or not \
                     written by this installation with this key): not loaded; recompiling and \
                     replacing it"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                "cannot read cached component, recompiling: {e}"
            ),
        }
        let component = Component::new(engine, bytes)?;
        let outcome = match component
            .serialize()
            .and_then(|artifact| Ok(self.write(&path, &name, &artifact)?))
        {
            Ok(()) => CacheOutcome::Miss,
            Err(e) => {
                tracing::warn!(path = %path.display(), "failed to write component cache: {e}");
                CacheOutcome::Uncached
            }
        };
        Ok((component, outcome))
    }

    /// Writes `artifact` with its tag as `path`, atomically (temp + rename), owner-only.
    fn write(&self, path: &Path, name: &str, artifact: &[u8]) -> std::io::Result<()> {
        let tag = self.mac(name, artifact).finalize().into_bytes();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = owner_only_new_file(&tmp)?;
        let written = file
            .write_all(MAGIC)
            .and_then(|()| file.write_all(&tag))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[expect(
    unsafe_code,
    reason = "deserializing runs native code; the bytes were authenticated with this \
              installation's key (HMAC over name and contents), so this cache wrote them, \
              in a directory only its owner can write"
)]
fn load_authenticated(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see the reason above; wasmtime also checks the engine compatibility
    // header and refuses an artifact from another engine configuration.
    unsafe { Component::deserialize(engine, artifact) }
}

/// `DIR.key` beside `DIR`: outside the cache, so a cache copied elsewhere (or whose
/// files someone could write) does not carry the means to forge its contents.
fn key_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "components".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.key"))
}

fn owner_only_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Who besides the owner may write, by a directory's mode.
fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and everyone",
        (false, true) => "everyone",
        _ => "its group",
    }
}

/// `uid N (name)`, with the name from `/etc/passwd` when it is there.
fn user_name(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse() == Ok(uid)).then(|| name.to_owned())
            })
        });
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

#[cfg(unix)]
mod secure {
    //! Owners and modes of the cache's directories and key.

    use super::{CacheError, KEY_LEN, Key, owner_only_new_file};
    use std::io::{Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    fn current_uid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    /// Creates `dir` (owner-only) when missing and checks it and the directories above
    /// it; returns it resolved.
    pub(super) fn prepare_dir(dir: &Path) -> Result<PathBuf, CacheError> {
        let create = |source| CacheError::Create {
            dir: dir.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(create)?;
        let dir = dir.canonicalize().map_err(create)?;
        let meta = std::fs::metadata(&dir).map_err(create)?;
        let user = current_uid();
        if meta.uid() != user {
            return Err(CacheError::NotOwned {
                dir,
                owner: meta.uid(),
                user,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(CacheError::Writable { dir, mode });
        }
        for parent in dir.ancestors().skip(1) {
            check_parent(&dir, parent, user)?;
        }
        Ok(dir)
    }

    /// A directory above the cache: owned by the user or root, and writable by others
    /// only when sticky (others can then add entries but not replace ours).
    fn check_parent(cache: &Path, dir: &Path, user: u32) -> Result<(), CacheError> {
        let meta = std::fs::metadata(dir).map_err(|source| CacheError::Create {
            dir: dir.to_owned(),
            source,
        })?;
        let unsafe_parent = |problem: String, fix: String| CacheError::UnsafeParent {
            cache: cache.to_owned(),
            dir: dir.to_owned(),
            problem,
            fix,
        };
        if meta.uid() != user && meta.uid() != 0 {
            return Err(unsafe_parent(
                format!(
                    "owned by {}, neither the current user nor root",
                    super::user_name(meta.uid())
                ),
                format!(
                    "`chown {user} {}`, or set RINGLEADER_CACHE_DIR to a directory of yours",
                    dir.display()
                ),
            ));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(unsafe_parent(
                format!("writable by {} (mode {mode:o})", super::writers(mode)),
                format!("`chmod go-w {}`", dir.display()),
            ));
        }
        Ok(())
    }

    /// The key at `path`: read when it is a 32-byte file of the user's that nobody
    /// else can read; made anew (with a warning) when it is the user's but damaged or
    /// readable by others; created when missing. Another user's key is refused.
    pub(super) fn load_or_create_key(path: &Path) -> Result<Key, CacheError> {
        let refuse = |problem: String| CacheError::Key {
            path: path.to_owned(),
            problem,
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return create_key(path),
            Err(e) => return Err(refuse(format!("cannot read it: {e}"))),
        };
        if !meta.file_type().is_file() {
            return Err(refuse("it is not a regular file".into()));
        }
        if meta.uid() != current_uid() {
            return Err(refuse(format!(
                "it is owned by {}, not by the current user",
                super::user_name(meta.uid())
            )));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "component cache key was accessible to others (mode {mode:o}): made a new \
                 one; every cached component is compiled once again"
            );
            return replace_key(path);
        }
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path).and_then(|mut file| {
            // The file opened is the one checked (no swap in between).
            let opened = file.metadata()?;
            if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
                return Err(std::io::Error::other("it changed while being read"));
            }
            Read::take(&mut file, KEY_LEN as u64 + 1).read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            return Err(refuse(format!("cannot read it: {e}")));
        }
        match <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            Ok(key) => Ok(Key(key)),
            Err(_) => {
                tracing::warn!(
                    path = %path.display(),
                    "component cache key is damaged ({} bytes, not {KEY_LEN}): made a new one; \
                     every cached component is compiled once again",
                    bytes.len()
                );
                replace_key(path)
            }
        }
    }

    fn random_key() -> std::io::Result<Key> {
        let mut key = [0; KEY_LEN];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Key(key))
    }

    /// Writes a new key to a temporary file (0600) beside `path`, and returns it with
    /// that file's path.
    fn write_temp_key(path: &Path) -> Result<(Key, PathBuf), CacheError> {
        let fail = |e: std::io::Error| CacheError::Key {
            path: path.to_owned(),
            problem: format!("cannot create it: {e}"),
        };
        let key = random_key().map_err(fail)?;
        let tmp = path.with_extension(format!("key.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = owner_only_new_file(&tmp)
            .and_then(|mut file| file.write_all(&key.0).and_then(|()| file.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        Ok((key, tmp))
    }

    /// Creates the key at `path` atomically: complete or absent, never clobbering one
    /// another process created meanwhile (whose key is then used).
    fn create_key(path: &Path) -> Result<Key, CacheError> {
        let (key, tmp) = write_temp_key(path)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
            Err(e) => Err(CacheError::Key {
                path: path.to_owned(),
                problem: format!("cannot create it: {e}"),
            }),
        }
    }

    /// Replaces the user's damaged key at `path` atomically.
    fn replace_key(path: &Path) -> Result<Key, CacheError> {
        let (key, tmp) = write_temp_key(path)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CacheError::Key {
                path: path.to_owned(),
                problem: format!("cannot replace it: {e}"),
            }
        })?;
        Ok(key)
    }
}

#[cfg(all(test, unix))]
mod tests;
