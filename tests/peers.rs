//! Real peers the tests start on 127.0.0.1, and what they need: an OpenSSH server, a
//! Redfish BMC emulator (sushy-tools on libvirt's test driver), Debian packages and
//! device roots with their own dpkg database, real Debian systems reached over SSH
//! ([`DebianDevice`]) and a signed APT repository ([`AptRepo`]); and the tools that
//! judge version order (dpkg, rpm's Python bindings). Each peer is installed by
//! `tests/peers/install.sh` (what `.ci/run` runs); a test that finds one missing runs
//! that script itself, and fails, never skips, when it cannot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `program` and returns its standard output; panics with its error output when
/// it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tests/peers/install.sh` once per process when `present` says a peer is missing.
fn install_peers(what: &str, present: impl Fn() -> bool) {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/install.sh");
    let status = Command::new(&script)
        .status()
        .expect("run tests/peers/install.sh");
    assert!(
        status.success() && present(),
        "this test needs {what}: run tests/peers/install.sh as root (.ci/run does)"
    );
}

/// dpkg, the judge of the `deb` version order: `dpkg --compare-versions A OP B`.
pub fn dpkg() -> &'static Path {
    let dpkg = Path::new("/usr/bin/dpkg");
    install_peers("dpkg", || dpkg.exists());
    dpkg
}

/// The system Python (not a pyenv one) with rpm's own bindings (`python3-rpm`), the
/// judge of the `rpm` version order: `rpm.ver` (rpm's reading of `[E:]V[-R]`) and
/// `rpm.labelCompare`.
pub fn python3_rpm() -> &'static Path {
    let python = Path::new("/usr/bin/python3");
    install_peers("rpm's Python bindings (python3-rpm)", || {
        Command::new(python)
            .args(["-c", "import rpm"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    python
}

/// A Debian package built with `dpkg-deb`.
#[derive(Debug, Clone)]
pub struct Deb {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Deb {
    /// `file://` URL of the package.
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
}

/// Where a device root's packages record each time their maintainer script configures
/// them: one line `NAME VERSION` per install, counted on the device's side.
pub const INSTALL_LOG: &str = "var/log/ringleader-test-installs";

/// A file that makes every test package's postinst fail on the device that has it
/// (relative to the device's root): a package that breaks on some devices only.
pub const FAIL_MARKER: &str = "etc/ringleader-test-fail";

/// Builds `NAME_VERSION_all.deb` in `dir`. Its postinst appends `NAME VERSION` to
/// [`INSTALL_LOG`] in the device's root; with `fail`, or on a device with
/// [`FAIL_MARKER`], it then exits 1 (a real dpkg failure: the package stays
/// half-configured).
pub fn deb(dir: &Path, name: &str, version: &str, fail: bool) -> Deb {
    build_deb(
        dir,
        &DebSpec {
            fail,
            ..DebSpec::new(name, version)
        },
    )
}

/// What a test package built by [`build_deb`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    /// The source package it is built from (`Source:`), when not its own name: the
    /// binary packages of one source move together in a Debian update.
    pub source: Option<String>,
    /// `Depends:`, e.g. `libfoo1 (= 2.0-1)`.
    pub depends: Option<String>,
    /// Its postinst fails everywhere (see [`deb`]).
    pub fail: bool,
}

impl DebSpec {
    pub fn new(name: &str, version: &str) -> DebSpec {
        DebSpec {
            name: name.into(),
            version: version.into(),
            source: None,
            depends: None,
            fail: false,
        }
    }

    /// Built from source package `source`.
    pub fn source(mut self, source: &str) -> DebSpec {
        self.source = Some(source.into());
        self
    }

    /// Depends on `depends`.
    pub fn depends(mut self, depends: &str) -> DebSpec {
        self.depends = Some(depends.into());
        self
    }

    /// Its maintainer script fails.
    pub fn failing(mut self) -> DebSpec {
        self.fail = true;
        self
    }

    /// The package's file name, as `dpkg-deb` and the repository name it.
    pub fn file_name(&self) -> String {
        format!("{}_{}_all.deb", self.name, self.version)
    }
}

/// Builds the package `spec` in `dir` (see [`deb`] for what its postinst does).
pub fn build_deb(dir: &Path, spec: &DebSpec) -> Deb {
    let DebSpec {
        name,
        version,
        source,
        depends,
        fail,
    } = spec;
    let tree = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(tree.join(format!("usr/share/{name}/VERSION")), version).unwrap();
    let mut control = format!("Package: {name}\nVersion: {version}\n");
    if let Some(source) = source {
        control.push_str(&format!("Source: {source}\n"));
    }
    if let Some(depends) = depends {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    control.push_str(
        "Architecture: all\nMaintainer: Ringleader tests <tests@example.invalid>\nDescription: test package\n",
    );
    std::fs::write(tree.join("DEBIAN/control"), control).unwrap();
    let failing = if *fail {
        "echo 'configuration failed' >&2\nexit 1\n".to_string()
    } else {
        format!(
            "if [ -e /{FAIL_MARKER} ]; then echo 'configuration failed on this device' >&2; exit 1; fi\n"
        )
    };
    let script = tree.join("DEBIAN/postinst");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = configure ]; then echo '{name} {version}' >> /{INSTALL_LOG}; fi\n{failing}exit 0\n"
        ),
    )
    .unwrap();
    sh("chmod", &["755", script.to_str().unwrap()]);
    let path = dir.join(spec.file_name());
    sh(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            tree.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
    let sha256 = sh("sha256sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let size = std::fs::metadata(&path).unwrap().len();
    Deb { path, sha256, size }
}

/// A device root under `dir` with its own dpkg database (and a shell for maintainer
/// scripts, which dpkg runs chrooted into it), with `installed` already installed.
pub fn device_root(dir: &Path, name: &str, installed: &Deb) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/sh", root.join("bin/sh")).unwrap();
    for lib in sh("ldd", &["/bin/sh"])
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, to).unwrap();
    }
    dpkg_install(&root, &installed.path);
    root
}

