//! Every document: a representative instance validates against its published schema
//! (docs/schemas), reads back equal to what was written, and its `schema` constant and
//! enums are the schema's.

use jiff::Timestamp;
use ringleader_api::catalog::CatalogCheckV1;
use ringleader_api::compliance::{
    BySeverityV1, CatalogInfoV1, ComplianceSummaryV1, ComplianceV1, DeviceComplianceV1, FilterV1,
    MissingV1, PatchComplianceV1, SeveritySummaryV1,
};
use ringleader_api::demo::{self, ContinuousV1, DemoV1, FinalState, OutcomesV1, RunResultV1};
use ringleader_api::device::{DeviceHistoryV1, DeviceState, DeviceV1, DevicesV1};
use ringleader_api::error::ErrorV1;
use ringleader_api::event::{EventKind, EventV1, EventsV1, StallV1};
use ringleader_api::fleet::{
    self, BootV1, DifferenceKind, DifferenceV1, FleetDeviceSummaryV1, FleetDeviceV1, FleetScanV1,
    FleetV1, HistoryKind, HistoryV1, OsV1, RolloutRecordV1, ScanErrorKind, ScanErrorV1, ScanV1,
    ScannedV1,
};
use ringleader_api::notification::{
    AttemptErrorV1, DeliveryState, DeliveryV1, NotificationKind, NotificationV1, NotificationsV1,
    WebhookV1,
};
use ringleader_api::plan::{
    self, Decision, ExplainReason, ExplainV1, ExplainedV1, PlanV1, SkipReason, SkipV1, StepV1,
    TotalsV1,
};
use ringleader_api::plugin::{
    ArtifactV1, CacheOutcome, CapabilitiesV1, CheckV1, CheckedPluginV1, ComponentV1, ErrorCase,
    ErrorKind, Function, HealthV1, InfoV1, KindV1, LimitsV1, ListedPluginV1, OutcomeV1, PatchV1,
    PluginCheckV1, PluginListV1, ReadinessV1, ResultV1, RunV1, SeverityV1, TargetV1, VerifyV1,
    World,
};
use ringleader_api::report::TimeToPatchReportV1;
use ringleader_api::rollout::{
    AcceptedV1, Action, Clock, Gate, Health, HealthV1 as DaemonHealthV1, ProblemState, ProblemV1,
    RingV1, RolloutState, RolloutsV1, StatusV1, WaitingV1,
};
use ringleader_api::schedule::{
    ApprovalRuleV1, ApprovalV1, OnFreezeV1, PatchFilterV1, RunOutcomeV1, ScheduleRunV1,
    ScheduleRunsV1, ScheduleV1, SchedulesV1,
};
use ringleader_api::token::{TokenV1, TokensV1};
use ringleader_api::{Document, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

fn load_schema(file: &str) -> serde_json::Value {
    let path = schemas_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validator of `docs/schemas/FILE`, with `patch.v1.json` known by its `$id` (the
/// run schema refers to it).
fn validator(file: &str) -> jsonschema::Validator {
    let patch = jsonschema::Resource::from_contents(load_schema("patch.v1.json")).unwrap();
    jsonschema::options()
        .with_resource("https://ringleader.dev/schemas/patch.v1.json", patch)
        .build(&load_schema(file))
        .unwrap_or_else(|e| panic!("{file} does not compile: {e}"))
}

/// The schema file of document `D`: `ringleader.NAME/v1` is `NAME.v1.json`.
fn file_of<D: Document>() -> String {
    let name = D::SCHEMA
        .strip_prefix("ringleader.")
        .and_then(|s| s.strip_suffix("/v1"))
        .unwrap_or_else(|| panic!("{} is not ringleader.NAME/v1", D::SCHEMA));
    format!("{name}.v1.json")
}

/// `doc` validates against its schema and reads back equal; returns its JSON.
fn check<D: Document + Serialize + DeserializeOwned + PartialEq + Debug>(
    doc: &D,
) -> serde_json::Value {
    let file = file_of::<D>();
    let json = serde_json::to_value(doc).unwrap();
    let errors: Vec<String> = validator(&file)
        .iter_errors(&json)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{file}: {json:#}\n{errors:#?}");
    let text = serde_json::to_string(doc).unwrap();
    let again: D = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
    assert_eq!(&again, doc, "{file}");
    // Written again, byte for byte the same.
    assert_eq!(serde_json::to_string(&again).unwrap(), text, "{file}");
    json
}

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn status(state: RolloutState, waiting: Option<WaitingV1>) -> StatusV1 {
    StatusV1 {
        schema: Schema::new(),
        id: "r1".into(),
        policy: Some("monthly-os".into()),
        clock: Some(Clock::Virtual),
        started: Some(t("2026-11-02T08:00:00Z")),
        state,
        ended: false,
        paused: false,
        ring: Some("canary".into()),
        waiting,
        halt_reason: None,
        error: None,
        time: Some(t("2026-11-03T10:30:00Z")),
        rings: vec![RingV1 {
            name: "canary".into(),
            devices: 10,
            pending: 2,
            active: 1,
            done: 5,
            failed: 1,
            rolling_back: 0,
            rolled_back: 1,
            rollback_failed: 0,
            rebooting: 1,
            reboots: 3,
            reboot_pending: 0,
        }],
        cursor: 42,
    }
}

fn unreadable() -> StatusV1 {
    StatusV1 {
        schema: Schema::new(),
        id: "r2".into(),
        policy: None,
        clock: None,
        started: None,
        state: RolloutState::Unreadable,
        ended: true,
        paused: false,
        ring: None,
        waiting: None,
        halt_reason: None,
        error: Some("corrupt log (its files in /data/rollouts/r2 are left as they are)".into()),
        time: None,
        rings: Vec::new(),
        cursor: 0,
    }
}

fn step_event(cursor: u64, kind: EventKind) -> EventV1 {
    EventV1 {
        ring: Some("canary".into()),
        device: Some("srv-1".into()),
        patch: Some("openssl-3.0.15".into()),
        component: Some("openssl".into()),
        from: Some("3.0.11-1".into()),
        to: Some("3.0.15-1".into()),
        ..EventV1::new(cursor, t("2026-11-02T22:00:00Z"), kind)
    }
}

fn events() -> Vec<EventV1> {
    vec![
        step_event(3, EventKind::Dispatched),
        EventV1 {
            reason: Some("exit status 1".into()),
            ..step_event(4, EventKind::StepFailed)
        },
        EventV1 {
            device: Some("srv-1".into()),
            ring: Some("canary".into()),
            ok: Some(true),
            ..EventV1::new(5, t("2026-11-02T22:10:00Z"), EventKind::RollbackFinished)
        },
        EventV1 {
            by: Some("ops.alice".into()),
            action: Some("approve".into()),
            ..EventV1::new(6, t("2026-11-03T08:00:00Z"), EventKind::Audit)
        },
        EventV1::new(7, t("2026-11-03T08:00:00Z"), EventKind::Completed),
        EventV1 {
            device: Some("srv-2".into()),
            ring: Some("canary".into()),
            ok: Some(false),
            reason: Some("hello-1.1 back to 1.0-1: dpkg: error processing package".into()),
            ..EventV1::new(8, t("2026-11-03T08:01:00Z"), EventKind::RollbackFinished)
        },
        EventV1 {
            device: Some("srv-2".into()),
            ..EventV1::new(9, t("2026-11-03T08:02:00Z"), EventKind::Retry)
        },
    ]
}

fn device() -> DeviceV1 {
    DeviceV1 {
        id: "srv-1".into(),
        ring: "canary".into(),
        state: DeviceState::Failed,
        reason: Some("exit status 1".into()),
        rollback_reason: None,
        versions: BTreeMap::from([("openssl".to_string(), "3.0.11-1".to_string())]),
        pending: strings(&["openssl-3.0.15"]),
        behind_seconds: Some(86_400),
        reboot_pending: false,
    }
}

fn step() -> StepV1 {
    StepV1 {
        id: "bios-2.19.1".into(),
        component: "bios".into(),
        from: Some("2.18.0".into()),
        to: "2.19.1".into(),
        scheme: Some(ringleader_types::Scheme::Vendor),
        earliest_start: t("2026-11-02T22:00:00Z"),
        reboot_after: true,
        expedited: false,
        deferred_until: Some(t("2026-11-02T00:00:00Z")),
        frozen: Some("2026-11-01 to 2026-11-02 (month end)".into()),
        waited_for_window: true,
    }
}

fn patch() -> PatchV1 {
    PatchV1 {
        id: "hello-1.1".into(),
        vendor: "example".into(),
        title: "Hello 1.1".into(),
        component: "hello".into(),
        fixed_version: "1.1".into(),
        applies_to: "<1.1".into(),
        scheme: Some(ringleader_types::Scheme::Deb),
        kind: KindV1::Bugfix,
        severity: SeverityV1::High,
        cves: strings(&["CVE-2026-0001"]),
        prerequisites: Vec::new(),
        supersedes: strings(&["hello-1.0"]),
        reboot_required: false,
        artifact: ArtifactV1 {
            url: "file:///srv/debs/hello_1.1_all.deb".into(),
            sha256: "ab".repeat(32),
            size: 788,
        },
        released: t("2026-10-01T00:00:00Z"),
    }
}

fn run(function: Function, result: Option<ResultV1>) -> RunV1 {
    let installer = !matches!(function, Function::Info | Function::Discover);
    let error = result.is_none().then(|| ErrorV1Plugin {
        kind: ErrorKind::Plugin,
        case: Some(ErrorCase::Transient),
        message: "the mirror did not answer".into(),
    });
    RunV1 {
        schema: Schema::new(),
        plugin: "dpkg-installer".into(),
        plugin_version: "0.1.0".into(),
        world: if installer || function == Function::Info {
            World::Installer
        } else {
            World::PatchSource
        },
        function,
        // `info` is about no device.
        devices: [ringleader_api::plugin::DeviceV1 {
            id: "dev-1".into(),
            hostname: "dev-1.example".into(),
            tags: strings(&["lab"]),
            facts: vec![("os".into(), "debian".into())],
            components: vec![ComponentV1 {
                name: "hello".into(),
                version: "1.0".into(),
            }],
        }]
        .into_iter()
        .filter(|_| function != Function::Info)
        .collect(),
        patch: installer.then(patch),
        target: (function == Function::Rollback).then(|| TargetV1 {
            version: "1.0".into(),
            artifact: None,
        }),
        ok: result.is_some(),
        result,
        error,
        duration_ms: 12,
    }
}

use ringleader_api::plugin::ErrorV1 as ErrorV1Plugin;

fn checked() -> CheckedPluginV1 {
    CheckedPluginV1 {
        name: "dpkg-installer".into(),
        version: "0.1.0".into(),
        description: "Installs .deb packages".into(),
        world: World::Installer,
        wit_version: "0.2.0".into(),
        component: "plugins/dpkg_installer.wasm".into(),
        sha256: "cd".repeat(32),
        capabilities: CapabilitiesV1 {
            http: strings(&["{device}"]),
            exec: strings(&["dpkg", "apt-get"]),
            kv: true,
        },
        limits: LimitsV1 {
            timeout_ms: 30_000,
            memory_bytes: 64 << 20,
            hostcalls: 10_000,
        },
        imports: strings(&["ringleader:plugin/exec@0.2.0"]),
        cache: CacheOutcome::Hit,
        warnings: Vec::new(),
    }
}

#[test]
fn daemon_documents_validate_and_read_back() {
    check(&ErrorV1::new("no rollout with id `r9`", None));
    check(&ErrorV1::new(
        "`clock` is `real` or `virtual`",
        Some("clock"),
    ));
    check(&status(RolloutState::Running, None));
    check(&status(
        RolloutState::Soaking,
        Some(WaitingV1 {
            for_: Gate::Soak,
            ring: Some("canary".into()),
            until: Some(t("2026-11-04T00:00:00Z")),
        }),
    ));
    check(&unreadable());
    check(&RolloutsV1 {
        schema: Schema::new(),
        rollouts: vec![
            status(
                RolloutState::AwaitingApproval,
                Some(WaitingV1 {
                    for_: Gate::Approval,
                    ring: Some("pilot".into()),
                    until: None,
                }),
            ),
            unreadable(),
        ],
    });
    check(&AcceptedV1 {
        schema: Schema::new(),
        rollout: "r1".into(),
        action: Action::Rollback,
    });
    check(&DaemonHealthV1 {
        schema: Schema::new(),
        status: Health::Degraded,
        rollouts: 3,
        problems: vec![ProblemV1 {
            rollout: "r2".into(),
            state: ProblemState::Stalled,
            error: "No space left on device".into(),
        }],
    });
    for event in events() {
        check(&event);
    }
    check(&EventsV1 {
        schema: Schema::new(),
        rollout: "r1".into(),
        events: events(),
        next: 8,
        ended: false,
        stalled: Some("No space left on device".into()),
    });
    check(&StallV1 {
        schema: Schema::new(),
        rollout: "r1".into(),
        reason: "No space left on device".into(),
    });
    check(&DevicesV1 {
        schema: Schema::new(),
        rollout: "r1".into(),
        time: t("2026-11-03T10:30:00Z"),
        devices: vec![
            device(),
            DeviceV1 {
                state: DeviceState::Done,
                reason: None,
                pending: Vec::new(),
                behind_seconds: None,
                ..device()
            },
            DeviceV1 {
                state: DeviceState::RollbackFailed,
                rollback_reason: Some("hello-1.0: dpkg: error processing package".into()),
                ..device()
            },
        ],
    });
    check(&DeviceHistoryV1 {
        schema: Schema::new(),
        rollout: "r1".into(),
        device: device(),
        history: events(),
    });
    check(&SchedulesV1 {
        schema: Schema::new(),
        file: "/etc/ringleader/schedules.toml".into(),
        schedules: vec![ScheduleV1 {
            name: "patch-tuesday".into(),
            when: "second tuesday of the month + 2 days at 22:00 Europe/Amsterdam".into(),
            zone: "Europe/Amsterdam".into(),
            inventory: "/etc/ringleader/fleet.toml".into(),
            tags: Vec::new(),
            sources: strings(&["debian-security-source"]),
            policy: "/etc/ringleader/monthly.toml".into(),
            on_freeze: OnFreezeV1::Move,
            patches: PatchFilterV1 {
                kinds: strings(&["security"]),
                severities: strings(&["high", "critical"]),
                cves: Vec::new(),
                include: Vec::new(),
                exclude: strings(&["dell-bios-2.19.1"]),
            },
            approval: ApprovalV1 {
                rules: vec![ApprovalRuleV1 {
                    kinds: strings(&["security"]),
                    severities: Vec::new(),
                    after_days: 7,
                }],
                approved: strings(&["openssl-3.0.15"]),
            },
            next: Some("2026-12-12T22:00:00+01:00[Europe/Amsterdam]".into()),
        }],
    });
    check(&ScheduleRunsV1 {
        schema: Schema::new(),
        after: t("2026-12-01T00:00:00Z"),
        runs: vec![
            ScheduleRunV1 {
                schedule: "patch-tuesday".into(),
                planned: "2026-12-10T22:00:00+01:00[Europe/Amsterdam]".into(),
                at: Some("2026-12-12T22:00:00+01:00[Europe/Amsterdam]".into()),
                outcome: RunOutcomeV1::Moved,
                freeze: Some("freeze 2026-12-09 to 2026-12-11 (year-end)".into()),
            },
            ScheduleRunV1 {
                schedule: "weekly".into(),
                planned: "2026-12-14T20:00:00+00:00[UTC]".into(),
                at: Some("2026-12-14T20:00:00+00:00[UTC]".into()),
                outcome: RunOutcomeV1::Runs,
                freeze: None,
            },
        ],
    });
    check(&TokensV1 {
        schema: Schema::new(),
        tokens: vec![
            TokenV1 {
                name: "ci-bot".into(),
                path: "/data/tokens/ci-bot".into(),
                created: Some(t("2026-11-01T09:15:02.123456789Z")),
                ignored: None,
            },
            TokenV1 {
                name: "ops.alice".into(),
                path: "/data/tokens/ops.alice".into(),
                created: None,
                ignored: Some("others can read the file".into()),
            },
        ],
    });
}

#[test]
fn plan_and_demo_documents_validate_and_read_back() {
    let plan = PlanV1 {
        schema: Schema::new(),
        policy: "monthly-os".into(),
        planned_at: t("2026-11-01T00:00:00Z"),
        rings: vec![plan::RingV1 {
            name: "lab".into(),
            earliest_start: t("2026-11-02T22:00:00Z"),
            soak_seconds: 86_400,
            approval: true,
            batch_sizes: vec![1],
            devices: vec![plan::DeviceV1 {
                id: "srv-1".into(),
                site: "ams".into(),
                timezone: "Europe/Amsterdam".into(),
                batch: 0,
                patches: vec![
                    step(),
                    StepV1 {
                        from: None,
                        deferred_until: None,
                        frozen: None,
                        ..step()
                    },
                ],
            }],
        }],
        unassigned: strings(&["ws-9"]),
        skipped: vec![SkipV1 {
            device: "srv-1".into(),
            patch: "bios-2.18.0".into(),
            reason: SkipReason::Superseded,
            detail: "superseded by bios-2.19.1".into(),
        }],
        totals: TotalsV1 {
            devices: 2,
            devices_in_rings: 1,
            device_patches: 2,
            skipped: 1,
            refused_patches: 0,
            refused_documents: 1,
        },
    };
    check(&plan);
    let explained = |decision, reason| ExplainedV1 {
        patch: "bios-2.19.1".into(),
        decision,
        reason,
        detail: "why".into(),
        ring: None,
        batch: None,
        order: None,
        step: None,
    };
    let json = check(&ExplainV1 {
        schema: Schema::new(),
        device: "srv-1".into(),
        site: "ams".into(),
        timezone: "Europe/Amsterdam".into(),
        ring: None,
        planned_at: t("2026-11-01T00:00:00Z"),
        patches: vec![
            ExplainedV1 {
                ring: Some("lab".into()),
                batch: Some(0),
                order: Some(1),
                step: Some(step()),
                ..explained(Decision::Planned, ExplainReason::Planned)
            },
            explained(
                Decision::Skipped,
                ExplainReason::Skipped(SkipReason::MissingPrerequisite),
            ),
            explained(Decision::Refused, ExplainReason::Refused),
        ],
    });
    assert_eq!(json["patches"][1]["reason"], "missing-prerequisite");
    check(&DemoV1 {
        schema: Schema::new(),
        policy: "monthly-os".into(),
        devices: 48,
        seed: 1,
        final_state: FinalState::Halted,
        halt_reason: Some("ring canary: 2 of 48 devices failed".into()),
        rings: vec![demo::RingV1 {
            name: "canary".into(),
            devices: 48,
            done: 20,
            failed: 1,
            rolled_back: 24,
            rollback_failed: 0,
            not_started: 3,
            failures: 2,
            reboots: 20,
            reboot_pending: 0,
        }],
        outcomes: OutcomesV1 {
            done: 20,
            failed: 1,
            rolled_back: 24,
            rollback_failed: 0,
            not_started: 3,
        },
        install_calls: 70,
        rollback_calls: 24,
        approvals: 1,
        duplicate_installs: 0,
        outcomes_digest: "ef".repeat(32),
        virtual_start: t("2026-11-02T08:00:00Z"),
        virtual_end: t("2026-11-09T08:00:00Z"),
        virtual_duration_seconds: 7 * 86_400,
        real_duration_ms: 1_234,
        plugin_call_ms: 800,
    });
    check(&ContinuousV1 {
        schema: Schema::new(),
        policy: "monthly-os".into(),
        devices: 60,
        seed: 7,
        virtual_start: t("2026-11-02T08:00:00Z"),
        virtual_end: t("2026-12-02T08:00:00Z"),
        poll_every_seconds: 3600,
        polls: 721,
        schedules: vec!["weekly".into()],
        publications: vec![demo::PublicationV1 {
            id: "debian-sim-openssl-3.0.16".into(),
            kind: KindV1::Security,
            severity: SeverityV1::Critical,
            source: "catalog-source".into(),
            released: t("2026-11-17T16:00:00Z"),
            first_seen: t("2026-11-17T16:00:00Z"),
            revision: 1,
        }],
        runs: vec![
            demo::ContinuousRunV1 {
                at: t("2026-11-17T16:15:00Z"),
                schedule: "weekly".into(),
                expedited: Some("debian-sim-openssl-3.0.16".into()),
                outcome: RunResultV1::Started,
                rollout: Some("r3".into()),
                patches: vec!["debian-sim-openssl-3.0.16".into()],
                devices: Some(21),
                waiting: vec![],
                why: None,
            },
            demo::ContinuousRunV1 {
                at: t("2026-11-10T21:00:00Z"),
                schedule: "weekly".into(),
                expedited: None,
                outcome: RunResultV1::NothingToDo,
                rollout: None,
                patches: vec![],
                devices: None,
                waiting: vec![demo::WaitingV1 {
                    id: "acme-bmc-7.10.31".into(),
                    from: t("2026-11-13T14:00:00Z"),
                }],
                why: Some("no patch approved yet".into()),
            },
        ],
        rollouts: vec![demo::ContinuousRolloutV1 {
            id: "r3".into(),
            schedule: "weekly".into(),
            expedited: true,
            started: t("2026-11-17T16:15:00Z"),
            finished: None,
            state: RolloutState::Soaking,
            patches: vec!["debian-sim-openssl-3.0.16".into()],
            devices: 21,
            installs: 20,
            failed_devices: 1,
            rolled_back: 0,
            halt_reason: None,
        }],
        time_to_patch: vec![demo::TimeToPatchV1 {
            severity: SeverityV1::Critical,
            patches: 2,
            pairs: 55,
            installed: 54,
            outstanding: 1,
            median_seconds: Some(653_760),
            p95_seconds: Some(770_820),
            within_7_days: Some(0.42),
            within_14_days: Some(1.0),
            within_30_days: None,
        }],
        real_duration_ms: 20_000,
    });
}

#[test]
fn plugin_documents_validate_and_read_back() {
    // The patch file: validated and read like the others, though it has no `schema`.
    let json = serde_json::to_value(patch()).unwrap();
    assert!(validator("patch.v1.json").is_valid(&json), "{json:#}");
    let again: PatchV1 = serde_json::from_value(json).unwrap();
    assert_eq!(again, patch());
    let minimal: PatchV1 = serde_json::from_str(
        r#"{"id": "p", "vendor": "v", "component": "c", "fixed_version": "1", "kind": "firmware",
            "artifact": {"url": "file:///p", "sha256": "ab", "size": 1}}"#,
    )
    .unwrap();
    assert_eq!(minimal.severity, SeverityV1::Unknown);
    assert_eq!(minimal.released, Timestamp::UNIX_EPOCH);
    let domain: ringleader_types::Patch = patch().into();
    assert_eq!(PatchV1::from(&domain), patch());

    check(&run(
        Function::Info,
        Some(ResultV1::Info(InfoV1 {
            name: "dpkg-installer".into(),
            version: "0.1.0".into(),
            description: "Installs .deb packages".into(),
        })),
    ));
    check(&run(
        Function::Discover,
        Some(ResultV1::Patches(vec![patch()])),
    ));
    for readiness in [
        ReadinessV1::Ready,
        ReadinessV1::AlreadyInstalled {
            version: "1.1".into(),
        },
        ReadinessV1::Blocked {
            reason: "dpkg is locked".into(),
        },
    ] {
        check(&run(
            Function::Preflight,
            Some(ResultV1::Readiness(readiness)),
        ));
    }
    let outcome = OutcomeV1 {
        installed_version: "1.1".into(),
        reboot_pending: false,
        detail: "installed".into(),
    };
    check(&run(
        Function::Install,
        Some(ResultV1::Outcome(outcome.clone())),
    ));
    check(&run(Function::Rollback, Some(ResultV1::Outcome(outcome))));
    check(&run(
        Function::Verify,
        Some(ResultV1::Verify(VerifyV1 {
            installed_version: None,
            health: HealthV1 {
                healthy: false,
                checks: vec![CheckV1 {
                    name: "service".into(),
                    ok: false,
                    detail: "hello.service is not running".into(),
                }],
            },
        })),
    ));
    check(&run(Function::Install, None));

    check(&PluginCheckV1 {
        schema: Schema::new(),
        path: "bundled:dpkg-installer".into(),
        valid: true,
        error: None,
        plugin: Some(checked()),
    });
    check(&PluginCheckV1 {
        schema: Schema::new(),
        path: "x.plugin.toml".into(),
        valid: false,
        error: Some("x.plugin.toml:1:1: `name`: missing".into()),
        plugin: None,
    });
    check(&PluginListV1 {
        schema: Schema::new(),
        plugins: vec![ListedPluginV1 {
            name: "csaf-source".into(),
            world: World::PatchSource,
            version: "0.1.0".into(),
            description: "CSAF advisories".into(),
            wit_version: "0.2.0".into(),
            sha256: "12".repeat(32),
            capabilities: CapabilitiesV1 {
                http: strings(&["{setting:feed}"]),
                exec: Vec::new(),
                kv: false,
            },
        }],
    });
}

#[test]
fn a_result_is_read_by_the_function_that_returned_it() {
    let mut json = serde_json::to_value(run(
        Function::Install,
        Some(ResultV1::Outcome(OutcomeV1 {
            installed_version: "1.1".into(),
            reboot_pending: false,
            detail: String::new(),
        })),
    ))
    .unwrap();
    json["function"] = "verify".into();
    let e = serde_json::from_value::<RunV1>(json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`result` is not what `verify` returns"), "{e}");
    assert!(e.contains("health"), "{e}");
}

/// Every schema file is some type's, and each type's `schema` is its file's title and
/// `schema` constant.
#[test]
fn fleet_documents_validate_and_read_back() {
    let error = ScanErrorV1 {
        kind: ScanErrorKind::Unreachable,
        message: "ssh: connect to host 10.0.0.9 port 22: Connection refused".into(),
    };
    let libc = fleet::ComponentV1 {
        name: "libc6".into(),
        version: "2.36-9+deb12u7".into(),
        scheme: Some("deb".into()),
        source: Some("glibc".into()),
    };
    let scan = ScanV1 {
        at: t("2026-12-02T10:00:00Z"),
        duration_ms: 812,
        installer: "apt-installer".into(),
        components: vec![libc.clone()],
        os: Some(OsV1 {
            id: "debian".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        }),
        boot: BootV1 {
            boot_id: Some("5f0c".into()),
            booted_at: Some(t("2026-11-30T08:00:00Z")),
            reboot_pending: true,
            pending_reasons: vec!["/run/reboot-required: libc6".into()],
        },
        facts: vec![(
            "dpkg.interrupted".into(),
            "hello 1.2-1 (half-configured)".into(),
        )],
    };
    for (last_scan, error) in [
        (Some(t("2026-12-02T10:00:00Z")), None),
        (None, Some(error.clone())),
    ] {
        check(&FleetV1 {
            schema: Schema::new(),
            devices: vec![FleetDeviceSummaryV1 {
                id: "deb-1".into(),
                inventory: "fleet.toml".into(),
                tags: strings(&["lab"]),
                last_scan,
                last_seen: last_scan,
                error,
                components: last_scan.map(|_| 412),
                differences: 3,
                drift: true,
                reboot_pending: false,
            }],
            not_scanned_recently: 1,
        });
    }
    for (last_scan, error) in [(Some(scan.clone()), None), (None, Some(error.clone()))] {
        check(&FleetDeviceV1 {
            schema: Schema::new(),
            id: "deb-1".into(),
            inventory: "fleet.toml".into(),
            tags: strings(&["lab"]),
            declared: vec![fleet::ComponentV1 {
                version: "2.36-9+deb12u4".into(),
                scheme: None,
                source: None,
                ..libc.clone()
            }],
            error_at: error.as_ref().map(|_| t("2026-12-02T11:00:00Z")),
            last_scan,
            last_seen: Some(t("2026-12-02T10:00:00Z")),
            error,
            differences: vec![DifferenceV1 {
                kind: DifferenceKind::Version,
                component: "libc6".into(),
                declared: Some("2.36-9+deb12u4".into()),
                observed: Some("2.36-9+deb12u7".into()),
            }],
            drift: false,
            history: vec![HistoryV1 {
                at: t("2026-12-02T10:00:00Z"),
                kind: HistoryKind::Changed,
                component: Some("libc6".into()),
                from: Some("2.36-9+deb12u4".into()),
                to: Some("2.36-9+deb12u7".into()),
                detail: "libc6: 2.36-9+deb12u4 -> 2.36-9+deb12u7".into(),
            }],
            rollouts: vec![RolloutRecordV1 {
                rollout: "r2".into(),
                started_by: "alice".into(),
                ring: "canary".into(),
                state: "done".into(),
                versions: BTreeMap::from([("libc6".into(), "2.36-9+deb12u7".into())]),
                reason: None,
                changes: vec![fleet::ChangeV1 {
                    at: t("2026-12-02T10:05:00Z"),
                    kind: "step-succeeded".into(),
                    patch: Some("debian:bookworm:glibc:2.36-9+deb12u7:libc6".into()),
                    component: Some("libc6".into()),
                    from: Some("2.36-9+deb12u4".into()),
                    to: Some("2.36-9+deb12u7".into()),
                    reason: None,
                    ok: None,
                }],
            }],
        });
    }
    check(&FleetScanV1 {
        schema: Schema::new(),
        scanned: 2,
        ok: 1,
        failed: 1,
        duration_ms: 1500,
        devices: vec![
            ScannedV1 {
                id: "deb-1".into(),
                ok: true,
                duration_ms: 812,
                components: Some(412),
                changed: 1,
                error: None,
            },
            ScannedV1 {
                id: "deb-2".into(),
                ok: false,
                duration_ms: 5000,
                components: None,
                changed: 0,
                error: Some(error),
            },
        ],
    });
}

#[test]
fn compliance_document_validates_and_reads_back() {
    let missing = MissingV1 {
        patch: "debian-sim-openssl-3.0.15".into(),
        title: "openssl security update 3.0.15".into(),
        component: "openssl".into(),
        installed: "3.0.11".into(),
        fixed_version: "3.0.15".into(),
        severity: SeverityV1::Critical,
        cves: strings(&["CVE-2024-5535", "CVE-2024-4603"]),
        covers: strings(&["debian-sim-openssl-3.0.14"]),
        released: t("2026-10-01T00:00:00Z"),
        age_days: 62,
    };
    let device =
        |id: &str, error: Option<ScanErrorV1>, missing: Vec<MissingV1>| DeviceComplianceV1 {
            id: id.into(),
            tags: strings(&["lab"]),
            observed: error.is_none(),
            last_scan: error.is_none().then(|| t("2026-12-02T10:00:00Z")),
            reachable: Some(error.is_none()),
            scan_overdue: error.is_some(),
            error,
            reboot_pending: false,
            fully_patched: missing.is_empty(),
            missing_by_severity: BySeverityV1 {
                critical: missing.len() as u32,
                ..BySeverityV1::default()
            },
            oldest_missing_days: missing.first().map(|m| m.age_days),
            missing,
        };
    for filter in [
        FilterV1::default(),
        FilterV1 {
            severity: Some(SeverityV1::High),
            cve: Some("CVE-2024-5535".into()),
            tag: Some("lab".into()),
        },
    ] {
        check(&ComplianceV1 {
            schema: Schema::new(),
            at: t("2026-12-02T12:00:00Z"),
            filter,
            scan_interval_secs: 86_400,
            catalog: CatalogInfoV1 {
                discovered_at: t("2026-12-02T11:58:00Z"),
                patches: 6,
                refused: 0,
            },
            summary: ComplianceSummaryV1 {
                devices: 2,
                fully_patched: 1,
                not_scanned_recently: 1,
                unreachable: 1,
                reboot_pending: 0,
                by_severity: vec![SeveritySummaryV1 {
                    severity: SeverityV1::Critical,
                    devices_missing: 1,
                    share_patched: 0.5,
                    oldest_missing_days: Some(62),
                }],
            },
            devices: vec![
                device("deb-1", None, vec![missing.clone()]),
                device(
                    "deb-2",
                    Some(ScanErrorV1 {
                        kind: ScanErrorKind::Unreachable,
                        message: "ssh: connection refused".into(),
                    }),
                    Vec::new(),
                ),
            ],
            patches: vec![PatchComplianceV1 {
                id: missing.patch.clone(),
                title: missing.title.clone(),
                component: "openssl".into(),
                fixed_version: "3.0.15".into(),
                severity: SeverityV1::Critical,
                cves: strings(&["CVE-2024-5535"]),
                released: t("2026-10-01T00:00:00Z"),
                affected: 1,
                patched: 0,
            }],
        });
    }
}

#[test]
fn notification_schedule_and_report_documents_validate_and_read_back() {
    let mut failed = NotificationV1::new(
        "r3-118".into(),
        NotificationKind::DeviceFailed,
        t("2026-11-02T08:14:00Z"),
    );
    failed.rollout = Some("r3".into());
    failed.policy = Some("monthly-os".into());
    failed.ring = Some("canary".into());
    failed.device = Some("web-17".into());
    failed.patch = Some("openssl-3.0.15".into());
    failed.reason = Some("install failed: dpkg returned 1".into());
    check(&failed);
    let mut published = NotificationV1::new(
        "patch-corp-1-1".into(),
        NotificationKind::PatchPublished,
        t("2026-11-02T08:00:00Z"),
    );
    published.severity = Some(SeverityV1::Critical);
    published.cves = strings(&["CVE-2026-0001"]);
    published.source = Some("csaf-source".into());
    check(&published);
    let mut stale = NotificationV1::new(
        "not-scanned-ws-1-1764547200".into(),
        NotificationKind::DeviceNotScanned,
        t("2026-12-03T00:00:00Z"),
    );
    stale.device = Some("ws-1".into());
    stale.last_scan = Some(t("2026-12-01T00:00:00Z"));
    check(&stale);
    check(&NotificationsV1 {
        schema: Schema::new(),
        webhooks: vec![WebhookV1 {
            name: "ops".into(),
            url: "https://hooks.example.com/in".into(),
            events: NotificationKind::ALL.to_vec(),
            pending: 1,
            delivered: 24,
            dropped: 0,
            last_delivered: Some(t("2026-12-04T03:50:12Z")),
            last_error: Some(AttemptErrorV1 {
                at: t("2026-12-04T03:50:09Z"),
                notification: "r1-3".into(),
                attempt: 3,
                message: "the receiver answered 503 Service Unavailable".into(),
            }),
        }],
        deliveries: vec![DeliveryV1 {
            id: "r1-3".into(),
            webhook: "ops".into(),
            kind: NotificationKind::Halted,
            queued: t("2026-12-04T03:50:00Z"),
            state: DeliveryState::Delivered,
            attempts: 4,
            delivered: Some(t("2026-12-04T03:50:12Z")),
            last_error: Some("connection refused".into()),
        }],
    });
    check(&ringleader_api::schedule::ScheduledRunsV1 {
        schema: Schema::new(),
        file: "/etc/ringleader/schedules.toml".into(),
        schedules: vec![
            ringleader_api::schedule::ScheduledV1 {
                name: "weekly".into(),
                next: Some(t("2026-12-07T20:00:00Z")),
            },
            ringleader_api::schedule::ScheduledV1 {
                name: "once".into(),
                next: None,
            },
        ],
        runs: vec![demo::ContinuousRunV1 {
            at: t("2026-12-04T04:31:04Z"),
            schedule: "weekly".into(),
            expedited: Some("corp-crit".into()),
            outcome: RunResultV1::Started,
            rollout: Some("r1".into()),
            patches: strings(&["corp-crit"]),
            devices: Some(2),
            waiting: vec![demo::WaitingV1 {
                id: "corp-low".into(),
                from: t("2036-10-30T00:00:00Z"),
            }],
            why: None,
        }],
    });
    check(&TimeToPatchReportV1 {
        schema: Schema::new(),
        at: t("2026-12-04T04:16:33Z"),
        publications: 2,
        rollouts: 1,
        unread: strings(&["r2"]),
        installs: 5,
        severities: vec![demo::TimeToPatchV1 {
            severity: SeverityV1::High,
            patches: 1,
            pairs: 3,
            installed: 3,
            outstanding: 0,
            median_seconds: Some(2),
            p95_seconds: Some(2),
            within_7_days: Some(1.0),
            within_14_days: None,
            within_30_days: None,
        }],
    });
}

#[test]
fn schema_constants_are_the_published_ones() {
    fn constant<D: Document>(seen: &mut BTreeSet<String>) {
        let file = file_of::<D>();
        let schema = load_schema(&file);
        assert_eq!(schema["title"], D::SCHEMA, "{file}");
        if D::SCHEMA != PatchV1::SCHEMA {
            assert_eq!(schema["properties"]["schema"]["const"], D::SCHEMA, "{file}");
        }
        seen.insert(file);
    }
    let mut seen = BTreeSet::new();
    constant::<ErrorV1>(&mut seen);
    constant::<StatusV1>(&mut seen);
    constant::<RolloutsV1>(&mut seen);
    constant::<AcceptedV1>(&mut seen);
    constant::<DaemonHealthV1>(&mut seen);
    constant::<EventV1>(&mut seen);
    constant::<EventsV1>(&mut seen);
    constant::<StallV1>(&mut seen);
    constant::<DevicesV1>(&mut seen);
    constant::<DeviceHistoryV1>(&mut seen);
    constant::<PlanV1>(&mut seen);
    constant::<ExplainV1>(&mut seen);
    constant::<DemoV1>(&mut seen);
    constant::<ContinuousV1>(&mut seen);
    constant::<ringleader_api::source::PublicationsV1>(&mut seen);
    constant::<PatchV1>(&mut seen);
    constant::<RunV1>(&mut seen);
    constant::<PluginCheckV1>(&mut seen);
    constant::<PluginListV1>(&mut seen);
    constant::<TokensV1>(&mut seen);
    constant::<SchedulesV1>(&mut seen);
    constant::<ScheduleRunsV1>(&mut seen);
    constant::<FleetV1>(&mut seen);
    constant::<FleetDeviceV1>(&mut seen);
    constant::<FleetScanV1>(&mut seen);
    constant::<CatalogCheckV1>(&mut seen);
    constant::<ComplianceV1>(&mut seen);
    constant::<NotificationV1>(&mut seen);
    constant::<NotificationsV1>(&mut seen);
    constant::<ringleader_api::schedule::ScheduledRunsV1>(&mut seen);
    constant::<TimeToPatchReportV1>(&mut seen);
    let published: BTreeSet<String> = std::fs::read_dir(schemas_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".v1.json"))
        // On-disk formats, not documents of the API or the CLI: `meta/inputs` is
        // `ringleader_daemon::session::Inputs`, validated by the daemon's storage tests.
        .filter(|name| name != "inputs.v1.json")
        // A file people write (catalog-source's, in its JSON form), not a document:
        // checked against `ringleader-catalog` by the binary's tests (`cli.rs`).
        .filter(|name| name != "catalog.v1.json")
        .collect();
    assert_eq!(
        seen, published,
        "a schema without a type, or a type without one"
    );
}

/// The typed enums name exactly what the schemas list.
#[test]
fn enums_are_the_schemas_lists() {
    fn list(file: &str, pointer: &str) -> BTreeSet<String> {
        let schema = load_schema(file);
        let values = schema
            .pointer(pointer)
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("{file} has no list at {pointer}"));
        values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
    fn names<T: Copy + std::fmt::Display>(all: &[T]) -> BTreeSet<String> {
        all.iter().map(|v| v.to_string()).collect()
    }
    let cases = [
        (
            "status.v1.json",
            "/properties/state/enum",
            names(RolloutState::ALL),
        ),
        (
            "status.v1.json",
            "/properties/waiting/oneOf/1/properties/for/enum",
            names(Gate::ALL),
        ),
        (
            "event.v1.json",
            "/properties/type/enum",
            names(EventKind::ALL),
        ),
        (
            "demo-continuous.v1.json",
            "/properties/runs/items/properties/outcome/enum",
            names(RunResultV1::ALL),
        ),
        (
            "demo-continuous.v1.json",
            "/properties/rollouts/items/properties/state/enum",
            names(RolloutState::ALL),
        ),
        (
            "devices.v1.json",
            "/$defs/device/properties/state/enum",
            names(DeviceState::ALL),
        ),
        (
            "device.v1.json",
            "/$defs/device/properties/state/enum",
            names(DeviceState::ALL),
        ),
        (
            "accepted.v1.json",
            "/properties/action/enum",
            names(Action::ALL),
        ),
        (
            "schedules.v1.json",
            "/properties/schedules/items/properties/on_freeze/enum",
            names(OnFreezeV1::ALL),
        ),
        (
            "schedule-runs.v1.json",
            "/properties/runs/items/properties/outcome/enum",
            names(RunOutcomeV1::ALL),
        ),
        (
            "notification.v1.json",
            "/properties/kind/enum",
            names(NotificationKind::ALL),
        ),
        (
            "notifications.v1.json",
            "/$defs/kind/enum",
            names(NotificationKind::ALL),
        ),
        (
            "notifications.v1.json",
            "/properties/deliveries/items/properties/state/enum",
            names(DeliveryState::ALL),
        ),
        (
            "scheduled-runs.v1.json",
            "/properties/runs/items/properties/outcome/enum",
            names(RunResultV1::ALL),
        ),
        (
            "health.v1.json",
            "/properties/status/enum",
            names(Health::ALL),
        ),
        (
            "health.v1.json",
            "/properties/problems/items/properties/state/enum",
            names(ProblemState::ALL),
        ),
        (
            "plan.v1.json",
            "/properties/skipped/items/properties/reason/enum",
            names(SkipReason::ALL),
        ),
        (
            "explain.v1.json",
            "/properties/patches/items/properties/decision/enum",
            names(Decision::ALL),
        ),
        (
            "demo.v1.json",
            "/properties/final_state/enum",
            names(FinalState::ALL),
        ),
        ("patch.v1.json", "/properties/kind/enum", names(KindV1::ALL)),
        (
            "patch.v1.json",
            "/properties/severity/enum",
            names(SeverityV1::ALL),
        ),
        (
            "plugin-run.v1.json",
            "/properties/function/enum",
            names(Function::ALL),
        ),
        (
            "plugin-run.v1.json",
            "/properties/world/enum",
            names(World::ALL),
        ),
        (
            "plugin-run.v1.json",
            "/properties/error/properties/kind/enum",
            names(ErrorKind::ALL),
        ),
        (
            "plugin-run.v1.json",
            "/properties/error/properties/case/enum",
            names(ErrorCase::ALL),
        ),
        (
            "plugin-check.v1.json",
            "/properties/cache/enum",
            names(CacheOutcome::ALL),
        ),
        (
            "fleet-scan.v1.json",
            "/properties/devices/items/properties/error/oneOf/1/properties/kind/enum",
            names(ScanErrorKind::ALL),
        ),
        (
            "fleet-device.v1.json",
            "/properties/differences/items/properties/kind/enum",
            names(DifferenceKind::ALL),
        ),
        (
            "fleet-device.v1.json",
            "/properties/history/items/properties/kind/enum",
            names(HistoryKind::ALL),
        ),
        (
            "compliance.v1.json",
            "/properties/patches/items/properties/severity/enum",
            names(SeverityV1::ALL),
        ),
        (
            "compliance.v1.json",
            "/properties/devices/items/properties/error/oneOf/1/properties/kind/enum",
            names(ScanErrorKind::ALL),
        ),
    ];
    for (file, pointer, ours) in cases {
        assert_eq!(list(file, pointer), ours, "{file} {pointer}");
    }
    // `clock` lists null too (an unreadable rollout has none).
    let clocks = list("status.v1.json", "/properties/clock/enum");
    assert_eq!(clocks, names(Clock::ALL));
    // An explanation's reason: planned, refused, or a skip reason.
    let mut reasons = names(SkipReason::ALL);
    reasons.extend(["planned".to_string(), "refused".to_string()]);
    assert_eq!(
        list(
            "explain.v1.json",
            "/properties/patches/items/properties/reason/enum"
        ),
        reasons
    );
}
