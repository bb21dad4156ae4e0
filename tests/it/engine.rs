//! Whole rollouts: planner, core, executor, the real simulated-vendor plugins (in the
//! sandbox) and simulated devices, in virtual time.

use super::*;
use jiff::Timestamp;
use ringleader_engine::core::{Core, JobId, JobState, Phase};
use ringleader_engine::demo::{self, FleetConfig};
use ringleader_engine::executor::{Command, Executor, Installers, RunReport, Timing};
use ringleader_engine::store::{Record, Store};
use ringleader_planner::policy::Policy;
use ringleader_runtime::sim_device::SimDevices;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sees the core at every step of time.
type Watch = Box<dyn FnMut(&Core, Timestamp)>;

/// How a scenario runs.
#[derive(Default)]
struct Run {
    auto_approve: Option<Duration>,
    /// Devices added to the fleet that join at a time (the last of the fleet).
    join: Option<(usize, Timestamp)>,
    /// Log to a store in this directory (to read the dispatches back).
    store: Option<PathBuf>,
    /// Called at every step of time with the core, as the executor's progress.
    watch: Option<Watch>,
    /// Real time instead of virtual time.
    real_time: bool,
    /// An operator's channel.
    control: Option<mpsc::UnboundedReceiver<Command>>,
    /// The simulated devices (a fresh set when none).
    devices: Option<Arc<SimDevices>>,
}

const START: &str = "2026-11-02T08:00:00Z";

async fn rollout(
    fleet: FleetConfig,
    policy: &str,
    auto_approve: Option<Duration>,
) -> (Core, RunReport, Arc<SimDevices>) {
    run(
        fleet,
        policy,
        Run {
            auto_approve,
            ..Run::default()
        },
    )
    .await
}

async fn run(fleet: FleetConfig, policy: &str, mut how: Run) -> (Core, RunReport, Arc<SimDevices>) {
    let (policy, diags) = Policy::parse(Path::new("scenario.toml"), policy);
    let policy = policy.unwrap_or_else(|| panic!("{diags}"));
    let joining = how.join.map_or(0, |(n, _)| n);
    let everyone = demo::inventory(&FleetConfig {
        devices: fleet.devices + joining,
        ..fleet.clone()
    });
    let inventory = ringleader_planner::inventory::Inventory {
        devices: everyone.devices[..fleet.devices].to_vec(),
    };
    let installer_manifest =
        ringleader_runtime::Manifest::load(&manifest("sim-vendor-installer")).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared("sim-vendor-installer", &installer_manifest.capabilities);
    let devices = how
        .devices
        .take()
        .unwrap_or_else(|| Arc::new(SimDevices::in_memory()));
    let rt = runtime(
        grants,
        Services {
            exec: devices.clone(),
            ..Services::default()
        },
    );
    let source = load(&rt, "sim-vendor-source").await;
    let installer = load(&rt, "sim-vendor-installer").await;
    let start: Timestamp = START.parse().unwrap();
    let prepared = ringleader_engine::spec::prepare(
        &policy,
        &inventory,
        std::slice::from_ref(&source),
        start,
        None,
    )
    .await
    .unwrap();
    let mut scheduled = Vec::new();
    if let Some((n, at)) = how.join {
        let ids: Vec<&str> = everyone.devices[fleet.devices..]
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(ids.len(), n);
        let joining = ringleader_engine::spec::join(&policy, &everyone, &ids, &[source], at, None)
            .await
            .unwrap();
        scheduled.push((at, Command::Join(joining)));
    }
    let executor = Executor {
        core: Core::new(prepared.spec),
        installers: Installers::new(installer),
        targets: prepared.targets,
        timing: if how.real_time {
            Timing::Real
        } else {
            Timing::Virtual(demo::timing(&fleet))
        },
        concurrency: 16,
        auto_approve_after: how.auto_approve,
        now: start,
        store: how.store.as_deref().map(|dir| Store::open(dir).unwrap()),
        recovery: Default::default(),
        devices: Some(devices.clone()),
        clock: None,
        scheduled,
        leases: None,
        horizon: None,
        control: how.control.take(),
        metrics: Default::default(),
    };
    let mut watch = how.watch.take();
    let (core, report) = executor
        .run(|core, now| {
            if let Some(watch) = &mut watch {
                watch(core, now);
            }
        })
        .await;
    (core, report, devices)
}

