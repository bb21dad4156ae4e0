use super::*;
use crate::inventory::Inventory;
use ringleader_types::{Artifact, Patch, PatchKind};
use std::path::Path;

const DAY: i64 = 86_400;
/// 2026-11-30T00:00:00Z.
const AT: Timestamp = 1_764_460_800;

fn patch(id: &str, component: &str, fixed: &str, severity: Severity, days_old: i64) -> Patch {
    Patch {
        id: id.into(),
        vendor: "v".into(),
        title: String::new(),
        component: component.into(),
        fixed_version: fixed.into(),
        applies_to: String::new(),
        scheme: None,
        kind: PatchKind::Security,
        severity,
        cves: vec![],
        prerequisites: vec![],
        supersedes: vec![],
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: AT - days_old * DAY,
    }
}

fn catalog(patches: Vec<Patch>) -> Catalog {
    Catalog::build(patches.into_iter().map(|p| (p, "test".into())).collect()).unwrap()
}

fn inventory(text: &str) -> Inventory {
    Inventory::parse(Path::new("i.toml"), text).unwrap()
}

fn compute(inventory: &Inventory, catalog: &Catalog, filter: &Filter) -> Compliance {
    Fleet {
        devices: &inventory.devices,
        catalog,
        at: AT,
        filter,
    }
    .compute()
}

fn missing_ids(c: &Compliance, catalog: &Catalog, device: usize) -> Vec<String> {
    c.devices[device]
        .missing
        .iter()
        .map(|m| catalog.get(m.patch).patch.id.clone())
        .collect()
}

const FLEET: &str = r#"
[[devices]]
id = "old"
tags = ["lab"]
components = { openssl = "3.0.1", bios = "2.10.0" }

[[devices]]
id = "fixed"
components = { openssl = "3.0.13", bios = "2.19.1" }

[[devices]]
id = "between"
components = { openssl = "3.0.12" }
"#;

fn world() -> Catalog {
    let ssl_11 = patch("ssl-11", "openssl", "3.0.11", Severity::Critical, 90);
    let mut ssl_13 = patch("ssl-13", "openssl", "3.0.13", Severity::Medium, 10);
    ssl_13.supersedes = vec!["ssl-11".into()];
    ssl_13.cves = vec!["CVE-2024-0727".into()];
    let mut ssl_11 = ssl_11;
    ssl_11.cves = vec!["CVE-2023-5678".into()];
    let bios = patch("bios-2", "bios", "2.19.1", Severity::High, 30);
    catalog(vec![ssl_11, ssl_13, bios])
}

#[test]
fn a_superseded_patch_is_not_counted_twice_and_its_successor_carries_it() {
    let catalog = world();
    let c = compute(&inventory(FLEET), &catalog, &Filter::default());
    // `old` lacks ssl-11 and ssl-13: only ssl-13 is missing, with ssl-11's severity.
    assert_eq!(missing_ids(&c, &catalog, 0), ["ssl-13", "bios-2"]);
    let ssl = &c.devices[0].missing[0];
    let covers: Vec<PatchIndex> = c.devices[0].covers(ssl).collect();
    assert_eq!(covers, [catalog.by_id["ssl-11"]]);
    assert_eq!(ssl.severity, Severity::Critical);
    assert_eq!(c.devices[0].by_severity, [0, 0, 0, 1, 1]);
    // Per patch, ssl-11 still counts `old` as affected (it lacks that fix too).
    let per_patch: Vec<(String, u32, u32)> = c
        .patches
        .iter()
        .map(|p| (catalog.get(p.patch).patch.id.clone(), p.affected, p.patched))
        .collect();
    assert_eq!(
        per_patch,
        [
            ("ssl-11".to_string(), 1, 2),
            ("ssl-13".to_string(), 2, 1),
            ("bios-2".to_string(), 1, 1),
        ]
    );
}

