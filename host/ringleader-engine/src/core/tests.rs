//! The core as data: events in, decisions out.

use super::*;
use jiff::civil::time;
use ringleader_planner::policy::FailedDevices;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-11-30T00:00:00Z";

fn job(id: &str, batch: u32, steps: &[&str]) -> DeviceJob {
    DeviceJob {
        device: id.into(),
        timezone: TimeZone::UTC,
        batch,
        steps: steps
            .iter()
            .map(|p| StepSpec {
                patch: (*p).into(),
                not_before: None,
                expedited: false,
                reboot_required: false,
                reboot_after: false,
            })
            .collect(),
    }
}

fn ring(name: &str, devices: Vec<DeviceJob>) -> RingSpec {
    RingSpec {
        name: name.into(),
        batches: devices.iter().map(|d| d.batch + 1).max().unwrap_or(1),
        max_parallel: None,
        soak: Duration::ZERO,
        success_threshold: None,
        max_failures: Amount::Count(0),
        unresponsive_after: Duration::from_secs(3600),
        approval: false,
        auto_approve: None,
        window: None,
        reboot: Reboot::IfNeeded,
        reboot_window: None,
        reboot_timeout: Duration::from_secs(1800),
        devices,
    }
}

fn spec(rings: Vec<RingSpec>) -> RolloutSpec {
    RolloutSpec {
        rings,
        freezes: vec![],
        on_halt: OnHalt::RollbackFailedRing,
        failed_devices: FailedDevices::Rollback,
        expedite_soak_factor: 1.0,
        expedite_skips_window: false,
    }
}

fn starts(decisions: &[Decision]) -> Vec<(u16, u32, u16)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::StartStep { job, step } => Some((job.ring, job.index, *step)),
            _ => None,
        })
        .collect()
}

fn id(ring: u16, index: u32) -> JobId {
    JobId { ring, index }
}

fn ok(core: &mut Core, now: &str, ring: u16, index: u32, step: u16) -> Vec<Decision> {
    core.handle(
        t(now),
        Event::StepSucceeded {
            job: id(ring, index),
            step,
            reboot_pending: false,
        },
    )
}

fn fail(core: &mut Core, now: &str, ring: u16, index: u32, step: u16) -> Vec<Decision> {
    core.handle(
        t(now),
        Event::StepFailed {
            job: id(ring, index),
            step,
            reason: "boom".into(),
        },
    )
}

#[test]
fn steps_of_a_device_run_in_order_and_the_rollout_completes() {
    let mut core = Core::new(spec(vec![ring("only", vec![job("a", 0, &["p1", "p2"])])]));
    let d = core.handle(t(T0), Event::Tick);
    assert_eq!(starts(&d), [(0, 0, 0)]);
    let d = ok(&mut core, T0, 0, 0, 0);
    assert_eq!(starts(&d), [(0, 0, 1)]);
    let d = ok(&mut core, T0, 0, 0, 1);
    assert_eq!(d, [Decision::RingComplete { ring: 0 }, Decision::Completed]);
    assert_eq!(core.phase(), &Phase::Completed);
}

#[test]
fn a_ring_whose_devices_have_nothing_to_install_completes_at_once() {
    // The lab ring has nothing to do (its devices have every patch): it completes at
    // the first tick, and the next ring starts, instead of waiting for an event that
    // never comes.
    let mut core = Core::new(spec(vec![
        ring("lab", vec![job("a", 0, &[]), job("b", 0, &[])]),
        ring("broad", vec![job("c", 0, &["p1"])]),
    ]));
    let d = core.handle(t(T0), Event::Tick);
    assert!(d.contains(&Decision::RingComplete { ring: 0 }), "{d:?}");
    assert_eq!(starts(&d), [(1, 0, 0)]);
    let d = ok(&mut core, T0, 1, 0, 0);
    assert!(d.contains(&Decision::Completed), "{d:?}");
}

#[test]
fn failures_still_count_a_failed_device_once_it_is_rolled_back() {
    let mut core = Core::new(spec(vec![ring(
        "canary",
        vec![job("a", 0, &["p1", "p2"]), job("b", 0, &["p1"])],
    )]));
    core.handle(t(T0), Event::Tick);
    ok(&mut core, T0, 0, 1, 0);
    ok(&mut core, T0, 0, 0, 0);
    let d = fail(&mut core, T0, 0, 0, 1);
    assert!(d.iter().any(|d| matches!(d, Decision::Halt { reason, .. }
        if reason.starts_with("1 of 2 devices failed in ring canary"))));
    for index in [0, 1] {
        let job = id(0, index);
        core.handle(
            t(T0),
            Event::RollbackFinished {
                job,
                ok: true,
                reason: None,
            },
        );
    }
    let c = core.counts(0);
    assert_eq!((c.failed, c.rolled_back), (0, 2), "{c:?}");
    assert_eq!(core.failures(0), 1, "the halt's failure is still counted");
}

