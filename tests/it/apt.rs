//! The apt installer against real Debian systems: each device a fresh copy of a Debian 12
//! root (mmdebstrap, cached) reached over a real OpenSSH server chrooted into it, with
//! real apt and dpkg inside, installing from a signed APT repository served on
//! 127.0.0.1 (apt-ftparchive, a throwaway gpg key the device trusts with `signed-by`).

use super::*;
use ringleader_engine::core::Core;
use ringleader_engine::executor::{Executor, Installers, Timing};
use ringleader_runtime::CallErrorKind;
use ringleader_runtime::bindings::PluginError;
use ringleader_runtime::transport::{Route, Routes};
use ringleader_tests::peers::{self, AptRepo, DebSpec, DebianDevice, Signing};
use ringleader_types::{Readiness, RollbackTarget};
use std::sync::Arc;
use std::time::Instant;

/// The test repository: `hello` in three versions, the last of which fails in its
/// postinst; `libfoo1` and `foo-tools` (one source package, `foo`) in two, each
/// `foo-tools` needing the `libfoo1` of its own version.
fn packages() -> Vec<DebSpec> {
    let mut all = vec![
        DebSpec::new("hello", "1.0-1"),
        DebSpec::new("hello", "1.1-1"),
        DebSpec::new("hello", "1.2-1").failing(),
    ];
    for version in ["1.0-1", "2.0-1"] {
        all.push(DebSpec::new("libfoo1", version).source("foo"));
        all.push(
            DebSpec::new("foo-tools", version)
                .source("foo")
                .depends(&format!("libfoo1 (= {version})")),
        );
    }
    all
}

/// A repository, one device with `installed` from it, and the plugin reaching the
/// device over its SSH server.
struct Lab {
    repo: AptRepo,
    device: DebianDevice,
    apt: Plugin,
    started: Instant,
}

impl Lab {
    async fn start(installed: &[&str]) -> Lab {
        let started = Instant::now();
        let repo = AptRepo::start(&packages());
        let device = DebianDevice::start(&repo, installed);
        eprintln!(
            "apt lab: repository and device ready in {} ms",
            started.elapsed().as_millis()
        );
        let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
        routes.set("deb-1", ssh_route(&device));
        let manifest = ringleader_runtime::Manifest::load(&manifest("apt-installer")).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared("apt-installer", &manifest.capabilities);
        let rt = runtime(
            grants,
            Services {
                exec: Arc::new(routes),
                ..Services::default()
            },
        );
        let apt = load(&rt, "apt-installer").await;
        Lab {
            repo,
            device,
            apt,
            started,
        }
    }

    /// The device as the inventory shows it.
    fn dev(&self, components: &[(&str, &str)]) -> Device {
        device("deb-1", components)
    }

