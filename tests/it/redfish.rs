//! The Redfish firmware installer against a real Redfish service: sushy-tools'
//! emulator on libvirt's test driver, started here on 127.0.0.1 (see
//! `tests/peers/redfish/NOTES.md`). Versions are read back from the emulator, and every
//! update it applied is counted from its own log.

use super::*;
use ringleader_runtime::services::{KvStore, MemoryKv};
use ringleader_runtime::transport::{Route, Routes};
use ringleader_tests::peers::{Redfish, RedfishOptions};
use ringleader_types::{Readiness, RollbackTarget};
use std::sync::Arc;
use std::time::Duration;

fn bmc(peer: &Redfish, id: &str, system: &str, bios: &str) -> Device {
    let mut d = device(id, &[("bios", bios)]);
    d.hostname = "127.0.0.1".into();
    d.facts = vec![
        ("redfish.url".into(), peer.url.clone()),
        ("redfish.system".into(), system.into()),
    ];
    d
}

fn firmware(version: &str) -> Patch {
    let mut p = patch(&format!("sushy-bios-{version}"), "bios", version);
    p.kind = PatchKind::Firmware;
    // The emulator does not fetch the image; a real BMC would, from this URL.
    p.artifact = Artifact {
        url: format!("http://127.0.0.1:9/firmware/sushy-bios-{version}.bin"),
        sha256: "ab".repeat(32),
        size: 4 << 20,
    };
    p
}

async fn installer() -> Plugin {
    installer_with(Services::default()).await
}

async fn installer_with(services: Services) -> Plugin {
    let manifest = ringleader_runtime::Manifest::load(&manifest("redfish-firmware")).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared("redfish-firmware", &manifest.capabilities);
    // Tasks are polled every 100 ms instead of every 5 s.
    if let Some(grant) = grants.plugins.get_mut("redfish-firmware") {
        grant.settings.insert("task-poll-ms".into(), "100".into());
    }
    load(&runtime(grants, services), "redfish-firmware").await
}

fn updates(peer: &Redfish) -> Vec<(String, String, String)> {
    peer.updates()
}

fn update(system: &str, from: &str, to: &str) -> (String, String, String) {
    (system.into(), from.into(), to.into())
}

#[tokio::test]
async fn firmware_is_flashed_read_back_and_rolled_back_through_the_bmc() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Redfish::start(dir.path(), 3);
    let plugin = installer().await;
    // By name: the emulator answers 307 to the system's UUID, which the plugin follows.
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");

    assert_eq!(
        plugin.preflight(&node1, &firmware("1.1.0")).await.unwrap(),
        Readiness::Ready
    );
    let before = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(before.installed_version.as_deref(), Some("1.0.0"));
    assert!(before.health.healthy, "{before:?}");

    let outcome = plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1.0");
    assert!(outcome.detail.contains("Completed"), "{outcome:?}");
    let after = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(after.installed_version.as_deref(), Some("1.1.0"));
    // Only node-1 was touched: one target per request.
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);

    // Called again (after a restart): nothing flashed twice.
    assert_eq!(
        plugin.preflight(&node1, &firmware("1.1.0")).await.unwrap(),
        Readiness::AlreadyInstalled("1.1.0".into())
    );
    plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(updates(&peer).len(), 1);

    // Back to 1.0.0 with the 1.0.0 image.
    let target = RollbackTarget {
        version: "1.0.0".into(),
        artifact: Some(firmware("1.0.0").artifact),
    };
    let back = plugin
        .rollback(&node1, &firmware("1.1.0"), &target)
        .await
        .unwrap();
    assert_eq!(back.installed_version, "1.0.0");
    assert_eq!(
        plugin
            .verify(&node1, &firmware("1.1.0"))
            .await
            .unwrap()
            .installed_version
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        updates(&peer),
        [
            update("node-1", "1.0.0", "1.1.0"),
            update("node-1", "1.1.0", "1.0.0")
        ]
    );

    // Without the image of the version to go back to, rollback says what is missing.
    plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    let no_image = RollbackTarget {
        version: "0.9.0".into(),
        artifact: None,
    };
    let err = plugin
        .rollback(&node1, &firmware("1.1.0"), &no_image)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no firmware image of bios 0.9.0"),
        "{err}"
    );
}

/// A patch for a component the BMC lists in its firmware inventory.
fn inventory_firmware(component: &str, version: &str) -> Patch {
    let mut p = firmware(version);
    p.id = format!("{component}-{version}");
    p.component = component.into();
    p.artifact.url = format!("http://127.0.0.1:9/firmware/{component}-{version}.bin");
    p
}