/// Makes every test package's postinst fail in `root` from now on.
pub fn break_device(root: &Path) {
    let marker = root.join(FAIL_MARKER);
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(marker, "").unwrap();
}

/// `dpkg -i` of `package` into `root`, as an operator would have done before.
pub fn dpkg_install(root: &Path, package: &Path) {
    sh(
        "dpkg",
        &[
            &format!("--root={}", root.display()),
            "--force-not-root",
            "--log=/dev/null",
            "-i",
            package.to_str().unwrap(),
        ],
    );
}

/// The installs the device root's packages recorded (`NAME VERSION` each).
pub fn installs(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join(INSTALL_LOG))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The version dpkg has installed of `package` in `root`, if any.
pub fn dpkg_version(root: &Path, package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !version.is_empty()).then_some(version)
}

/// An OpenSSH server on 127.0.0.1 with throwaway keys, stopped when dropped.
#[derive(Debug)]
pub struct Sshd {
    /// The listening server; `None` while it is down ([`Sshd::stop`]).
    child: Arc<Mutex<Option<Child>>>,
    config: PathBuf,
    pub port: u16,
    /// The client's private key, authorized on the server.
    pub key: PathBuf,
    /// A known_hosts file holding the server's host key.
    pub known_hosts: PathBuf,
    /// The user to log in as (whoever runs the tests).
    pub user: String,
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        Sshd::start_with(dir, "")
    }

    /// An OpenSSH server whose sessions are chrooted into `root` (sshd's
    /// `ChrootDirectory`): whoever logs in finds `root` as `/`, and every command runs
    /// there, as on a machine of its own. `root` and every directory above it must be
    /// owned by root and writable by no one else (sshd checks).
    pub fn start_chrooted(dir: &Path, root: &Path) -> Sshd {
        Sshd::start_with(dir, &format!("ChrootDirectory {}\n", root.display()))
    }

    fn start_with(dir: &Path, extra_config: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        install_peers("an OpenSSH server", || sshd.exists());
        let key = dir.join("client_key");
        let host_key = dir.join("host_key");
        for k in [&key, &host_key] {
            sh(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", k.to_str().unwrap()],
            );
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_key.pub"), &authorized).unwrap();
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {}\n{extra_config}",
                host_key.display(),
                authorized.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let child = Sshd::spawn(&config, port);
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        Sshd {
            child: Arc::new(Mutex::new(Some(child))),
            config,
            port,
            key,
            known_hosts,
            user: sh("id", &["-un"]).trim().to_string(),
        }
    }

    /// Starts the server with `config` and waits until it listens on `port`.
    fn spawn(config: &Path, port: u16) -> Child {
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Stops listening (connections are refused) until [`Sshd::resume`]; sessions
    /// already open end on their own.
    pub fn stop(&self) {
        Sshd::kill(&self.child);
    }

    /// Listens again on the same port, with the same keys.
    pub fn resume(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if child.is_none() {
            *child = Some(Sshd::spawn(&self.config, self.port));
        }
    }

    fn kill(child: &Mutex<Option<Child>>) {
        if let Some(mut c) = child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        Sshd::kill(&self.child);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `tests/peers/redfish/install.sh` puts the emulator's Python environment.
pub const REDFISH_VENV: &str = "/var/cache/ringleader-peers/redfish-venv";

/// A Redfish BMC emulator (sushy-tools 2.2.0 on libvirt's `test:///default`) with
/// systems `node-1` .. `node-N`, each at BIOS version 1.0.0, and a firmware inventory
/// (`NIC-node-N`, SoftwareId `nic`, one per system; `BMC`, SoftwareId `bmc`), all at
/// 1.0.0, where an update leaves the replaced version as `Previous-<id>`; stopped when
/// dropped.
/// See `tests/peers/redfish/NOTES.md` for how it behaves.
#[derive(Debug)]
pub struct Redfish {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// One JSON line per firmware update the emulator applied.
    pub update_log: PathBuf,
    /// With [`RedfishOptions::tls`]: the CA that signed its certificate (PEM).
    pub ca: Option<PathBuf>,
}

/// How the Redfish emulator behaves beyond sushy's defaults.
#[derive(Debug, Clone, Default)]
pub struct RedfishOptions {
    /// (user, password): every request but the service root needs HTTP basic
    /// authentication, as on a real BMC.
    pub login: Option<(String, String)>,
    /// Updates run as tasks for this many seconds (202 and a task monitor, as real BMCs
    /// answer; the update is applied when the task ends, polled or not); 0: sushy's own
    /// 204, applied at once.
    pub task_seconds: f64,
    /// With `task_seconds`: images whose URI contains this fail (task `Exception`).
    pub fail_images: Option<String>,
    /// BIOS updates are staged until the system's next `ComputerSystem.Reset` (as iDRAC
    /// and iLO do), and SimpleUpdate lists `OnReset` in its
    /// `@Redfish.OperationApplyTimeSupport`.
    pub apply_on_reset: bool,
    /// After a reset, a system is in its POST (not up) for this many seconds.
    pub reset_seconds: f64,
    /// Systems (by name) that never come back from a reset.
    pub stuck_systems: Vec<String>,
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by a CA made for the test,
    /// [`Redfish::ca`] (what an operator gives as the device's `ca_file`).
    pub tls: bool,
}

impl Redfish {
    pub fn start(dir: &Path, systems: usize) -> Redfish {
        Redfish::start_with(dir, systems, &RedfishOptions::default())
    }

    pub fn start_with(dir: &Path, systems: usize, options: &RedfishOptions) -> Redfish {
        let python = Path::new(REDFISH_VENV).join("bin/python");
        let ready = || {
            Command::new(&python)
                .args(["-c", "import libvirt, sushy_tools.emulator.main"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        install_peers("the Redfish emulator (sushy-tools)", ready);
        let update_log = dir.join("redfish-updates.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/redfish/sushy_peer.py");
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args(["--port", "0", "--systems", &systems.to_string()])
            .arg("--update-log")
            .arg(&update_log)
            // sushy's SQLite state in a folder of this peer's own, not one every
            // emulator of the machine shares (peers started at once lock each other).
            .arg("--state-dir")
            .arg(dir);
        if options.task_seconds > 0.0 {
            command.args(["--task-seconds", &options.task_seconds.to_string()]);
        }
        if let Some(text) = &options.fail_images {
            command.args(["--fail-images", text]);
        }
        if options.apply_on_reset {
            command.arg("--apply-on-reset");
        }
        if options.reset_seconds > 0.0 {
            command.args(["--reset-seconds", &options.reset_seconds.to_string()]);
        }
        if !options.stuck_systems.is_empty() {
            command.args(["--stuck-systems", &options.stuck_systems.join(",")]);
        }
        let ca = options.tls.then(|| {
            // A small CA of the operator's, and the BMC's certificate signed by it.
            let path = |name: &str| dir.join(name).display().to_string();
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ];
            let mut ca = vec![
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=ringleader-test-ca",
            ];
            ca.extend(ec);
            let (ca_key, ca_pem) = (path("redfish-ca.key"), path("redfish-ca.pem"));
            ca.extend(["-keyout", &ca_key, "-out", &ca_pem]);
            sh("openssl", &ca);
            let (key, csr, cert) = (
                path("redfish.key"),
                path("redfish.csr"),
                path("redfish.pem"),
            );
            let mut request = vec!["req", "-subj", "/CN=127.0.0.1"];
            request.extend(ec);
            request.extend(["-keyout", &key, "-out", &csr]);
            sh("openssl", &request);
            let ext = path("redfish.ext");
            std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
            sh(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_pem,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    &cert,
                ],
            );
            command.args(["--tls-cert", &cert, "--tls-key", &key]);
            PathBuf::from(ca_pem)
        });
        if let Some((user, password)) = &options.login {
            // An htpasswd file with a bcrypt hash (cost 4: sushy checks it on every request).
            let line = Command::new(&python)
                .args([
                    "-c",
                    "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(rounds=4)).decode())",
                    user,
                    password,
                ])
                .output()
                .expect("hash the BMC password");
            assert!(
                line.status.success(),
                "bcrypt: {}",
                String::from_utf8_lossy(&line.stderr)
            );
            let htpasswd = dir.join("redfish-htpasswd");
            std::fs::write(&htpasswd, &line.stdout).unwrap();
            command.arg("--htpasswd").arg(htpasswd);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Redfish emulator");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the Redfish emulator did not start: {line:?}"))
            .to_string();
        Redfish {
            child,
            url,
            update_log,
            ca,
        }
    }

    /// The updates the emulator applied, `(system, from, to)`, in order; for a firmware
    /// inventory entry, its id instead of a system.
    pub fn updates(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.update_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let update: serde_json::Value = serde_json::from_str(line).ok()?;
                let field = |name: &str| update[name].as_str().map(str::to_string);
                let target = field("system").or_else(|| field("item"))?;
                Some((target, field("from")?, field("to")?))
            })
            .collect()
    }

    /// The BIOS updates the emulator staged for a reset (`apply_on_reset`), `(system,
    /// image)`, in order.
    pub fn staged(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.update_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let update: serde_json::Value = serde_json::from_str(line).ok()?;
                let field = |name: &str| update[name].as_str().map(str::to_string);
                Some((field("system")?, field("staged")?))
            })
            .collect()
    }
}