#[test]
fn a_device_at_the_fixed_version_is_patched() {
    let catalog = world();
    let c = compute(&inventory(FLEET), &catalog, &Filter::default());
    assert!(c.devices[1].fully_patched());
    assert_eq!(c.devices[1].oldest_missing, None);
    // 3.0.12 has ssl-11's fix, not ssl-13's: ssl-13 alone, at its own severity.
    assert_eq!(missing_ids(&c, &catalog, 2), ["ssl-13"]);
    assert_eq!(c.devices[2].missing[0].severity, Severity::Medium);
    assert_eq!(c.summary.devices, 3);
    assert_eq!(c.summary.fully_patched, 1);
    assert_eq!(c.summary.missing_by_severity, [0, 0, 1, 1, 1]);
    assert!((c.summary.share_patched(Severity::Critical) - 2.0 / 3.0).abs() < 1e-9);
    assert!((c.summary.share_patched(Severity::Low) - 1.0).abs() < 1e-9);
}

#[test]
fn the_age_of_the_oldest_missing_fix_counts_from_the_oldest_patch_it_stands_for() {
    let catalog = world();
    let c = compute(&inventory(FLEET), &catalog, &Filter::default());
    // ssl-13 (10 days) covers ssl-11 (90 days) on `old`: the fix is 90 days old.
    let oldest = c.devices[0].oldest_missing.unwrap();
    assert_eq!(age_days(oldest, AT), 90);
    assert_eq!(age_days(c.devices[2].oldest_missing.unwrap(), AT), 10);
    assert_eq!(
        c.summary.oldest_by_severity[rank(Severity::Critical)],
        Some(AT - 90 * DAY)
    );
    assert_eq!(age_days(AT + DAY, AT), 0);
}

#[test]
fn filters_select_by_severity_cve_and_tag() {
    let catalog = world();
    let inventory = inventory(FLEET);
    let high = Filter {
        severity: Some(Severity::High),
        ..Filter::default()
    };
    let c = compute(&inventory, &catalog, &high);
    assert_eq!(missing_ids(&c, &catalog, 0), ["ssl-13", "bios-2"]);
    assert!(c.devices[2].fully_patched());
    // The older CVE is fixed by the patch that supersedes its own.
    let cve = Filter {
        cve: Some("cve-2023-5678".into()),
        ..Filter::default()
    };
    let c = compute(&inventory, &catalog, &cve);
    assert_eq!(missing_ids(&c, &catalog, 0), ["ssl-13"]);
    assert!(c.devices[2].fully_patched());
    let ids: Vec<&str> = c
        .patches
        .iter()
        .map(|p| catalog.get(p.patch).patch.id.as_str())
        .collect();
    assert_eq!(ids, ["ssl-11"]);
    let lab = Filter {
        tag: Some("lab".into()),
        ..Filter::default()
    };
    let c = compute(&inventory, &catalog, &lab);
    assert_eq!(c.summary.devices, 1);
    assert_eq!(c.devices[0].device, 0);
}

#[test]
fn versions_are_compared_in_the_pair_s_scheme() {
    // 2.36-9+deb12u10 > 2.36-9+deb12u7 as dpkg orders it (not as text).
    let mut libc = patch("libc-7", "libc6", "2.36-9+deb12u7", Severity::High, 5);
    libc.scheme = Some(crate::version::Scheme::Deb);
    let catalog = catalog(vec![libc]);
    let inventory = inventory(
        "[[devices]]\nid = \"a\"\ncomponents = { libc6 = { version = \"2.36-9+deb12u10\", scheme = \"deb\" } }\n[[devices]]\nid = \"b\"\ncomponents = { libc6 = { version = \"2.36-9+deb12u4\", scheme = \"deb\" } }\n",
    );
    let c = compute(&inventory, &catalog, &Filter::default());
    assert!(c.devices[0].fully_patched());
    assert_eq!(missing_ids(&c, &catalog, 1), ["libc-7"]);
}

