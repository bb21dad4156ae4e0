//! From the tracker's entries to patches, for the devices given: pure, no host calls,
//! so that it is tested natively (`cargo test --manifest-path plugins/Cargo.toml -p
//! debian-security-source`). The rules are in the crate's documentation (`lib.rs`).

use crate::feed::{Feed, Wanted};
use ringleader_version::deb;
use std::collections::{BTreeMap, BTreeSet};

/// A device as this plugin reads it.
#[derive(Debug, Clone)]
pub struct Host {
    pub id: String,
    pub facts: Vec<(String, String)>,
    pub packages: Vec<Package>,
}

/// A component of a device that may be a Debian package.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    /// The source package, when the device (or the inventory) says.
    pub source: Option<String>,
    /// Whether its versions are Debian's (`scheme` deb, or no scheme given).
    pub deb: bool,
}

/// Severity of a patch, as the WIT's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
}

/// The tracker's urgency as a severity (docs/bundled-plugins.md): `**` (urgency taken
/// over from NVD's severity by the tracker) reads as the urgency itself.
pub fn severity(urgency: Option<&str>) -> Severity {
    match urgency.map(|u| u.trim().trim_end_matches('*')) {
        Some("unimportant" | "low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        // "not yet assigned", "end-of-life", none, or anything new.
        _ => Severity::Unknown,
    }
}

/// One patch: a binary package of a source brought to a fixed version in a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub id: String,
    pub release: String,
    pub source: String,
    pub binary: String,
    pub fixed_version: String,
    pub title: String,
    pub severity: Severity,
    /// CVE ids fixed at this version or below (`TEMP-` ids are not CVEs: left out).
    pub cves: Vec<String>,
    /// Ids of the same binary's patches at lower fixed versions of the same release.
    pub supersedes: Vec<String>,
}

/// What came out for the devices.
#[derive(Debug, Default)]
pub struct Report {
    pub fixes: Vec<Fix>,
    /// For the operator, at info: devices skipped, issues with no fix yet.
    pub info: Vec<String>,
    /// Entries that could not be used.
    pub warnings: Vec<String>,
    /// Devices with a release and Debian packages.
    pub devices: usize,
    /// Issues reported as open or undetermined (no fix yet).
    pub unfixed: usize,
}

/// The id of the patch of `binary` (of `source`) at `fixed` in `release`.
pub fn patch_id(release: &str, source: &str, fixed: &str, binary: &str) -> String {
    format!("debian:{release}:{source}:{fixed}:{binary}")
}

/// The device's release codename: the fact `os-codename` (the host's, from a scan,
/// WIT 0.3.0, or the inventory's), else `codename`.
fn codename(host: &Host) -> Option<String> {
    ["os-codename", "codename"].iter().find_map(|key| {
        host.facts
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    })
}

/// A source package name as dpkg-query may print it (`glibc (2.36-9)` for a binNMU):
/// the name alone.
fn source_name(package: &Package) -> String {
    let source = package
        .source
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&package.name);
    source
        .split([' ', '('])
        .next()
        .unwrap_or(source)
        .to_string()
}

/// Release -> source -> binary -> device ids, for the devices that name a release.
type Fleet = BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeSet<String>>>>;

/// What the devices need from the feed, and the info lines about devices skipped.
pub fn wanted(hosts: &[Host]) -> (Wanted, Fleet, Vec<String>) {
    let mut fleet = Fleet::new();
    let mut info = Vec::new();
    for host in hosts {
        if let Some((_, os)) = host.facts.iter().find(|(k, _)| k == "os-id")
            && !os.trim().eq_ignore_ascii_case("debian")
        {
            info.push(format!(
                "device {} runs `{}` (fact `os-id`), not Debian: skipped",
                host.id,
                os.trim()
            ));
            continue;
        }
        let Some(release) = codename(host) else {
            info.push(format!(
                "device {} names no Debian release: skipped; set the fact `os-codename` (e.g. `os-codename = \"bookworm\"` in its `facts` in the inventory), or let an installer that scans devices (WIT 0.3.0) read it from /etc/os-release",
                host.id
            ));
            continue;
        };
        let by_source = fleet.entry(release).or_default();
        for package in host.packages.iter().filter(|p| p.deb) {
            by_source
                .entry(source_name(package))
                .or_default()
                .entry(package.name.clone())
                .or_default()
                .insert(host.id.clone());
        }
    }
    let wanted = Wanted {
        releases: fleet.keys().cloned().collect(),
        sources: fleet.values().flat_map(|s| s.keys().cloned()).collect(),
    };
    (wanted, fleet, info)
}

