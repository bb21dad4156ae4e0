use super::*;
use crate::catalog::Catalog;
use crate::inventory::Inventory;
use crate::policy::Policy;
use crate::version::Scheme;
use proptest::prelude::*;
use ringleader_types::{Artifact, Patch, PatchKind, Severity};
use std::path::Path;

fn patch(id: &str, component: &str, fixed: &str, range: &str) -> Patch {
    Patch {
        id: id.into(),
        vendor: "v".into(),
        title: String::new(),
        component: component.into(),
        fixed_version: fixed.into(),
        applies_to: range.into(),
        scheme: None,
        kind: PatchKind::Bugfix,
        severity: Severity::Medium,
        cves: vec![],
        prerequisites: vec![],
        supersedes: vec![],
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: 0,
    }
}

fn catalog(patches: Vec<Patch>) -> Catalog {
    Catalog::build(
        patches
            .into_iter()
            .map(|p| (p, "test-source".into()))
            .collect(),
    )
    .unwrap()
}

fn policy(text: &str) -> Policy {
    let (p, d) = Policy::parse(Path::new("p.toml"), text);
    p.unwrap_or_else(|| panic!("{d}"))
}

fn inventory(text: &str) -> Inventory {
    Inventory::parse(Path::new("i.toml"), text).unwrap()
}

const ONE_RING: &str = "name = \"p\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\n";

fn at() -> Timestamp {
    "2026-11-30T00:00:00Z".parse().unwrap()
}

fn ids(plan: &Plan, catalog: &Catalog) -> Vec<String> {
    plan.rings[0].devices[0]
        .steps
        .iter()
        .map(|s| catalog.get(s.patch).patch.id.clone())
        .collect()
}

/// The skipped patches with their reasons' codes, in plan order.
fn skipped<'a>(plan: &'a Plan, catalog: &Catalog) -> Vec<(String, &'a str)> {
    plan.skipped
        .iter()
        .map(|s| (catalog.get(s.patch).patch.id.clone(), s.reason.code()))
        .collect()
}

#[test]
fn applicability_supersedence_and_prerequisites() {
    let mut bios = patch("bios-2", "bios", "2.19.1", ">=2.0.0, <2.19.1");
    bios.prerequisites = vec!["bmc-7".into()];
    bios.reboot_required = true;
    let bmc = patch("bmc-7", "bmc", "7.10.30", "");
    let old_ssl = patch("ssl-14", "openssl", "3.0.14", ">=3.0.0");
    let mut new_ssl = patch("ssl-15", "openssl", "3.0.15", ">=3.0.0");
    new_ssl.supersedes = vec!["ssl-14".into()];
    let mut orphan = patch("nic-22", "nic", "22.31.6", "");
    orphan.prerequisites = vec!["nowhere-1".into()];
    let future = patch("bios-1x", "bios", "1.9", "<1.5");
    let cat = catalog(vec![bios, bmc, old_ssl, new_ssl, orphan, future]);
    let inv = inventory(
        r#"[[devices]]
id = "d1"
components = { bios = "2.10.0", bmc = "7.0.0", openssl = "3.0.11", nic = "22.0.0" }
"#,
    );
    let pol = policy(ONE_RING);
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let plan = planner.plan();
    assert_eq!(
        ids(&plan, &cat),
        ["bmc-7", "ssl-15", "bios-2"],
        "prerequisite first, reboot last"
    );
    let steps = &plan.rings[0].devices[0].steps;
    assert!(steps[2].reboot_after && !steps[0].reboot_after);
    let reasons = skipped(&plan, &cat);
    assert_eq!(
        reasons,
        [
            ("ssl-14".to_string(), "superseded"),
            ("nic-22".to_string(), "missing-prerequisite"),
        ]
    );
    // Older patches are not listed in the plan, but the explanation says why.
    let explained = planner.explain("d1").unwrap();
    let bios_1x = explained
        .decisions
        .iter()
        .find(|(id, _)| id == "bios-1x")
        .unwrap();
    assert!(matches!(
        bios_1x.1,
        Decision::Skipped {
            reason: SkipReason::AlreadyAtOrAbove,
            ..
        }
    ));
}

