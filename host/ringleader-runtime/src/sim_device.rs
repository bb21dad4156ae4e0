//! The `sim` transport: simulated devices that keep their own state, reached through the
//! `exec` capability like a real device (the simulated vendor's installer runs the
//! device's `sim-pkg` tool, as a dpkg installer runs `dpkg`).
//!
//! Each device remembers what is installed on it, how many install calls it got per
//! patch, and how many of those came when the patch was already installed (which the
//! engine must never do). Failures and degraded health are decided by a hash of (seed,
//! device, patch), never by call order, from the device's facts, in per mille:
//!
//! | fact | meaning |
//! |---|---|
//! | `sim.seed` | the seed |
//! | `sim.fail-permille` | installs that fail |
//! | `sim.unhealthy-permille` | installs after which the device is unhealthy |
//! | `sim.bad-patch`, `sim.bad-patch-permille` | one patch that fails more often here |
//! | `sim.rollback-fail-permille` | rollbacks that fail (keyed by seed, device and component) |
//! | `sim.reboot-seconds` | how long a restart takes, real time (`boot` fails, "restarting", until then); `never`: it never comes back |
//! | `sim.install-ms` | how long an install takes, real time; a scan (`list`, `boot`) that comes meanwhile is counted (`total("overlaps")`): the engine must never scan a device a step runs on |
//! | `sim.drift.COMPONENT` | the version the device really has of COMPONENT, whatever the inventory says (until an install or rollback changes it): a stale inventory |
//!
//! `sim-pkg` commands: `query COMPONENT`, `install COMPONENT VERSION PATCH [reboot]`,
//! `rollback COMPONENT VERSION [reboot]`, `health PATCH`, `list` (every component with
//! its version, a line each: `NAME<TAB>VERSION`), `boot` (the boot id: `sim-boot-N`, N
//! the restarts so far; then `pending P1,P2` while installs or rollbacks given `reboot`
//! wait for a restart), `reboot` (one more restart, nothing pending after it).

use crate::services::{BoxFuture, DeviceExec, ExecError, ExecOutput, ExecRequest};
use ringleader_types::Device;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Page cache of the devices' database: their state is small.
const SLED_CACHE_BYTES: u64 = 64 << 20;

/// Milliseconds since the Unix epoch, real time (a restart's length is real time: the
/// engine waits for it with real timing; virtual timing models it itself).
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Where simulated devices keep their state.
#[derive(Debug)]
enum Backing {
    Memory(Mutex<BTreeMap<String, String>>),
    /// The tree, `None` while the database is being opened again.
    Sled {
        dir: std::path::PathBuf,
        tree: std::sync::RwLock<Option<sled::Tree>>,
    },
}

/// The devices' tree in the database at `dir`.
fn open_tree(dir: &Path) -> Result<sled::Tree, ExecError> {
    let db = crate::durable::open(dir, SLED_CACHE_BYTES)
        .map_err(|e| ExecError::Permanent(e.to_string()))?;
    db.open_tree("sim-devices")
        .map_err(|e| ExecError::Permanent(e.to_string()))
}

/// A fleet of simulated devices.
#[derive(Debug)]
pub struct SimDevices {
    backing: Backing,
    /// Devices an install runs on now (with `sim.install-ms`), to count the scans
    /// that come meanwhile.
    installing: Mutex<std::collections::BTreeSet<String>>,
}

impl SimDevices {
    /// Devices whose state lives in memory.
    pub fn in_memory() -> SimDevices {
        SimDevices {
            backing: Backing::Memory(Mutex::new(BTreeMap::new())),
            installing: Mutex::default(),
        }
    }

    /// Devices whose state lives in a sled database at `dir`, apart from any engine
    /// state, and survives restarts.
    /// Writes become durable at [`SimDevices::flush`], which the engine calls before it
    /// makes its own log durable: nothing the engine has recorded is ever ahead of what
    /// the devices remember.
    pub fn open(dir: &Path) -> Result<SimDevices, ExecError> {
        Ok(SimDevices {
            backing: Backing::Sled {
                dir: dir.to_owned(),
                tree: std::sync::RwLock::new(Some(open_tree(dir)?)),
            },
            installing: Mutex::default(),
        })
    }