impl Drop for Redfish {
    fn drop(&mut self) {
        // SIGTERM: the emulator stops serving and closes its libvirt connection.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `files` (URL path -> body) over HTTP on 127.0.0.1 until the process ends;
/// 404 for any other path. Returns `http://127.0.0.1:PORT`. For feeds and catalogs.
pub fn serve_files(files: std::collections::HashMap<String, Vec<u8>>) -> String {
    FileServer::start(files).url
}

/// A static HTTP server on 127.0.0.1, as feeds and catalogs are served: each file has an
/// `ETag` (a hash of its body) and a request with a matching `If-None-Match` gets
/// `304 Not Modified`. It logs what it answered, and its files can be changed.
#[derive(Debug, Clone)]
pub struct FileServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    files: Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>>,
    answered: Arc<Mutex<Vec<(String, u16)>>>,
}

impl FileServer {
    pub fn start(files: std::collections::HashMap<String, Vec<u8>>) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = FileServer {
            url: format!("http://{}", listener.local_addr().unwrap()),
            files: Arc::new(Mutex::new(files)),
            answered: Arc::default(),
        };
        let (files, answered) = (server.files.clone(), server.answered.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request_line = String::new();
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut reader = BufReader::new(clone);
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut if_none_match = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("if-none-match")
                    {
                        if_none_match = Some(value.trim().to_string());
                    }
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let body = files.lock().unwrap().get(path).cloned();
                let (status, etag, body) = match body {
                    Some(body) => {
                        let etag = format!("\"{:016x}\"", fnv1a(&body));
                        if if_none_match.as_deref() == Some(etag.as_str()) {
                            (304, Some(etag), Vec::new())
                        } else {
                            (200, Some(etag), body)
                        }
                    }
                    None => (404, None, b"not found".to_vec()),
                };
                answered.lock().unwrap().push((path.to_string(), status));
                let reason = match status {
                    200 => "OK",
                    304 => "Not Modified",
                    _ => "Not Found",
                };
                let etag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\n{etag}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        server
    }