/// [`run`] with the log in a new directory (returned, to read the log back).
async fn run_logged(
    fleet: FleetConfig,
    policy: &str,
    mut how: Run,
) -> (Core, RunReport, Arc<SimDevices>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    how.store = Some(dir.path().to_owned());
    let (core, report, devices) = run(fleet, policy, how).await;
    (core, report, devices, dir)
}

/// Every step the executor dispatched, with its time, from the log in `dir`.
fn dispatches(dir: &Path) -> Vec<(Timestamp, JobId, u16)> {
    Store::open(dir)
        .unwrap()
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Dispatched { at, job, step } => Some((
                Timestamp::from_second(at).unwrap(),
                JobId {
                    ring: job.0,
                    index: job.1,
                },
                step,
            )),
            _ => None,
        })
        .collect()
}

const TWO_RINGS: &str = r#"
name = "scenario"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
unresponsive_after = "2h"
[[rings]]
name = "pilot"
select = "rest"
approval = "required"
max_failures = "10%"   # one server model fails its NIC firmware now and then
"#;

fn fleet(devices: usize) -> FleetConfig {
    FleetConfig {
        devices,
        seed: 3,
        fail_permille: 0,
        unhealthy_permille: 0,
        hang_permille: 0,
    }
}

#[tokio::test]
async fn devices_that_never_report_fail_at_the_deadline_and_halt_the_ring() {
    let mut config = fleet(300);
    config.hang_permille = 1000;
    let (core, report, _) = rollout(config, TWO_RINGS, None).await;
    assert!(
        matches!(core.phase(), Phase::Halted { ring: 0, .. }),
        "{:?}",
        core.phase()
    );
    assert!(
        report
            .halt_reason
            .unwrap()
            .contains("failed in ring lab, over its failure budget of 0")
    );
    // Failed, then (the policy rolls failed devices back) rolled back; the reason
    // it failed is kept.
    let first = JobId { ring: 0, index: 0 };
    assert_eq!(core.job(first), Some(&JobState::RolledBack));
    let reason = core.job_failure(first).unwrap();
    assert!(reason.contains("unresponsive"), "{reason}");
    // Nobody reported, and the deadline is 2 h after the first install started.
    assert!(report.finished.as_second() - report.started.as_second() >= 2 * 3600);
}

#[tokio::test]
async fn a_ring_that_needs_approval_waits_for_it() {
    let (core, report, devices) = rollout(fleet(300), TWO_RINGS, None).await;
    assert_eq!(core.phase(), &Phase::AwaitingApproval { ring: 1 });
    let pilot = core.counts(1);
    assert_eq!(
        pilot.pending,
        core.ring_len(1),
        "nothing in the pilot starts unapproved"
    );
    assert_eq!(report.approvals, 0);
    assert_eq!(devices.total("duplicates").unwrap(), 0);

    // With an operator who approves after 4 hours, the rollout completes.
    let (core, report, devices) =
        rollout(fleet(300), TWO_RINGS, Some(Duration::from_secs(4 * 3600))).await;
    assert_eq!(core.phase(), &Phase::Completed);
    assert_eq!(report.approvals, 1);
    let pilot = core.counts(1);
    assert_eq!(pilot.done + pilot.failed, core.ring_len(1));
    assert!(pilot.done > pilot.failed);
    assert!(devices.total("installs").unwrap() > 0);
    assert_eq!(devices.total("duplicates").unwrap(), 0);
}

/// Inside the weekly window Monday to Thursday 22:00-04:00 (crossing midnight), in
/// the device's own time zone.
fn in_weeknight_window(local: &jiff::Zoned) -> bool {
    use jiff::civil::Weekday::*;
    let day = local.weekday();
    (matches!(day, Monday | Tuesday | Wednesday | Thursday) && local.hour() >= 22)
        || (matches!(day, Tuesday | Wednesday | Thursday | Friday) && local.hour() < 4)
}