#[test]
fn batches_and_max_parallel_are_respected_at_every_moment() {
    let devices = (0..6)
        .map(|i| job(&format!("d{i}"), u32::from(i >= 2), &["p"]))
        .collect();
    let mut r = ring("broad", devices);
    r.max_parallel = Some(3);
    let mut core = Core::new(spec(vec![r]));
    // Batch 0 has two devices: only they start.
    assert_eq!(
        starts(&core.handle(t(T0), Event::Tick)),
        [(0, 0, 0), (0, 1, 0)]
    );
    // One of batch 0 done: batch 1 still waits for the other.
    assert!(starts(&ok(&mut core, T0, 0, 0, 0)).is_empty());
    // Batch 0 done: batch 1 starts, three at a time.
    assert_eq!(
        starts(&ok(&mut core, T0, 0, 1, 0)),
        [(0, 2, 0), (0, 3, 0), (0, 4, 0)]
    );
    assert_eq!(starts(&ok(&mut core, T0, 0, 2, 0)), [(0, 5, 0)]);
}

#[test]
fn the_rollout_halts_when_failures_exceed_the_budget_and_rolls_back_at_the_rings_pace() {
    let devices = (0..6).map(|i| job(&format!("d{i}"), 0, &["p"])).collect();
    let mut canary = ring("canary", devices);
    canary.max_failures = Amount::Count(1);
    canary.max_parallel = Some(6);
    let mut core = Core::new(spec(vec![canary, ring("broad", vec![job("b", 0, &["p"])])]));
    assert_eq!(starts(&core.handle(t(T0), Event::Tick)).len(), 6);
    for i in 0..3 {
        ok(&mut core, T0, 0, i, 0);
    }
    // One failure is within the budget of 1.
    let d = fail(&mut core, T0, 0, 3, 0);
    assert!(!d.iter().any(|d| matches!(d, Decision::Halt { .. })));
    // The second exceeds it: halt, and roll back those that installed.
    core.spec.rings[0].max_parallel = Some(2);
    let d = fail(&mut core, T0, 0, 4, 0);
    let halt = d.iter().find_map(|d| match d {
        Decision::Halt { ring, reason } => Some((*ring, reason.clone())),
        _ => None,
    });
    let (ring, reason) = halt.expect("halted");
    assert_eq!(ring, 0);
    assert!(
        reason.contains("2 of 6 devices failed in ring canary, over its failure budget of 1"),
        "{reason}"
    );
    // d5 is still running: with max_parallel 2 only one rollback fits beside it.
    let rollbacks: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Decision::StartRollback { job } => Some(job.index),
            _ => None,
        })
        .collect();
    assert_eq!(rollbacks, [0]);
    let d = core.handle(
        t(T0),
        Event::RollbackFinished {
            job: id(0, 0),
            ok: true,
            reason: None,
        },
    );
    assert!(d.contains(&Decision::StartRollback { job: id(0, 1) }));
    // The broad ring never starts.
    assert_eq!(core.job(id(1, 0)), Some(&JobState::Pending));
    assert!(matches!(core.phase(), Phase::Halted { ring: 0, .. }));

    // Settled (over, whatever wake-ups it asked for) only once nothing runs and nothing
    // is left to roll back: d5 still runs, then reports, and is rolled back too.
    let back = |core: &mut Core, index| {
        let job = id(0, index);
        core.handle(
            t(T0),
            Event::RollbackFinished {
                job,
                ok: true,
                reason: None,
            },
        )
    };
    back(&mut core, 1);
    assert!(!core.is_settled(), "d2 waits for its rollback, d5 runs");
    let d = ok(&mut core, T0, 0, 5, 0);
    assert!(!core.is_settled());
    // Finish every rollback as it starts, until none is left.
    let rollbacks = |d: &[Decision]| -> Vec<u32> {
        d.iter()
            .filter_map(|d| match d {
                Decision::StartRollback { job } => Some(job.index),
                _ => None,
            })
            .collect()
    };
    let mut running = rollbacks(&d);
    running.push(2); // started when d1's rollback finished
    while let Some(index) = running.pop() {
        let d = back(&mut core, index);
        running.extend(rollbacks(&d));
    }
    assert_eq!(core.job(id(0, 5)), Some(&JobState::RolledBack));
    assert!(core.is_settled());
}

#[test]
fn max_failures_as_a_share_of_the_ring() {
    let devices = (0..50).map(|i| job(&format!("d{i}"), 0, &["p"])).collect();
    let mut r = ring("canary", devices);
    r.max_failures = Amount::Percent(2.0); // 1 of 50
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    assert!(
        !fail(&mut core, T0, 0, 0, 0)
            .iter()
            .any(|d| matches!(d, Decision::Halt { .. }))
    );
    assert!(
        fail(&mut core, T0, 0, 1, 0)
            .iter()
            .any(|d| matches!(d, Decision::Halt { .. }))
    );
}

#[test]
fn a_ring_below_its_success_threshold_halts_when_it_completes() {
    let devices = (0..4).map(|i| job(&format!("d{i}"), 0, &["p"])).collect();
    let mut r = ring("canary", devices);
    r.max_failures = Amount::Count(5);
    r.success_threshold = Some(80.0);
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    for i in 0..3 {
        ok(&mut core, T0, 0, i, 0);
    }
    let d = fail(&mut core, T0, 0, 3, 0);
    assert!(d.iter().any(|d| matches!(d, Decision::Halt { reason, .. } if reason.contains("75.0% of ring canary succeeded, below its success threshold of 80%"))), "{d:?}");
}