    /// Replaces (or adds) the file at `path`.
    pub fn set(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), body);
    }

    /// Removes the file at `path` (it answers 404 from now on).
    pub fn remove(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }

    /// What the server answered, in order: (path, status).
    pub fn answered(&self) -> Vec<(String, u16)> {
        self.answered.lock().unwrap().clone()
    }

    /// What the server answered after its first `from` answers.
    pub fn answered_since(&self, from: usize) -> Vec<(String, u16)> {
        let answered = self.answered.lock().unwrap();
        answered.get(from..).unwrap_or_default().to_vec()
    }
}

/// FNV-1a, 64 bits: the files' ETags.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A small filesystem of its own (tmpfs, mounted as root, as CI runs), unmounted when
/// dropped.
#[derive(Debug)]
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mount = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            mount.status.success(),
            "this test mounts a small tmpfs and must run as root (as .ci/run does): {}",
            String::from_utf8_lossy(&mount.stderr)
        );
        SmallDisk { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk: a file that grows until the disk says it is full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).unwrap();
        // Smaller and smaller blocks, down to one byte: no room is left.
        for size in [64 << 10, 4 << 10, 1] {
            let block = vec![0u8; size];
            while file.write_all(&block).is_ok() {}
        }
        let _ = file.sync_all();
    }

    /// Removes what [`SmallDisk::fill`] wrote.
    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// The cached Debian root the [`DebianDevice`]s are copies of: Debian 12 built by