    /// Opens the database again after a write to it failed (sled takes no more writes
    /// after one fails): what was flushed is read back, what was not is lost, as a real
    /// device loses an install cut off by power. Succeeds once a write succeeds.
    pub fn reopen(&self) -> Result<(), ExecError> {
        let Backing::Sled { dir, tree } = &self.backing else {
            return Ok(());
        };
        *tree.write().unwrap_or_else(|e| e.into_inner()) = None;
        // durable::open waits for the lock the old handle's threads still hold.
        let opened = open_tree(dir)?;
        let probe = opened
            .insert("probe", &b"1"[..])
            .and_then(|_| opened.flush())
            .map(|_| ())
            .map_err(transient);
        *tree.write().unwrap_or_else(|e| e.into_inner()) = Some(opened);
        probe
    }

    fn tree(&self) -> Result<Option<sled::Tree>, ExecError> {
        match &self.backing {
            Backing::Memory(_) => Ok(None),
            Backing::Sled { tree, .. } => tree
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .map(Some)
                .ok_or_else(|| {
                    ExecError::Transient(
                        "the simulated devices' state is being opened again".into(),
                    )
                }),
        }
    }

    fn get(&self, key: &str) -> Result<Option<String>, ExecError> {
        match &self.backing {
            Backing::Memory(m) => Ok(m.lock().map_err(transient)?.get(key).cloned()),
            Backing::Sled { .. } => Ok(self
                .tree()?
                .ok_or_else(|| transient("no tree"))?
                .get(key)
                .map_err(transient)?
                .map(|v| String::from_utf8_lossy(&v).into_owned())),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<(), ExecError> {
        match &self.backing {
            Backing::Memory(m) => {
                m.lock()
                    .map_err(transient)?
                    .insert(key.into(), value.into());
                Ok(())
            }
            Backing::Sled { .. } => {
                if let Some(tree) = self.tree()? {
                    tree.insert(key, value.as_bytes()).map_err(transient)?;
                }
                Ok(())
            }
        }
    }

    /// Sets the version of `component` installed on device `id`, durable at once: what
    /// an administrator does by hand on the device (restores a snapshot, downgrades a
    /// package), behind the engine's back.
    pub fn set_installed(&self, id: &str, component: &str, version: &str) -> Result<(), ExecError> {
        self.set(&format!("{id}/installed/{component}"), version)?;
        self.flush()
    }

    fn is_installing(&self, id: &str) -> bool {
        self.installing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Makes every device's state durable.
    pub fn flush(&self) -> Result<(), ExecError> {
        match &self.backing {
            Backing::Memory(_) => Ok(()),
            Backing::Sled { .. } => match self.tree()? {
                Some(tree) => tree.flush().map(|_| ()).map_err(transient),
                None => Ok(()),
            },
        }
    }

    /// Notes that `what` waits for a restart of device `id` (`boot` says so until
    /// `reboot`).
    fn pend(&self, id: &str, what: &str) -> Result<(), ExecError> {
        let key = format!("{id}/pending");
        let mut pending = self.get(&key)?.unwrap_or_default();
        if !pending.split(',').any(|p| p == what) {
            if !pending.is_empty() {
                pending.push(',');
            }
            pending.push_str(what);
        }
        self.set(&key, &pending)
    }

    fn bump(&self, key: &str) -> Result<(), ExecError> {
        let n: u64 = self.get(key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
        self.set(key, &(n + 1).to_string())
    }

    /// Sum of the counters whose key ends with `/<what>/...` over all devices:
    /// `installs` or `duplicates`.
    pub fn total(&self, what: &str) -> Result<u64, ExecError> {
        let marker = format!("/{what}/");
        let values: Vec<String> = match &self.backing {
            Backing::Memory(m) => m
                .lock()
                .map_err(transient)?
                .iter()
                .filter(|(k, _)| k.contains(&marker))
                .map(|(_, v)| v.clone())
                .collect(),
            Backing::Sled { .. } => self
                .tree()?
                .into_iter()
                .flat_map(|tree| tree.iter())
                .filter_map(Result::ok)
                .filter(|(k, _)| String::from_utf8_lossy(k).contains(&marker))
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
                .collect(),
        };
        Ok(values.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
    }

    /// Runs one `sim-pkg` command on `device`.
    fn run_sim_pkg(&self, device: &Device, args: &[String]) -> Result<ExecOutput, ExecError> {
        let ok = |stdout: String| ExecOutput {
            exit_code: 0,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        };
        let fail = |code: i32, stderr: String| ExecOutput {
            exit_code: code,
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        };
        let id = &device.id;
        let version_of = |component: &str| -> Result<Option<String>, ExecError> {
            if let Some(v) = self.get(&format!("{id}/installed/{component}"))? {
                return Ok(Some(v));
            }
            if let Some(v) = fact(device, &format!("sim.drift.{component}")) {
                return Ok(Some(v.to_string()));
            }
            Ok(device
                .components
                .iter()
                .find(|c| c.name == component)
                .map(|c| c.version.clone()))
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(match args.as_slice() {
            ["query", component] => match version_of(component)? {
                Some(v) => ok(format!("{v}\n")),
                None => fail(1, format!("{component} is not installed\n")),
            },
            ["install", component, version, patch, rest @ ..] => {
                let restart = rest == ["reboot"];
                let Some(current) = version_of(component)? else {
                    return Ok(fail(1, format!("{component} is not installed\n")));
                };
                self.bump(&format!("{id}/installs/{patch}"))?;
                if current == *version {
                    self.bump(&format!("{id}/duplicates/{patch}"))?;
                }
                let mut rate = permille(device, "sim.fail-permille");
                if fact(device, "sim.bad-patch") == Some(*patch) {
                    rate += permille(device, "sim.bad-patch-permille");
                }
                if draw(device, patch, "install") < rate {
                    return Ok(fail(
                        2,
                        format!("installing {patch} failed: flash verification error\n"),
                    ));
                }
                self.set(&format!("{id}/installed/{component}"), version)?;
                if restart {
                    self.pend(id, patch)?;
                }
                ok(format!("{component} {version} installed\n"))
            }
            ["rollback", component, version, rest @ ..] => {
                let restart = rest == ["reboot"];
                let key = format!("rollback:{component}");
                if draw(device, &key, "rollback") < permille(device, "sim.rollback-fail-permille") {
                    return Ok(fail(
                        2,
                        format!(
                            "restoring {component} {version} failed: the previous image is corrupt
"
                        ),
                    ));
                }
                self.set(&format!("{id}/installed/{component}"), version)?;
                if restart {
                    self.pend(id, &format!("rollback of {component}"))?;
                }
                ok(format!("{component} {version} restored\n"))
            }
            ["list"] => {
                let mut lines = String::new();
                // The inventory's components, and those only the device has.
                let extra = device.facts.iter().filter_map(|(k, _)| {
                    k.strip_prefix("sim.drift.")
                        .filter(|name| !device.components.iter().any(|c| c.name == *name))
                });
                let names: Vec<&str> = device
                    .components
                    .iter()
                    .map(|c| c.name.as_str())
                    .chain(extra)
                    .collect();
                for name in names {
                    if let Some(v) = version_of(name)? {
                        lines.push_str(&format!("{name}\t{v}\n"));
                    }
                }
                ok(lines)
            }
            ["boot"] => {
                // Restarting (`sim.reboot-seconds`): not up yet.
                match self.get(&format!("{id}/up-at"))?.as_deref() {
                    Some("never") => return Ok(fail(75, format!("{id} is restarting\n"))),
                    Some(at) if at.parse::<u128>().is_ok_and(|at| at > now_ms()) => {
                        return Ok(fail(75, format!("{id} is restarting\n")));
                    }
                    _ => {}
                }
                let boots = self
                    .get(&format!("{id}/boots"))?
                    .unwrap_or_else(|| "0".into());
                let pending = self.get(&format!("{id}/pending"))?.unwrap_or_default();
                if pending.is_empty() {
                    ok(format!("sim-boot-{boots}\n"))
                } else {
                    ok(format!("sim-boot-{boots}\npending {pending}\n"))
                }
            }
            ["reboot"] => {
                self.bump(&format!("{id}/boots"))?;
                self.set(&format!("{id}/pending"), "")?;
                let up_at = match fact(device, "sim.reboot-seconds") {
                    Some("never") => "never".to_string(),
                    Some(s) => {
                        let ms = s
                            .parse::<f64>()
                            .map_or(0, |s| (s.max(0.0) * 1000.0) as u128);
                        (now_ms() + ms).to_string()
                    }
                    None => "0".to_string(),
                };
                self.set(&format!("{id}/up-at"), &up_at)?;
                // A restart that takes real time is not undone by a crash of the host
                // while it waits for it: durable now. (An instant one, as the demo's,
                // is made durable with the engine's next flush.)
                if fact(device, "sim.reboot-seconds").is_some() {
                    self.flush()?;
                }
                ok(format!("{id} restarted\n"))
            }
            ["health", patch] => {
                if draw(device, patch, "health") < permille(device, "sim.unhealthy-permille") {
                    fail(1, "service degraded after the update\n".into())
                } else {
                    ok("ok\n".into())
                }
            }
            _ => fail(
                64,
                format!(
                    "usage: sim-pkg query|install|rollback|health|list|boot|reboot ... (got {args:?})\n"
                ),
            ),
        })
    }
}

impl DeviceExec for SimDevices {
    fn run<'a>(
        &'a self,
        device: &'a Device,
        request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        let result = if request.program == "sim-pkg" {
            let install_ms = fact(device, "sim.install-ms").and_then(|v| v.parse::<u64>().ok());
            if let (Some(ms), Some("install")) =
                (install_ms, request.args.first().map(String::as_str))
            {
                // An install that takes real time: the device is busy meanwhile.
                return Box::pin(async move {
                    let _busy = Installing::new(self, &device.id);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    self.run_sim_pkg(device, &request.args)
                });
            }
            if matches!(
                request.args.first().map(String::as_str),
                Some("list" | "boot")
            ) && self.is_installing(&device.id)
            {
                // A scan while an install runs: what the engine must never do.
                if let Err(e) = self.bump(&format!("{}/overlaps/scan", device.id)) {
                    return Box::pin(async move { Err(e) });
                }
            }
            self.run_sim_pkg(device, &request.args)
        } else {
            Err(ExecError::Permanent(format!(
                "program `{}` not found on simulated device {}",
                request.program, device.id
            )))
        };
        Box::pin(async move { result })
    }
}

/// A device marked as installing until dropped (also when the install is cut off).
struct Installing<'a> {
    devices: &'a SimDevices,
    id: &'a str,
}

impl<'a> Installing<'a> {
    fn new(devices: &'a SimDevices, id: &'a str) -> Installing<'a> {
        devices
            .installing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        Installing { devices, id }
    }
}

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        self.devices
            .installing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.id);
    }
}