#[test]
fn the_next_ring_waits_for_the_soak_then_for_approval() {
    let mut lab = ring("lab", vec![job("a", 0, &["p"])]);
    lab.soak = Duration::from_secs(24 * 3600);
    let mut pilot = ring("pilot", vec![job("b", 0, &["p"])]);
    pilot.approval = true;
    let mut core = Core::new(spec(vec![lab, pilot]));
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, "2026-11-30T01:00:00Z", 0, 0, 0);
    assert_eq!(
        d,
        [
            Decision::RingComplete { ring: 0 },
            Decision::WakeAt(t("2026-12-01T01:00:00Z"))
        ]
    );
    // Still soaking an hour before the end.
    assert_eq!(
        core.handle(t("2026-12-01T00:00:00Z"), Event::Tick),
        [Decision::WakeAt(t("2026-12-01T01:00:00Z"))]
    );
    // Soak over: the pilot needs approval, asked for once.
    let d = core.handle(t("2026-12-01T01:00:00Z"), Event::Tick);
    assert_eq!(d, [Decision::AwaitApproval { ring: 1 }]);
    assert!(
        core.handle(t("2026-12-01T02:00:00Z"), Event::Tick)
            .is_empty()
    );
    let d = core.handle(t("2026-12-01T03:00:00Z"), Event::Approve);
    assert_eq!(starts(&d), [(1, 0, 0)]);
}

#[test]
fn a_rule_approves_the_next_ring_only_when_the_ring_before_passed_it() {
    let rule = AutoApprove {
        success: 99.0,
        failures: 0,
    };
    let rollout = || {
        let mut canary = ring(
            "canary",
            (0..4).map(|i| job(&format!("c{i}"), 0, &["p"])).collect(),
        );
        canary.max_failures = Amount::Count(1);
        canary.soak = Duration::from_secs(3600);
        let mut pilot = ring("pilot", vec![job("p0", 0, &["p"])]);
        pilot.approval = true;
        pilot.auto_approve = Some(rule);
        let mut core = Core::new(spec(vec![canary, pilot]));
        core.handle(t(T0), Event::Tick);
        core
    };
    // Every canary device done: at the soak's end the pilot opens without a person.
    let mut core = rollout();
    for i in 0..4 {
        ok(&mut core, T0, 0, i, 0);
    }
    let d = core.handle(t("2026-11-30T01:00:00Z"), Event::Tick);
    assert_eq!(
        d[0],
        Decision::ApprovedByRule {
            ring: 1,
            reason: "ring canary succeeded on 100.0% of its devices (at least 99%) with 0 failed (at most 0)".into()
        }
    );
    assert_eq!(starts(&d), [(1, 0, 0)]);
    // One failed (within the canary's budget): 75% done, so a person decides.
    let mut core = rollout();
    fail(&mut core, T0, 0, 0, 0);
    for i in 1..4 {
        ok(&mut core, T0, 0, i, 0);
    }
    let d = core.handle(t("2026-11-30T01:00:00Z"), Event::Tick);
    assert_eq!(d, [Decision::AwaitApproval { ring: 1 }]);
    let d = core.handle(t("2026-11-30T02:00:00Z"), Event::Approve);
    assert_eq!(starts(&d), [(1, 0, 0)]);
}

#[test]
fn a_device_that_never_reports_counts_as_failed_after_the_deadline() {
    let mut r = ring("canary", vec![job("a", 0, &["p"]), job("b", 0, &["p"])]);
    r.unresponsive_after = Duration::from_secs(2 * 3600);
    r.max_failures = Amount::Count(1);
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, "2026-11-30T00:10:00Z", 0, 0, 0);
    assert_eq!(d, [Decision::WakeAt(t("2026-11-30T02:00:00Z"))]);
    let d = core.handle(t("2026-11-30T02:00:00Z"), Event::Tick);
    assert_eq!(
        d[0],
        Decision::DeviceUnresponsive {
            job: id(0, 1),
            step: 0
        }
    );
    assert!(
        matches!(core.job(id(0, 1)), Some(JobState::Failed { reason }) if reason.contains("unresponsive"))
    );
    // A late report changes nothing.
    ok(&mut core, "2026-11-30T03:00:00Z", 0, 1, 0);
    assert!(matches!(core.job(id(0, 1)), Some(JobState::Failed { .. })));
}

fn weeknights() -> Window {
    let mut days = [false; 7];
    days[..4].fill(true);
    Window {
        days,
        start: time(22, 0, 0, 0),
        end: time(4, 0, 0, 0),
    }
}

#[test]
fn windows_crossing_midnight_open_in_each_devices_time_zone() {
    let mut ams = job("ams", 0, &["p"]);
    ams.timezone = TimeZone::get("Europe/Amsterdam").unwrap();
    let mut nyc = job("nyc", 0, &["p"]);
    nyc.timezone = TimeZone::get("America/New_York").unwrap();
    let mut r = ring("broad", vec![ams, nyc]);
    r.window = Some(weeknights());
    let mut core = Core::new(spec(vec![r]));
    // Monday 12:00 UTC: neither window is open; Amsterdam opens first (21:00 UTC).
    let d = core.handle(t("2026-11-30T12:00:00Z"), Event::Tick);
    assert_eq!(d, [Decision::WakeAt(t("2026-11-30T21:00:00Z"))]);
    let d = core.handle(t("2026-11-30T21:00:00Z"), Event::Tick);
    assert_eq!(starts(&d), [(0, 0, 0)]);
    assert!(
        d.contains(&Decision::WakeAt(t("2026-11-30T22:00:00Z"))),
        "unresponsive check"
    );
    let d = ok(&mut core, "2026-11-30T21:30:00Z", 0, 0, 0);
    assert_eq!(d, [Decision::WakeAt(t("2026-12-01T03:00:00Z"))]);
    // 03:00 UTC Tuesday = 22:00 Monday in New York; Amsterdam's opening (to 04:00
    // local = 03:00 UTC) has just closed, and that does not matter to New York.
    let d = core.handle(t("2026-12-01T03:00:00Z"), Event::Tick);
    assert_eq!(starts(&d), [(0, 1, 0)]);
}

