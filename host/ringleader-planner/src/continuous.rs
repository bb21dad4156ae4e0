//! What standing schedules do as time passes (issue 16), pure: the patches the sources
//! have published and when each was first seen ([`Publications`]), what a schedule's
//! run at an instant rolls out ([`select`]), and when a newly seen patch the policy
//! expedites gets a run of its own ([`expedite_at`]).
//!
//! Time is an input everywhere: the daemon drives this in real time and keeps the
//! publications durably; `ringleader demo --continuous` drives it in virtual time.
//! Whether a selected patch still has devices to go to is the plan's question, asked
//! by the caller when it prepares the run's rollout.

use crate::policy::Expedite;
use crate::standing::Schedule;
use ringleader_types::{Patch, PatchKind, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A patch as first seen: what time to patch is measured from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub id: String,
    #[serde(with = "kind_serde")]
    pub kind: PatchKind,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// When its vendor says it was released.
    pub released: Timestamp,
    /// When a poll of its source first reported it (this revision of it).
    pub first_seen: Timestamp,
    /// SHA-256 of what decides an install (versions, ranges, artifact, ...): a patch
    /// whose digest changes is a new revision.
    pub digest: String,
    /// 1 when new; one more at each change.
    pub revision: u32,
}

/// Every patch the sources have reported, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publications {
    by_id: BTreeMap<String, Publication>,
}

impl Publications {
    /// Records what a poll at `at` reported; returns the patches new or changed since
    /// the last poll, in id order. A patch no longer reported is kept (a source that
    /// fails or trims its feed does not make it new again).
    pub fn observe<'a>(
        &mut self,
        at: Timestamp,
        patches: impl IntoIterator<Item = &'a Patch>,
    ) -> Vec<Publication> {
        let mut seen = BTreeMap::new();
        for patch in patches {
            seen.entry(patch.id.as_str()).or_insert(patch);
        }
        let mut out = Vec::new();
        for (id, patch) in seen {
            let digest = digest(patch);
            let revision = match self.by_id.get(id) {
                Some(known) if known.digest == digest => continue,
                Some(known) => known.revision + 1,
                None => 1,
            };
            let publication = Publication {
                id: id.to_string(),
                kind: patch.kind,
                severity: patch.severity,
                released: patch.released,
                first_seen: at,
                digest,
                revision,
            };
            self.by_id.insert(id.to_string(), publication.clone());
            out.push(publication);
        }
        out
    }

    /// Puts back a publication kept elsewhere (a store read at start).
    pub fn restore(&mut self, publication: Publication) {
        self.by_id.insert(publication.id.clone(), publication);
    }

    pub fn get(&self, id: &str) -> Option<&Publication> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Publication> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The publications as time to patch counts them: from first seen.
    pub fn for_time_to_patch(&self) -> Vec<crate::time_to_patch::Publication> {
        self.by_id
            .values()
            .map(|p| crate::time_to_patch::Publication {
                patch: p.id.clone(),
                severity: p.severity,
                published: p.first_seen,
            })
            .collect()
    }
}

/// SHA-256 over what decides whether and how a patch is installed, each field
/// length-prefixed so that no two patches share a rendering.
fn digest(p: &Patch) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(p.component.as_bytes());
    field(p.fixed_version.as_bytes());
    field(p.applies_to.as_bytes());
    field(p.scheme.map(|s| s.name()).unwrap_or("").as_bytes());
    field(crate::policy::kind_name(p.kind).as_bytes());
    field(crate::policy::severity_name(p.severity).as_bytes());
    for list in [&p.cves, &p.prerequisites, &p.supersedes] {
        field(&(list.len() as u64).to_be_bytes());
        for item in list {
            field(item.as_bytes());
        }
    }
    field(&[u8::from(p.reboot_required)]);
    field(p.artifact.url.as_bytes());
    field(p.artifact.sha256.as_bytes());
    field(&p.artifact.size.to_be_bytes());
    field(&p.released.to_be_bytes());
    let digest = h.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a schedule's run at an instant rolls out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The patches approved by then, with the prerequisites they need (by id).
    pub patches: BTreeSet<String>,
    /// Prerequisites added though the schedule does not select them (or has not
    /// approved them yet): a selected patch cannot be installed without them.
    pub prerequisites: BTreeSet<String>,
    /// Selected but not yet approved: each with the time it will be.
    pub waiting: Vec<(String, Timestamp)>,
}

