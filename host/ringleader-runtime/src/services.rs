//! What the host gives plugins through capabilities: a clock, a key/value store, a way
//! to run programs on devices, and HTTP. Each is one small trait or type, chosen by the
//! embedder (real ones in production, virtual time and simulated devices in a demo).

use crate::limits;
use ringleader_types::{Device, Timestamp};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A boxed future, for the async methods of the service traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The host's notion of time: real, or virtual in a simulated rollout.
pub trait HostClock: Send + Sync + Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
    /// Wall time as WASI wants it (also virtual under a virtual clock).
    fn now_duration(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.now()).unwrap_or(0))
    }
    /// Waits `duration`; a virtual clock advances instead.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl HostClock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
    fn now_duration(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Why a key/value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// A size limit would be exceeded; the plugin is told so.
    #[error("{0}")]
    Limit(String),
    /// The store itself failed.
    #[error("key/value store failed: {0}")]
    Store(String),
}

/// Plugin-scoped persistent key/value state. Implementations keep plugins apart.
pub trait KvStore: Send + Sync + Debug {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError>;
}

/// Checks a write against the size limits, given the plugin's current total size and
/// the size of the entry it replaces.
fn check_kv_write(key: &str, value: &[u8], total: usize, replaced: usize) -> Result<(), KvError> {
    if key.len() > limits::MAX_KV_KEY {
        return Err(KvError::Limit(format!(
            "key of {} bytes is over the limit of {}",
            key.len(),
            limits::MAX_KV_KEY
        )));
    }
    if value.len() > limits::MAX_KV_VALUE {
        return Err(KvError::Limit(format!(
            "value of {} bytes is over the limit of {}",
            value.len(),
            limits::MAX_KV_VALUE
        )));
    }
    let after = total - replaced + key.len() + value.len();
    if after > limits::MAX_KV_TOTAL {
        return Err(KvError::Limit(format!(
            "the plugin's key/value store would hold {after} bytes, over the limit of {}",
            limits::MAX_KV_TOTAL
        )));
    }
    Ok(())
}

/// A key/value store in memory, lost on exit. For tests and one-shot runs.
#[derive(Debug, Default)]
pub struct MemoryKv {
    plugins: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl KvStore for MemoryKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let plugins = self
            .plugins
            .lock()
            .map_err(|e| KvError::Store(e.to_string()))?;
        Ok(plugins.get(plugin).and_then(|m| m.get(key)).cloned())
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let mut plugins = self
            .plugins
            .lock()
            .map_err(|e| KvError::Store(e.to_string()))?;
        let entries = plugins.entry(plugin.to_string()).or_default();
        let total = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        let replaced = entries.get(key).map_or(0, |v| key.len() + v.len());
        check_kv_write(key, value, total, replaced)?;
        entries.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        let mut plugins = self
            .plugins
            .lock()
            .map_err(|e| KvError::Store(e.to_string()))?;
        if let Some(entries) = plugins.get_mut(plugin) {
            entries.remove(key);
        }
        Ok(())
    }
}

/// A key/value store in a sled database: one tree per plugin, flushed on every write.
#[derive(Debug, Clone)]
pub struct SledKv {
    db: sled::Db,
}

impl SledKv {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<SledKv, KvError> {
        // sled's default page cache.
        let db = crate::durable::open(path, 1 << 30).map_err(|e| KvError::Store(e.to_string()))?;
        Ok(SledKv { db })
    }

    /// Uses a tree prefix of an existing database.
    pub fn with_db(db: sled::Db) -> SledKv {
        SledKv { db }
    }

    fn tree(&self, plugin: &str) -> Result<sled::Tree, KvError> {
        self.db
            .open_tree(format!("plugin-kv/{plugin}"))
            .map_err(|e| KvError::Store(e.to_string()))
    }
}