#[test]
fn nothing_starts_during_a_freeze() {
    let mut s = spec(vec![ring("r", vec![job("a", 0, &["p"])])]);
    s.freezes = vec![Freeze {
        from: jiff::civil::date(2026, 11, 30),
        to: jiff::civil::date(2026, 12, 2),
        reason: "audit".into(),
    }];
    let mut core = Core::new(s);
    assert_eq!(
        core.handle(t("2026-11-30T10:00:00Z"), Event::Tick),
        [Decision::WakeAt(t("2026-12-03T00:00:00Z"))]
    );
    assert_eq!(
        starts(&core.handle(t("2026-12-03T00:00:00Z"), Event::Tick)),
        [(0, 0, 0)]
    );
}

#[test]
fn expedited_steps_enter_the_next_ring_after_a_shortened_soak() {
    let mut lab = ring("lab", vec![job("a", 0, &["p"])]);
    lab.soak = Duration::from_secs(48 * 3600);
    let mut critical = job("b", 0, &["crit"]);
    critical.steps[0].expedited = true;
    let broad = ring("broad", vec![critical, job("c", 0, &["norm"])]);
    let mut s = spec(vec![lab, broad]);
    s.expedite_soak_factor = 0.25;
    let mut core = Core::new(s);
    core.handle(t(T0), Event::Tick);
    ok(&mut core, T0, 0, 0, 0);
    // 12h later (48h x 0.25) the expedited step starts; the ordinary one waits.
    let d = core.handle(t("2026-11-30T12:00:00Z"), Event::Tick);
    assert_eq!(starts(&d), [(1, 0, 0)]);
    ok(&mut core, "2026-11-30T12:30:00Z", 1, 0, 0);
    let d = core.handle(t("2026-11-30T13:00:00Z"), Event::Tick);
    assert_eq!(d, [Decision::WakeAt(t("2026-12-02T00:00:00Z"))]);
    let d = core.handle(t("2026-12-02T00:00:00Z"), Event::Tick);
    assert_eq!(starts(&d), [(1, 1, 0)]);
}

#[test]
fn pause_resume_and_abort_are_events_like_any_other() {
    let devices = (0..3).map(|i| job(&format!("d{i}"), 0, &["p"])).collect();
    let mut r = ring("r", devices);
    r.max_parallel = Some(1);
    let mut core = Core::new(spec(vec![r]));
    assert_eq!(starts(&core.handle(t(T0), Event::Tick)), [(0, 0, 0)]);
    core.handle(t(T0), Event::Pause);
    // The running step finishes; nothing new starts while paused.
    assert!(starts(&ok(&mut core, T0, 0, 0, 0)).is_empty());
    assert_eq!(starts(&core.handle(t(T0), Event::Resume)), [(0, 1, 0)]);
    core.handle(t(T0), Event::Abort);
    assert_eq!(core.phase(), &Phase::Aborted);
    assert!(starts(&ok(&mut core, T0, 0, 1, 0)).is_empty());
    assert_eq!(
        core.job(id(0, 1)),
        Some(&JobState::Done),
        "late results are still recorded"
    );
}

#[test]
fn devices_joining_mid_rollout_go_to_the_next_batch_of_the_current_ring() {
    let lab = ring("lab", vec![job("a", 0, &["p"])]);
    let mut broad = ring(
        "broad",
        vec![
            job("b", 0, &["p"]),
            job("c", 1, &["p"]),
            job("d", 2, &["p"]),
        ],
    );
    broad.batches = 3;
    let mut core = Core::new(spec(vec![lab, broad]));
    core.handle(t(T0), Event::Tick);
    ok(&mut core, T0, 0, 0, 0);
    // Broad runs batch 0. A device of the finished lab ring joins: it goes to the next
    // batch of the ring running now.
    let d = core.handle(
        t(T0),
        Event::DevicesAdded {
            ring: 0,
            jobs: vec![job("late-lab", 0, &["p"])],
        },
    );
    assert!(starts(&d).is_empty());
    assert_eq!(core.job_spec(id(1, 3)).unwrap().batch, 1);
    // A device planned for broad's running batch 0 joins that batch and starts.
    let d = core.handle(
        t(T0),
        Event::DevicesAdded {
            ring: 1,
            jobs: vec![job("late-broad", 0, &["p"])],
        },
    );
    assert_eq!(starts(&d), [(1, 4, 0)]);
    ok(&mut core, T0, 1, 0, 0);
    let d = ok(&mut core, T0, 1, 4, 0);
    assert_eq!(starts(&d), [(1, 1, 0), (1, 3, 0)]);
}