#[test]
fn the_operator_s_approved_versions_win_over_the_vendor_s_newest() {
    let old = patch("bios-19", "bios", "2.19.1", "");
    let mut approved = patch("bios-21", "bios", "2.21.0", "");
    approved.supersedes = vec!["bios-19".into()];
    let mut newest = patch("bios-22", "bios", "2.22.0", "");
    newest.supersedes = vec!["bios-19".into(), "bios-21".into()];
    let ssl = patch("ssl-15", "openssl", "3.0.15", "");
    let cat = catalog(vec![old, approved, newest, ssl]);
    let inv = inventory(
        "[[devices]]\nid = \"d\"\ncomponents = { bios = \"2.10\", openssl = \"3.0.1\" }\n",
    );
    let pol = policy(&format!(
        "{ONE_RING}[[approved]]\ncomponent = \"bios\"\nversions = [\"2.21\"]\nreason = \"lab-tested\"\n"
    ));
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let plan = planner.plan();
    // 2.22.0 is not approved and so replaces nothing; 2.21.0 (written 2.21 in the
    // policy) is planned; openssl, not listed, goes as the vendor says.
    assert_eq!(ids(&plan, &cat), ["bios-21", "ssl-15"]);
    let reasons = skipped(&plan, &cat);
    assert_eq!(
        reasons,
        [
            ("bios-19".to_string(), "not-approved"),
            ("bios-22".to_string(), "not-approved")
        ]
    );
    let skipped = plan
        .skipped
        .iter()
        .rfind(|s| s.reason.code() == "not-approved");
    let detail =
        skipped
            .unwrap()
            .reason
            .describe(&pol, &cat, &inv.devices[0], skipped.unwrap().patch);
    assert_eq!(
        detail,
        "version 2.22.0 is not approved for bios by the policy (only 2.21: lab-tested)"
    );
}

#[test]
fn a_blocked_prerequisite_blocks_its_dependents() {
    let mut b = patch("b", "x", "3.0", "");
    b.prerequisites = vec!["a".into()];
    let a = patch("a", "y", "2.0", ">=1.5"); // the device's y 1.0 is out of range
    let cat = catalog(vec![a, b]);
    let inv = inventory("[[devices]]\nid = \"d\"\ncomponents = { x = \"1.0\", y = \"1.0\" }\n");
    let pol = policy(ONE_RING);
    let plan = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    }
    .plan();
    assert!(plan.rings[0].devices[0].steps.is_empty());
    let codes: Vec<_> = plan.skipped.iter().map(|s| s.reason.code()).collect();
    assert_eq!(codes, ["not-applicable", "prerequisite-not-planned"]);
}

#[test]
fn cycles_name_every_patch_in_them() {
    let mut a = patch("a", "x", "2", "");
    a.prerequisites = vec!["c".into()];
    let mut b = patch("b", "x", "3", "");
    b.prerequisites = vec!["a".into()];
    let mut c = patch("c", "x", "4", "");
    c.prerequisites = vec!["b".into()];
    let err = Catalog::build(vec![(a, "s".into()), (b, "s".into()), (c, "s".into())]).unwrap_err();
    assert_eq!(err.cycles, [vec!["a", "b", "c"]]);
    assert!(
        err.to_string().contains("cycle between patches a, b, c"),
        "{err}"
    );
}

#[test]
fn unreadable_versions_are_refused_naming_patch_and_source() {
    let cat = catalog(vec![
        patch("bad", "x", "latest", ""),
        patch("ok", "x", "2", ""),
    ]);
    assert_eq!(cat.patches.len(), 1);
    assert_eq!(cat.refused[0].patch_id, "bad");
    assert_eq!(cat.refused[0].source, "test-source");
    assert!(cat.refused[0].reason.contains("`latest` is not a version"));
}

