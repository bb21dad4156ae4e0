//! Whole rollouts: planner, core, executor, the real simulated-vendor plugins (in the
//! sandbox) and simulated devices, in virtual time.

use super::*;
use ringleader_engine::core::{Core, JobId, JobState, Phase};
use ringleader_engine::demo::{self, FleetConfig};
use ringleader_engine::executor::{RunReport, VirtualExecutor};
use ringleader_planner::policy::Policy;
use ringleader_runtime::sim_device::SimDevices;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn rollout(
    fleet: FleetConfig,
    policy: &str,
    auto_approve: Option<Duration>,
) -> (Core, RunReport, Arc<SimDevices>) {
    let (policy, diags) = Policy::parse(Path::new("scenario.toml"), policy);
    let policy = policy.unwrap_or_else(|| panic!("{diags}"));
    let inventory = demo::inventory(&fleet);
    let installer_manifest =
        ringleader_runtime::Manifest::load(&manifest("sim-vendor-installer")).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared("sim-vendor-installer", &installer_manifest.capabilities);
    let devices = Arc::new(SimDevices::in_memory());
    let rt = runtime(
        grants,
        Services {
            exec: devices.clone(),
            ..Services::default()
        },
    );
    let source = load(&rt, "sim-vendor-source").await;
    let installer = load(&rt, "sim-vendor-installer").await;
    let start = "2026-11-02T08:00:00Z".parse().unwrap();
    let prepared = ringleader_engine::spec::prepare(&policy, &inventory, &[source], start)
        .await
        .unwrap();
    let executor = VirtualExecutor {
        core: Core::new(prepared.spec),
        installer,
        targets: Arc::new(prepared.targets),
        timing: demo::timing(&fleet),
        concurrency: 16,
        auto_approve_after: auto_approve,
        now: start,
        store: None,
        recheck: vec![],
        devices: Some(devices.clone()),
        clock: None,
    };
    let (core, report) = executor.run(|_, _| {}).await;
    (core, report, devices)
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
    let first = core.job(JobId { ring: 0, index: 0 }).unwrap();
    assert!(
        matches!(first, JobState::Failed { reason } if reason.contains("unresponsive")),
        "{first:?}"
    );
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