#[test]
fn replaying_the_same_events_gives_the_same_decisions() {
    let build = || {
        let devices = (0..8)
            .map(|i| job(&format!("d{i}"), i % 3, &["p1", "p2"]))
            .collect();
        let mut r = ring("r", devices);
        r.batches = 3;
        r.max_parallel = Some(2);
        r.max_failures = Amount::Count(3);
        Core::new(spec(vec![r]))
    };
    let mut log: Vec<(Timestamp, Event)> = vec![(t(T0), Event::Tick)];
    let mut core = build();
    let mut first = core.handle(t(T0), Event::Tick);
    let mut all = first.clone();
    for round in 0..40 {
        let Some((job, step)) = first.iter().find_map(|d| match d {
            Decision::StartStep { job, step } => Some((*job, *step)),
            _ => None,
        }) else {
            break;
        };
        let event = if round % 5 == 4 {
            Event::StepFailed {
                job,
                step,
                reason: "x".into(),
            }
        } else {
            Event::StepSucceeded {
                job,
                step,
                reboot_pending: false,
            }
        };
        log.push((t(T0), event.clone()));
        first = core.handle(t(T0), event);
        all.extend(first.clone());
    }
    let mut replayed = build();
    let again: Vec<Decision> = log
        .into_iter()
        .flat_map(|(now, e)| replayed.handle(now, e))
        .collect();
    assert_eq!(all, again);
}

#[test]
fn an_operator_rollback_halts_the_ring_and_rolls_it_back_even_when_the_policy_only_stops() {
    let devices = (0..4).map(|i| job(&format!("d{i}"), 0, &["p"])).collect();
    let mut canary = ring("canary", devices);
    canary.max_parallel = Some(2);
    let mut rollout = spec(vec![canary, ring("broad", vec![job("b", 0, &["p"])])]);
    rollout.on_halt = OnHalt::Stop;
    let mut core = Core::new(rollout);
    assert_eq!(starts(&core.handle(t(T0), Event::Tick)).len(), 2);
    ok(&mut core, T0, 0, 0, 0);
    ok(&mut core, T0, 0, 1, 0);
    // d2 and d3 are running now; the operator asks for a rollback.
    let d = core.handle(
        t(T0),
        Event::RollBack {
            ring: None,
            job: None,
        },
    );
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::Halt { ring: 0, reason } if reason == "an operator asked for a rollback"
    )));
    // Both slots are busy with d2 and d3: no rollback fits until one reports.
    assert!(
        !d.iter()
            .any(|d| matches!(d, Decision::StartRollback { .. }))
    );
    let d = ok(&mut core, T0, 0, 2, 0);
    assert!(
        d.contains(&Decision::StartRollback { job: id(0, 0) }),
        "{d:?}"
    );
    assert_eq!(core.job(id(1, 0)), Some(&JobState::Pending));
}

#[test]
fn a_soak_too_long_for_the_calendar_waits_forever_instead_of_vanishing() {
    // 2,920,000 days from 2026 is past year 9999: the soak ends never.
    let mut lab = ring("lab", vec![job("a", 0, &["p"])]);
    lab.soak = Duration::from_secs(2_920_000 * 86_400);
    let mut expedited = job("b", 0, &["crit"]);
    expedited.steps[0].expedited = true;
    let broad = ring("broad", vec![expedited, job("c", 0, &["p"])]);
    let mut s = spec(vec![lab, broad]);
    s.expedite_soak_factor = 0.5;
    let mut core = Core::new(s);
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, T0, 0, 0, 0);
    // Half the soak is still representable: the expedited step waits for it; the full
    // soak ends never, so nothing asks to wake up for it.
    let half = t("6024-04-04T00:00:00Z");
    assert_eq!(
        d,
        [Decision::RingComplete { ring: 0 }, Decision::WakeAt(half)]
    );
    assert!(starts(&core.handle(t("2026-12-15T00:00:00Z"), Event::Tick)).is_empty());
    assert_eq!(starts(&core.handle(half, Event::Tick)), [(1, 0, 0)]);
    ok(&mut core, "6024-04-04T00:10:00Z", 1, 0, 0);
    for later in ["9998-12-31T00:00:00Z", "9999-06-01T00:00:00Z"] {
        assert!(
            starts(&core.handle(t(later), Event::Tick)).is_empty(),
            "{later}"
        );
    }
    assert_eq!(
        core.counts(1).pending,
        1,
        "the ordinary step waits for the soak"
    );

    // Without expedited steps the rollout simply soaks until never.
    let mut lab = ring("lab", vec![job("a", 0, &["p"])]);
    lab.soak = Duration::from_secs(2_920_000 * 86_400);
    let mut core = Core::new(spec(vec![lab, ring("broad", vec![job("b", 0, &["p"])])]));
    core.handle(t(T0), Event::Tick);
    assert_eq!(
        ok(&mut core, T0, 0, 0, 0),
        [Decision::RingComplete { ring: 0 }]
    );
    assert!(
        core.handle(t("9999-06-01T00:00:00Z"), Event::Tick)
            .is_empty()
    );
    assert_eq!(
        core.phase(),
        &Phase::Soaking {
            ring: 0,
            until: NEVER
        }
    );
}