#[test]
fn percent_rings_are_stable_and_spread_over_sites() {
    let mut text = String::new();
    for site in ["ams", "nyc", "sgp"] {
        for i in 0..100 {
            text.push_str(&format!(
                "[[devices]]\nid = \"{site}-{i}\"\nsite = \"{site}\"\n"
            ));
        }
    }
    let inv = inventory(&text);
    let pol = policy(
        "name = \"p\"\n[[rings]]\nname = \"canary\"\nselect = { percent = 5 }\n[[rings]]\nname = \"rest\"\nselect = \"rest\"\n",
    );
    let cat = catalog(vec![]);
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let first = planner.assign();
    assert_eq!(first, planner.assign(), "the same devices every run");
    let canary: Vec<&str> = first
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == Some(0))
        .map(|(i, _)| inv.devices[i].site.as_str())
        .collect();
    assert_eq!(canary.len(), 15);
    for site in ["ams", "nyc", "sgp"] {
        assert_eq!(canary.iter().filter(|s| **s == site).count(), 5, "{site}");
    }
}

#[test]
fn batches_split_a_ring_cumulatively() {
    assert_eq!(
        batch_bounds(
            &[
                Amount::Percent(10.0),
                Amount::Percent(50.0),
                Amount::Percent(100.0)
            ],
            20
        ),
        [2, 10, 20]
    );
    assert_eq!(
        batch_bounds(&[Amount::Count(5), Amount::Percent(50.0)], 20),
        [5, 10, 20]
    );
    assert_eq!(batch_bounds(&[], 7), [7]);
    assert_eq!(batch_bounds(&[Amount::Count(50)], 7), [7]);
}

