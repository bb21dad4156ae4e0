//! The contract's types as `bindgen!` writes them ([`wit`](super::wit) for 0.1.1,
//! [`wit2`](super::wit2) for 0.2.0, [`wit3`](super::wit3) for 0.3.0) to and from the host's domain types
//! (`ringleader_types`), in both directions. Every impl takes its value apart field by
//! field, so that a field added on either side is a compile error here rather than a
//! value silently dropped at the plugin boundary.
//!
//! The types the versions have alike are converted by macros, written once for all
//! of them; `Component` and `Patch` differ (0.2.0 has their `scheme`, 0.3.0 the
//! component's `source`): an older plugin's have none (`None`), and what an older
//! plugin cannot hold is left out of what it is given.

use super::{wit, wit2, wit3};
use ringleader_types as domain;

impl From<domain::Component> for wit::Component {
    fn from(c: domain::Component) -> Self {
        let domain::Component {
            name,
            version,
            scheme: _,
            source: _,
        } = c;
        wit::Component { name, version }
    }
}

impl From<wit::Component> for domain::Component {
    fn from(c: wit::Component) -> Self {
        let wit::Component { name, version } = c;
        domain::Component {
            name,
            version,
            scheme: None,
            source: None,
        }
    }
}

impl From<domain::Patch> for wit::Patch {
    fn from(p: domain::Patch) -> Self {
        let domain::Patch {
            id,
            vendor,
            title,
            component,
            fixed_version,
            applies_to,
            scheme: _,
            kind,
            severity,
            cves,
            prerequisites,
            supersedes,
            reboot_required,
            artifact,
            released,
        } = p;
        wit::Patch {
            id,
            vendor,
            title,
            component,
            fixed_version,
            applies_to,
            kind: kind.into(),
            severity: severity.into(),
            cves,
            prerequisites,
            supersedes,
            reboot_required,
            artifact: artifact.into(),
            released,
        }
    }
}

impl From<wit::Patch> for domain::Patch {
    fn from(p: wit::Patch) -> Self {
        let wit::Patch {
            id,
            vendor,
            title,
            component,
            fixed_version,
            applies_to,
            kind,
            severity,
            cves,
            prerequisites,
            supersedes,
            reboot_required,
            artifact,
            released,
        } = p;
        domain::Patch {
            id,
            vendor,
            title,
            component,
            fixed_version,
            applies_to,
            scheme: None,
            kind: kind.into(),
            severity: severity.into(),
            cves,
            prerequisites,
            supersedes,
            reboot_required,
            artifact: artifact.into(),
            released,
        }
    }
}

/// The conversions of the types that 0.2.0 and later have alike (the scheme, the
/// patch, what a plugin says about itself), for one version's module.
macro_rules! schemed {
    ($wit:ident) => {
        impl From<domain::Scheme> for $wit::VersionScheme {
            fn from(s: domain::Scheme) -> Self {
                match s {
                    domain::Scheme::Deb => $wit::VersionScheme::Deb,
                    domain::Scheme::Rpm => $wit::VersionScheme::Rpm,
                    domain::Scheme::Apk => $wit::VersionScheme::Apk,
                    domain::Scheme::Semver => $wit::VersionScheme::Semver,
                    domain::Scheme::Vendor => $wit::VersionScheme::Vendor,
                }
            }
        }

        impl From<$wit::VersionScheme> for domain::Scheme {
            fn from(s: $wit::VersionScheme) -> Self {
                match s {
                    $wit::VersionScheme::Deb => domain::Scheme::Deb,
                    $wit::VersionScheme::Rpm => domain::Scheme::Rpm,
                    $wit::VersionScheme::Apk => domain::Scheme::Apk,
                    $wit::VersionScheme::Semver => domain::Scheme::Semver,
                    $wit::VersionScheme::Vendor => domain::Scheme::Vendor,
                }
            }
        }

        impl From<domain::Patch> for $wit::Patch {
            fn from(p: domain::Patch) -> Self {
                let domain::Patch {
                    id,
                    vendor,
                    title,
                    component,
                    fixed_version,
                    applies_to,
                    scheme,
                    kind,
                    severity,
                    cves,
                    prerequisites,
                    supersedes,
                    reboot_required,
                    artifact,
                    released,
                } = p;
                $wit::Patch {
                    id,
                    vendor,
                    title,
                    component,
                    fixed_version,
                    applies_to,
                    scheme: scheme.map(Into::into),
                    kind: kind.into(),
                    severity: severity.into(),
                    cves,
                    prerequisites,
                    supersedes,
                    reboot_required,
                    artifact: artifact.into(),
                    released,
                }
            }
        }

        impl From<$wit::Patch> for domain::Patch {
            fn from(p: $wit::Patch) -> Self {
                let $wit::Patch {
                    id,
                    vendor,
                    title,
                    component,
                    fixed_version,
                    applies_to,
                    scheme,
                    kind,
                    severity,
                    cves,
                    prerequisites,
                    supersedes,
                    reboot_required,
                    artifact,
                    released,
                } = p;
                domain::Patch {
                    id,
                    vendor,
                    title,
                    component,
                    fixed_version,
                    applies_to,
                    scheme: scheme.map(Into::into),
                    kind: kind.into(),
                    severity: severity.into(),
                    cves,
                    prerequisites,
                    supersedes,
                    reboot_required,
                    artifact: artifact.into(),
                    released,
                }
            }
        }

        impl From<$wit::PluginInfo> for super::PluginInfo {
            fn from(i: $wit::PluginInfo) -> Self {
                let $wit::PluginInfo {
                    name,
                    version,
                    description,
                } = i;
                super::PluginInfo {
                    name,
                    version,
                    description,
                }
            }
        }
    };
}