#[tokio::test]
async fn installs_start_only_inside_windows_that_cross_midnight_in_each_devices_zone() {
    let policy = r#"
name = "windows"
[windows.nights]
days = ["mon", "tue", "wed", "thu"]
start = "22:00"
end = "04:00"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
[[rings]]
name = "rest"
select = "rest"
window = "nights"
max_parallel = 20
max_failures = "20%"
"#;
    let (core, _, _, dir) = run_logged(fleet(400), policy, Run { ..Run::default() }).await;
    assert_eq!(core.phase(), &Phase::Completed);
    let mut zones = std::collections::BTreeSet::new();
    let mut after_midnight = 0;
    let mut utc_hours = std::collections::BTreeMap::<String, std::collections::BTreeSet<i8>>::new();
    let windowed: Vec<_> = dispatches(dir.path())
        .into_iter()
        .filter(|(_, job, _)| job.ring == 1)
        .collect();
    assert!(windowed.len() > 300, "{}", windowed.len());
    for (at, job, step) in windowed {
        let tz = core.job_spec(job).unwrap().timezone.clone();
        let name = tz.iana_name().unwrap().to_string();
        let local = at.to_zoned(tz);
        assert!(
            in_weeknight_window(&local),
            "step {step} of {job:?} started at {local} ({name}), outside Mon-Thu 22:00-04:00"
        );
        if local.hour() < 4 {
            after_midnight += 1;
        }
        utc_hours
            .entry(name.clone())
            .or_default()
            .insert(at.to_zoned(jiff::tz::TimeZone::UTC).hour());
        zones.insert(name);
    }
    assert!(zones.len() >= 2, "{zones:?}");
    assert!(
        after_midnight > 0,
        "no install started after local midnight"
    );
    // Amsterdam's nights and New York's are different hours of UTC.
    assert_ne!(
        utc_hours.get("Europe/Amsterdam"),
        utc_hours.get("America/New_York")
    );
}

#[tokio::test]
async fn nothing_starts_during_a_freeze_and_the_rollout_carries_on_after_it() {
    let policy = r#"
name = "freeze"
[[freeze]]
from = "2026-11-04"
to = "2026-11-08"
reason = "conference week"
[[rings]]
name = "all"
select = "rest"
max_parallel = 5
max_failures = "20%"
"#;
    let (core, _, _, dir) = run_logged(fleet(300), policy, Run { ..Run::default() }).await;
    assert_eq!(core.phase(), &Phase::Completed);
    let first: jiff::civil::Date = "2026-11-04".parse().unwrap();
    let last: jiff::civil::Date = "2026-11-08".parse().unwrap();
    let (mut before, mut after) = (0, 0);
    for (at, job, step) in dispatches(dir.path()) {
        let local = at.to_zoned(core.job_spec(job).unwrap().timezone.clone());
        assert!(
            local.date() < first || local.date() > last,
            "step {step} of {job:?} started at {local}, during the freeze"
        );
        if local.date() < first {
            before += 1;
        } else {
            after += 1;
        }
    }
    assert!(before > 0 && after > 0, "before {before}, after {after}");
}

#[tokio::test]
async fn expedited_patches_start_after_a_shortened_soak_and_the_rest_after_the_full_one() {
    let policy = r#"
name = "expedite"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "96h"
max_failures = "50%"
[[rings]]
name = "rest"
select = "rest"
max_failures = "20%"
[expedite]
severity = ["critical"]
soak_factor = 0.25
"#;
    let soak_began = Arc::new(std::sync::Mutex::new(None));
    let seen = soak_began.clone();
    let (core, _, _, dir) = run_logged(
        fleet(400),
        policy,
        Run {
            watch: Some(Box::new(move |core, now| {
                let mut seen = seen.lock().unwrap();
                // The lab ring completed: the next ring opens, its steps waiting for
                // their soaks to end.
                if seen.is_none() && matches!(core.phase(), Phase::Running { ring: 1 }) {
                    *seen = Some(now);
                }
            })),
            ..Run::default()
        },
    )
    .await;
    assert_eq!(core.phase(), &Phase::Completed);
    let soak_began = soak_began.lock().unwrap().expect("the lab ring completed");
    let quarter = soak_began + jiff::SignedDuration::from_hours(24);
    let full = soak_began + jiff::SignedDuration::from_hours(96);
    let (mut expedited, mut ordinary) = (Vec::new(), Vec::new());
    for (at, job, step) in dispatches(dir.path()) {
        if job.ring != 1 {
            continue;
        }
        if core.job_spec(job).unwrap().steps[usize::from(step)].expedited {
            expedited.push(at);
        } else {
            ordinary.push(at);
        }
    }
    let first_expedited = *expedited.iter().min().expect("expedited steps ran");
    let first_ordinary = *ordinary.iter().min().expect("ordinary steps ran");
    assert_eq!(first_expedited, quarter, "a quarter of the 96 h soak");
    assert!(first_ordinary >= full, "{first_ordinary} before {full}");
}