    /// `name` `version` as dpkg-query reads it inside the device.
    fn has(&self, name: &str) -> (String, String) {
        self.device
            .package(name)
            .unwrap_or_else(|| panic!("{name} is not installed"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        eprintln!(
            "apt lab: test took {} ms",
            self.started.elapsed().as_millis()
        );
    }
}

fn ssh_route(device: &DebianDevice) -> Route {
    Route::Ssh {
        host: "127.0.0.1".into(),
        port: Some(device.sshd.port),
        user: Some(device.sshd.user.clone()),
        key: Some(device.sshd.key.clone()),
        known_hosts: Some(device.sshd.known_hosts.clone()),
    }
}

/// A rollout of `inventory` under `policy` through the real executor, in real time: the
/// `source` plugin (given its one setting) finds the patches, `apt-installer` installs
/// them over `routes`. The patches planned (sorted), the core once the rollout ended
/// and the installer; `None` when it does not end within `limit`.
async fn roll_out(
    source: &str,
    (key, value): (&str, String),
    routes: Routes,
    policy: &ringleader_planner::policy::Policy,
    inventory: &ringleader_planner::inventory::Inventory,
    limit: std::time::Duration,
) -> Option<(Vec<String>, Core, Plugin)> {
    let mut grants = Grants::default();
    for name in [source, "apt-installer"] {
        let manifest = ringleader_runtime::Manifest::load(&manifest(name)).unwrap();
        grants.allow_as_declared(name, &manifest.capabilities);
    }
    if let Some(grant) = grants.plugins.get_mut(source) {
        grant.settings.insert(key.into(), value);
    }
    let rt = runtime(
        grants,
        Services {
            exec: Arc::new(routes),
            ..Services::default()
        },
    );
    let source = load(&rt, source).await;
    let apt = load(&rt, "apt-installer").await;
    let now = jiff::Timestamp::now();
    let prepared = ringleader_engine::spec::prepare(
        policy,
        inventory,
        std::slice::from_ref(&source),
        now,
        None,
    )
    .await
    .unwrap();
    let mut patches: Vec<String> = prepared.targets.patches.keys().cloned().collect();
    patches.sort_unstable();
    let executor = Executor {
        core: Core::new(prepared.spec),
        installers: Installers::new(apt.clone()),
        targets: prepared.targets,
        timing: Timing::Real,
        concurrency: 4,
        auto_approve_after: None,
        now,
        store: None,
        recovery: Default::default(),
        devices: None,
        clock: None,
        scheduled: Vec::new(),
        leases: None,
        horizon: None,
        control: None,
        metrics: Default::default(),
    };
    let (core, _report) = tokio::time::timeout(limit, executor.run(|_, _| {}))
        .await
        .ok()?;
    Some((patches, core, apt))
}

fn ii(version: &str) -> (String, String) {
    (version.to_string(), "ii".to_string())
}

fn permanent(err: &ringleader_runtime::CallError) -> bool {
    matches!(&err.kind, CallErrorKind::Plugin(PluginError::Permanent(_)))
}

fn transient(err: &ringleader_runtime::CallError) -> bool {
    matches!(&err.kind, CallErrorKind::Plugin(PluginError::Transient(_)))
}

#[tokio::test]
async fn apt_upgrades_one_package_from_the_signed_repository() {
    let lab = Lab::start(&["hello=1.0-1"]).await;
    let dev = lab.dev(&[("hello", "1.0-1")]);
    let fix = patch("hello-1.1-1", "hello", "1.1-1");

    let (logs, capture) = Logs::capture();
    assert_eq!(
        lab.apt.preflight(&dev, &fix).await.unwrap(),
        Readiness::Ready
    );
    drop(capture);
    // The report names what apt would change and the space it needs.
    let log = logs.text();
    assert!(
        log.contains("apt would change, in one transaction: hello 1.0-1 -> 1.1-1"),
        "{log}"
    );
    assert!(log.contains("free in /var/cache/apt/archives"), "{log}");
    // The simulation changed nothing.
    assert_eq!(lab.has("hello"), ii("1.0-1"));

    let outcome = lab.apt.install(&dev, &fix).await.unwrap();
    assert_eq!(outcome.installed_version, "1.1-1");
    assert!(
        outcome.detail.contains("hello 1.0-1 -> 1.1-1"),
        "{outcome:?}"
    );
    assert_eq!(lab.has("hello"), ii("1.1-1"));
    assert_eq!(
        peers::installs(&lab.device.root),
        ["hello 1.0-1", "hello 1.1-1"]
    );
    let report = lab.apt.verify(&dev, &fix).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("1.1-1"));
    assert!(report.health.healthy, "{report:?}");

    // Installed already: preflight says so, and a second install changes nothing.
    let now = lab.dev(&[("hello", "1.1-1")]);
    assert_eq!(
        lab.apt.preflight(&now, &fix).await.unwrap(),
        Readiness::AlreadyInstalled("1.1-1".into())
    );
    let again = lab.apt.install(&now, &fix).await.unwrap();
    assert_eq!(again.detail, "already installed");
    assert_eq!(lab.device.transactions().len(), 2, "setup and the upgrade");

    // A version the repository does not have is blocked, naming what it has.
    let missing = patch("hello-9", "hello", "9.0-1");
    match lab.apt.preflight(&now, &missing).await.unwrap() {
        Readiness::Blocked(why) => {
            assert!(why.contains("have no hello 9.0-1"), "{why}");
            assert!(why.contains("1.2-1, 1.1-1, 1.0-1"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // A package the device does not have is blocked too.
    match lab
        .apt
        .preflight(&now, &patch("x", "not-here", "1"))
        .await
        .unwrap()
    {
        Readiness::Blocked(why) => assert!(why.contains("not-here is not installed"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A patch naming another version scheme (WIT 0.2.0) is not apt's to install.
    let rpm = ringleader_types::Patch {
        scheme: Some(ringleader_types::Scheme::Rpm),
        ..patch("hello-rpm", "hello", "1.2-1")
    };
    match lab.apt.preflight(&now, &rpm).await.unwrap() {
        Readiness::Blocked(why) => assert!(
            why.contains("patch hello-rpm is for rpm versions, and apt installs Debian packages"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_two_package_update_lands_in_one_transaction_and_rolls_back_in_one() {
    let lab = Lab::start(&["libfoo1=1.0-1", "foo-tools=1.0-1"]).await;
    let dev = lab.dev(&[("libfoo1", "1.0-1"), ("foo-tools", "1.0-1")]);
    // Two patches, as a source reports them: the library first (a prerequisite).
    let lib = patch("foo-2.0-1/libfoo1", "libfoo1", "2.0-1");
    let mut tools = patch("foo-2.0-1/foo-tools", "foo-tools", "2.0-1");
    tools.prerequisites = vec![lib.id.clone()];

    let (logs, capture) = Logs::capture();
    assert_eq!(
        lab.apt.preflight(&dev, &lib).await.unwrap(),
        Readiness::Ready
    );
    drop(capture);
    let log = logs.text();
    assert!(
        log.contains("libfoo1 1.0-1 -> 2.0-1") && log.contains("foo-tools 1.0-1 -> 2.0-1"),
        "{log}"
    );

    let before = lab.device.transactions().len();
    let outcome = lab.apt.install(&dev, &lib).await.unwrap();
    assert_eq!(outcome.installed_version, "2.0-1");
    // Both packages, read back inside the device, in one apt transaction.
    assert_eq!(lab.has("libfoo1"), ii("2.0-1"));
    assert_eq!(lab.has("foo-tools"), ii("2.0-1"));
    let transactions = lab.device.transactions();
    assert_eq!(transactions.len(), before + 1, "{transactions:?}");
    let last = transactions.last().unwrap();
    assert!(
        last.contains("libfoo1 (1.0-1, 2.0-1)") && last.contains("foo-tools (1.0-1, 2.0-1)"),
        "{last}"
    );
    // The second patch finds its version there.
    assert_eq!(
        lab.apt.preflight(&dev, &tools).await.unwrap(),
        Readiness::AlreadyInstalled("2.0-1".into())
    );
    let report = lab.apt.verify(&dev, &tools).await.unwrap();
    assert_eq!(report.installed_version.as_deref(), Some("2.0-1"));
    assert!(report.health.healthy, "{report:?}");

    // Rolled back (last step first, as the host does): both go back together.
    let back = lab
        .apt
        .rollback(
            &dev,
            &tools,
            &RollbackTarget {
                version: "1.0-1".into(),
                artifact: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(back.installed_version, "1.0-1");
    assert_eq!(lab.has("libfoo1"), ii("1.0-1"));
    assert_eq!(lab.has("foo-tools"), ii("1.0-1"));
    let last = lab.device.transactions().last().unwrap().clone();
    assert!(
        last.starts_with("Downgrade:")
            && last.contains("libfoo1 (2.0-1, 1.0-1)")
            && last.contains("foo-tools (2.0-1, 1.0-1)"),
        "{last}"
    );
    let again = lab
        .apt
        .rollback(
            &dev,
            &lib,
            &RollbackTarget {
                version: "1.0-1".into(),
                artifact: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.detail, "already at the rollback version");
}

#[tokio::test]
async fn a_failing_maintainer_script_fails_the_install_and_rollback_uses_the_repository() {
    let lab = Lab::start(&["hello=1.1-1"]).await;
    let dev = lab.dev(&[("hello", "1.1-1")]);
    let bad = patch("hello-1.2-1", "hello", "1.2-1");

    assert_eq!(
        lab.apt.preflight(&dev, &bad).await.unwrap(),
        Readiness::Ready
    );
    let err = lab.apt.install(&dev, &bad).await.unwrap_err();
    let message = err.to_string();
    assert!(permanent(&err), "{err:?}");
    assert!(message.contains("apt-get install hello=1.2-1"), "{message}");
    assert!(
        message.contains("post-installation script subprocess returned error exit status 1"),
        "{message}"
    );
    assert!(message.contains("configuration failed"), "{message}");
    // dpkg left it half-configured, and verify names that state.
    assert_eq!(lab.has("hello"), ("1.2-1".into(), "iF".into()));
    let report = lab.apt.verify(&dev, &bad).await.unwrap();
    assert!(!report.health.healthy, "{report:?}");
    let status = &report.health.checks[0];
    assert!(
        !status.ok && status.detail.contains("half-configured"),
        "{status:?}"
    );

    // Back to the previous version, from the repository.
    let back = lab
        .apt
        .rollback(
            &dev,
            &bad,
            &RollbackTarget {
                version: "1.1-1".into(),
                artifact: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(back.installed_version, "1.1-1");
    assert_eq!(lab.has("hello"), ii("1.1-1"));
    let report = lab
        .apt
        .verify(&dev, &patch("hello-1.1-1", "hello", "1.1-1"))
        .await
        .unwrap();
    assert!(report.health.healthy, "{report:?}");
}

#[tokio::test]
async fn rollback_says_so_when_the_repository_no_longer_has_the_old_version() {
    let lab = Lab::start(&["hello=1.0-1"]).await;
    let dev = lab.dev(&[("hello", "1.0-1")]);
    let fix = patch("hello-1.1-1", "hello", "1.1-1");
    lab.apt.install(&dev, &fix).await.unwrap();
    lab.repo.remove("hello", "1.0-1");

    let err = lab
        .apt
        .rollback(
            &dev,
            &fix,
            &RollbackTarget {
                version: "1.0-1".into(),
                artifact: None,
            },
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(permanent(&err), "{err:?}");
    assert!(
        message.contains(
            "cannot roll deb-1 back to hello 1.0-1: its repositories no longer have that version (they have: 1.2-1, 1.1-1)"
        ),
        "{message}"
    );
    assert_eq!(lab.has("hello"), ii("1.1-1"));
}

#[tokio::test]
async fn an_interrupted_dpkg_is_repaired_in_preflight_and_the_report_says_so() {
    let lab = Lab::start(&["hello=1.0-1"]).await;
    // Crafted: an upgrade whose postinst failed on this device leaves the package
    // half-configured; then what made it fail went away.
    peers::break_device(&lab.device.root);
    let out = lab.device.run(
        "apt-get",
        &[
            "-q",
            "-o",
            "Dpkg::Use-Pty=0",
            "install",
            "-y",
            "hello=1.1-1",
        ],
    );
    assert!(!out.status.success());
    std::fs::remove_file(lab.device.root.join(peers::FAIL_MARKER)).unwrap();
    assert_eq!(lab.has("hello"), ("1.1-1".into(), "iF".into()));
    let audit = lab.device.run("dpkg", &["--audit"]);
    assert!(!audit.stdout.is_empty());

    let dev = lab.dev(&[("hello", "1.1-1")]);
    let (logs, capture) = Logs::capture();
    // Repaired first: hello 1.1-1 is then configured, which is what the patch wants.
    let readiness = lab
        .apt
        .preflight(&dev, &patch("hello-1.1-1", "hello", "1.1-1"))
        .await
        .unwrap();
    drop(capture);
    assert_eq!(readiness, Readiness::AlreadyInstalled("1.1-1".into()));
    let log = logs.text();
    assert!(
        log.contains("dpkg on deb-1 was interrupted (hello 1.1-1 (half-configured) left half-way)"),
        "{log}"
    );
    assert!(
        log.contains(
            "repaired an interrupted dpkg on deb-1 first: dpkg --configure -a configured hello"
        ),
        "{log}"
    );
    assert_eq!(lab.has("hello"), ii("1.1-1"));
    assert!(lab.device.run("dpkg", &["--audit"]).stdout.is_empty());
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_unreachable_repositories_are_reported() {
    let lab = Lab::start(&["hello=1.0-1"]).await;
    let dev = lab.dev(&[("hello", "1.0-1")]);
    let fix = patch("hello-1.1-1", "hello", "1.1-1");

    lab.repo.publish(Signing::Unsigned);
    let err = lab.apt.preflight(&dev, &fix).await.unwrap_err();
    let message = err.to_string();
    assert!(permanent(&err), "{err:?}");
    assert!(
        message.contains("refused an unsigned repository"),
        "{message}"
    );
    // Signed before, so apt says so.
    assert!(message.contains("is no longer signed"), "{message}");
    let err = lab.apt.install(&dev, &fix).await.unwrap_err();
    assert!(err.to_string().contains("unsigned repository"), "{err}");

    lab.repo.publish(Signing::OtherKey);
    let err = lab.apt.preflight(&dev, &fix).await.unwrap_err();
    let message = err.to_string();
    assert!(permanent(&err), "{err:?}");
    assert!(
        message.contains("signature does not check out with the key it trusts"),
        "{message}"
    );
    assert!(message.contains("NO_PUBKEY"), "{message}");

    // A repository nothing answers at: transient.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    lab.device
        .use_repository(&format!("http://127.0.0.1:{closed}/"));
    let err = lab.apt.preflight(&dev, &fix).await.unwrap_err();
    let message = err.to_string();
    assert!(transient(&err), "{err:?}");
    assert!(message.contains("could not fetch"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{closed}")),
        "{message}"
    );

    // Nothing was installed through any of it.
    assert_eq!(lab.has("hello"), ii("1.0-1"));
    lab.repo.publish(Signing::Key);
    lab.device.use_repository(&lab.repo.url);
    assert_eq!(
        lab.apt.preflight(&dev, &fix).await.unwrap(),
        Readiness::Ready
    );
}

/// The whole way: patches from Debian's security data (`debian-security-source`
/// reading a tracker file served on 127.0.0.1, the source package `foo` matched to its
/// binaries `libfoo1` and `foo-tools`) planned for four real Debian systems and rolled out through lab, canary and broad
/// in real time by the engine, each device's patches installed by `apt-installer` over
/// its SSH server from the signed repository. The two-package update lands in one
/// transaction; a device whose maintainer scripts fail halts the canary ring, and the
/// canary device that had installed is rolled back to its previous versions from the
/// repository; broad is never touched.
#[tokio::test]
async fn a_rollout_goes_through_the_rings_and_a_failing_canary_is_rolled_back_from_the_repository()
{
    use ringleader_engine::core::{JobId, JobState, Phase};
    let started = Instant::now();
    let repo = AptRepo::start(&packages());
    let old = ["hello=1.0-1", "libfoo1=1.0-1", "foo-tools=1.0-1"];
    let fleet = [
        ("lab-1", "lab"),
        ("canary-1", "canary"),
        ("canary-2", "canary"),
        ("broad-1", ""),
    ];
    let devices: Vec<DebianDevice> = fleet
        .iter()
        .map(|_| DebianDevice::start(&repo, &old))
        .collect();
    let by_id = |id: &str| &devices[fleet.iter().position(|(d, _)| *d == id).unwrap()];
    peers::break_device(&by_id("canary-2").root);

    // Debian's security data for the test packages (a tracker file in the published
    // format, tests/fixtures/debian-security-tracker.json), served as the tracker serves
    // it: hello fixed in 1.1-1, source package foo (binaries libfoo1, foo-tools) in 2.0-1.
    let tracker = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/debian-security-tracker.json"),
    )
    .unwrap();
    let files = std::collections::HashMap::from([("/tracker/data/json".to_string(), tracker)]);
    let feed = peers::serve_files(files);

    let mut inventory = String::new();
    let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
    for ((id, tag), device) in fleet.iter().zip(&devices) {
        let tags = if tag.is_empty() {
            String::new()
        } else {
            format!("\"{tag}\"")
        };
        inventory.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\ntags = [{tags}]\nversion-scheme = \"deb\"\nfacts = {{ os-codename = \"bookworm\" }}\ncomponents = {{ hello = \"1.0-1\", libfoo1 = {{ version = \"1.0-1\", source = \"foo\" }}, foo-tools = {{ version = \"1.0-1\", source = \"foo\" }} }}\n\n"
        ));
        routes.set(id, ssh_route(device));
    }
    let inventory = ringleader_planner::inventory::Inventory::parse(
        std::path::Path::new("fleet.toml"),
        &inventory,
    )
    .unwrap();
    let (policy, diags) = ringleader_planner::policy::Policy::parse(
        std::path::Path::new("policy.toml"),
        r#"
name = "debian-security"

[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "1s"

[[rings]]
name = "canary"
select = { tags = ["canary"] }
soak = "1s"
max_failures = 0

[[rings]]
name = "broad"
select = "rest"

[on_halt]
rollback = "failed-ring"
"#,
    );
    let policy = policy.unwrap_or_else(|| panic!("{diags}"));

    let (patches, core, _) = roll_out(
        "debian-security-source",
        ("feed", format!("{feed}/tracker/data/json")),
        routes,
        &policy,
        &inventory,
        std::time::Duration::from_secs(300),
    )
    .await
    .expect("the rollout of four Debian devices ends within 5 minutes");
    assert_eq!(
        patches,
        [
            "debian:bookworm:foo:2.0-1:foo-tools",
            "debian:bookworm:foo:2.0-1:libfoo1",
            "debian:bookworm:hello:1.1-1:hello",
        ]
    );

    let state = |id: &str| -> JobState {
        for ring in 0..core.ring_count() as u16 {
            for index in 0..core.ring_len(ring) as u32 {
                let job = JobId { ring, index };
                if core.job_spec(job).is_some_and(|s| s.device == id) {
                    return core.job(job).unwrap().clone();
                }
            }
        }
        panic!("{id} is in no ring")
    };
    assert!(
        matches!(core.phase(), Phase::Halted { ring: 1, .. }),
        "{:?}",
        core.phase()
    );
    // The lab device is patched, the two-package update in one transaction.
    let lab = by_id("lab-1");
    assert_eq!(state("lab-1"), JobState::Done);
    for (name, version) in [
        ("hello", "1.1-1"),
        ("libfoo1", "2.0-1"),
        ("foo-tools", "2.0-1"),
    ] {
        assert_eq!(lab.package(name), Some(ii(version)), "lab-1 {name}");
    }
    let transactions = lab.transactions();
    assert!(
        transactions.iter().any(|t| t.contains("libfoo1 (1.0-1, 2.0-1)")
            && t.contains("foo-tools (1.0-1, 2.0-1)")),
        "{transactions:?}"
    );
    // The device whose maintainer scripts fail is a failed install, with apt's error;
    // it is rolled back too (`failed_devices` defaults to `rollback`), and since every
    // postinst fails on it (`break_device`), so does its rollback, the reason kept.
    let job = (0..core.ring_len(1) as u32)
        .map(|index| JobId { ring: 1, index })
        .find(|job| core.job_spec(*job).is_some_and(|s| s.device == "canary-2"))
        .unwrap();
    let reason = core.job_failure(job).unwrap_or_default();
    assert!(
        reason.contains("configuration failed on this device"),
        "{reason}"
    );
    match state("canary-2") {
        JobState::RollbackFailed { reason } => assert!(
            reason.contains("back to 1.0-1") && reason.contains("post-installation script"),
            "{reason}"
        ),
        other => panic!("canary-2: {other:?}"),
    }
    // The canary that had installed is back at its previous versions, from the
    // repository.
    let canary = by_id("canary-1");
    assert_eq!(state("canary-1"), JobState::RolledBack);
    for name in ["hello", "libfoo1", "foo-tools"] {
        assert_eq!(canary.package(name), Some(ii("1.0-1")), "canary-1 {name}");
    }
    assert!(
        canary
            .transactions()
            .iter()
            .any(|t| t.starts_with("Downgrade:")),
        "{:?}",
        canary.transactions()
    );
    // Broad never started.
    let broad = by_id("broad-1");
    assert_eq!(state("broad-1"), JobState::Pending);
    assert_eq!(broad.transactions().len(), 1, "only its setup");
    eprintln!(
        "apt rollout: 4 devices through 3 rings in {} ms",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn preflight_blocks_held_packages_broken_dependencies_and_a_full_disk() {
    let lab = Lab::start(&["hello=1.0-1", "libfoo1=1.0-1", "foo-tools=1.0-1"]).await;
    let dev = lab.dev(&[
        ("hello", "1.0-1"),
        ("libfoo1", "1.0-1"),
        ("foo-tools", "1.0-1"),
    ]);
    let fix = patch("hello-1.1-1", "hello", "1.1-1");

    // Held by the operator: apt will not change it, and preflight says how to let it.
    let out = lab.device.run("apt-mark", &["hold", "hello"]);
    assert!(out.status.success());
    match lab.apt.preflight(&dev, &fix).await.unwrap() {
        Readiness::Blocked(why) => {
            assert!(why.contains("hello held on deb-1"), "{why}");
            assert!(why.contains("apt-mark unhold hello"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        lab.device
            .run("apt-mark", &["unhold", "hello"])
            .status
            .success()
    );

    // The library's update without the tools of its version: foo-tools 1.0-1 needs
    // libfoo1 (= 1.0-1), so apt would have to break or remove it.
    lab.repo.remove("foo-tools", "2.0-1");
    match lab
        .apt
        .preflight(&dev, &patch("foo-2.0-1/libfoo1", "libfoo1", "2.0-1"))
        .await
        .unwrap()
    {
        Readiness::Blocked(why) => assert!(why.contains("foo-tools"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.has("libfoo1"), ii("1.0-1"));

    // No room where apt downloads.
    let full = lab.device.fill_archives();
    match lab.apt.preflight(&dev, &fix).await.unwrap() {
        Readiness::Blocked(why) => {
            assert!(why.contains("not enough disk space on deb-1"), "{why}");
            assert!(
                why.contains("/var/cache/apt/archives has 0 B free"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    drop(full);
    assert_eq!(
        lab.apt.preflight(&dev, &fix).await.unwrap(),
        Readiness::Ready
    );
    assert_eq!(lab.has("hello"), ii("1.0-1"));
}

/// A scan reads what the real Debian system has, whatever the inventory says: every
/// package with its real version and source package (libc6 from glibc), the release
/// from /etc/os-release, the boot id, and a restart that /run/reboot-required asks
/// for, with the packages that asked.
#[tokio::test]
async fn a_scan_reads_the_real_packages_release_and_pending_restart() {
    let lab = Lab::start(&["hello=1.1-1", "libfoo1=1.0-1", "foo-tools=1.0-1"]).await;
    // The inventory is stale: it still says hello 1.0-1, and lists nothing else.
    let dev = lab.dev(&[("hello", "1.0-1")]);
    let scan = lab.apt.scan(&dev).await.unwrap();
    let of = |name: &str| {
        scan.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} not scanned"))
    };
    assert_eq!(of("hello").version, "1.1-1");
    assert_eq!(of("foo-tools").source.as_deref(), Some("foo"));
    assert_eq!(of("libfoo1").scheme, Some(ringleader_types::Scheme::Deb));
    // Every package of the root, each as dpkg-query itself reports it.
    let libc = of("libc6");
    assert_eq!(libc.source.as_deref(), Some("glibc"));
    assert_eq!(
        Some((libc.version.clone(), "ii".to_string())),
        lab.device.package("libc6")
    );
    assert!(scan.components.len() > 80, "{}", scan.components.len());
    let os = scan.os.as_ref().expect("os-release read");
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id.as_deref(), Some("12"));
    assert_eq!(os.codename.as_deref(), Some("bookworm"));
    assert!(!scan.boot.reboot_pending, "{:?}", scan.boot);
    assert!(scan.facts.is_empty(), "{:?}", scan.facts);

    // The device's boot id (the peer has no /proc of its own: a file stands for it,
    // see tests/peers.rs) and a pending restart, as a kernel's postinst leaves it.
    let root = &lab.device.root;
    std::fs::create_dir_all(root.join("proc/sys/kernel/random")).unwrap();
    std::fs::write(root.join("proc/sys/kernel/random/boot_id"), "b-1\n").unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::write(
        root.join("run/reboot-required"),
        "*** System restart required ***\n",
    )
    .unwrap();
    std::fs::write(
        root.join("run/reboot-required.pkgs"),
        "linux-image-6.1.0-28-amd64\nlibc6\n",
    )
    .unwrap();
    let boot = lab.apt.boot_state(&dev).await.unwrap();
    assert_eq!(boot.boot_id.as_deref(), Some("b-1"));
    assert!(boot.reboot_pending);
    assert_eq!(
        boot.pending_reasons,
        ["/run/reboot-required: libc6, linux-image-6.1.0-28-amd64"]
    );

    // A package dpkg left half-way (an upgrade whose postinst failed) is named in the
    // scan's facts, and the scan changed nothing.
    peers::break_device(root);
    let out = lab.device.run(
        "apt-get",
        &[
            "-q",
            "-o",
            "Dpkg::Use-Pty=0",
            "install",
            "-y",
            "hello=1.2-1",
        ],
    );
    assert!(!out.status.success());
    let broken = lab.apt.scan(&dev).await.unwrap();
    let (_, half) = broken
        .facts
        .iter()
        .find(|(k, _)| k == "dpkg.interrupted")
        .unwrap_or_else(|| panic!("{:?}", broken.facts));
    assert_eq!(half, "hello 1.2-1 (half-configured)");
    assert_eq!(lab.has("hello"), ("1.2-1".into(), "iF".into()));
}

/// The state of `id`'s job in `core`.
fn job_of(core: &ringleader_engine::core::Core, id: &str) -> ringleader_engine::core::JobId {
    use ringleader_engine::core::JobId;
    for ring in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(ring) as u32 {
            let job = JobId { ring, index };
            if core.job_spec(job).is_some_and(|s| s.device == id) {
                return job;
            }
        }
    }
    panic!("{id} is in no ring")
}

#[tokio::test]
async fn patches_that_need_a_restart_reboot_the_device_once_and_are_verified_after_it() {
    use ringleader_engine::core::{JobState, Phase};
    let started = Instant::now();
    let (logs, _capture) = Logs::capture();
    let repo = AptRepo::start(&[
        DebSpec::new("hello", "1.0-1"),
        DebSpec::new("hello", "1.1-1"),
        DebSpec::new("bar", "1.0-1"),
        DebSpec::new("bar", "1.1-1"),
    ]);
    let old = ["hello=1.0-1", "bar=1.0-1"];
    // lab-1 is down for 3 s after its reboot; canary-1 never comes back.
    let lab = DebianDevice::start(&repo, &old);
    lab.enable_reboot(Some(std::time::Duration::from_secs(3)));
    let canary = DebianDevice::start(&repo, &old);
    canary.enable_reboot(None);
    // What a package's postinst leaves on Debian (update-notifier-common): a pending
    // restart, which the reboot clears.
    std::fs::write(
        lab.root.join("run/reboot-required"),
        "*** System restart required ***\n",
    )
    .unwrap();

    // Both fixes need a restart (an operator's catalog says so).
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    let mut text = String::from("vendor = \"debian\"\n");
    for name in ["hello", "bar"] {
        text.push_str(&format!(
            "[[patches]]\nid = \"{name}-1.1-1\"\ntitle = \"{name} 1.1-1\"\ncomponent = \"{name}\"\nfixed-version = \"1.1-1\"\nscheme = \"deb\"\napplies-to = \"< 1.1-1\"\nkind = \"security\"\nseverity = \"high\"\nreleased = \"2026-11-01\"\nreboot = true\n\n"
        ));
    }
    std::fs::write(&catalog, text).unwrap();

    let routes = Routes::new(Arc::new(ringleader_runtime::services::NoExec));
    let mut inventory = String::new();
    for (id, tag, device) in [("lab-1", "lab", &lab), ("canary-1", "canary", &canary)] {
        inventory.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\ntags = [\"{tag}\"]\nversion-scheme = \"deb\"\ncomponents = {{ hello = \"1.0-1\", bar = \"1.0-1\" }}\n\n"
        ));
        routes.set(id, ssh_route(device));
    }
    let inventory = ringleader_planner::inventory::Inventory::parse(
        std::path::Path::new("fleet.toml"),
        &inventory,
    )
    .unwrap();
    let (policy, diags) = ringleader_planner::policy::Policy::parse(
        std::path::Path::new("policy.toml"),
        r#"
name = "restarts"

[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "1s"
reboot = "if-needed"
# Back and verified: the reboot, the wait and a verify per step, over SSH.
reboot_timeout = "60s"

[[rings]]
name = "canary"
select = { tags = ["canary"] }
soak = "1s"
max_failures = 0
reboot_timeout = "10s"
"#,
    );
    let policy = policy.unwrap_or_else(|| panic!("{diags}"));

    let (_, core, apt) = roll_out(
        "catalog-source",
        ("catalog", format!("file://{}", catalog.display())),
        routes,
        &policy,
        &inventory,
        std::time::Duration::from_secs(240),
    )
    .await
    .expect("the rollout of two Debian devices ends within 4 minutes");

    // lab-1: both packages installed, then one reboot; back with another boot id and
    // verified, its pending restart gone.
    assert_eq!(
        core.job(job_of(&core, "lab-1")),
        Some(&JobState::Done),
        "{:?} {:?} reboots {} {}",
        core.phase(),
        core.job_failure(job_of(&core, "lab-1")),
        lab.reboots(),
        logs.text()
    );
    assert_eq!(lab.reboots(), 1, "one reboot after the last step");
    assert_eq!(lab.boot_id(), "boot-1");
    assert_eq!(core.reboots(0), 1);
    for name in ["hello", "bar"] {
        assert_eq!(lab.package(name), Some(ii("1.1-1")), "lab-1 {name}");
    }
    let scan = apt.scan(&device("lab-1", &[])).await.unwrap();
    assert_eq!(scan.boot.boot_id.as_deref(), Some("boot-1"));
    assert!(!scan.boot.reboot_pending, "{:?}", scan.boot);

    // canary-1 restarted and never answered again: failed, unresponsive, at its
    // reboot_timeout; the ring halts.
    assert_eq!(canary.reboots(), 1);
    let job = job_of(&core, "canary-1");
    let reason = core.job_failure(job).unwrap_or_default();
    assert!(
        reason.contains("not back from its reboot within 10s (unresponsive)"),
        "{reason}"
    );
    assert!(
        matches!(core.phase(), Phase::Halted { ring: 1, .. }),
        "{:?}",
        core.phase()
    );
    eprintln!(
        "apt reboots: 2 devices in {} ms",
        started.elapsed().as_millis()
    );
}