#[tokio::test]
async fn firmware_inventory_components_are_found_flashed_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    // Systems node-1 and node-2, each with its network adapter's firmware (`NIC-node-N`,
    // SoftwareId `nic`, RelatedItem the system), and the BMC's own (`BMC`, `bmc`).
    let options = RedfishOptions {
        task_seconds: 0.3,
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 2, &options);
    let plugin = installer().await;
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let nic = inventory_firmware("nic", "2.1.0");

    // Found by SoftwareId among the entries of node-2 (not node-1's adapter).
    assert_eq!(
        plugin.preflight(&node2, &nic).await.unwrap(),
        Readiness::Ready
    );
    let before = plugin.verify(&node2, &nic).await.unwrap();
    assert_eq!(before.installed_version.as_deref(), Some("1.0.0"));
    let checks: Vec<&str> = before
        .health
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(checks, ["redfish:health", "redfish:firmware:NIC-node-2"]);

    let outcome = plugin.install(&node2, &nic).await.unwrap();
    assert_eq!(outcome.installed_version, "2.1.0");
    assert_eq!(updates(&peer), [update("NIC-node-2", "1.0.0", "2.1.0")]);
    // The BMC now also lists the replaced image, `Previous-NIC-node-2` (SoftwareId
    // `nic`, 1.0.0), as Dell's do: not what the system runs, and not in the way.
    // The BIOS of the same system is another component, untouched.
    let bios = plugin.verify(&node2, &firmware("1.1.0")).await.unwrap();
    assert_eq!(bios.installed_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        plugin.preflight(&node2, &nic).await.unwrap(),
        Readiness::AlreadyInstalled("2.1.0".into())
    );

    let target = RollbackTarget {
        version: "1.0.0".into(),
        artifact: Some(inventory_firmware("nic", "1.0.0").artifact),
    };
    let back = plugin.rollback(&node2, &nic, &target).await.unwrap();
    assert_eq!(back.installed_version, "1.0.0");
    assert_eq!(
        updates(&peer),
        [
            update("NIC-node-2", "1.0.0", "2.1.0"),
            update("NIC-node-2", "2.1.0", "1.0.0")
        ]
    );

    // A scan lists the system's firmware as the BMC reports it: the BIOS, its own
    // adapter (not node-1's), the BMC's (related to no one system), by SoftwareId;
    // kept images (`Previous-...`) are not what it runs.
    let scanned = |scan: &ringleader_types::DeviceScan| -> Vec<(String, String)> {
        scan.components
            .iter()
            .map(|c| (c.name.clone(), c.version.clone()))
            .collect()
    };
    let scan = plugin.scan(&node2).await.unwrap();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        scanned(&scan),
        pairs(&[("bios", "1.0.0"), ("bmc", "1.0.0"), ("nic", "1.0.0")])
    );

    // An entry named by the fact redfish.firmware.<component>: the BMC's own firmware,
    // which belongs to no one system, under the operator's component name.
    let mut node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");
    node1
        .facts
        .push(("redfish.firmware.idrac".into(), "BMC".into()));
    let idrac = inventory_firmware("idrac", "7.0.0");
    plugin.install(&node1, &idrac).await.unwrap();
    let report = plugin.verify(&node1, &idrac).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("7.0.0"));
    assert_eq!(updates(&peer)[2], update("BMC", "1.0.0", "7.0.0"));
    // Scanned under the operator's name for it.
    let scan = plugin.scan(&node1).await.unwrap();
    assert_eq!(
        scanned(&scan),
        pairs(&[("bios", "1.0.0"), ("idrac", "7.0.0"), ("nic", "1.0.0")])
    );

    // A component the BMC does not have: blocked, with what the inventory does list.
    let readiness = plugin
        .preflight(&node1, &inventory_firmware("raid", "3.0.0"))
        .await
        .unwrap();
    let Readiness::Blocked(why) = readiness else {
        panic!("{readiness:?}")
    };
    assert!(why.contains("no firmware `raid`"), "{why}");
    assert!(why.contains("BMC (bmc), NIC-node-1 (nic)"), "{why}");
    assert!(!why.contains("NIC-node-2"), "{why}");
    assert!(why.contains("redfish.firmware.raid"), "{why}");
    let err = plugin
        .install(&node1, &inventory_firmware("raid", "3.0.0"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no firmware `raid`"), "{err}");

    // A fact naming an entry the BMC does not have, or several: refused, with the fact
    // (and the candidates) named.
    let mut named = |entry: &str| {
        node1.facts.retain(|(k, _)| k != "redfish.firmware.nic");
        node1
            .facts
            .push(("redfish.firmware.nic".into(), entry.into()));
        node1.clone()
    };
    let err = plugin.verify(&named("NIC-9"), &nic).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no firmware inventory entry `NIC-9` (the fact redfish.firmware.nic"),
        "{err}"
    );
    let readiness = plugin.preflight(&named("NIC"), &nic).await.unwrap();
    let Readiness::Blocked(why) = readiness else {
        panic!("{readiness:?}")
    };
    assert!(why.contains("2 firmware inventory entries"), "{why}");
    assert!(why.contains("(NIC-node-1, NIC-node-2)"), "{why}");
    // A fact with the entry's path.
    let path = "/redfish/v1/UpdateService/FirmwareInventory/NIC-node-1";
    let report = plugin.verify(&named(path), &nic).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.0.0"));
    assert_eq!(updates(&peer).len(), 3);
}

#[tokio::test]
async fn the_bmc_s_refusals_and_wrong_patches_are_reported_in_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Redfish::start(dir.path(), 2);
    let plugin = installer().await;

    // A system the BMC does not have: its Redfish error message is in the error.
    let ghost = bmc(&peer, "bmc-ghost", "node-9", "1.0.0");
    let err = plugin.verify(&ghost, &firmware("1.1.0")).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(message.contains("Domain not found"), "{message}");
    assert!(message.contains("bmc-ghost"), "{message}");

    // A patch for another component is refused, never flashed to the BIOS.
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let mut nic = firmware("2.0.0");
    nic.component = "nic-firmware".into();
    let readiness = plugin.preflight(&node2, &nic).await.unwrap();
    assert!(
        matches!(&readiness, Readiness::Blocked(why) if why.contains("redfish.bios-component")),
        "{readiness:?}"
    );
    assert!(plugin.install(&node2, &nic).await.is_err());

    // An image the BMC could not fetch is refused before anything is posted.
    let mut local = firmware("1.1.0");
    local.artifact.url = "file:///srv/firmware/sushy-bios-1.1.0.bin".into();
    let readiness = plugin.preflight(&node2, &local).await.unwrap();
    assert!(
        matches!(&readiness, Readiness::Blocked(why) if why.contains("http:// or https://")),
        "{readiness:?}"
    );

    // Several systems and no redfish.system: the plugin asks which one.
    let mut unnamed = bmc(&peer, "bmc-x", "node-1", "1.0.0");
    unnamed.facts.retain(|(k, _)| k != "redfish.system");
    let err = plugin
        .verify(&unnamed, &firmware("1.1.0"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has 2 systems"), "{err}");

    // The BMC is the device's own address: a device naming another host in
    // redfish.url is refused by the host.
    let mut elsewhere = bmc(&peer, "bmc-y", "node-1", "1.0.0");
    elsewhere.hostname = "bmc-y.example".into();
    let err = plugin
        .verify(&elsewhere, &firmware("1.1.0"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("denied") || err.to_string().contains("not declared"),
        "{err}"
    );
    assert!(updates(&peer).is_empty());
}

#[tokio::test]
async fn updates_that_run_as_tasks_are_followed_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    // 202 and a task monitor that runs for half a second, then applies the update;
    // images named "corrupt" fail their task.
    let options = RedfishOptions {
        task_seconds: 0.5,
        fail_images: Some("corrupt".into()),
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 2, &options);
    let plugin = installer().await;
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");

    let outcome = plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1.0");
    assert!(outcome.detail.contains("Completed, OK"), "{outcome:?}");
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);

    // A task that ends in Exception: the BMC's message, and nothing changed.
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let mut corrupt = firmware("1.1.0");
    corrupt.artifact.url = "http://127.0.0.1:9/firmware/corrupt-bios-1.1.0.bin".into();
    let err = plugin.install(&node2, &corrupt).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("ended Exception (Critical)"), "{message}");
    assert!(message.contains("failed verification"), "{message}");
    let report = plugin.verify(&node2, &corrupt).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.0.0"));
    assert_eq!(updates(&peer).len(), 1);
}