schemed!(wit2);
schemed!(wit3);

impl From<domain::Component> for wit2::Component {
    fn from(c: domain::Component) -> Self {
        let domain::Component {
            name,
            version,
            scheme,
            source: _,
        } = c;
        wit2::Component {
            name,
            version,
            scheme: scheme.map(Into::into),
        }
    }
}

impl From<wit2::Component> for domain::Component {
    fn from(c: wit2::Component) -> Self {
        let wit2::Component {
            name,
            version,
            scheme,
        } = c;
        domain::Component {
            name,
            version,
            scheme: scheme.map(Into::into),
            source: None,
        }
    }
}

impl From<domain::Component> for wit3::Component {
    fn from(c: domain::Component) -> Self {
        let domain::Component {
            name,
            version,
            scheme,
            source,
        } = c;
        wit3::Component {
            name,
            version,
            scheme: scheme.map(Into::into),
            source,
        }
    }
}

impl From<wit3::Component> for domain::Component {
    fn from(c: wit3::Component) -> Self {
        let wit3::Component {
            name,
            version,
            scheme,
            source,
        } = c;
        domain::Component {
            name,
            version,
            scheme: scheme.map(Into::into),
            source,
        }
    }
}

impl From<wit3::OsRelease> for domain::OsRelease {
    fn from(o: wit3::OsRelease) -> Self {
        let wit3::OsRelease {
            id,
            version_id,
            codename,
            pretty_name,
        } = o;
        domain::OsRelease {
            id,
            version_id,
            codename,
            pretty_name,
        }
    }
}

impl From<wit3::BootState> for domain::BootState {
    fn from(b: wit3::BootState) -> Self {
        let wit3::BootState {
            boot_id,
            booted_at,
            reboot_pending,
            pending_reasons,
        } = b;
        domain::BootState {
            boot_id,
            booted_at,
            reboot_pending,
            pending_reasons,
        }
    }
}

impl From<wit3::DeviceScan> for domain::DeviceScan {
    fn from(d: wit3::DeviceScan) -> Self {
        let wit3::DeviceScan {
            components,
            os,
            boot,
            facts,
        } = d;
        domain::DeviceScan {
            components: components.into_iter().map(Into::into).collect(),
            os: os.map(Into::into),
            boot: boot.into(),
            facts,
        }
    }
}