impl Selection {
    /// Leaves out the patches `busy` names (a rollout still under way rolls them out),
    /// those they supersede, and those that need one of them first; returns what was left out, sorted. The
    /// next run after that rollout ends takes them, for the devices it did not patch.
    pub fn without(&mut self, busy: &BTreeSet<String>, patches: &[Patch]) -> Vec<String> {
        let by_id: BTreeMap<&str, &Patch> = patches.iter().map(|p| (p.id.as_str(), p)).collect();
        // Busy, and what a busy patch supersedes (its fix is on the way).
        let mut out: BTreeSet<String> = self.patches.intersection(busy).cloned().collect();
        for id in busy {
            if let Some(p) = by_id.get(id.as_str()) {
                out.extend(
                    p.supersedes
                        .iter()
                        .filter(|s| self.patches.contains(*s))
                        .cloned(),
                );
            }
        }
        loop {
            let more: Vec<String> = self
                .patches
                .iter()
                .filter(|id| !out.contains(*id))
                .filter(|id| {
                    by_id
                        .get(id.as_str())
                        .is_some_and(|p| p.prerequisites.iter().any(|pre| out.contains(pre)))
                })
                .cloned()
                .collect();
            if more.is_empty() {
                break;
            }
            out.extend(more);
        }
        for id in &out {
            self.patches.remove(id);
            self.prerequisites.remove(id);
        }
        out.into_iter().collect()
    }

    /// Leaves out what each halted rollout of `holders` holds, as [`Selection::without`]
    /// does for one under way; returns, for each that held something, `P, Q by ID`.
    pub fn held_by<'a>(
        &mut self,
        holders: impl IntoIterator<Item = (&'a str, &'a BTreeSet<String>)>,
        patches: &[Patch],
    ) -> Vec<String> {
        holders
            .into_iter()
            .filter_map(|(id, held)| {
                let out = self.without(held, patches);
                (!out.is_empty()).then(|| format!("{} by {id}", out.join(", ")))
            })
            .collect()
    }
}

/// What `schedule`'s run at `at` rolls out of `patches` (the sources' latest): every
/// patch its filters select whose approval has come, with the prerequisites of each
/// (found among `patches`); the rest of what it selects waits.
pub fn select(schedule: &Schedule, patches: &[Patch], at: Timestamp) -> Selection {
    let mut selection = Selection::default();
    for patch in patches {
        match schedule.eligible_from(patch) {
            Ok(eligible) if eligible.from <= at => {
                selection.patches.insert(patch.id.clone());
            }
            Ok(eligible) => selection.waiting.push((patch.id.clone(), eligible.from)),
            Err(_) => {}
        }
    }
    add_prerequisites(&mut selection, patches);
    selection.waiting.sort();
    selection.waiting.dedup();
    selection
}

/// The run of an expedited patch: `id` and its prerequisites.
pub fn select_only(id: &str, patches: &[Patch]) -> Selection {
    let mut selection = Selection::default();
    if patches.iter().any(|p| p.id == id) {
        selection.patches.insert(id.to_string());
    }
    add_prerequisites(&mut selection, patches);
    selection
}

fn add_prerequisites(selection: &mut Selection, patches: &[Patch]) {
    let by_id: BTreeMap<&str, &Patch> = patches.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut todo: Vec<String> = selection.patches.iter().cloned().collect();
    while let Some(id) = todo.pop() {
        let Some(patch) = by_id.get(id.as_str()) else {
            continue;
        };
        for pre in &patch.prerequisites {
            if by_id.contains_key(pre.as_str()) && selection.patches.insert(pre.clone()) {
                selection.prerequisites.insert(pre.clone());
                todo.push(pre.clone());
            }
        }
    }
    selection
        .waiting
        .retain(|(id, _)| !selection.patches.contains(id));
}