/// `tests/peers/debian-root.sh` with mmdebstrap (variant `apt`, ~72 MB, ~1 min to
/// build) into `/var/cache/ringleader-peers`, once; built again when missing or
/// unreadable, under a lock, so parallel tests wait for one build.
pub fn debian_root_tarball() -> &'static Path {
    static TARBALL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TARBALL.get_or_init(|| {
        install_peers("mmdebstrap", || Path::new("/usr/bin/mmdebstrap").exists());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/debian-root.sh");
        let out = Command::new(&script)
            .output()
            .expect("run tests/peers/debian-root.sh");
        assert!(
            out.status.success(),
            "the apt tests need a Debian root: tests/peers/debian-root.sh failed (run it as root, as .ci/run does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// How an [`AptRepo`] signs its index (`InRelease` and `Release.gpg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// With the repository's own key, the one devices trust.
    Key,
    /// With another key, one devices have never seen.
    OtherKey,
    /// Not at all: `Release` only.
    Unsigned,
}

/// A signed APT repository on 127.0.0.1 over HTTP, as `apt-ftparchive` builds one: a
/// flat repository (`deb URL ./`) with `Packages`, `Release`, and `InRelease` and
/// `Release.gpg` signed with a throwaway key made for it (its own `GNUPGHOME`). It can
/// hold several versions of a package; versions can be taken out and the index signed
/// otherwise, as a test needs.
#[derive(Debug)]
pub struct AptRepo {
    pub server: FileServer,
    /// `http://127.0.0.1:PORT/`, what devices' sources name.
    pub url: String,
    /// The repository's public key (a binary OpenPGP keyring), what devices trust.
    pub key: PathBuf,
    dir: tempfile::TempDir,
}

impl AptRepo {
    /// A repository holding `packages`, signed with its own key.
    pub fn start(packages: &[DebSpec]) -> AptRepo {
        install_peers("apt-ftparchive (apt-utils) and gpg", || {
            Path::new("/usr/bin/apt-ftparchive").exists() && Path::new("/usr/bin/gpg").exists()
        });
        let dir = tempfile::tempdir().unwrap();
        for (home, name) in [("gnupg", "own"), ("gnupg-other", "other")] {
            let home = dir.path().join(home);
            std::fs::create_dir(&home).unwrap();
            sh("chmod", &["700", home.to_str().unwrap()]);
            gpg(
                &home,
                &[
                    "--passphrase",
                    "",
                    "--quick-gen-key",
                    &format!("Ringleader test repository ({name} key)"),
                    "ed25519",
                    "sign",
                    "never",
                ],
            );
        }
        let key = dir.path().join("repo-key.gpg");
        gpg(
            &dir.path().join("gnupg"),
            &["--output", key.to_str().unwrap(), "--export"],
        );
        let pool = dir.path().join("repo/pool");
        let build = dir.path().join("build");
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::create_dir_all(&build).unwrap();
        for spec in packages {
            let deb = build_deb(&build, spec);
            std::fs::rename(&deb.path, pool.join(spec.file_name())).unwrap();
        }
        let server = FileServer::start(std::collections::HashMap::new());
        let repo = AptRepo {
            url: format!("{}/", server.url),
            server,
            key,
            dir,
        };
        repo.publish(Signing::Key);
        repo
    }

    /// Writes the index of what the pool holds, signed as `signing` says, and serves it.
    pub fn publish(&self, signing: Signing) {
        let repo = self.dir.path().join("repo");
        let index = self.dir.path().join("index");
        let _ = std::fs::remove_dir_all(&index);
        std::fs::create_dir_all(&index).unwrap();
        let packages = Command::new("apt-ftparchive")
            .args(["packages", "pool"])
            .current_dir(&repo)
            .output()
            .expect("run apt-ftparchive packages");
        assert!(packages.status.success(), "apt-ftparchive packages failed");
        std::fs::write(index.join("Packages"), &packages.stdout).unwrap();
        let release = Command::new("apt-ftparchive")
            .args([
                "-o",
                "APT::FTPArchive::Release::Origin=ringleader-tests",
                "-o",
                "APT::FTPArchive::Release::Label=ringleader-tests",
                "release",
                ".",
            ])
            .current_dir(&index)
            .output()
            .expect("run apt-ftparchive release");
        assert!(release.status.success(), "apt-ftparchive release failed");
        std::fs::write(index.join("Release"), &release.stdout).unwrap();
        let home = match signing {
            Signing::Key => Some(self.dir.path().join("gnupg")),
            Signing::OtherKey => Some(self.dir.path().join("gnupg-other")),
            Signing::Unsigned => None,
        };
        let release = index.join("Release");
        if let Some(home) = &home {
            let (inrelease, detached) = (index.join("InRelease"), index.join("Release.gpg"));
            gpg(
                home,
                &[
                    "--clearsign",
                    "--output",
                    inrelease.to_str().unwrap(),
                    release.to_str().unwrap(),
                ],
            );
            gpg(
                home,
                &[
                    "--detach-sign",
                    "--armor",
                    "--output",
                    detached.to_str().unwrap(),
                    release.to_str().unwrap(),
                ],
            );
        }
        for name in ["Packages", "Release", "InRelease", "Release.gpg"] {
            match std::fs::read(index.join(name)) {
                Ok(body) => self.serve(name, body),
                Err(_) => self.unserve(name),
            }
        }
        for entry in std::fs::read_dir(repo.join("pool")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            self.serve(
                &format!("pool/{name}"),
                std::fs::read(entry.path()).unwrap(),
            );
        }
    }

    /// Serves `body` at `path` of the repository: apt asks a flat repository
    /// (`Suites: ./`) for `/./PATH`, which a web server reads as `/PATH`; both are
    /// served.
    fn serve(&self, path: &str, body: Vec<u8>) {
        self.server.set(&format!("/./{path}"), body.clone());
        self.server.set(&format!("/{path}"), body);
    }

    fn unserve(&self, path: &str) {
        self.server.remove(&format!("/./{path}"));
        self.server.remove(&format!("/{path}"));
    }

    /// Takes `name` `version` out of the repository (index signed with its own key).
    pub fn remove(&self, name: &str, version: &str) {
        let file = DebSpec::new(name, version).file_name();
        std::fs::remove_file(self.dir.path().join("repo/pool").join(&file)).unwrap();
        self.unserve(&format!("pool/{file}"));
        self.publish(Signing::Key);
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        // The gpg-agents the key generation and signing started.
        for home in ["gnupg", "gnupg-other"] {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.dir.path().join(home))
                .args(["--kill", "all"])
                .output();
        }
    }
}

/// `gpg` in batch mode with `home` as its `GNUPGHOME`.
fn gpg(home: &Path, args: &[&str]) {
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--quiet"])
        .args(args)
        .output()
        .expect("run gpg");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where [`DebianDevice`] roots live: a directory owned by root and writable by no one
/// else, as sshd's `ChrootDirectory` needs of every directory above a chroot (a temp
/// dir under `/tmp` would not do: `/tmp` is writable by all).
pub const DEVICES_DIR: &str = "/var/cache/ringleader-peers/devices";

/// A real Debian system for a test: a fresh copy of [`debian_root_tarball`] in a tmpfs
/// of its own (~0.3 s, ~75 MB of memory) with its own dpkg and apt, reached over SSH through an OpenSSH server of its own
/// whose sessions are chrooted into it (sshd's `ChrootDirectory`; one sshd per device,
/// so that devices share nothing). Its apt trusts the key of an [`AptRepo`]
/// (`/etc/apt/keyrings/ringleader-test.gpg`) and has that repository as its only
/// source (`signed-by`, signature checks on). Nothing of the host is mounted into it
/// (no `/proc`, `/dev` or `/sys`): the tarball brings `/dev/null` and the other device
/// nodes apt and dpkg need, and neither needs `/proc`. Dropping it kills whatever still
/// runs inside it, stops its sshd, unmounts its tmpfs and removes the directory.
#[derive(Debug)]
pub struct DebianDevice {
    pub root: PathBuf,
    pub sshd: Sshd,
    /// With [`DebianDevice::enable_reboot`]: the restarts its reboot command made, and
    /// the flag that stops the thread acting them out.
    reboots: Arc<std::sync::atomic::AtomicUsize>,
    stop_reboots: Arc<std::sync::atomic::AtomicBool>,
    /// The root's filesystem, unmounted when the device drops (after its sshd stops).
    _tmpfs: Tmpfs,
    /// Holds the root and the sshd's files; removed last.
    _dir: tempfile::TempDir,
}

/// A tmpfs mounted at a path, unmounted when dropped.
#[derive(Debug)]
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .output()
            .is_ok_and(|o| o.status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        }
    }
}

