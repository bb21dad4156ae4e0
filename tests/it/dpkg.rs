//! The dpkg installer against real dpkg: packages built here with `dpkg-deb`, each test
//! device its own root (`dpkg --root`), reached over the `local` transport and over SSH
//! (a real OpenSSH server on 127.0.0.1, started here with throwaway keys).

use super::*;
use ringleader_runtime::transport::{Route, Routes};
use ringleader_tests::peers::{self, Deb, Sshd};
use ringleader_types::{Artifact, Readiness, RollbackTarget};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn artifact(deb: &Deb) -> Artifact {
    Artifact {
        url: deb.url(),
        sha256: deb.sha256.clone(),
        size: deb.size,
    }
}

/// Builds `NAME_VERSION.deb` in `dir` (see [`peers::deb`]) as a patch artifact.
fn deb(dir: &Path, name: &str, version: &str, fail: bool) -> Artifact {
    artifact(&peers::deb(dir, name, version, fail))
}

/// A device root with its own dpkg database, with `installed` already in it.
fn device_root(dir: &Path, name: &str, installed: &Artifact) -> PathBuf {
    let package = Deb {
        path: PathBuf::from(installed.url.strip_prefix("file://").unwrap()),
        sha256: installed.sha256.clone(),
        size: installed.size,
    };
    peers::device_root(dir, name, &package)
}

fn dpkg_device(id: &str, root: &Path, version: &str) -> ringleader_types::Device {
    let mut d = device(id, &[("hello", version)]);
    d.facts = vec![("local.root".into(), root.display().to_string())];
    d
}

fn hello(version: &str, artifact: &Artifact) -> ringleader_types::Patch {
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
    dev: &ringleader_types::Device,
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
    // The installer is built against WIT 0.3.0 and sees each patch's scheme: an RPM
    // package of the same name is not for dpkg; a Debian one is.
    assert_eq!(dpkg.wit_version().to_string(), "0.3.0");
    let mut rpm = hello("1.1", &debs[1]);
    rpm.scheme = Some(ringleader_types::Scheme::Rpm);
    let readiness = dpkg.preflight(&dev2, &rpm).await;
    assert!(
        matches!(&readiness, Ok(Readiness::Blocked(why))
            if why == "patch hello-1.1 is for rpm versions, and dpkg installs Debian packages (deb versions)"),
        "{readiness:?}"
    );
    let mut deb = hello("1.1", &debs[1]);
    deb.scheme = Some(ringleader_types::Scheme::Deb);
    assert_eq!(dpkg.preflight(&dev2, &deb).await.unwrap(), Readiness::Ready);

    // A scan reads the root's own dpkg database, whatever the inventory says: dev-1
    // was rolled back to 1.1 above, its inventory still says 1.0.
    let scan = dpkg.scan(&dev).await.unwrap();
    let hello = scan
        .components
        .iter()
        .find(|c| c.name == "hello")
        .unwrap_or_else(|| panic!("{scan:?}"));
    assert_eq!(
        (
            hello.version.as_str(),
            hello.source.as_deref(),
            hello.scheme
        ),
        ("1.1", Some("hello"), Some(ringleader_types::Scheme::Deb))
    );
    // The root has no os-release and no boot id: not known, not an error.
    assert_eq!(scan.os, None);
    assert_eq!(scan.boot.boot_id, None);
    assert!(!scan.boot.reboot_pending);
    // A directory tree cannot restart, and says so.
    let err = dpkg.reboot(&dev).await.unwrap_err().to_string();
    assert!(
        err.contains("not a system of its own: it cannot restart"),
        "{err}"
    );
}

fn ssh_route(sshd: &Sshd, known_hosts: &Path) -> Route {
    Route::Ssh {
        host: "127.0.0.1".into(),
        port: Some(sshd.port),
        user: Some(sshd.user.clone()),
        key: Some(sshd.key.clone()),
        known_hosts: Some(known_hosts.to_owned()),
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
    routes.set("ssh-1", ssh_route(&sshd, &sshd.known_hosts));
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
    routes.set("impostor", ssh_route(&sshd, &wrong));
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
    // Permanent until an operator acts, and the message says what to fix.
    assert!(
        matches!(
            &err.kind,
            ringleader_runtime::CallErrorKind::Plugin(
                ringleader_runtime::bindings::PluginError::Permanent(_)
            )
        ),
        "{err:?}"
    );
    assert!(message.contains(&wrong.display().to_string()), "{message}");
    assert!(message.contains("ssh-keygen -f "), "{message}");
}
