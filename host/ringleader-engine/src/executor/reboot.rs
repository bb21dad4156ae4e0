//! Reboots: a device restarted through its installer (`reboot`, WIT 0.3.0), waited for
//! until `boot-state` reports another boot id, then verified.
//!
//! The boot id read before the reboot is logged, durable, before `reboot` is called
//! (the executor's `BootObserved` record): after a restart of the engine, a device that
//! reports another boot id came back and is not rebooted a second time; one that still
//! reports the same id answers, so it never went down (the stop came before the call
//! reached it) and is asked again; one that does not answer is still restarting.

use super::Metrics;
use ringleader_runtime::Plugin;
use ringleader_runtime::error::{CallError, CallErrorKind};
use ringleader_types::{Device, Patch};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How often a restarting device is asked whether it is back (real time).
pub const REBOOT_POLL: Duration = Duration::from_secs(2);

/// How a reboot is waited for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// Ask every `poll` until `timeout` has passed (the ring's `reboot_timeout`).
    Real { poll: Duration, timeout: Duration },
    /// A simulated device: back at once (how long it took is the fleet model's, in
    /// virtual time); a device that says otherwise did not come back.
    Virtual,
}

/// What a reboot verifies once the device is back: each patch's component at
/// `expect`, and the device healthy.
#[derive(Debug, Clone)]
pub(super) struct Check {
    pub patch: Patch,
    pub expect: String,
}

/// Why a call about reboots failed, for people: an installer built before WIT 0.3.0
/// cannot reboot, and is told apart from a device that failed.
fn why(e: &CallError) -> String {
    match &e.kind {
        CallErrorKind::Unsupported(_) => format!(
            "installer `{}` cannot reboot devices (built against a WIT version before 0.3.0): \
             update the plugin, or set reboot = \"never\" on the ring",
            e.plugin
        ),
        _ => e.to_string(),
    }
}

/// The device's boot id right before its reboot (`None`: it cannot tell).
pub(super) async fn boot_id(
    installer: &Plugin,
    device: &Device,
    spent: &Metrics,
    limit: &Semaphore,
) -> Result<Option<String>, String> {
    let _permit = limit.acquire().await;
    spent
        .time(installer.boot_state(device))
        .await
        .map(|b| b.boot_id)
        .map_err(|e| format!("before the reboot: {}", why(&e)))
}

/// Restarts `device` (unless `resumed` finds it back already, or still restarting),
/// waits until it answers with a boot id other than `before` (with no id to compare,
/// the first answer after the reboot), then verifies `checks`. The reason on failure
/// names what failed: the reboot call, the device not coming back, a version.
// One call site (the executor's spawn_reboot), each argument a different thing.
#[allow(clippy::too_many_arguments)]
pub(super) async fn reboot_and_verify(
    installer: &Plugin,
    device: &Device,
    before: Option<String>,
    resumed: bool,
    wait: Wait,
    checks: &[Check],
    spent: &Arc<Metrics>,
    limit: &Semaphore,
) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let back = |id: &Option<String>| before.is_none() || *id != before;
    let state = async || {
        let _permit = limit.acquire().await;
        spent.time(installer.boot_state(device)).await
    };
    let mut ask = true;
    if resumed {
        ask = match state().await {
            // Back already (another boot id): not rebooted again.
            Ok(b) if back(&b.boot_id) => false,
            // Same boot id: the reboot never reached it.
            Ok(_) => true,
            // Not answering: still restarting.
            Err(_) => false,
        };
        if !ask {
            tracing::info!(
                "{}: resumed reboot wait, the device was not rebooted again",
                device.id
            );
        }
    }
    if ask {
        let _permit = limit.acquire().await;
        match spent.time(installer.reboot(device)).await {
            Ok(said) => tracing::info!("{}: restarting ({said})", device.id),
            Err(e) => return Err(format!("reboot: {}", why(&e))),
        }
    }
    match wait {
        Wait::Virtual => match state().await {
            Ok(b) if back(&b.boot_id) => {}
            Ok(_) => return Err("the device reports the same boot id after its reboot".into()),
            Err(e) => return Err(format!("not back from its reboot: {e}")),
        },
        Wait::Real { poll, timeout } => loop {
            if started.elapsed() >= timeout {
                return Err(format!(
                    "not back from its reboot within {} (unresponsive)",
                    humantime::format_duration(timeout)
                ));
            }
            tokio::time::sleep(poll).await;
            if let Ok(b) = state().await
                && back(&b.boot_id)
            {
                break;
            }
        },
    }
    let mut problems = Vec::new();
    for check in checks {
        let _permit = limit.acquire().await;
        match spent.time(installer.verify(device, &check.patch)).await {
            Err(e) => problems.push(format!("{}: {e}", check.patch.id)),
            Ok(report) if report.installed_version.as_deref() != Some(&check.expect) => {
                problems.push(format!(
                    "{}: the device reports version {}, expected {}",
                    check.patch.id,
                    report.installed_version.as_deref().unwrap_or("none"),
                    check.expect
                ));
            }
            Ok(report) if !report.health.healthy => {
                let failing: Vec<&str> = report
                    .health
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| c.name.as_str())
                    .collect();
                problems.push(format!(
                    "{}: the device is unhealthy ({})",
                    check.patch.id,
                    failing.join(", ")
                ));
            }
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("after the reboot: {}", problems.join("; ")))
    }
}