/// Names, at most `n` of them, then how many more.
fn some(names: &BTreeSet<String>, n: usize) -> String {
    let mut out: Vec<&str> = names.iter().take(n).map(String::as_str).collect();
    let more = names.len().saturating_sub(n);
    let more = format!("{more} more");
    if names.len() > n {
        out.push(&more);
    }
    out.join(", ")
}

/// The patches for `fleet` (from [`wanted`]) in `feed`.
pub fn map(fleet: &Fleet, feed: &Feed) -> Report {
    let mut report = Report::default();
    let mut devices = BTreeSet::new();
    for (release, sources) in fleet {
        for (source, binaries) in sources {
            devices.extend(binaries.values().flatten());
            let Some(issues) = feed.sources.get(source) else {
                continue;
            };
            // Fixed version -> (its text, the issues fixed there, the highest severity).
            let mut fixed: BTreeMap<deb::Version, (BTreeSet<String>, Severity)> = BTreeMap::new();
            for (issue, releases) in issues {
                let Some(entry) = releases.get(release) else {
                    continue;
                };
                match entry.status.as_str() {
                    "resolved" => {
                        let Some(version) = entry.fixed_version.as_deref() else {
                            report.warnings.push(format!(
                                "{issue} is resolved in {release} for {source} without a `fixed_version`: skipped"
                            ));
                            continue;
                        };
                        // Never affected.
                        if version.trim() == "0" {
                            continue;
                        }
                        match deb::Version::parse(version) {
                            Ok(v) => {
                                let at = fixed.entry(v).or_insert((BTreeSet::new(), Severity::Unknown));
                                at.0.insert(issue.clone());
                                at.1 = at.1.max(severity(entry.urgency.as_deref()));
                            }
                            Err(e) => report.warnings.push(format!(
                                "{issue} in {release} for {source}: `fixed_version` is not a Debian version ({e}): skipped"
                            )),
                        }
                    }
                    status @ ("open" | "undetermined") => {
                        report.unfixed += 1;
                        let on: BTreeSet<String> =
                            binaries.values().flatten().cloned().collect();
                        let names: BTreeSet<String> = binaries.keys().cloned().collect();
                        let urgency = entry
                            .urgency
                            .as_deref()
                            .map(|u| format!(", urgency {u}"))
                            .unwrap_or_default();
                        report.info.push(format!(
                            "{issue} {status} in {release} for {source} (no fix yet{urgency}): {} on {}",
                            some(&names, 5),
                            some(&on, 5)
                        ));
                    }
                    other => report.warnings.push(format!(
                        "{issue} in {release} for {source} has the status `{other}` (expected resolved, open or undetermined): skipped"
                    )),
                }
            }
            // Each fixed version fixes every issue fixed at it or below.
            let mut so_far: BTreeSet<String> = BTreeSet::new();
            let mut worst = Severity::Unknown;
            let mut older: Vec<String> = Vec::new();
            for (version, (issues, severity)) in &fixed {
                so_far.extend(issues.iter().cloned());
                worst = worst.max(*severity);
                let version = version.as_str().trim();
                let cves: Vec<String> = so_far
                    .iter()
                    .filter(|i| i.starts_with("CVE-"))
                    .cloned()
                    .collect();
                for binary in binaries.keys() {
                    let id = patch_id(release, source, version, binary);
                    let supersedes = older
                        .iter()
                        .map(|v| patch_id(release, source, v, binary))
                        .collect();
                    report.fixes.push(Fix {
                        title: format!(
                            "Debian {release}: {source} {version} ({binary}), fixes {} issue{}",
                            so_far.len(),
                            if so_far.len() == 1 { "" } else { "s" }
                        ),
                        id,
                        release: release.clone(),
                        source: source.clone(),
                        binary: binary.clone(),
                        fixed_version: version.to_string(),
                        severity: worst,
                        cves: cves.clone(),
                        supersedes,
                    });
                }
                older.push(version.to_string());
            }
        }
    }
    report.devices = devices.len();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, facts: &[(&str, &str)], packages: &[(&str, Option<&str>)]) -> Host {
        Host {
            id: id.into(),
            facts: facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            packages: packages
                .iter()
                .map(|(name, source)| Package {
                    name: name.to_string(),
                    source: source.map(str::to_string),
                    deb: true,
                })
                .collect(),
        }
    }

    const FEED: &str = r#"{
      "glibc": {
        "CVE-2024-2961": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "2.36-9+deb12u7", "urgency": "high"}}},
        "CVE-2023-4911": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "2.36-9+deb12u3", "urgency": "medium**"}}},
        "CVE-2023-0001": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "0", "urgency": "high"}}},
        "TEMP-0000000-1": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "2.36-9+deb12u3", "urgency": "low"}}},
        "CVE-2025-0002": {"releases": {"bookworm": {"status": "open", "urgency": "not yet assigned"}}},
        "CVE-2025-0003": {"releases": {"bookworm": {"status": "undetermined"}}},
        "CVE-2025-0004": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "not a version!"}}}
      },
      "bash": {"CVE-2022-3715": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "5.2.15-2+b1", "urgency": "unimportant"}}}}
    }"#;

    fn run(hosts: &[Host]) -> Report {
        let (wanted, fleet, info) = wanted(hosts);
        let feed = crate::feed::read(FEED.as_bytes(), "u", &wanted).unwrap();
        let mut report = map(&fleet, &feed);
        report.info.splice(0..0, info);
        report
    }

    #[test]
    fn a_source_fixed_twice_gives_a_patch_per_binary_and_version_the_newer_superseding() {
        let hosts = [
            host(
                "db1",
                &[("os-codename", "bookworm")],
                &[
                    ("libc6", Some("glibc")),
                    ("libc-bin", Some("glibc")),
                    ("bash", None),
                ],
            ),
            host(
                "db2",
                &[("codename", "Bookworm")],
                &[("libc6", Some("glibc"))],
            ),
        ];
        let report = run(&hosts);
        let ids: Vec<&str> = report.fixes.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "debian:bookworm:bash:5.2.15-2+b1:bash",
                "debian:bookworm:glibc:2.36-9+deb12u3:libc-bin",
                "debian:bookworm:glibc:2.36-9+deb12u3:libc6",
                "debian:bookworm:glibc:2.36-9+deb12u7:libc-bin",
                "debian:bookworm:glibc:2.36-9+deb12u7:libc6",
            ]
        );
        let u7 = &report.fixes[4];
        assert_eq!(u7.cves, ["CVE-2023-4911", "CVE-2024-2961"]);
        assert_eq!(u7.severity, Severity::High);
        assert_eq!(
            u7.supersedes,
            ["debian:bookworm:glibc:2.36-9+deb12u3:libc6"]
        );
        assert_eq!(
            u7.title,
            "Debian bookworm: glibc 2.36-9+deb12u7 (libc6), fixes 3 issues"
        );
        let u3 = &report.fixes[2];
        assert_eq!(u3.cves, ["CVE-2023-4911"]);
        assert_eq!(u3.severity, Severity::Medium);
        assert!(u3.supersedes.is_empty());
        assert_eq!(report.fixes[0].severity, Severity::Low);
        assert_eq!(report.devices, 2);
        assert_eq!(report.unfixed, 2);
        assert_eq!(
            report.info,
            [
                "CVE-2025-0002 open in bookworm for glibc (no fix yet, urgency not yet assigned): libc-bin, libc6 on db1, db2",
                "CVE-2025-0003 undetermined in bookworm for glibc (no fix yet): libc-bin, libc6 on db1, db2",
            ]
        );
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].starts_with(
                "CVE-2025-0004 in bookworm for glibc: `fixed_version` is not a Debian version"
            ),
            "{:?}",
            report.warnings
        );
    }

    #[test]
    fn devices_without_a_release_or_not_debian_are_skipped_saying_why() {
        let report = run(&[
            host("bare", &[], &[("libc6", Some("glibc"))]),
            host("ubu", &[("os-id", "ubuntu"), ("os-codename", "noble")], &[]),
            host(
                "other",
                &[("os-codename", "trixie")],
                &[("libc6", Some("glibc"))],
            ),
        ]);
        assert!(report.fixes.is_empty());
        assert!(report.info[0].starts_with(
            "device bare names no Debian release: skipped; set the fact `os-codename`"
        ));
        assert_eq!(
            report.info[1],
            "device ubu runs `ubuntu` (fact `os-id`), not Debian: skipped"
        );
        assert_eq!(report.info.len(), 2);
    }

    #[test]
    fn urgencies_map_to_severities() {
        for (urgency, severity_) in [
            (Some("unimportant"), Severity::Low),
            (Some("low"), Severity::Low),
            (Some("low**"), Severity::Low),
            (Some("medium"), Severity::Medium),
            (Some("medium**"), Severity::Medium),
            (Some("high"), Severity::High),
            (Some("high**"), Severity::High),
            (Some("not yet assigned"), Severity::Unknown),
            (Some("end-of-life"), Severity::Unknown),
            (Some("something new"), Severity::Unknown),
            (None, Severity::Unknown),
        ] {
            assert_eq!(severity(urgency), severity_, "{urgency:?}");
        }
    }

    #[test]
    fn a_source_name_with_a_version_reads_as_the_name() {
        let p = Package {
            name: "libc6".into(),
            source: Some("glibc (2.36-9)".into()),
            deb: true,
        };
        assert_eq!(source_name(&p), "glibc");
    }
}