impl KvStore for SledKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let tree = self.tree(plugin)?;
        let value = tree.get(key).map_err(|e| KvError::Store(e.to_string()))?;
        Ok(value.map(|v| v.to_vec()))
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let tree = self.tree(plugin)?;
        let mut total = 0;
        let mut replaced = 0;
        for entry in tree.iter() {
            let (k, v) = entry.map_err(|e| KvError::Store(e.to_string()))?;
            total += k.len() + v.len();
            if k.as_ref() == key.as_bytes() {
                replaced = k.len() + v.len();
            }
        }
        check_kv_write(key, value, total, replaced)?;
        tree.insert(key, value)
            .map_err(|e| KvError::Store(e.to_string()))?;
        tree.flush().map_err(|e| KvError::Store(e.to_string()))?;
        Ok(())
    }
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        let tree = self.tree(plugin)?;
        tree.remove(key)
            .map_err(|e| KvError::Store(e.to_string()))?;
        tree.flush().map_err(|e| KvError::Store(e.to_string()))?;
        Ok(())
    }
}

/// A program to run on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
}

/// What the program did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; -1 when killed by a signal.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a program could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Worth retrying: the transport failed, or the program timed out.
    #[error("{0}")]
    Transient(String),
    /// Will not work on retry: no such program, no transport for the device.
    #[error("{0}")]
    Permanent(String),
}

/// Runs programs on devices: the device's transport (local, SSH, simulated).
pub trait DeviceExec: Send + Sync + Debug {
    fn run<'a>(
        &'a self,
        device: &'a Device,
        request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>>;
}

/// No transport: every `exec` fails. The default until the embedder configures one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoExec;

impl DeviceExec for NoExec {
    fn run<'a>(
        &'a self,
        device: &'a Device,
        _request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        let message = format!("no transport is configured to reach device {}", device.id);
        Box::pin(async move { Err(ExecError::Permanent(message)) })
    }
}

/// The `local` transport: the device is this machine. Programs run directly (never
/// through a shell) with an empty environment but `PATH`, output capped, killed at
/// the timeout.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExec;

impl DeviceExec for LocalExec {
    fn run<'a>(
        &'a self,
        _device: &'a Device,
        request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        let ExecRequest {
            program,
            args,
            stdin,
            timeout,
        } = request;
        Box::pin(async move { run_program(&program, &program, &args, stdin, timeout).await })
    }
}

/// Runs `program` with `args` on this machine (never through a shell) with an empty
/// environment but `PATH`, output capped, killed at `timeout`. `name` is what messages
/// call it (the remote program, when `program` is `ssh`).
pub(crate) async fn run_program(
    program: &str,
    name: &str,
    args: &[String],
    input: Vec<u8>,
    timeout: Duration,
) -> Result<ExecOutput, ExecError> {
    use tokio::io::AsyncWriteExt;
    use tokio::process::Command;

    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ExecError::Permanent(format!("program `{program}` not found"))
        }
        _ => ExecError::Transient(format!("failed to start `{program}`: {e}")),
    })?;

    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A program that does not read its input is not an error.
            let _ = stdin.write_all(&input).await;
        }
        drop(stdin);
    };
    let out = read_capped(child.stdout.take());
    let err = read_capped(child.stderr.take());
    let run = async {
        let ((), stdout, stderr, status) = tokio::join!(feed, out, err, child.wait());
        (stdout, stderr, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((stdout, stderr, Ok(status))) => Ok(ExecOutput {
            exit_code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }),
        Ok((_, _, Err(e))) => Err(ExecError::Transient(format!(
            "failed to wait for `{name}`: {e}"
        ))),
        Err(_) => Err(ExecError::Transient(format!(
            "`{name}` did not finish within {timeout:?} and was killed"
        ))),
    }
}