#[test]
fn a_freeze_to_the_end_of_time_means_installs_never_start_and_time_never_jumps() {
    let mut lab = ring("lab", vec![job("a", 0, &["p"]), job("b", 0, &["p", "q"])]);
    lab.window = Some(weeknights());
    let mut s = spec(vec![lab]);
    s.freezes = vec![Freeze {
        from: jiff::civil::date(1, 1, 1),
        to: jiff::civil::date(9999, 12, 31),
        reason: "forever".into(),
    }];
    let mut core = Core::new(s);
    for now in [
        T0,
        "2026-12-01T22:30:00Z",
        "9998-12-31T23:00:00Z",
        "9999-06-01T00:00:00Z",
    ] {
        let d = core.handle(t(now), Event::Tick);
        assert!(d.is_empty(), "at {now}: {d:?}");
    }
    assert_eq!(core.phase(), &Phase::Running { ring: 0 });
    assert_eq!(core.counts(0).pending, 2);
}

#[test]
fn an_unresponsive_deadline_past_the_calendar_never_fails_the_device() {
    let mut r = ring("lab", vec![job("a", 0, &["p"])]);
    r.unresponsive_after = Duration::MAX;
    let mut core = Core::new(spec(vec![r]));
    let d = core.handle(t(T0), Event::Tick);
    assert_eq!(starts(&d), [(0, 0, 0)]);
    assert_eq!(d.len(), 1, "no wake-up at never: {d:?}");
    assert!(
        core.handle(t("9999-06-01T00:00:00Z"), Event::Tick)
            .is_empty()
    );
    assert!(matches!(core.job(id(0, 0)), Some(JobState::Running { .. })));
}

fn rollbacks_of(decisions: &[Decision]) -> Vec<(u16, u32)> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::StartRollback { job } => Some((job.ring, job.index)),
            _ => None,
        })
        .collect()
}

fn back(core: &mut Core, ring: u16, index: u32, ok: bool) -> Vec<Decision> {
    let reason = (!ok).then(|| "dpkg: error processing package hello".to_string());
    core.handle(
        t(T0),
        Event::RollbackFinished {
            job: id(ring, index),
            ok,
            reason,
        },
    )
}

#[test]
fn a_device_whose_install_failed_is_rolled_back_too_unless_the_policy_leaves_it() {
    for (rule, expected) in [
        (FailedDevices::Rollback, vec![(0, 0), (0, 1)]),
        (FailedDevices::Leave, vec![(0, 1)]),
    ] {
        let mut rollout = spec(vec![ring(
            "canary",
            vec![job("a", 0, &["p1"]), job("b", 0, &["p1"])],
        )]);
        rollout.failed_devices = rule;
        let mut core = Core::new(rollout);
        core.handle(t(T0), Event::Tick);
        ok(&mut core, T0, 0, 1, 0);
        let d = fail(&mut core, T0, 0, 0, 0);
        assert_eq!(rollbacks_of(&d), expected, "{rule:?}");
        if rule == FailedDevices::Rollback {
            // The failed step itself is taken back: the install may have got half way.
            assert_eq!(core.job_rollback_steps(id(0, 0)), 1);
            assert_eq!(core.job_rollback_steps(id(0, 1)), 1);
            back(&mut core, 0, 0, false);
            assert_eq!(
                core.job(id(0, 0)),
                Some(&JobState::RollbackFailed {
                    reason: "dpkg: error processing package hello".into()
                })
            );
        } else {
            assert!(matches!(core.job(id(0, 0)), Some(JobState::Failed { .. })));
        }
    }
}

#[test]
fn after_a_halt_an_operator_rolls_back_one_device_one_ring_or_every_ring_that_installed() {
    let lab = ring("lab", vec![job("l0", 0, &["p"]), job("l1", 0, &["p"])]);
    let canary = ring("canary", vec![job("c0", 0, &["p"]), job("c1", 0, &["p"])]);
    let mut rollout = spec(vec![lab, canary]);
    rollout.on_halt = OnHalt::Stop;
    let halted = || {
        let mut core = Core::new(rollout.clone());
        core.handle(t(T0), Event::Tick);
        ok(&mut core, T0, 0, 0, 0);
        ok(&mut core, T0, 0, 1, 0);
        ok(&mut core, T0, 1, 0, 0);
        let d = fail(&mut core, T0, 1, 1, 0);
        assert!(rollbacks_of(&d).is_empty(), "the policy only stops");
        assert!(core.is_settled());
        core
    };
    // One device.
    let mut core = halted();
    let c1 = Some(id(1, 1));
    assert_eq!(core.rollback_candidates(None, c1), [id(1, 1)]);
    let d = core.handle(
        t(T0),
        Event::RollBack {
            ring: None,
            job: c1,
        },
    );
    assert_eq!(rollbacks_of(&d), [(1, 1)]);
    assert!(!core.is_settled());
    back(&mut core, 1, 1, false);
    // A failed rollback may be tried again.
    assert_eq!(core.rollback_candidates(None, c1), [id(1, 1)]);
    let d = core.handle(
        t(T0),
        Event::RollBack {
            ring: None,
            job: c1,
        },
    );
    assert_eq!(rollbacks_of(&d), [(1, 1)]);
    back(&mut core, 1, 1, true);
    assert_eq!(core.job(id(1, 1)), Some(&JobState::RolledBack));
    assert!(core.rollback_candidates(None, c1).is_empty());
    // One ring (the one that completed before the halt).
    let mut core = halted();
    let d = core.handle(
        t(T0),
        Event::RollBack {
            ring: Some(0),
            job: None,
        },
    );
    assert_eq!(rollbacks_of(&d), [(0, 0), (0, 1)]);
    // Every ring that installed, each at its own pace.
    let mut core = halted();
    let d = core.handle(
        t(T0),
        Event::RollBack {
            ring: None,
            job: None,
        },
    );
    assert_eq!(rollbacks_of(&d), [(0, 0), (0, 1), (1, 0), (1, 1)]);
    for (r, i) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        back(&mut core, r, i, true);
    }
    assert!(core.is_settled());
    assert!(core.rollback_candidates(None, None).is_empty());
}