/// What `sim-pkg` says on `device`.
async fn sim_pkg(devices: &SimDevices, device: &ringleader_types::Device, args: &[&str]) -> String {
    use ringleader_runtime::services::{DeviceExec, ExecRequest};
    let request = ExecRequest {
        program: "sim-pkg".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: Vec::new(),
        timeout: Duration::from_secs(5),
    };
    let out = devices.run(device, request).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_failed_device_is_rolled_back_to_the_version_it_ran_not_the_stale_inventory_s() {
    let policy = r#"
name = "failed-devices"
[[rings]]
name = "canary"
select = "rest"
max_failures = 0
[on_halt]
rollback = "failed-ring"
failed_devices = "rollback"
"#;
    let mut config = fleet(3);
    config.fail_permille = 1000;
    // The devices run other versions than the inventory says (it is stale).
    let devices = Arc::new(SimDevices::in_memory());
    let inventory = demo::inventory(&config);
    let mut ran = Vec::new();
    for d in &inventory.devices {
        let mut device = d.to_plugin();
        // Set up without the failure rate.
        device.facts.retain(|(k, _)| !k.starts_with("sim.fail"));
        for c in device.components.clone() {
            let actual = format!("{}.7", c.version);
            sim_pkg(&devices, &device, &["rollback", &c.name, &actual]).await;
            ran.push((device.clone(), c.name.clone(), actual));
        }
    }
    let (core, report, devices, dir) = run_logged(
        config,
        policy,
        Run {
            devices: Some(devices),
            ..Run::default()
        },
    )
    .await;
    assert!(matches!(core.phase(), Phase::Halted { ring: 0, .. }));
    assert!(report.rollback_calls > 0);
    for index in 0..core.ring_len(0) as u32 {
        let job = JobId { ring: 0, index };
        assert_eq!(core.job(job), Some(&JobState::RolledBack), "{job:?}");
        assert!(
            core.job_failure(job)
                .unwrap()
                .contains("flash verification error")
        );
    }
    // Every component as the device ran it before, never the inventory's version.
    for (device, component, actual) in &ran {
        assert_eq!(
            &sim_pkg(&devices, device, &["query", component]).await,
            actual
        );
    }
    // The observed versions are in the log, before each install.
    let observed: Vec<Option<String>> = Store::open(dir.path())
        .unwrap()
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Observed { version, .. } => Some(version),
            _ => None,
        })
        .collect();
    assert_eq!(observed.len(), core.ring_len(0), "{observed:?}");
    assert!(
        observed
            .iter()
            .all(|v| v.as_deref().is_some_and(|v| v.ends_with(".7")))
    );
}