#[tokio::test]
async fn an_install_called_again_after_a_stop_follows_the_task_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedfishOptions {
        task_seconds: 2.0,
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 2, &options);
    let kv = Arc::new(MemoryKv::default());
    let plugin = installer_with(Services {
        kv: kv.clone(),
        ..Services::default()
    })
    .await;

    // The host stops while the BMC's task runs: the call is dropped mid-way.
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");
    let stopped = tokio::time::timeout(
        Duration::from_millis(500),
        plugin.install(&node1, &firmware("1.1.0")),
    )
    .await;
    assert!(stopped.is_err(), "the task should still run: {stopped:?}");
    // Called again: it follows the task it started instead of flashing a second time.
    let outcome = plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1.0");
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);
    assert_eq!(kv.get("redfish-firmware", "task/bmc-1/bios").unwrap(), None);

    // The host stopped after posting, before the BMC's answer was recorded: the plugin
    // finds the task among the BMC's tasks by the request that started it.
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let stopped = tokio::time::timeout(
        Duration::from_millis(500),
        plugin.install(&node2, &firmware("1.1.0")),
    )
    .await;
    assert!(stopped.is_err());
    kv.set("redfish-firmware", "task/bmc-2/bios", b"1.1.0\n")
        .unwrap();
    let outcome = plugin.install(&node2, &firmware("1.1.0")).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1.0");
    assert_eq!(
        updates(&peer),
        [
            update("node-1", "1.0.0", "1.1.0"),
            update("node-2", "1.0.0", "1.1.0")
        ]
    );

    // The same for a firmware inventory entry: its task is found by the entry named in
    // the task's Targets.
    let nic = inventory_firmware("nic", "2.1.0");
    let stopped =
        tokio::time::timeout(Duration::from_millis(500), plugin.install(&node1, &nic)).await;
    assert!(stopped.is_err());
    kv.set("redfish-firmware", "task/bmc-1/nic", b"2.1.0\n")
        .unwrap();
    let outcome = plugin.install(&node1, &nic).await.unwrap();
    assert_eq!(outcome.installed_version, "2.1.0");
    assert_eq!(updates(&peer).len(), 3);
    assert_eq!(updates(&peer)[2], update("NIC-node-1", "1.0.0", "2.1.0"));
}