#[test]
fn a_retry_after_a_halt_runs_the_ring_again_and_it_can_complete() {
    let canary = ring("canary", vec![job("c0", 0, &["p"]), job("c1", 0, &["p"])]);
    let broad = ring("broad", vec![job("b0", 0, &["p"])]);
    let mut core = Core::new(spec(vec![canary, broad]));
    core.handle(t(T0), Event::Tick);
    ok(&mut core, T0, 0, 0, 0);
    let d = fail(&mut core, T0, 0, 1, 0);
    assert_eq!(rollbacks_of(&d), [(0, 0), (0, 1)]);
    assert!(core.retry_candidates(None).is_err(), "rollbacks still run");
    back(&mut core, 0, 0, true);
    back(&mut core, 0, 1, true);
    assert!(
        core.retry_candidates(Some(id(0, 0))).is_err(),
        "c0 did not fail"
    );
    assert_eq!(core.retry_candidates(None), Ok(vec![id(0, 1)]));
    let d = core.handle(t(T0), Event::Retry { job: None });
    // c1 from its first step (it was rolled back), c0 installs again.
    assert_eq!(starts(&d), [(0, 0, 0), (0, 1, 0)]);
    assert_eq!(core.failures(0), 0);
    ok(&mut core, T0, 0, 0, 0);
    let d = ok(&mut core, T0, 0, 1, 0);
    assert!(d.contains(&Decision::RingComplete { ring: 0 }), "{d:?}");
    assert_eq!(starts(&d), [(1, 0, 0)]);
}

#[test]
fn a_retry_that_leaves_the_ring_over_its_budget_is_refused() {
    let canary = ring(
        "canary",
        vec![
            job("c0", 0, &["p"]),
            job("c1", 0, &["p"]),
            job("c2", 0, &["p"]),
        ],
    );
    let mut rollout = spec(vec![canary]);
    rollout.on_halt = OnHalt::Stop;
    let mut core = Core::new(rollout);
    core.handle(t(T0), Event::Tick);
    fail(&mut core, T0, 0, 0, 0);
    fail(&mut core, T0, 0, 1, 0);
    fail(&mut core, T0, 0, 2, 0);
    let refused = core.retry_candidates(Some(id(0, 0))).unwrap_err();
    assert!(refused.contains("over its failure budget"), "{refused}");
    assert_eq!(core.retry_candidates(None).unwrap().len(), 3);
}

/// A job whose steps need a restart, the planner's reboot after the last.
fn reboot_job(id: &str, steps: &[&str]) -> DeviceJob {
    let mut j = job(id, 0, steps);
    for s in &mut j.steps {
        s.reboot_required = true;
    }
    if let Some(last) = j.steps.last_mut() {
        last.reboot_after = true;
    }
    j
}

fn reboots(decisions: &[Decision]) -> Vec<u32> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::StartReboot { job } => Some(job.index),
            _ => None,
        })
        .collect()
}

fn rebooted(core: &mut Core, now: &str, index: u32, ok: bool) -> Vec<Decision> {
    core.handle(
        t(now),
        Event::RebootFinished {
            job: id(0, index),
            ok,
            reason: (!ok).then(|| "after the reboot: bios reports 1.0".into()),
        },
    )
}

#[test]
fn a_device_reboots_once_after_its_last_step_that_needs_it_and_is_done_when_back() {
    let mut core = Core::new(spec(vec![ring(
        "only",
        vec![reboot_job("a", &["bios", "nic"])],
    )]));
    core.handle(t(T0), Event::Tick);
    // Not after the first: the planner grouped both before one reboot.
    let d = ok(&mut core, T0, 0, 0, 0);
    assert_eq!((starts(&d), reboots(&d)), (vec![(0, 0, 1)], vec![]));
    let d = ok(&mut core, T0, 0, 0, 1);
    assert_eq!(reboots(&d), [0]);
    assert!(matches!(
        core.job(id(0, 0)),
        Some(JobState::Rebooting { next: 2, .. })
    ));
    assert_eq!((core.counts(0).rebooting, core.reboots(0)), (1, 1));
    let d = rebooted(&mut core, "2026-11-30T00:05:00Z", 0, true);
    assert_eq!(d, [Decision::RingComplete { ring: 0 }, Decision::Completed]);
    assert_eq!(core.reboots(0), 1, "once");
    assert_eq!(core.counts(0).rebooting, 0);
}

