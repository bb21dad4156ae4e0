//! The simulated-vendor plugins, through the real runtime.

use super::*;
use ringleader_runtime::sim_device::SimDevices;
use ringleader_types::{Readiness, RollbackTarget};
use std::sync::Arc;

#[tokio::test]
async fn sim_source_reports_patches_only_for_components_the_fleet_has() {
    let rt = runtime(Grants::default(), Services::default());
    let source = load(&rt, "sim-vendor-source").await;
    let devices = [
        device("srv-1", &[("bios", "2.10.0"), ("bmc-firmware", "7.2.0")]),
        device("ws-1", &[("openssl", "3.0.11")]),
    ];
    let patches = source.discover(&devices).await.unwrap();
    let mut ids: Vec<_> = patches.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "acme-bios-2.19.1",
            "acme-bmc-7.10.30",
            "debian-sim-openssl-3.0.14",
            "debian-sim-openssl-3.0.15"
        ]
    );
    let bios = patches.iter().find(|p| p.id == "acme-bios-2.19.1").unwrap();
    assert_eq!(bios.prerequisites, ["acme-bmc-7.10.30"]);
    assert!(bios.reboot_required);
    assert_eq!(bios.artifact.sha256.len(), 64);
    let openssl = patches
        .iter()
        .find(|p| p.id == "debian-sim-openssl-3.0.15")
        .unwrap();
    assert_eq!(openssl.supersedes, ["debian-sim-openssl-3.0.14"]);
    assert_eq!(openssl.severity, Severity::Critical);
}

/// A runtime granting the simulated installer what it declares, with simulated devices
/// behind the `exec` capability.
fn sim_runtime(grant: bool) -> (Runtime, Arc<SimDevices>) {
    let manifest =
        ringleader_runtime::Manifest::load(&super::manifest("sim-vendor-installer")).unwrap();
    let mut grants = Grants::default();
    if grant {
        grants.allow_as_declared("sim-vendor-installer", &manifest.capabilities);
    }
    let devices = Arc::new(SimDevices::in_memory());
    let services = Services {
        exec: devices.clone(),
        ..Services::default()
    };
    (runtime(grants, services), devices)
}

#[tokio::test]
async fn sim_installer_installs_verifies_and_rolls_back_on_the_device() {
    let (rt, devices) = sim_runtime(true);
    let installer = load(&rt, "sim-vendor-installer").await;
    let dev = device("srv-1", &[("bios", "2.10.0")]);
    let bios = patch("acme-bios-2.19.1", "bios", "2.19.1");

    assert_eq!(
        installer.preflight(&dev, &bios).await.unwrap(),
        Readiness::Ready
    );
    let before = installer.verify(&dev, &bios).await.unwrap();
    assert_eq!(before.installed_version.as_deref(), Some("2.10.0"));

    let outcome = installer.install(&dev, &bios).await.unwrap();
    assert_eq!(outcome.installed_version, "2.19.1");
    // A new store per call: the state lives on the (simulated) device.
    let after = installer.verify(&dev, &bios).await.unwrap();
    assert_eq!(after.installed_version.as_deref(), Some("2.19.1"));
    assert!(after.health.healthy);
    assert_eq!(
        installer.preflight(&dev, &bios).await.unwrap(),
        Readiness::AlreadyInstalled("2.19.1".into())
    );

    let target = RollbackTarget {
        version: "2.10.0".into(),
        artifact: None,
    };
    installer.rollback(&dev, &bios, &target).await.unwrap();
    let rolled = installer.verify(&dev, &bios).await.unwrap();
    assert_eq!(rolled.installed_version.as_deref(), Some("2.10.0"));
    assert_eq!(devices.total("installs").unwrap(), 1);
    assert_eq!(devices.total("duplicates").unwrap(), 0);
}

/// A simulated device scans as what it has: the inventory's components where nothing
/// changed them, the versions it really runs where the inventory is stale
/// (`sim.drift.COMPONENT`), what an install put there, and a component only it has; a
/// restart changes its boot id.
#[tokio::test]
async fn a_simulated_device_scans_as_what_it_really_has_and_reboots() {
    let (rt, _) = sim_runtime(true);
    let installer = load(&rt, "sim-vendor-installer").await;
    let mut dev = device(
        "srv-1",
        &[("bios", "2.10.0"), ("bmc", "7.0"), ("nic", "1.0")],
    );
    dev.facts = vec![
        ("sim.drift.bmc".into(), "7.1".into()),
        ("sim.drift.agent".into(), "3.2".into()),
    ];
    installer
        .install(&dev, &patch("nic-1.1", "nic", "1.1"))
        .await
        .unwrap();
    let scan = installer.scan(&dev).await.unwrap();
    let got: Vec<(&str, &str)> = scan
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("bios", "2.10.0"),
            ("bmc", "7.1"),
            ("nic", "1.1"),
            ("agent", "3.2")
        ]
    );
    let before = installer.boot_state(&dev).await.unwrap();
    assert_eq!(before.boot_id.as_deref(), Some("sim-boot-0"));
    installer.reboot(&dev).await.unwrap();
    let after = installer.boot_state(&dev).await.unwrap();
    assert_eq!(after.boot_id.as_deref(), Some("sim-boot-1"));
}

#[tokio::test]
async fn a_failing_simulated_device_is_a_permanent_plugin_error() {
    let (rt, _) = sim_runtime(true);
    let installer = load(&rt, "sim-vendor-installer").await;
    let mut dev = device("srv-1", &[("bios", "2.10.0")]);
    dev.facts = vec![("sim.fail-permille".into(), "1000".into())];
    let err = installer
        .install(&dev, &patch("p", "bios", "2.19.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ringleader_runtime::CallErrorKind::Plugin(ringleader_runtime::bindings::PluginError::Permanent(m)) if m.contains("flash verification error")),
        "{err}"
    );
}

#[tokio::test]
async fn sim_installer_without_its_exec_grant_gets_denied_not_a_trap() {
    let (rt, _) = sim_runtime(false);
    let installer = load(&rt, "sim-vendor-installer").await;
    let dev = device("srv-1", &[("bios", "2.10.0")]);
    let err = installer
        .install(&dev, &patch("p", "bios", "2.19.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ringleader_runtime::CallErrorKind::Plugin(ringleader_runtime::bindings::PluginError::Denied(m)) if m.contains("exec of `sim-pkg` is not granted")),
        "{err}"
    );
}

#[tokio::test]
async fn calling_a_function_of_the_other_world_is_a_clear_error() {
    let rt = runtime(Grants::default(), Services::default());
    let source = load(&rt, "sim-vendor-source").await;
    let err = source
        .install(&device("d", &[]), &patch("p", "c", "1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`install` is a function of the installer world"),
        "{err}"
    );
}