/// Reads a pipe to its end, keeping the first [`limits::MAX_EXEC_OUTPUT`] bytes. It keeps
/// reading past the cap so that a chatty program never blocks on a full pipe.
async fn read_capped(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut chunk = vec![0; 64 << 10];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = limits::MAX_EXEC_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// Everything the capabilities reach, shared by all plugins of a runtime.
#[derive(Debug, Clone)]
pub struct Services {
    pub clock: Arc<dyn HostClock>,
    pub kv: Arc<dyn KvStore>,
    pub exec: Arc<dyn DeviceExec>,
    /// Credentials added to plugins' HTTP requests to the device a call is about.
    pub auth: Arc<dyn DeviceAuth>,
}

/// What the host adds to a plugin's HTTP requests to the device the call is about
/// (its BMC, say): the operator's credentials, which the plugin never sees.
pub trait DeviceAuth: Send + Sync + Debug {
    /// The `Authorization` header for requests to `device`, when the operator
    /// configured credentials for it.
    fn authorization(&self, device: &Device) -> Option<String>;

    /// Certificates (a PEM file) to check `device`'s HTTPS against instead of the
    /// public web's roots, when the operator configured them.
    fn tls_roots(&self, _device: &Device) -> Option<PathBuf> {
        None
    }
}

/// No credentials for any device.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAuth;

impl DeviceAuth for NoAuth {
    fn authorization(&self, _device: &Device) -> Option<String> {
        None
    }
}

impl Default for Services {
    fn default() -> Self {
        Services {
            clock: Arc::new(SystemClock),
            kv: Arc::new(MemoryKv::default()),
            exec: Arc::new(NoExec),
            auth: Arc::new(NoAuth),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_keeps_plugins_apart_and_enforces_limits() {
        let kv = MemoryKv::default();
        kv.set("a", "k", b"1").unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get("b", "k").unwrap(), None);
        let big = vec![0; limits::MAX_KV_VALUE + 1];
        assert!(matches!(kv.set("a", "k", &big), Err(KvError::Limit(_))));
        let value = vec![0; limits::MAX_KV_VALUE];
        let mut refused = None;
        for i in 0..32 {
            if let Err(e) = kv.set("a", &format!("f{i}"), &value) {
                refused = Some(e);
                break;
            }
        }
        assert!(matches!(refused, Some(KvError::Limit(m)) if m.contains("1048576")));
        // Overwriting an entry does not count it twice.
        kv.set("a", "f0", &value).unwrap();
    }

    #[test]
    fn sled_kv_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = SledKv::open(dir.path()).unwrap();
            kv.set("p", "cursor", b"42").unwrap();
        }
        let kv = SledKv::open(dir.path()).unwrap();
        assert_eq!(kv.get("p", "cursor").unwrap(), Some(b"42".to_vec()));
        kv.delete("p", "cursor").unwrap();
        assert_eq!(kv.get("p", "cursor").unwrap(), None);
    }

    #[tokio::test]
    async fn local_exec_runs_without_a_shell_and_reports_exit_codes() {
        let device = Device {
            id: "d".into(),
            hostname: "localhost".into(),
            tags: vec![],
            facts: vec![],
            components: vec![],
        };
        let run = |program: &str, args: &[&str]| ExecRequest {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: b"in".to_vec(),
            timeout: Duration::from_secs(10),
        };
        let out = LocalExec
            .run(&device, run("echo", &["a;b", "$HOME"]))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"a;b $HOME\n");
        let out = LocalExec.run(&device, run("cat", &[])).await.unwrap();
        assert_eq!(out.stdout, b"in");
        let out = LocalExec.run(&device, run("false", &[])).await.unwrap();
        assert_eq!(out.exit_code, 1);
        let err = LocalExec
            .run(&device, run("no-such-program-x", &[]))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Permanent(_)));
        let mut slow = run("sleep", &["10"]);
        slow.timeout = Duration::from_millis(100);
        let err = LocalExec.run(&device, slow).await.unwrap_err();
        assert!(matches!(err, ExecError::Transient(m) if m.contains("killed")));
    }
}