#[test]
fn no_reboot_without_a_step_that_needs_one_unless_the_ring_always_reboots() {
    let mut core = Core::new(spec(vec![ring("only", vec![job("a", 0, &["p"])])]));
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, T0, 0, 0, 0);
    assert!(reboots(&d).is_empty());
    assert_eq!(core.phase(), &Phase::Completed);

    let mut r = ring("only", vec![job("a", 0, &["p1", "p2"])]);
    r.reboot = Reboot::Always;
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    assert!(reboots(&ok(&mut core, T0, 0, 0, 0)).is_empty());
    assert_eq!(reboots(&ok(&mut core, T0, 0, 0, 1)), [0]);
}

#[test]
fn an_install_the_installer_left_pending_a_restart_reboots_too() {
    let mut core = Core::new(spec(vec![ring("only", vec![job("a", 0, &["bios"])])]));
    core.handle(t(T0), Event::Tick);
    let d = core.handle(
        t(T0),
        Event::StepSucceeded {
            job: id(0, 0),
            step: 0,
            reboot_pending: true,
        },
    );
    assert_eq!(reboots(&d), [0]);
}

#[test]
fn never_leaves_the_device_installed_with_its_reboot_pending() {
    let mut r = ring(
        "only",
        vec![reboot_job("a", &["bios"]), job("b", 0, &["p"])],
    );
    r.reboot = Reboot::Never;
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    assert!(reboots(&ok(&mut core, T0, 0, 0, 0)).is_empty());
    ok(&mut core, T0, 0, 1, 0);
    assert_eq!(core.phase(), &Phase::Completed);
    assert!(core.job_reboot_pending(id(0, 0)));
    assert!(!core.job_reboot_pending(id(0, 1)));
    let c = core.counts(0);
    assert_eq!((c.done, c.reboot_pending, core.reboots(0)), (2, 1, 0));
}

#[test]
fn a_reboot_waits_for_its_window() {
    let mut r = ring("only", vec![reboot_job("a", &["bios"])]);
    // Installs any time; reboots only 02:00-04:00.
    r.reboot_window = Some(Window {
        days: [true; 7],
        start: time(2, 0, 0, 0),
        end: time(4, 0, 0, 0),
    });
    let mut core = Core::new(spec(vec![r]));
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, "2026-11-30T00:30:00Z", 0, 0, 0);
    assert!(reboots(&d).is_empty());
    assert!(
        d.contains(&Decision::WakeAt(t("2026-11-30T02:00:00Z"))),
        "{d:?}"
    );
    assert!(matches!(
        core.job(id(0, 0)),
        Some(JobState::RebootDue { next: 1 })
    ));
    let d = core.handle(t("2026-11-30T02:00:00Z"), Event::Tick);
    assert_eq!(reboots(&d), [0]);
}

#[test]
fn a_device_not_back_within_the_reboot_timeout_fails_and_the_ring_halts() {
    let mut r = ring("canary", vec![reboot_job("a", &["bios"])]);
    r.reboot_timeout = Duration::from_secs(600);
    let mut core = Core::new(spec(vec![r, ring("broad", vec![job("b", 0, &["p"])])]));
    core.handle(t(T0), Event::Tick);
    let d = ok(&mut core, T0, 0, 0, 0);
    assert_eq!(reboots(&d), [0]);
    assert!(
        d.contains(&Decision::WakeAt(t("2026-11-30T00:10:00Z"))),
        "{d:?}"
    );
    let d = core.handle(t("2026-11-30T00:10:00Z"), Event::Tick);
    assert!(d.contains(&Decision::DeviceUnresponsive {
        job: id(0, 0),
        step: 0
    }));
    assert!(
        d.iter().any(|d| matches!(d, Decision::Halt { .. })),
        "{d:?}"
    );
    assert_eq!(
        core.job_failure(id(0, 0)),
        Some("not back from its reboot within 10m (unresponsive)")
    );
    // Its installed step is rolled back (it changed the device), the step only once.
    assert!(d.contains(&Decision::StartRollback { job: id(0, 0) }));
    assert_eq!(core.job_rollback_steps(id(0, 0)), 1);
    // A late answer changes nothing.
    rebooted(&mut core, "2026-11-30T00:11:00Z", 0, true);
    assert!(matches!(core.job(id(0, 0)), Some(JobState::RollingBack)));
}

#[test]
fn a_device_that_failed_its_reboot_reboots_again_when_retried() {
    let mut core = Core::new(spec(vec![ring("canary", vec![reboot_job("a", &["bios"])])]));
    core.spec.failed_devices = FailedDevices::Leave;
    core.handle(t(T0), Event::Tick);
    ok(&mut core, T0, 0, 0, 0);
    let d = rebooted(&mut core, T0, 0, false);
    assert!(
        d.iter().any(|d| matches!(d, Decision::Halt { .. })),
        "{d:?}"
    );
    assert_eq!(
        core.job_failure(id(0, 0)),
        Some("after the reboot: bios reports 1.0")
    );
    let d = core.handle(t(T0), Event::Retry { job: None });
    assert_eq!(reboots(&d), [0], "the reboot again, not the install: {d:?}");
    assert!(starts(&d).is_empty());
    let d = rebooted(&mut core, T0, 0, true);
    assert!(d.contains(&Decision::Completed), "{d:?}");
}