/// The conversions of the types every version has alike, for one version's module.
macro_rules! alike {
    ($wit:ident) => {
        impl From<domain::Device> for $wit::Device {
            fn from(d: domain::Device) -> Self {
                let domain::Device {
                    id,
                    hostname,
                    tags,
                    facts,
                    components,
                } = d;
                $wit::Device {
                    id,
                    hostname,
                    tags,
                    facts,
                    components: components.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<$wit::Device> for domain::Device {
            fn from(d: $wit::Device) -> Self {
                let $wit::Device {
                    id,
                    hostname,
                    tags,
                    facts,
                    components,
                } = d;
                domain::Device {
                    id,
                    hostname,
                    tags,
                    facts,
                    components: components.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<domain::Severity> for $wit::Severity {
            fn from(s: domain::Severity) -> Self {
                match s {
                    domain::Severity::Unknown => $wit::Severity::Unknown,
                    domain::Severity::Low => $wit::Severity::Low,
                    domain::Severity::Medium => $wit::Severity::Medium,
                    domain::Severity::High => $wit::Severity::High,
                    domain::Severity::Critical => $wit::Severity::Critical,
                }
            }
        }

        impl From<$wit::Severity> for domain::Severity {
            fn from(s: $wit::Severity) -> Self {
                match s {
                    $wit::Severity::Unknown => domain::Severity::Unknown,
                    $wit::Severity::Low => domain::Severity::Low,
                    $wit::Severity::Medium => domain::Severity::Medium,
                    $wit::Severity::High => domain::Severity::High,
                    $wit::Severity::Critical => domain::Severity::Critical,
                }
            }
        }

        impl From<domain::PatchKind> for $wit::PatchKind {
            fn from(k: domain::PatchKind) -> Self {
                match k {
                    domain::PatchKind::Security => $wit::PatchKind::Security,
                    domain::PatchKind::Bugfix => $wit::PatchKind::Bugfix,
                    domain::PatchKind::Feature => $wit::PatchKind::Feature,
                    domain::PatchKind::Firmware => $wit::PatchKind::Firmware,
                }
            }
        }

        impl From<$wit::PatchKind> for domain::PatchKind {
            fn from(k: $wit::PatchKind) -> Self {
                match k {
                    $wit::PatchKind::Security => domain::PatchKind::Security,
                    $wit::PatchKind::Bugfix => domain::PatchKind::Bugfix,
                    $wit::PatchKind::Feature => domain::PatchKind::Feature,
                    $wit::PatchKind::Firmware => domain::PatchKind::Firmware,
                }
            }
        }

        impl From<domain::Artifact> for $wit::Artifact {
            fn from(a: domain::Artifact) -> Self {
                let domain::Artifact { url, sha256, size } = a;
                $wit::Artifact { url, sha256, size }
            }
        }

        impl From<$wit::Artifact> for domain::Artifact {
            fn from(a: $wit::Artifact) -> Self {
                let $wit::Artifact { url, sha256, size } = a;
                domain::Artifact { url, sha256, size }
            }
        }

        impl From<domain::Readiness> for $wit::Readiness {
            fn from(r: domain::Readiness) -> Self {
                match r {
                    domain::Readiness::Ready => $wit::Readiness::Ready,
                    domain::Readiness::AlreadyInstalled(v) => $wit::Readiness::AlreadyInstalled(v),
                    domain::Readiness::Blocked(why) => $wit::Readiness::Blocked(why),
                }
            }
        }

        impl From<$wit::Readiness> for domain::Readiness {
            fn from(r: $wit::Readiness) -> Self {
                match r {
                    $wit::Readiness::Ready => domain::Readiness::Ready,
                    $wit::Readiness::AlreadyInstalled(v) => domain::Readiness::AlreadyInstalled(v),
                    $wit::Readiness::Blocked(why) => domain::Readiness::Blocked(why),
                }
            }
        }

        impl From<domain::InstallOutcome> for $wit::InstallOutcome {
            fn from(o: domain::InstallOutcome) -> Self {
                let domain::InstallOutcome {
                    installed_version,
                    reboot_pending,
                    detail,
                } = o;
                $wit::InstallOutcome {
                    installed_version,
                    reboot_pending,
                    detail,
                }
            }
        }

        impl From<$wit::InstallOutcome> for domain::InstallOutcome {
            fn from(o: $wit::InstallOutcome) -> Self {
                let $wit::InstallOutcome {
                    installed_version,
                    reboot_pending,
                    detail,
                } = o;
                domain::InstallOutcome {
                    installed_version,
                    reboot_pending,
                    detail,
                }
            }
        }

        impl From<domain::HealthCheck> for $wit::HealthCheck {
            fn from(c: domain::HealthCheck) -> Self {
                let domain::HealthCheck { name, ok, detail } = c;
                $wit::HealthCheck { name, ok, detail }
            }
        }

        impl From<$wit::HealthCheck> for domain::HealthCheck {
            fn from(c: $wit::HealthCheck) -> Self {
                let $wit::HealthCheck { name, ok, detail } = c;
                domain::HealthCheck { name, ok, detail }
            }
        }

        impl From<domain::HealthReport> for $wit::HealthReport {
            fn from(r: domain::HealthReport) -> Self {
                let domain::HealthReport { healthy, checks } = r;
                $wit::HealthReport {
                    healthy,
                    checks: checks.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<$wit::HealthReport> for domain::HealthReport {
            fn from(r: $wit::HealthReport) -> Self {
                let $wit::HealthReport { healthy, checks } = r;
                domain::HealthReport {
                    healthy,
                    checks: checks.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<domain::VerifyReport> for $wit::VerifyReport {
            fn from(r: domain::VerifyReport) -> Self {
                let domain::VerifyReport {
                    installed_version,
                    health,
                } = r;
                $wit::VerifyReport {
                    installed_version,
                    health: health.into(),
                }
            }
        }

        impl From<$wit::VerifyReport> for domain::VerifyReport {
            fn from(r: $wit::VerifyReport) -> Self {
                let $wit::VerifyReport {
                    installed_version,
                    health,
                } = r;
                domain::VerifyReport {
                    installed_version,
                    health: health.into(),
                }
            }
        }

        impl From<domain::RollbackTarget> for $wit::RollbackTarget {
            fn from(t: domain::RollbackTarget) -> Self {
                let domain::RollbackTarget { version, artifact } = t;
                $wit::RollbackTarget {
                    version,
                    artifact: artifact.map(Into::into),
                }
            }
        }

        impl From<$wit::RollbackTarget> for domain::RollbackTarget {
            fn from(t: $wit::RollbackTarget) -> Self {
                let $wit::RollbackTarget { version, artifact } = t;
                domain::RollbackTarget {
                    version,
                    artifact: artifact.map(Into::into),
                }
            }
        }
    };
}

alike!(wit);
alike!(wit2);
alike!(wit3);

#[cfg(test)]
mod tests {
    use super::*;

    /// `value` to the bindgen type and back is `value`.
    fn round_trips<D, W>(value: D)
    where
        D: Clone + PartialEq + std::fmt::Debug + From<W>,
        W: From<D>,
    {
        assert_eq!(D::from(W::from(value.clone())), value);
    }

    fn artifact() -> domain::Artifact {
        domain::Artifact {
            url: "https://vendor.example/bios.bin".into(),
            sha256: "ab".repeat(32),
            size: 1 << 20,
        }
    }

    #[test]
    fn every_type_survives_the_plugin_boundary_both_ways() {
        every_type_survives::<
            wit::Device,
            wit::Patch,
            wit::Readiness,
            wit::InstallOutcome,
            wit::VerifyReport,
            wit::RollbackTarget,
        >(None, None);
        for scheme in [
            None,
            Some(domain::Scheme::Deb),
            Some(domain::Scheme::Vendor),
        ] {
            every_type_survives::<
                wit2::Device,
                wit2::Patch,
                wit2::Readiness,
                wit2::InstallOutcome,
                wit2::VerifyReport,
                wit2::RollbackTarget,
            >(scheme, None);
            for source in [None, Some("glibc")] {
                every_type_survives::<
                    wit3::Device,
                    wit3::Patch,
                    wit3::Readiness,
                    wit3::InstallOutcome,
                    wit3::VerifyReport,
                    wit3::RollbackTarget,
                >(scheme, source);
            }
        }
    }

    /// A plugin before 0.3.0 has no source package: one given to it is left out.
    #[test]
    fn a_source_package_is_left_out_before_0_3_and_kept_from_0_3() {
        let libc = domain::Component {
            name: "libc6".into(),
            version: "2.36-9+deb12u4".into(),
            scheme: Some(domain::Scheme::Deb),
            source: Some("glibc".into()),
        };
        let old = domain::Component::from(wit2::Component::from(libc.clone()));
        assert_eq!(old.source, None);
        assert_eq!(old.scheme, libc.scheme);
        assert_eq!(
            domain::Component::from(wit3::Component::from(libc.clone())),
            libc
        );
    }

    /// What a 0.3.0 installer's scan says arrives whole.
    #[test]
    fn a_scan_arrives_whole() {
        let scan = wit3::DeviceScan {
            components: vec![wit3::Component {
                name: "libc6".into(),
                version: "2.36-9+deb12u7".into(),
                scheme: Some(wit3::VersionScheme::Deb),
                source: Some("glibc".into()),
            }],
            os: Some(wit3::OsRelease {
                id: "debian".into(),
                version_id: Some("12".into()),
                codename: Some("bookworm".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }),
            boot: wit3::BootState {
                boot_id: Some("5f0c".into()),
                booted_at: Some(1_700_000_000),
                reboot_pending: true,
                pending_reasons: vec!["/run/reboot-required".into()],
            },
            facts: vec![("arch".into(), "amd64".into())],
        };
        let got = domain::DeviceScan::from(scan);
        assert_eq!(
            got.components,
            [domain::Component {
                name: "libc6".into(),
                version: "2.36-9+deb12u7".into(),
                scheme: Some(domain::Scheme::Deb),
                source: Some("glibc".into()),
            }]
        );
        let os = got.os.expect("os kept");
        assert_eq!(
            (
                os.id.as_str(),
                os.version_id.as_deref(),
                os.codename.as_deref()
            ),
            ("debian", Some("12"), Some("bookworm"))
        );
        assert_eq!(got.boot.boot_id.as_deref(), Some("5f0c"));
        assert_eq!(got.boot.booted_at, Some(1_700_000_000));
        assert!(got.boot.reboot_pending);
        assert_eq!(got.boot.pending_reasons, ["/run/reboot-required"]);
        assert_eq!(got.facts, [("arch".to_string(), "amd64".to_string())]);
    }

    /// A 0.1.x plugin has no scheme: one given to it is left out, and what it returns
    /// has none.
    #[test]
    fn a_scheme_is_left_out_towards_0_1_and_kept_towards_0_2() {
        let deb = domain::Component {
            name: "libc6".into(),
            version: "2.36-9+deb12u4".into(),
            scheme: Some(domain::Scheme::Deb),
            source: None,
        };
        let old = domain::Component::from(wit::Component::from(deb.clone()));
        assert_eq!(old.scheme, None);
        assert_eq!(old.version, deb.version);
        assert_eq!(
            domain::Component::from(wit2::Component::from(deb.clone())),
            deb
        );
    }

    /// Every type through one version's bindings and back, with `scheme` on the
    /// component and patch (`None` for 0.1.1, which has no scheme) and `source` on the
    /// component (`None` before 0.3.0).
    fn every_type_survives<Dev, P, R, O, V, T>(scheme: Option<domain::Scheme>, source: Option<&str>)
    where
        Dev: From<domain::Device>,
        domain::Device: From<Dev>,
        P: From<domain::Patch>,
        domain::Patch: From<P>,
        R: From<domain::Readiness>,
        domain::Readiness: From<R>,
        O: From<domain::InstallOutcome>,
        domain::InstallOutcome: From<O>,
        V: From<domain::VerifyReport>,
        domain::VerifyReport: From<V>,
        T: From<domain::RollbackTarget>,
        domain::RollbackTarget: From<T>,
    {
        round_trips::<_, Dev>(domain::Device {
            id: "srv-1".into(),
            hostname: "10.0.0.5".into(),
            tags: vec!["lab".into()],
            facts: vec![("model".into(), "r650".into())],
            components: vec![domain::Component {
                name: "bios".into(),
                version: "2.10.0".into(),
                scheme,
                source: source.map(Into::into),
            }],
        });
        for (kind, severity) in [
            (domain::PatchKind::Security, domain::Severity::Critical),
            (domain::PatchKind::Bugfix, domain::Severity::High),
            (domain::PatchKind::Feature, domain::Severity::Medium),
            (domain::PatchKind::Firmware, domain::Severity::Low),
            (domain::PatchKind::Firmware, domain::Severity::Unknown),
        ] {
            round_trips::<_, P>(domain::Patch {
                id: "dell-bios-2.19.1".into(),
                vendor: "dell".into(),
                title: "BIOS 2.19.1".into(),
                component: "bios".into(),
                fixed_version: "2.19.1".into(),
                applies_to: ">=2.0.0, <2.19.1".into(),
                scheme,
                kind,
                severity,
                cves: vec!["CVE-2021-44228".into()],
                prerequisites: vec!["dell-bmc-7".into()],
                supersedes: vec!["dell-bios-2.18.0".into()],
                reboot_required: true,
                artifact: artifact(),
                released: 1_700_000_000,
            });
        }
        for readiness in [
            domain::Readiness::Ready,
            domain::Readiness::AlreadyInstalled("2.19.1".into()),
            domain::Readiness::Blocked("on battery".into()),
        ] {
            round_trips::<_, R>(readiness);
        }
        round_trips::<_, O>(domain::InstallOutcome {
            installed_version: "2.19.1".into(),
            reboot_pending: true,
            detail: "JID_1".into(),
        });
        round_trips::<_, V>(domain::VerifyReport {
            installed_version: Some("2.19.1".into()),
            health: domain::HealthReport {
                healthy: false,
                checks: vec![domain::HealthCheck {
                    name: "bmc:health".into(),
                    ok: false,
                    detail: "fan 2".into(),
                }],
            },
        });
        for artifact in [None, Some(artifact())] {
            round_trips::<_, T>(domain::RollbackTarget {
                version: "2.10.0".into(),
                artifact,
            });
        }
    }
}