#[tokio::test]
async fn a_bmc_s_certificate_is_trusted_only_with_the_operator_s_ca() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedfishOptions {
        tls: true,
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 1, &options);
    assert!(peer.url.starts_with("https://"), "{}", peer.url);
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");

    // Checked against the public web's roots: refused.
    let err = installer()
        .await
        .verify(&node1, &firmware("1.1.0"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // With the device's `ca_file` from the operator's credentials (the CA that signed
    // the BMC's certificate): trusted, and for that device only.
    let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
    let ca = dir.path().join("operator-ca.pem");
    std::fs::copy(peer.ca.as_ref().unwrap(), &ca).unwrap();
    routes.set(
        "bmc-1",
        Route::Http {
            basic: None,
            ca: Some(ca.clone()),
        },
    );
    let plugin = installer_with(Services {
        auth: Arc::new(routes),
        ..Services::default()
    })
    .await;
    let report = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.0.0"));
    plugin.install(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);
    let mut other = bmc(&peer, "bmc-2", "node-1", "1.0.0");
    other.id = "bmc-2".into();
    assert!(plugin.verify(&other, &firmware("1.1.0")).await.is_err());

    // The file replaced (here by a certificate that did not sign the BMC's): read
    // again, no restart. Half written, it is not used: the certificates read before
    // serve on.
    std::fs::copy(dir.path().join("redfish.pem"), &ca).unwrap();
    let err = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    std::fs::copy(peer.ca.as_ref().unwrap(), &ca).unwrap();
    let report = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.1.0"));
    std::fs::write(&ca, "-----BEGIN CERT").unwrap();
    let report = plugin.verify(&node1, &firmware("1.1.0")).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.1.0"));
}

/// Asks the device's boot state until it answers with a boot id other than `before`
/// (up to `tries` times, 100 ms apart); every answer on the way, errors included.
async fn wait_for_boot(
    plugin: &Plugin,
    device: &Device,
    before: &Option<String>,
    tries: usize,
) -> (Option<String>, Vec<String>) {
    let mut seen = Vec::new();
    for _ in 0..tries {
        match plugin.boot_state(device).await {
            Ok(b) if b.boot_id != *before => return (b.boot_id, seen),
            Ok(b) => seen.push(format!("same boot id {:?}", b.boot_id)),
            Err(e) => seen.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (None, seen)
}

/// A request's `Payload.JsonBody` as the BMC's task keeps it.
fn task_request(peer: &Redfish, task: &str) -> serde_json::Value {
    let text = ureq::get(&format!("{}/redfish/v1/TaskService/Tasks/{task}", peer.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_str(body["Payload"]["JsonBody"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_bios_update_the_bmc_stages_takes_effect_at_the_reset_and_is_read_back_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // As iDRAC and iLO: BIOS images wait for the system's next reset; a reset keeps the
    // system in its POST for a second.
    let options = RedfishOptions {
        apply_on_reset: true,
        reset_seconds: 1.0,
        task_seconds: 0.2,
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 2, &options);
    let plugin = installer().await;
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");
    let mut fix = firmware("1.1.0");
    fix.reboot_required = true;

    let before = plugin.boot_state(&node1).await.unwrap().boot_id;
    let id = before.clone().expect("the emulator reports BootProgress");
    assert!(id.starts_with("OSRunning@"), "{id}");

    // Staged: the BMC still runs 1.0.0, and says the install waits for a restart.
    let outcome = plugin.install(&node1, &fix).await.unwrap();
    assert!(outcome.reboot_pending, "{outcome:?}");
    assert_eq!(outcome.installed_version, "1.0.0");
    assert_eq!(
        plugin
            .verify(&node1, &fix)
            .await
            .unwrap()
            .installed_version
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(updates(&peer), []);
    assert_eq!(
        peer.staged(),
        [("node-1".to_string(), fix.artifact.url.clone())]
    );
    // The plugin asked for it: the BMC lists OnReset among its apply times.
    assert_eq!(
        task_request(&peer, "rl1")["@Redfish.OperationApplyTime"],
        "OnReset"
    );

    // The reset: the system goes through its POST (not up: a transient error) and comes
    // back with another boot id, running the new BIOS.
    let said = plugin.reboot(&node1).await.unwrap();
    assert!(
        said.contains("ComputerSystem.Reset GracefulRestart"),
        "{said}"
    );
    let (after, seen) = wait_for_boot(&plugin, &node1, &before, 50).await;
    assert!(after.is_some(), "never came back: {seen:?}");
    assert!(
        seen.iter()
            .any(|s| s.contains("is not up yet")
                && s.contains("PrimaryProcessorInitializationStarted")),
        "the POST was not seen: {seen:?}"
    );
    assert_eq!(
        plugin
            .verify(&node1, &fix)
            .await
            .unwrap()
            .installed_version
            .as_deref(),
        Some("1.1.0")
    );
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);

    // A patch that does not say it needs a restart is not asked to wait for one; the
    // BMC stages the BIOS image anyway, and the install says it waits for a restart.
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let plain = firmware("1.1.0");
    let outcome = plugin.install(&node2, &plain).await.unwrap();
    assert!(outcome.reboot_pending, "{outcome:?}");
    assert_eq!(outcome.installed_version, "1.0.0");
    assert!(
        task_request(&peer, "rl2")
            .get("@Redfish.OperationApplyTime")
            .is_none()
    );
}

#[tokio::test]
async fn a_bmc_that_applies_at_once_still_resets_and_one_that_never_comes_back_stays_down() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedfishOptions {
        stuck_systems: vec!["node-2".into()],
        ..RedfishOptions::default()
    };
    let peer = Redfish::start_with(dir.path(), 2, &options);
    let plugin = installer().await;
    let node1 = bmc(&peer, "bmc-1", "node-1", "1.0.0");
    let mut fix = firmware("1.1.0");
    fix.reboot_required = true;

    // Applied at once (sushy's own behaviour): nothing pending, the version is new.
    let outcome = plugin.install(&node1, &fix).await.unwrap();
    assert!(!outcome.reboot_pending, "{outcome:?}");
    assert_eq!(outcome.installed_version, "1.1.0");
    assert_eq!(updates(&peer), [update("node-1", "1.0.0", "1.1.0")]);
    let before = plugin.boot_state(&node1).await.unwrap().boot_id;
    plugin.reboot(&node1).await.unwrap();
    let (after, seen) = wait_for_boot(&plugin, &node1, &before, 50).await;
    assert!(after.is_some(), "never came back: {seen:?}");
    assert_eq!(
        plugin
            .verify(&node1, &fix)
            .await
            .unwrap()
            .installed_version
            .as_deref(),
        Some("1.1.0")
    );

    // node-2 never leaves its POST: every answer after the reset is "not up yet".
    let node2 = bmc(&peer, "bmc-2", "node-2", "1.0.0");
    let before = plugin.boot_state(&node2).await.unwrap().boot_id;
    plugin.reboot(&node2).await.unwrap();
    let (after, seen) = wait_for_boot(&plugin, &node2, &before, 10).await;
    assert_eq!(after, None);
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|s| s.contains("is not up yet")), "{seen:?}");
}