#[tokio::test]
async fn a_halted_ring_is_rolled_back_at_its_own_rate() {
    let policy = r#"
name = "rollback"
[[rings]]
name = "canary"
select = "rest"
max_parallel = 4
max_failures = 5
[on_halt]
rollback = "failed-ring"
"#;
    let mut config = fleet(200);
    config.fail_permille = 120;
    let most_rolling_back = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = most_rolling_back.clone();
    let (core, report, devices, dir) = run_logged(
        config,
        policy,
        Run {
            // A rollback of steps that needed a restart reboots the device, which
            // is active (rebooting) meanwhile: both take a place of max_parallel.
            watch: Some(Box::new(move |core, _| {
                let c = core.counts(0);
                most.fetch_max(
                    c.rolling_back + c.active,
                    std::sync::atomic::Ordering::SeqCst,
                );
            })),
            ..Run::default()
        },
    )
    .await;
    assert!(
        matches!(core.phase(), Phase::Halted { ring: 0, .. }),
        "{:?}",
        core.phase()
    );
    assert!(
        report
            .halt_reason
            .unwrap()
            .contains("over its failure budget of 5")
    );
    let counts = core.counts(0);
    assert_eq!(counts.rolling_back, 0, "every rollback finished");
    assert!(counts.rolled_back >= 8, "{counts:?}");
    assert_eq!(
        most_rolling_back.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "rollbacks run at the ring's max_parallel, no more"
    );
    // Spread over time, not all at once.
    let times: std::collections::BTreeSet<i64> = Store::open(dir.path())
        .unwrap()
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::RollbackDispatched { at, .. } => Some(at),
            _ => None,
        })
        .collect();
    assert!(times.len() >= 2, "{times:?}");
    assert_eq!(devices.total("duplicates").unwrap(), 0);
    // The store's status view says the same as the core, without a replay.
    let status = Store::open(dir.path()).unwrap().status().unwrap().unwrap();
    assert_eq!(status.phase, "halted");
    assert_eq!(status.ring, Some(0));
    assert!(status.halt_reason.unwrap().contains("failure budget"));
    assert_eq!(status.rings[0].rolled_back, counts.rolled_back);
    assert_eq!(status.rings[0].failed, counts.failed);
}

#[tokio::test]
async fn devices_that_join_mid_rollout_are_placed_by_the_rules_and_patched() {
    let policy = r#"
name = "joining"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "24h"
[[rings]]
name = "rest"
select = "rest"
max_failures = "20%"
"#;
    let start: Timestamp = START.parse().unwrap();
    // Device 300 is tagged `lab`; the lab ring is done (soaking) when it joins, so it
    // goes to the next batch of the ring that runs next.
    let at = start + jiff::SignedDuration::from_hours(12);
    let (core, _, devices) = run(
        fleet(300),
        policy,
        Run {
            join: Some((3, at)),
            ..Run::default()
        },
    )
    .await;
    assert_eq!(core.phase(), &Phase::Completed);
    let mut joined = Vec::new();
    for ring in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(ring) as u32 {
            let job = JobId { ring, index };
            let spec = core.job_spec(job).unwrap();
            if spec.device.ends_with("-00300")
                || spec.device.ends_with("-00301")
                || spec.device.ends_with("-00302")
            {
                joined.push((ring, core.job(job).unwrap().clone()));
            }
        }
    }
    assert_eq!(joined.len(), 3, "{joined:?}");
    for (ring, state) in &joined {
        assert_eq!(*ring, 1, "the lab ring was done when they joined");
        assert!(
            matches!(state, JobState::Done | JobState::Failed { .. }),
            "{state:?}"
        );
    }
    assert!(joined.iter().any(|(_, s)| *s == JobState::Done));
    assert_eq!(devices.total("duplicates").unwrap(), 0);
}

const APPROVAL: &str = r#"
name = "real-time"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
[[rings]]
name = "rest"
select = "rest"
approval = "required"
max_failures = "20%"
"#;

#[tokio::test]
async fn in_real_time_a_ring_waits_for_an_operator_and_goes_on_when_approved() {
    let (tx, rx) = mpsc::unbounded_channel();
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let operator = asked.clone();
    let run = run(
        fleet(200),
        APPROVAL,
        Run {
            real_time: true,
            control: Some(rx),
            watch: Some(Box::new(move |core, _| {
                if matches!(core.phase(), Phase::AwaitingApproval { ring: 1 })
                    && !operator.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    // Nothing in the ring started before the approval.
                    assert_eq!(core.counts(1).pending, core.ring_len(1));
                    tx.send(Command::Approve).unwrap();
                }
            })),
            ..Run::default()
        },
    );
    let (core, report, devices) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("a real-time rollout of 200 simulated devices ends within 2 minutes");
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(core.phase(), &Phase::Completed);
    assert_eq!(report.approvals, 1);
    let rest = core.counts(1);
    assert_eq!(rest.done + rest.failed, core.ring_len(1));
    assert_eq!(devices.total("duplicates").unwrap(), 0);
}

/// [`APPROVAL`] without restarts: a device whose steps are done is done at once, so
/// that an abort finds devices whose steps have not all run (with restarts, every
/// device would be through its steps and waiting for its reboot by then).
const APPROVAL_NO_REBOOTS: &str = r#"
name = "real-time"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
reboot = "never"
[[rings]]
name = "rest"
select = "rest"
approval = "required"
max_failures = "20%"
reboot = "never"
"#;