#[test]
fn soaks_windows_deferral_and_expedite_set_the_earliest_start() {
    let pol = policy(
        r#"name = "p"
[windows.nights]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "22:00"
end = "04:00"
[[defer]]
kind = "feature"
days = 30
[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "48h"
[[rings]]
name = "broad"
select = "rest"
window = "nights"
[expedite]
severity = ["critical"]
soak_factor = 0.25
skip_window = true
"#,
    );
    let mut critical = patch("crit", "a", "2", "");
    critical.severity = Severity::Critical;
    let normal = patch("norm", "b", "2", "");
    let mut feature = patch("feat", "c", "2", "");
    feature.kind = PatchKind::Feature;
    feature.released = at().as_second();
    let cat = catalog(vec![critical, normal, feature]);
    let inv = inventory(
        "[[devices]]\nid = \"d\"\ntimezone = \"Asia/Singapore\"\ncomponents = { a = \"1\", b = \"1\", c = \"1\" }\n",
    );
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let decisions = planner.explain("d").unwrap().decisions;
    let start = |id: &str| {
        decisions
            .iter()
            .find_map(|(pid, d)| match d {
                Decision::Planned { step, .. } if pid == id => Some(*step),
                _ => None,
            })
            .unwrap()
    };
    // Critical: 48h soak x 0.25 = 12h, window skipped.
    let crit = start("crit");
    assert_eq!(
        crit.earliest_start(),
        "2026-11-30T12:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert!(crit.expedited && !crit.waited_for_window);
    // Normal: after the 48h soak (2026-12-02T00:00Z = 08:00 in Singapore), then the
    // 22:00 Singapore window = 14:00 UTC.
    let norm = start("norm");
    assert_eq!(
        norm.earliest_start(),
        "2026-12-02T14:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert!(norm.waited_for_window);
    // Feature: deferred 30 days after release, then the window.
    let feat = start("feat");
    assert_eq!(
        feat.deferred_until(),
        Some("2026-12-30T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        feat.earliest_start(),
        "2026-12-30T14:00:00Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn starts_past_the_calendar_are_never_not_the_planning_time() {
    // Built by hand: `policy check` refuses such values (see the case
    // policy-check/beyond-the-calendar), but the planner must not wrap either.
    let mut pol = policy(
        "name = \"p\"\n[[defer]]\nkind = \"feature\"\ndays = 1\n[[rings]]\nname = \"lab\"\nselect = { tags = [\"lab\"] }\n[[rings]]\nname = \"all\"\nselect = \"rest\"\n",
    );
    pol.rings[0].soak = Duration::from_secs(2_920_000 * 86_400);
    pol.deferrals[0].days = u32::MAX;
    pol.freezes.push(crate::policy::Freeze {
        from: jiff::civil::date(1, 1, 1),
        to: jiff::civil::date(9999, 12, 31),
        reason: "forever".into(),
    });
    let mut feature = patch("feat", "c", "2", "");
    feature.kind = PatchKind::Feature;
    feature.released = i64::MAX;
    let cat = catalog(vec![patch("norm", "b", "2", ""), feature]);
    let inv = inventory("[[devices]]\nid = \"d\"\ncomponents = { b = \"1\", c = \"1\" }\n");
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    assert_eq!(planner.ring_start(1, false), schedule::NEVER);
    let plan = planner.plan();
    for step in &plan.rings[1].devices[0].steps {
        assert_eq!(step.earliest_start(), schedule::NEVER);
    }
    assert_eq!(plan.rings[1].devices[0].steps.len(), 2);
}

proptest! {
    /// Every device is in exactly one ring (or unassigned), and each device's steps
    /// come after their planned prerequisites.
    #[test]
    fn every_device_once_and_prerequisites_first(
        tags in proptest::collection::vec(0u8..4, 1..60),
        versions in proptest::collection::vec(0u8..6, 1..60),
        prereq_of in proptest::collection::vec(proptest::option::of(0usize..8), 8),
        percent in 0u8..=100,
    ) {
        // Patches p0..p7 on components c0..c3; p_i may require an earlier patch (a DAG).
        let mut patches = Vec::new();
        for (i, pre) in prereq_of.iter().enumerate() {
            let mut p = patch(&format!("p{i}"), &format!("c{}", i % 4), &format!("{}.0", 3 + i / 4), "");
            if let Some(j) = pre.filter(|j| *j < i) {
                p.prerequisites = vec![format!("p{j}")];
            }
            p.reboot_required = i % 3 == 0;
            patches.push(p);
        }
        let cat = catalog(patches);
        let mut text = String::new();
        for (i, (t, v)) in tags.iter().zip(versions.iter().cycle()).enumerate() {
            text.push_str(&format!(
                "[[devices]]\nid = \"d{i}\"\nsite = \"s{}\"\ntags = [\"t{t}\"]\ncomponents = {{ c0 = \"{v}.0\", c1 = \"{v}.0\", c2 = \"{v}.0\", c3 = \"{v}.0\" }}\n",
                i % 3
            ));
        }
        let inv = inventory(&text);
        let pol = policy(&format!(
            "name = \"p\"\n[[rings]]\nname = \"lab\"\nselect = {{ tags = [\"t0\"] }}\n[[rings]]\nname = \"canary\"\nselect = {{ percent = {percent} }}\n[[rings]]\nname = \"t2\"\nselect = {{ tags = [\"t2\"] }}\n"
        ));
        let plan = Planner { policy: &pol, inventory: &inv, catalog: &cat, at: at() }.plan();
        let mut seen = vec![0u32; inv.devices.len()];
        for ring in &plan.rings {
            prop_assert_eq!(ring.devices.len(), ring.batch_sizes.iter().sum::<usize>());
            for d in &ring.devices {
                seen[d.device as usize] += 1;
                let order: Vec<PatchIndex> = d.steps.iter().map(|s| s.patch).collect();
                for (pos, &p) in order.iter().enumerate() {
                    for pre in &cat.get(p).prerequisites {
                        if let Some(pre_pos) = order.iter().position(|q| q == pre) {
                            prop_assert!(pre_pos < pos, "prerequisite after dependent");
                        }
                    }
                }
                let starts: Vec<_> = d.steps.iter().map(|s| s.earliest_start()).collect();
                prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
            }
        }
        for d in &plan.unassigned {
            seen[*d as usize] += 1;
        }
        prop_assert!(seen.iter().all(|n| *n == 1), "{:?}", seen);
    }
}

fn with_scheme(mut p: Patch, scheme: Scheme) -> Patch {
    p.scheme = Some(scheme);
    p
}

/// What was decided for each patch on `device`: the reason's code and its sentence.
fn decided(planner: &Planner<'_>, device: &str) -> Vec<(String, String, String)> {
    let inv = planner.inventory;
    let d = inv.devices.iter().find(|d| d.id == device).unwrap();
    planner
        .explain(device)
        .unwrap()
        .decisions
        .into_iter()
        .map(|(id, decision)| match decision {
            Decision::Planned { step, .. } => (
                id,
                "planned".to_string(),
                comparison(d, planner.catalog.get(step.patch)).unwrap_or_default(),
            ),
            Decision::Skipped { patch, reason } => (
                id,
                reason.code().to_string(),
                reason.describe(planner.policy, planner.catalog, d, patch),
            ),
            Decision::Refused { reason } => (id, "refused".into(), reason),
        })
        .collect()
}

#[test]
fn the_inventory_s_scheme_orders_the_issue_s_debian_versions() {
    // Patches that name no scheme (a 0.1.x source) are read in the inventory's.
    let cat = catalog(vec![
        patch("libc6-u7", "libc6", "2.36-9+deb12u7", ""),
        patch("bash-b7", "bash", "5.2.15-2+b7", ""),
        patch("openssl-bpo", "openssl", "3.0.15-1~deb12u1", ""),
    ]);
    let inv = inventory(
        r#"version-scheme = "deb"
[[devices]]
id = "deb-1"
components = { libc6 = "2.36-9+deb12u4", bash = "5.2.15-2+b6", openssl = "3.0.15-1" }
[[devices]]
id = "fw-1"
version-scheme = "vendor"
components = { libc6 = "2.36-9+deb12u4" }
"#,
    );
    let pol = policy(ONE_RING);
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let mut got = decided(&planner, "deb-1");
    got.sort();
    assert_eq!(
        got,
        [
            (
                "bash-b7".to_string(),
                "planned".to_string(),
                "installed 5.2.15-2+b6 < fixed 5.2.15-2+b7 (deb order)".to_string()
            ),
            (
                "libc6-u7".into(),
                "planned".into(),
                "installed 2.36-9+deb12u4 < fixed 2.36-9+deb12u7 (deb order)".into()
            ),
            (
                "openssl-bpo".into(),
                "already-at-or-above".into(),
                "version 3.0.15-1 is already at or above the fixed version 3.0.15-1~deb12u1 (deb order)".into()
            ),
        ]
    );
    // The same texts under `vendor`: `+` starts build metadata, so they are equal.
    let fw = decided(&planner, "fw-1");
    assert!(
        fw.contains(&(
            "libc6-u7".into(),
            "already-at-or-above".into(),
            "version 2.36-9+deb12u4 is already at or above the fixed version 2.36-9+deb12u7 (vendor order)".into()
        )),
        "{fw:?}"
    );
}

#[test]
fn a_patch_s_scheme_reads_a_component_the_inventory_leaves_open() {
    // vim's epoch is not a vendor version: the inventory names deb for it alone.
    let cat = catalog(vec![
        with_scheme(
            patch("libc6-u7", "libc6", "2.36-9+deb12u7", ""),
            Scheme::Deb,
        ),
        with_scheme(
            patch(
                "vim-u1",
                "vim",
                "2:9.0.1378-2+deb12u1",
                ">= 2:9.0, < 2:9.0.1378-2+deb12u1",
            ),
            Scheme::Deb,
        ),
    ]);
    let inv = inventory(
        r#"[[devices]]
id = "d"
components = { libc6 = "2.36-9+deb12u4", vim = { version = "2:9.0.1378-2", scheme = "deb" } }
"#,
    );
    assert_eq!(inv.devices[0].to_plugin().components[0].scheme, None);
    assert_eq!(
        inv.devices[0].to_plugin().components[1].scheme,
        Some(Scheme::Deb)
    );
    let pol = policy(ONE_RING);
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let plan = planner.plan();
    assert_eq!(ids(&plan, &cat), ["libc6-u7", "vim-u1"]);
    let d = &inv.devices[0];
    assert_eq!(
        comparison(d, cat.get(1)).unwrap(),
        "installed 2:9.0.1378-2 < fixed 2:9.0.1378-2+deb12u1 (deb order)"
    );
    assert_eq!(scheme_on(d, cat.get(0)), Some(Scheme::Deb));
}

#[test]
fn two_schemes_for_one_pair_are_refused_by_name() {
    let cat = catalog(vec![
        with_scheme(
            patch("ssl-rpm", "openssl", "1:3.0.7-27.el9", ""),
            Scheme::Rpm,
        ),
        with_scheme(
            patch("ssl-bad", "openssl", "3.0.15-1~deb12u1", ""),
            Scheme::Apk,
        ),
        patch("ssl-vendor-text", "openssl", "3.0.15_beta", ""),
    ]);
    let inv = inventory(
        r#"[[devices]]
id = "d"
version-scheme = "deb"
components = { openssl = "3.0.11-1" }
"#,
    );
    // A patch unreadable in the scheme it names is refused by the catalog.
    assert_eq!(cat.refused.len(), 1, "{:?}", cat.refused);
    assert_eq!(cat.refused[0].patch_id, "ssl-bad");
    assert!(
        cat.refused[0]
            .reason
            .starts_with("fixed-version: `3.0.15-1~deb12u1` is not an apk version"),
        "{:?}",
        cat.refused
    );
    let pol = policy(ONE_RING);
    let planner = Planner {
        policy: &pol,
        inventory: &inv,
        catalog: &cat,
        at: at(),
    };
    let plan = planner.plan();
    assert!(plan.rings[0].devices[0].steps.is_empty());
    let reasons = skipped(&plan, &cat);
    assert_eq!(
        reasons,
        [
            ("ssl-rpm".to_string(), "scheme-mismatch"),
            ("ssl-vendor-text".to_string(), "unreadable-version"),
        ]
    );
    let got = decided(&planner, "d");
    let detail = |id: &str| got.iter().find(|g| g.0 == id).unwrap().2.clone();
    assert!(
        detail("ssl-rpm").starts_with(
            "the patch's versions are rpm versions, and the inventory reads openssl on this device as deb"
        ),
        "{got:?}"
    );
    assert!(
        detail("ssl-vendor-text").contains("`3.0.15_beta` is not a deb version"),
        "{got:?}"
    );
}

#[test]
fn approved_versions_are_compared_in_the_pair_s_scheme() {
    let u4 = patch("libc6-u4", "libc6", "2.36-9+deb12u4", "");
    let mut u7 = patch("libc6-u7", "libc6", "2.36-9+deb12u7", "");
    u7.supersedes = vec!["libc6-u4".into()];
    let cat = catalog(vec![u4, u7]);
    let inv = inventory(
        "version-scheme = \"deb\"\n[[devices]]\nid = \"d\"\ncomponents = { libc6 = \"2.36-9+deb12u1\" }\n",
    );
    for (scheme, expected) in [("", "libc6-u4"), ("scheme = \"deb\"\n", "libc6-u4")] {
        let pol = policy(&format!(
            "{ONE_RING}[[approved]]\ncomponent = \"libc6\"\nversions = [\"2.36-9+deb12u4\"]\n{scheme}"
        ));
        let planner = Planner {
            policy: &pol,
            inventory: &inv,
            catalog: &cat,
            at: at(),
        };
        // Under vendor, u4 and u7 would both be "2.36.0" and both approved.
        assert_eq!(ids(&planner.plan(), &cat), [expected], "{scheme}");
    }
}