impl DebianDevice {
    /// A device with `installed` (`NAME=VERSION` each) installed from `repo` by apt, as
    /// an operator would have.
    pub fn start(repo: &AptRepo, installed: &[&str]) -> DebianDevice {
        let tarball = debian_root_tarball();
        std::fs::create_dir_all(DEVICES_DIR).unwrap();
        sh(
            "chmod",
            &["755", "/var/cache/ringleader-peers", DEVICES_DIR],
        );
        let dir = tempfile::Builder::new()
            .prefix("device-")
            .tempdir_in(DEVICES_DIR)
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        // A tmpfs of its own: a copy in memory takes ~0.3 s, on a busy disk up to 10.
        let mount = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1g,mode=755", "tmpfs"])
            .arg(&root)
            .output()
            .expect("run mount");
        assert!(
            mount.status.success(),
            "a Debian device is a tmpfs mounted as root (as .ci/run runs): {}",
            String::from_utf8_lossy(&mount.stderr)
        );
        let tmpfs = Tmpfs(root.clone());
        sh(
            "tar",
            &[
                "--extract",
                "--file",
                tarball.to_str().unwrap(),
                "--directory",
                root.to_str().unwrap(),
            ],
        );
        let keyrings = root.join("etc/apt/keyrings");
        std::fs::create_dir_all(&keyrings).unwrap();
        std::fs::copy(&repo.key, keyrings.join("ringleader-test.gpg")).unwrap();
        let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
        let ssh = dir.path().join("ssh");
        std::fs::create_dir(&ssh).unwrap();
        let device = DebianDevice {
            sshd: Sshd::start_chrooted(&ssh, &root),
            reboots: Arc::default(),
            stop_reboots: Arc::default(),
            root,
            _tmpfs: tmpfs,
            _dir: dir,
        };
        device.use_repository(&repo.url);
        if !installed.is_empty() {
            device.apt(&["update"]);
            let mut args = vec!["install", "-y"];
            args.extend(installed);
            device.apt(&args);
        }
        device
    }