#[tokio::test]
async fn in_real_time_an_operator_can_pause_resume_and_abort() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut step = 0;
    let mut running_when_paused = usize::MAX;
    let run = run(
        fleet(300),
        APPROVAL_NO_REBOOTS,
        Run {
            real_time: true,
            auto_approve: Some(Duration::ZERO),
            control: Some(rx),
            watch: Some(Box::new(move |core, _| {
                let rest = core.counts(1);
                match step {
                    0 if rest.done >= 10 => {
                        tx.send(Command::Pause).unwrap();
                        step = 1;
                    }
                    1 if core.is_paused() => {
                        // Paused: what runs finishes, nothing new starts.
                        let running = core.running_steps(1);
                        assert!(
                            running <= running_when_paused,
                            "a step started while paused"
                        );
                        running_when_paused = running;
                        if running == 0 {
                            tx.send(Command::Resume).unwrap();
                            step = 2;
                        }
                    }
                    2 if rest.done >= 40 => {
                        tx.send(Command::Abort).unwrap();
                        step = 3;
                    }
                    _ => {}
                }
            })),
            ..Run::default()
        },
    );
    let (core, _, devices) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the rollout ends within 2 minutes");
    assert_eq!(core.phase(), &Phase::Aborted);
    let rest = core.counts(1);
    assert!(rest.done >= 40, "{rest:?}");
    assert!(
        rest.done + rest.failed < core.ring_len(1),
        "aborted before the ring finished: {rest:?}"
    );
    assert_eq!(devices.total("duplicates").unwrap(), 0);
}

#[tokio::test]
async fn each_device_reboots_once_after_its_last_step_and_only_inside_the_reboot_window() {
    // Installs any time; restarts only Monday to Thursday 22:00-04:00, in the device's
    // own zone. The simulated vendor's BIOS and NIC updates need a restart.
    let policy = r#"
name = "reboot-window"
[windows.nights]
days = ["mon", "tue", "wed", "thu"]
start = "22:00"
end = "04:00"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
reboot_window = "nights"
[[rings]]
name = "rest"
select = "rest"
max_parallel = 50
max_failures = "20%"
reboot_window = "nights"
"#;
    let (core, _, _, dir) = run_logged(fleet(300), policy, Run { ..Run::default() }).await;
    assert_eq!(core.phase(), &Phase::Completed);
    let records = Store::open(dir.path()).unwrap().records().unwrap();
    let job = |(ring, index): (u16, u32)| JobId { ring, index };
    let mut last_step = std::collections::HashMap::<JobId, i64>::new();
    let mut reboots = std::collections::HashMap::<JobId, usize>::new();
    let mut outside_window_steps = 0;
    for record in records {
        match record {
            Record::Dispatched { at, job: j, .. } => {
                let j = job(j);
                assert!(
                    !reboots.contains_key(&j),
                    "{j:?}: a step dispatched after its reboot"
                );
                last_step.insert(j, at);
                let tz = core.job_spec(j).unwrap().timezone.clone();
                if !in_weeknight_window(&Timestamp::from_second(at).unwrap().to_zoned(tz)) {
                    outside_window_steps += 1;
                }
            }
            Record::RebootDispatched { at, job: j } => {
                let j = job(j);
                let tz = core.job_spec(j).unwrap().timezone.clone();
                let local = Timestamp::from_second(at).unwrap().to_zoned(tz);
                assert!(
                    in_weeknight_window(&local),
                    "{j:?} restarted at {local}, outside Mon-Thu 22:00-04:00"
                );
                assert!(
                    last_step.get(&j).is_some_and(|step| *step <= at),
                    "{j:?} restarted before its steps"
                );
                *reboots.entry(j).or_default() += 1;
            }
            _ => {}
        }
    }
    // Installs did not wait for the window; restarts did, once per device.
    assert!(outside_window_steps > 0);
    assert!(reboots.len() > 250, "{} devices restarted", reboots.len());
    assert!(reboots.values().all(|n| *n == 1), "{reboots:?}");
    assert_eq!(
        core.reboots(0) + core.reboots(1),
        reboots.len(),
        "the status counts every restart"
    );
}