/// When a newly seen patch gets a run of its own under `schedule`: `expedite_within`
/// after it was first seen (or once approved, if later), when its policy's
/// `[expedite]` covers its severity and the schedule selects and approves it. `None`:
/// it waits for the schedule's next run. Only a patch's first revision is expedited.
pub fn expedite_at(
    schedule: &Schedule,
    expedite: Option<&Expedite>,
    publication: &Publication,
    patch: &Patch,
) -> Option<Timestamp> {
    let expedite = expedite?;
    if publication.revision != 1 || !expedite.severities.contains(&patch.severity) {
        return None;
    }
    let eligible = schedule.eligible_from(patch).ok()?;
    let within = i64::try_from(schedule.expedite_within.as_secs()).unwrap_or(i64::MAX);
    Some(
        publication
            .first_seen
            .saturating_add(within)
            .max(eligible.from),
    )
}

mod kind_serde {
    use ringleader_types::PatchKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &PatchKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::policy::kind_name(*kind))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PatchKind, D::Error> {
        let name = String::deserialize(d)?;
        crate::policy::kind_named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a patch kind")))
    }
}

mod severity_serde {
    use ringleader_types::Severity;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(severity: &Severity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::policy::severity_name(*severity))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
        let name = String::deserialize(d)?;
        crate::policy::severity_named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a severity")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standing::Schedules;
    use std::path::Path;

    const DAY: i64 = 86_400;

    fn patch(id: &str, severity: Severity, released: Timestamp) -> Patch {
        Patch {
            id: id.into(),
            vendor: "v".into(),
            title: id.into(),
            component: "openssl".into(),
            fixed_version: "3.0.15".into(),
            applies_to: String::new(),
            scheme: None,
            kind: PatchKind::Security,
            severity,
            cves: vec![],
            prerequisites: vec![],
            supersedes: vec![],
            reboot_required: false,
            artifact: ringleader_types::Artifact {
                url: "https://example.invalid/p".into(),
                sha256: "0".repeat(64),
                size: 1,
            },
            released,
        }
    }

    fn schedule(extra: &str) -> Schedule {
        let text = format!(
            "[[schedules]]\nname = \"s\"\nwhen = \"every monday 20:00\"\ninventory = \"i.toml\"\npolicy = \"p.toml\"\n{extra}"
        );
        let (parsed, diags) = Schedules::parse(Path::new("schedules.toml"), &text);
        parsed
            .unwrap_or_else(|| panic!("{diags}"))
            .schedules
            .remove(0)
    }

    fn expedite() -> Expedite {
        Expedite {
            severities: vec![Severity::Critical],
            soak_factor: 0.25,
            skip_window: false,
        }
    }