/// [`Fleet::part`] the slow way: every pair through [`plan::need`], the plan's rule.
fn part_by_need(fleet: &Fleet<'_>, devices: &[u32]) -> Part {
    use crate::plan::{Need, need};
    let mut counts = vec![(0u32, 0u32); fleet.catalog.patches.len()];
    let mut out = Vec::new();
    for &i in devices {
        let mut applicable = Vec::new();
        for (component, installed) in &fleet.devices[i as usize].components {
            for &p in fleet
                .catalog
                .by_component
                .get(component)
                .into_iter()
                .flatten()
            {
                match need(installed, fleet.catalog.get(p)) {
                    Ok((Need::Applies, _)) => {
                        counts[p as usize].0 += 1;
                        applicable.push(p);
                    }
                    Ok((Need::AtOrAbove, _)) => counts[p as usize].1 += 1,
                    Ok((Need::OutOfRange, _)) | Err(_) => {}
                }
            }
        }
        applicable.sort_unstable();
        out.push(fleet.device(i, &applicable));
    }
    (out, counts)
}

#[test]
fn the_ladders_agree_with_the_plan_s_rule_for_every_pair_of_every_scheme() {
    use crate::version::{AnyVersion, Scheme};
    // Versions that some schemes read and others refuse, or order differently.
    const VERSIONS: [&str; 12] = [
        "1.2.3",
        "1.10.0",
        "1.9",
        "2.0-1",
        "1:1.0-1",
        "2.36-9+deb12u7",
        "2.36-9+deb12u10",
        "1.2.3-rc.1",
        "3.0.0+build.5",
        "0.9~beta",
        "10",
        "2.0.0",
    ];
    const RANGES: [&str; 6] = ["", ">=1.2.3", "<2.0", ">=1.0, <3", "*", ">=2.36-9"];
    const SCHEMES: [Option<Scheme>; 6] = [
        None,
        Some(Scheme::Deb),
        Some(Scheme::Rpm),
        Some(Scheme::Apk),
        Some(Scheme::Semver),
        Some(Scheme::Vendor),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut patches = Vec::new();
    for i in 0..240 {
        let mut p = patch(
            &format!("p{i}"),
            &format!("c{}", i % 3),
            VERSIONS[next(VERSIONS.len())],
            Severity::Medium,
            1,
        );
        p.scheme = SCHEMES[next(SCHEMES.len())];
        p.applies_to = RANGES[next(RANGES.len())].into();
        if i >= 3 && next(3) == 0 {
            p.supersedes = vec![format!("p{}", i - 3)];
        }
        patches.push((p, "test".to_string()));
    }
    let catalog = Catalog::build(patches).unwrap();
    assert!(catalog.patches.len() > 100, "{:?}", catalog.refused);
    let mut text = String::new();
    for d in 0..300 {
        text += &format!("[[devices]]\nid = \"d{d}\"\n[devices.components]\n");
        for c in 0..3 {
            let version = VERSIONS[next(VERSIONS.len())];
            match SCHEMES[next(SCHEMES.len())] {
                Some(s) if AnyVersion::parse(s, version).is_ok() => {
                    text += &format!("c{c} = {{ version = \"{version}\", scheme = \"{s}\" }}\n");
                }
                _ if AnyVersion::parse(Scheme::Vendor, version).is_ok() => {
                    text += &format!("c{c} = \"{version}\"\n");
                }
                _ => {}
            }
        }
    }
    let inventory = inventory(&text);
    let filter = Filter::default();
    let fleet = Fleet {
        devices: &inventory.devices,
        catalog: &catalog,
        at: AT,
        filter: &filter,
    };
    let all: Vec<u32> = (0..inventory.devices.len() as u32).collect();
    let (devices, counts) = fleet.part(&Ladders::of(&catalog), &all);
    let (expected_devices, expected_counts) = part_by_need(&fleet, &all);
    for (d, e) in devices.iter().zip(&expected_devices) {
        assert_eq!(d, e, "device {}", inventory.devices[d.device as usize].id);
    }
    assert_eq!(counts, expected_counts);
    // The fleet is a real mix: pairs of each kind, and pairs that cannot be compared.
    let (affected, patched): (u32, u32) =
        counts.iter().fold((0, 0), |(a, p), c| (a + c.0, p + c.1));
    assert!(affected > 300 && patched > 300, "{affected} {patched}");
}