fn transient(e: impl std::fmt::Display) -> ExecError {
    ExecError::Transient(format!("simulated device storage failed: {e}"))
}

fn fact<'a>(device: &'a Device, key: &str) -> Option<&'a str> {
    device
        .facts
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn permille(device: &Device, key: &str) -> u64 {
    fact(device, key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A number in 0..1000 fixed by (seed, device, patch, what): FNV-1a.
fn draw(device: &Device, patch: &str, what: &str) -> u64 {
    let seed = fact(device, "sim.seed").unwrap_or("0");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [seed, device.id.as_str(), patch, what] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash % 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringleader_types::Component;
    use std::time::Duration;

    fn device(fail: &str) -> Device {
        Device {
            id: "d1".into(),
            hostname: "d1".into(),
            tags: vec![],
            facts: vec![
                ("sim.seed".into(), "1".into()),
                ("sim.fail-permille".into(), fail.into()),
            ],
            components: vec![Component {
                name: "bios".into(),
                version: "2.0.0".into(),
                scheme: None,
                source: None,
            }],
        }
    }

    fn run(sim: &SimDevices, d: &Device, args: &[&str]) -> ExecOutput {
        let request = ExecRequest {
            program: "sim-pkg".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: vec![],
            timeout: Duration::from_secs(1),
        };
        futures_lite(sim.run(d, request)).unwrap()
    }

    fn futures_lite<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[tokio::test]
    async fn a_scan_while_an_install_takes_its_time_is_counted() {
        let sim = SimDevices::in_memory();
        let mut d = device("0");
        d.facts.push(("sim.install-ms".into(), "300".into()));
        let request = |args: &[&str]| ExecRequest {
            program: "sim-pkg".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: vec![],
            timeout: Duration::from_secs(1),
        };
        let install = sim.run(&d, request(&["install", "bios", "2.19.1", "p"]));
        let scan_meanwhile = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sim.run(&d, request(&["list"])).await
        };
        let (installed, listed) = tokio::join!(install, scan_meanwhile);
        assert_eq!(installed.unwrap().exit_code, 0);
        assert_eq!(listed.unwrap().exit_code, 0);
        assert_eq!(sim.total("overlaps").unwrap(), 1);
        // After it: not counted.
        sim.run(&d, request(&["list"])).await.unwrap();
        assert_eq!(sim.total("overlaps").unwrap(), 1);
    }

    #[test]
    fn a_device_keeps_its_state_and_counts_duplicate_installs() {
        let sim = SimDevices::in_memory();
        let d = device("0");
        assert_eq!(run(&sim, &d, &["query", "bios"]).stdout, b"2.0.0\n");
        assert_eq!(
            run(&sim, &d, &["install", "bios", "2.19.1", "p"]).exit_code,
            0
        );
        assert_eq!(run(&sim, &d, &["query", "bios"]).stdout, b"2.19.1\n");
        assert_eq!(sim.total("duplicates").unwrap(), 0);
        run(&sim, &d, &["install", "bios", "2.19.1", "p"]);
        assert_eq!(sim.total("duplicates").unwrap(), 1);
        assert_eq!(sim.total("installs").unwrap(), 2);
        run(&sim, &d, &["rollback", "bios", "2.0.0"]);
        assert_eq!(run(&sim, &d, &["query", "bios"]).stdout, b"2.0.0\n");
    }

    #[test]
    fn rollbacks_fail_at_their_own_rate_and_leave_the_version() {
        let sim = SimDevices::in_memory();
        let mut d = device("0");
        run(&sim, &d, &["install", "bios", "2.19.1", "p"]);
        d.facts
            .push(("sim.rollback-fail-permille".into(), "1000".into()));
        let out = run(&sim, &d, &["rollback", "bios", "2.0.0"]);
        assert_eq!(out.exit_code, 2);
        assert!(String::from_utf8_lossy(&out.stderr).contains("previous image is corrupt"));
        assert_eq!(run(&sim, &d, &["query", "bios"]).stdout, b"2.19.1\n");
    }

    #[test]
    fn failures_follow_the_rate_and_the_key_not_the_call_order() {
        let sim = SimDevices::in_memory();
        let always = device("1000");
        assert_ne!(
            run(&sim, &always, &["install", "bios", "3", "p"]).exit_code,
            0
        );
        let never = device("0");
        assert_eq!(
            run(&sim, &never, &["install", "bios", "3", "p"]).exit_code,
            0
        );
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let sim = SimDevices::open(dir.path()).unwrap();
            run(&sim, &device("0"), &["install", "bios", "2.19.1", "p"]);
            sim.flush().unwrap();
        }
        let sim = SimDevices::open(dir.path()).unwrap();
        assert_eq!(
            run(&sim, &device("0"), &["query", "bios"]).stdout,
            b"2.19.1\n"
        );
    }
}
