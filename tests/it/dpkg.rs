//! The dpkg installer against real dpkg: packages built here with `dpkg-deb`, each test
//! device its own root (`dpkg --root`), reached over the `local` transport and over SSH
//! (a real OpenSSH server on 127.0.0.1, started here with throwaway keys).

use super::*;
use ringleader_runtime::bindings::{Artifact, Readiness, RollbackTarget};
use ringleader_runtime::transport::{Route, Routes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sh(program: &str, args: &[&str]) -> String {
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

/// Builds `NAME_VERSION.deb` in `dir`; with `fail`, its postinst exits 1. Returns the
/// package as a patch artifact.
fn deb(dir: &Path, name: &str, version: &str, fail: bool) -> Artifact {
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
    if fail {
        let script = tree.join("DEBIAN/postinst");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'configuration failed' >&2\nexit 1\n",
        )
        .unwrap();
        sh("chmod", &["755", script.to_str().unwrap()]);
    }
    let file = dir.join(format!("{name}_{version}_all.deb"));
    sh(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            tree.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    let sha256 = sh("sha256sum", &[file.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    Artifact {
        url: format!("file://{}", file.display()),
        sha256,
        size: std::fs::metadata(&file).unwrap().len(),
    }
}

/// A device root with its own dpkg database, with `installed` already in it.
fn device_root(dir: &Path, name: &str, installed: &Artifact) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    // dpkg runs maintainer scripts chrooted into the root: give it a shell.
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
    let path = installed.url.strip_prefix("file://").unwrap();
    sh(
        "dpkg",
        &[
            &format!("--root={}", root.display()),
            "--force-not-root",
            "--log=/dev/null",
            "-i",
            path,
        ],
    );
    root
}

fn dpkg_device(id: &str, root: &Path, version: &str) -> ringleader_runtime::bindings::Device {
    let mut d = device(id, &[("hello", version)]);
    d.facts = vec![("local.root".into(), root.display().to_string())];
    d
}

fn hello(version: &str, artifact: &Artifact) -> ringleader_runtime::bindings::Patch {
    let mut p = patch(&format!("hello-{version}"), "hello", version);
    p.artifact = artifact.clone();
    p
}

async fn installer(routes: Routes) -> Plugin {
    let manifest = ringleader_runtime::Manifest::load(&manifest("dpkg-installer")).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared("dpkg-installer", &manifest.capabilities);
    let rt = runtime(
        grants,
        Services {
            exec: Arc::new(routes),
            ..Services::default()
        },
    );
    load(&rt, "dpkg-installer").await
}

/// The whole life of a patch on one device: preflight, install, verify, a failing
/// package, rollback; the same whatever the transport.
async fn install_verify_fail_and_roll_back(
    dpkg: &Plugin,
    dev: &ringleader_runtime::bindings::Device,
    debs: &[Artifact; 3],
) {
    let [_, good, bad] = debs;
    assert_eq!(
        dpkg.preflight(dev, &hello("1.1", good)).await.unwrap(),
        Readiness::Ready
    );
    let outcome = dpkg.install(dev, &hello("1.1", good)).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1");
    let report = dpkg.verify(dev, &hello("1.1", good)).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.1"));
    assert!(report.health.healthy);
    // Installed already: preflight says so, and a second install changes nothing.
    assert_eq!(
        dpkg.preflight(dev, &hello("1.1", good)).await.unwrap(),
        Readiness::AlreadyInstalled("1.1".into())
    );

    // A package whose maintainer script fails: a real failure, and an unhealthy device.
    let err = dpkg.install(dev, &hello("1.2", bad)).await.unwrap_err();
    assert!(err.to_string().contains("exited with"), "{err}");
    assert!(err.to_string().contains("configuration failed"), "{err}");
    let report = dpkg.verify(dev, &hello("1.2", bad)).await.unwrap();
    assert!(!report.health.healthy, "{report:?}");

    // Rolled back to 1.1 with its package.
    let back = dpkg
        .rollback(
            dev,
            &hello("1.2", bad),
            &RollbackTarget {
                version: "1.1".into(),
                artifact: Some(good.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(back.installed_version, "1.1");
    let report = dpkg.verify(dev, &hello("1.1", good)).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.1"));
    assert!(report.health.healthy);

    // Without the package to go back to, rollback says so.
    let err = dpkg
        .rollback(
            dev,
            &hello("1.1", good),
            &RollbackTarget {
                version: "1.0".into(),
                artifact: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no package of hello 1.0"), "{err}");
}

#[tokio::test]
async fn dpkg_installs_verifies_fails_and_rolls_back_on_a_local_root() {
    let dir = tempfile::tempdir().unwrap();
    let debs = [
        deb(dir.path(), "hello", "1.0", false),
        deb(dir.path(), "hello", "1.1", false),
        deb(dir.path(), "hello", "1.2", true),
    ];
    let root = device_root(dir.path(), "dev-1", &debs[0]);
    let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
    routes.set("dev-1", Route::Local);
    routes.set("dev-2", Route::Local);
    let dpkg = installer(routes).await;
    let dev = dpkg_device("dev-1", &root, "1.0");
    install_verify_fail_and_roll_back(&dpkg, &dev, &debs).await;

    // A package that is not what the patch published is never installed.
    let mut tampered = debs[1].clone();
    tampered.sha256 = "0".repeat(64);
    let mut fresh = device_root(dir.path(), "dev-2", &debs[0]);
    let dev2 = dpkg_device("dev-2", &fresh, "1.0");
    let readiness = dpkg.preflight(&dev2, &hello("1.1", &tampered)).await;
    assert!(
        matches!(&readiness, Ok(Readiness::Blocked(why)) if why.contains("not the published")),
        "{readiness:?}"
    );
    let err = dpkg
        .install(&dev2, &hello("1.1", &tampered))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
    fresh.push("var/lib/dpkg/status");
    assert!(
        std::fs::read_to_string(fresh)
            .unwrap()
            .contains("Version: 1.0")
    );
    // Only file:// packages on the device.
    let mut remote = debs[1].clone();
    remote.url = "https://mirror.example.net/hello_1.1_all.deb".into();
    assert!(matches!(
        dpkg.preflight(&dev2, &hello("1.1", &remote)).await,
        Ok(Readiness::Blocked(why)) if why.contains("file://")
    ));
}

/// An OpenSSH server on 127.0.0.1 with throwaway keys, stopped when dropped.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    user: String,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            // The project's own installer (what .ci/run runs); one test at a time.
            static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/install.sh");
            let status = Command::new(&script)
                .status()
                .expect("run tests/peers/install.sh");
            assert!(
                status.success() && sshd.exists(),
                "this test needs an OpenSSH server: run tests/peers/install.sh as root (.ci/run does)"
            );
        }
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

    fn route(&self, known_hosts: &Path) -> Route {
        Route::Ssh {
            host: "127.0.0.1".into(),
            port: Some(self.port),
            user: Some(self.user.clone()),
            key: Some(self.key.clone()),
            known_hosts: Some(known_hosts.to_owned()),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn dpkg_works_the_same_over_ssh_and_host_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let debs = [
        deb(dir.path(), "hello", "1.0", false),
        deb(dir.path(), "hello", "1.1", false),
        deb(dir.path(), "hello", "1.2", true),
    ];
    let root = device_root(dir.path(), "ssh-1", &debs[0]);
    let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
    routes.set("ssh-1", sshd.route(&sshd.known_hosts));
    // A device whose host key is not the one the operator knows.
    let wrong = dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}",
            sshd.port,
            std::fs::read_to_string(dir.path().join("client_key.pub")).unwrap()
        ),
    )
    .unwrap();
    routes.set("impostor", sshd.route(&wrong));
    let dpkg = installer(routes).await;

    let dev = dpkg_device("ssh-1", &root, "1.0");
    install_verify_fail_and_roll_back(&dpkg, &dev, &debs).await;

    let impostor = dpkg_device("impostor", &root, "1.0");
    let err = dpkg
        .verify(&impostor, &hello("1.1", &debs[1]))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("ssh to 127.0.0.1 failed"), "{message}");
    assert!(message.to_lowercase().contains("host key"), "{message}");
}
