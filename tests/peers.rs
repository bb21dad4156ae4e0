//! Real peers the tests start on 127.0.0.1, and what they need: an OpenSSH server, a
//! Redfish BMC emulator (sushy-tools on libvirt's test driver), Debian packages and
//! device roots with their own dpkg database; and the tools that judge version order
//! (dpkg, rpm's Python bindings). Each peer is installed by
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
    let tree = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(tree.join(format!("usr/share/{name}/VERSION")), version).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Ringleader tests <tests@example.invalid>\nDescription: test package\n"
        ),
    )
    .unwrap();
    let failing = if fail {
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
    let path = dir.join(format!("{name}_{version}_all.deb"));
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
    child: Child,
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
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {}\n",
                host_key.display(),
                authorized.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(sshd)
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
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        Sshd {
            child,
            port,
            key,
            known_hosts,
            user: sh("id", &["-un"]).trim().to_string(),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            .arg(&update_log);
        if options.task_seconds > 0.0 {
            command.args(["--task-seconds", &options.task_seconds.to_string()]);
        }
        if let Some(text) = &options.fail_images {
            command.args(["--fail-images", text]);
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