    #[test]
    fn a_patch_is_published_once_and_again_only_when_it_changes() {
        let mut pubs = Publications::default();
        let a = patch("a", Severity::High, 0);
        let b = patch("b", Severity::Low, 0);
        let new = pubs.observe(100, [&a, &b]);
        assert_eq!(
            new.iter().map(|p| (&*p.id, p.revision)).collect::<Vec<_>>(),
            [("a", 1), ("b", 1)]
        );
        // The same feed again, and a feed without `b`: nothing new, `b` kept.
        assert!(pubs.observe(200, [&a, &b]).is_empty());
        assert!(pubs.observe(300, [&a]).is_empty());
        assert_eq!(pubs.get("b").map(|p| p.first_seen), Some(100));
        // A changed fixed version is a new revision, first seen at its poll.
        let mut a2 = a.clone();
        a2.fixed_version = "3.0.16".into();
        let changed = pubs.observe(400, [&a2]);
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].revision, changed[0].first_seen), (2, 400));
        // A title is not what decides an install.
        let mut a3 = a2.clone();
        a3.title = "better words".into();
        assert!(pubs.observe(500, [&a3]).is_empty());
        let back: Publications =
            serde_json::from_str(&serde_json::to_string(&pubs).unwrap()).unwrap();
        assert_eq!(back, pubs);
    }

    #[test]
    fn a_run_takes_what_is_approved_by_then_and_the_prerequisites_it_needs() {
        let s = schedule(
            "kinds = [\"security\"]\n[[schedules.approve]]\nseverities = [\"critical\"]\nafter_days = 0\n[[schedules.approve]]\nafter_days = 7\n",
        );
        let crit = patch("crit", Severity::Critical, 10 * DAY);
        let high = patch("high", Severity::High, 10 * DAY);
        let mut needs = patch("needs", Severity::Critical, 10 * DAY);
        needs.prerequisites = vec!["base".into()];
        let mut base = patch("base", Severity::Low, 10 * DAY);
        base.kind = PatchKind::Firmware;
        let all = [crit, high, needs, base];
        let on_release = select(&s, &all, 10 * DAY);
        assert_eq!(
            on_release.patches,
            BTreeSet::from(["base".into(), "crit".into(), "needs".into()])
        );
        assert_eq!(on_release.prerequisites, BTreeSet::from(["base".into()]));
        assert_eq!(on_release.waiting, vec![("high".to_string(), 17 * DAY)]);
        // Day 17: the high one's seven days have passed.
        let later = select(&s, &all, 17 * DAY);
        assert!(later.patches.contains("high") && later.waiting.is_empty());
    }

    #[test]
    fn a_critical_patch_is_expedited_within_the_schedules_delay_once_approved() {
        let s = schedule("expedite_within = \"30m\"\n");
        let crit = patch("crit", Severity::Critical, 0);
        let mut pubs = Publications::default();
        let seen = pubs.observe(1000, [&crit]).remove(0);
        assert_eq!(expedite_at(&s, Some(&expedite()), &seen, &crit), Some(2800));
        // Not without an `[expedite]`, nor for a severity it does not cover.
        assert_eq!(expedite_at(&s, None, &seen, &crit), None);
        let high = patch("high", Severity::High, 0);
        let seen_high = pubs.observe(1000, [&high]).remove(0);
        assert_eq!(expedite_at(&s, Some(&expedite()), &seen_high, &high), None);
        // Approved two days after release: expedited then, not before.
        let waits = schedule("[[schedules.approve]]\nafter_days = 2\n");
        assert_eq!(
            expedite_at(&waits, Some(&expedite()), &seen, &crit),
            Some(2 * DAY)
        );
        // The default delay is 15 minutes.
        assert_eq!(
            expedite_at(&schedule(""), Some(&expedite()), &seen, &crit),
            Some(1000 + 900)
        );
        // A schedule whose filters leave it out does not expedite it.
        let firmware_only = schedule("kinds = [\"firmware\"]\n");
        assert_eq!(
            expedite_at(&firmware_only, Some(&expedite()), &seen, &crit),
            None
        );
    }

    #[test]
    fn patches_a_rollout_under_way_rolls_out_wait_with_those_that_need_them() {
        let base = patch("base", Severity::Low, 0);
        let mut needs = patch("needs", Severity::High, 0);
        needs.prerequisites = vec!["base".into()];
        let mut deeper = patch("deeper", Severity::High, 0);
        deeper.prerequisites = vec!["needs".into()];
        let free = patch("free", Severity::High, 0);
        let old = patch("old", Severity::High, 0);
        let mut newer = patch("newer", Severity::Critical, 0);
        newer.supersedes = vec!["old".into()];
        let all = [base, needs, deeper, free, old];
        let mut s = select(&schedule(""), &all, 0);
        let mut all_known = all.to_vec();
        all_known.push(newer);
        let busy = BTreeSet::from(["base".to_string(), "newer".to_string()]);
        let left = s.without(&busy, &all_known);
        assert_eq!(left, ["base", "deeper", "needs", "old"]);
        assert_eq!(s.patches, BTreeSet::from(["free".into()]));
    }

    #[test]
    fn an_expedited_run_takes_the_patch_and_its_prerequisites_only() {
        let mut crit = patch("crit", Severity::Critical, 0);
        crit.prerequisites = vec!["base".into()];
        let base = patch("base", Severity::Low, 0);
        let other = patch("other", Severity::High, 0);
        let s = select_only("crit", &[crit, base, other]);
        assert_eq!(s.patches, BTreeSet::from(["base".into(), "crit".into()]));
    }
}