    /// Makes `url` the device's only APT source (the repository's key stays trusted).
    pub fn use_repository(&self, url: &str) {
        std::fs::write(
            self.root
                .join("etc/apt/sources.list.d/ringleader-test.sources"),
            format!(
                "Types: deb\nURIs: {url}\nSuites: ./\nSigned-By: /etc/apt/keyrings/ringleader-test.gpg\n"
            ),
        )
        .unwrap();
    }

    /// Gives the device's `/var/cache/apt/archives` (where apt downloads) a filesystem
    /// of its own with no free space left: a full tmpfs, unmounted when the returned
    /// guard drops (drop it before the device).
    pub fn fill_archives(&self) -> impl Drop + std::fmt::Debug {
        let archives = self.root.join("var/cache/apt/archives");
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=64k,mode=755",
                "tmpfs",
                archives.to_str().unwrap(),
            ],
        );
        let guard = Tmpfs(archives.clone());
        std::fs::create_dir_all(archives.join("partial")).unwrap();
        use std::io::Write;
        let mut file = std::fs::File::create(archives.join("filler")).unwrap();
        for size in [4 << 10, 1] {
            let block = vec![0u8; size];
            while file.write_all(&block).is_ok() {}
        }
        let _ = file.sync_all();
        guard
    }

    /// Runs `program` inside the device (chrooted, an empty environment but `PATH`).
    pub fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("chroot")
            .arg(&self.root)
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("run chroot")
    }

    /// `apt-get ARGS` inside the device, as an operator would run it; panics when it
    /// fails.
    pub fn apt(&self, args: &[&str]) -> String {
        let mut all = vec!["-q", "-o", "Dpkg::Use-Pty=0"];
        all.extend(args);
        let out = self.run("apt-get", &all);
        assert!(
            out.status.success(),
            "apt-get {args:?} in {}: {}{}",
            self.root.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Version and dpkg state (`${db:Status-Abbrev}`, e.g. `ii`, `iF`) of `package`,
    /// read with `dpkg-query` inside the device; `None` when it is not installed.
    pub fn package(&self, package: &str) -> Option<(String, String)> {
        let out = self.run(
            "dpkg-query",
            &["-W", "-f=${Version}\t${db:Status-Abbrev}", package],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let (version, status) = text.split_once('\t')?;
        (out.status.success() && !version.is_empty())
            .then(|| (version.to_string(), status.trim().to_string()))
    }

    /// The package changes of each apt transaction the device recorded
    /// (`/var/log/apt/history.log`), oldest first: one string per transaction, its
    /// `Install:`, `Upgrade:`, `Downgrade:` and `Remove:` lines joined, without
    /// architectures: `Upgrade: libfoo1 (1.0-1, 2.0-1), foo-tools (1.0-1, 2.0-1)`.
    pub fn transactions(&self) -> Vec<String> {
        let log =
            std::fs::read_to_string(self.root.join("var/log/apt/history.log")).unwrap_or_default();
        log.split("\n\n")
            .map(|entry| {
                entry
                    .lines()
                    .filter(|l| {
                        ["Install:", "Upgrade:", "Downgrade:", "Remove:"]
                            .iter()
                            .any(|p| l.starts_with(p))
                    })
                    .map(without_architectures)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// `libfoo1:amd64 (1.0-1, 2.0-1)` as `libfoo1 (1.0-1, 2.0-1)`.
fn without_architectures(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let package = words.get(i + 1).is_some_and(|next| next.starts_with('('));
            match word.split_once(':') {
                Some((name, _)) if package => name,
                _ => word,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a [`DebianDevice`]'s reboot command asks for its restart (inside its root).
const REBOOT_REQUEST: &str = "run/ringleader-peer/reboot-requested";

impl DebianDevice {
    /// Gives the device a reboot that can be observed from outside, as a real one: its
    /// `systemctl reboot` (what the Debian installers run; a chroot has no systemd)
    /// asks for a restart and returns; the device then stops answering SSH (its sshd
    /// stops, so connections are refused) for `down`, or for good with `None` (a
    /// machine that never comes back), and comes back with a new boot id
    /// (`/proc/sys/kernel/random/boot_id`, a plain file in this root, which has no
    /// `/proc`) and without `/run/reboot-required` (a tmpfs on a real system). It
    /// starts with the boot id `boot-0`.
    pub fn enable_reboot(&self, down: Option<Duration>) {
        use std::sync::atomic::Ordering;
        let random = self.root.join("proc/sys/kernel/random");
        std::fs::create_dir_all(&random).unwrap();
        std::fs::write(random.join("boot_id"), "boot-0\n").unwrap();
        std::fs::create_dir_all(self.root.join("run/ringleader-peer")).unwrap();
        let systemctl = self.root.join("usr/bin/systemctl");
        std::fs::write(
            &systemctl,
            format!(
                "#!/bin/sh\n# A Ringleader test device's restart: tests/peers.rs DebianDevice::enable_reboot.\n\
                 case \"$*\" in\n  reboot) : > /{REBOOT_REQUEST}; echo 'rebooting'; exit 0 ;;\n  \
                 *) echo \"systemctl: only 'systemctl reboot' works on this test device (got: $*)\" >&2; exit 1 ;;\nesac\n"
            ),
        )
        .unwrap();
        sh("chmod", &["755", systemctl.to_str().unwrap()]);
        let (root, child, config, port) = (
            self.root.clone(),
            self.sshd.child.clone(),
            self.sshd.config.clone(),
            self.sshd.port,
        );
        let (reboots, stop) = (self.reboots.clone(), self.stop_reboots.clone());
        std::thread::spawn(move || {
            let request = root.join(REBOOT_REQUEST);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if !request.exists() {
                    continue;
                }
                // Let the command's session end as `systemctl reboot` returns, then go
                // down.
                std::thread::sleep(Duration::from_millis(300));
                Sshd::kill(&child);
                let n = reboots.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = std::fs::write(
                    root.join("proc/sys/kernel/random/boot_id"),
                    format!("boot-{n}\n"),
                );
                for file in ["run/reboot-required", "run/reboot-required.pkgs"] {
                    let _ = std::fs::remove_file(root.join(file));
                }
                let _ = std::fs::remove_file(&request);
                let Some(down) = down else {
                    return;
                };
                let until = Instant::now() + down;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Under the lock, as the device's drop stops the server under it.
                let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
                if c.is_none() && !stop.load(Ordering::Relaxed) {
                    *c = Some(Sshd::spawn(&config, port));
                }
            }
        });
    }

    /// The restarts the device's reboot command made so far.
    pub fn reboots(&self) -> usize {
        self.reboots.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The device's boot id (`/proc/sys/kernel/random/boot_id` in its root).
    pub fn boot_id(&self) -> String {
        std::fs::read_to_string(self.root.join("proc/sys/kernel/random/boot_id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for DebianDevice {
    fn drop(&mut self) {
        self.stop_reboots
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Whatever still runs inside the device (a command its sshd started).
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for entry in procs.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if pid.parse::<u32>().is_ok()
                    && std::fs::read_link(entry.path().join("root")).is_ok_and(|r| r == self.root)
                {
                    let _ = Command::new("kill").args(["-KILL", &pid]).output();
                }
            }
        }
        // Then the fields: the sshd is stopped, the copy removed.
    }
}
