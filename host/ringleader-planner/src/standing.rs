//! Standing schedules (`schedules.toml`, docs/schedules.md): which inventory, which
//! policy, which patches, and when, as a recurrence in a time zone
//! (`ringleader-recurrence`). Parsed like every file people write: every problem at
//! once, each at its file:line:col, a recurrence's mistake at the word at fault.
//!
//! A run that falls on a date of one of its policy's `[[freeze]]`s (in the schedule's
//! zone) is moved to the first day after the freeze, at the schedule's time, or skipped,
//! as the schedule says (`on_freeze`); [`Schedule::runs`] says which, and why.
//!
//! Which patches a schedule's runs roll out: those its filters select, each from the
//! day its approval rules approve it (`[[schedules.approve]]`, SSM's
//! `ApproveAfterDays`: the first rule whose kinds and severities match says how many
//! days after the patch's release), or at once for the ids in `approved`;
//! [`Schedule::eligible_from`] says when, or why never.

use crate::policy::{Freeze, kind_name, kind_named, severity_name, severity_named};
use jiff::{Timestamp, ToSpan, Zoned};
use ringleader_diag::{Diagnostics, Seg};
use ringleader_recurrence::Recurrence;
use ringleader_types::{Patch, PatchKind, Severity};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const HINT: &str = "a schedules file holds [[schedules]] tables with name, when, inventory or tags, sources, policy, on_freeze, expedite_within, the patch filters kinds, severities, cves, include, exclude, and the approvals approved and [[schedules.approve]] (kinds, severities, after_days): see docs/schedules.md";

/// What a run that falls into a freeze does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFreeze {
    /// To the first day after the freeze, at the schedule's time.
    Move,
    /// Not at all; the next run is the recurrence's next one.
    Skip,
}

/// Which of the applicable patches a run rolls out: each list that is not empty must
/// match (`include`/`exclude` by patch id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchFilter {
    pub kinds: Vec<PatchKind>,
    pub severities: Vec<Severity>,
    pub cves: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// A rule that approves the patches it matches some days after their release: each of
/// its lists that is not empty must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    pub kinds: Vec<PatchKind>,
    pub severities: Vec<Severity>,
    pub after_days: u32,
}

/// When the patches a schedule selects may be rolled out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The first that matches a patch decides; none: every selected patch is
    /// approved on its release.
    pub rules: Vec<ApprovalRule>,
    /// Patch ids approved at once, whatever the rules say.
    pub approved: Vec<String>,
}

/// Which devices a schedule's runs patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The devices of an inventory file (resolved against the schedules file's
    /// directory), read again at every run.
    Inventory(PathBuf),
    /// The devices of the fleet registry that have at least one of these tags, as the
    /// registry holds them at the run.
    Tags(Vec<String>),
}

/// One standing schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub when: Recurrence,
    pub target: Target,
    /// The sources whose patches its runs take; empty: every source of the daemon.
    pub sources: Vec<String>,
    /// Resolved against the schedules file's directory.
    pub policy: PathBuf,
    pub on_freeze: OnFreeze,
    pub patches: PatchFilter,
    pub approval: Approval,
    /// A new patch the policy's `[expedite]` covers starts its own run this long after
    /// it is first seen, without waiting for the recurrence (default 15 minutes).
    pub expedite_within: std::time::Duration,
}

/// How long after a patch the policy expedites is first seen its run starts, unless
/// the schedule says otherwise.
pub const EXPEDITE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The longest a schedule may let an expedited patch wait: a week (past that it is not
/// expedited, and the recurrence runs sooner).
const MAX_EXPEDITE_WITHIN: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// A schedules file.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
}

/// A run of a schedule, as it will happen (or not).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub schedule: String,
    /// When the recurrence puts it.
    pub planned: Zoned,
    pub outcome: RunOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// At its planned time.
    Runs,
    /// Moved out of a freeze to `to`.
    Moved { to: Zoned, freeze: String },
    /// Not run: it fell into a freeze.
    Skipped { freeze: String },
}

impl Run {
    /// When it runs; `None` when it is skipped.
    pub fn at(&self) -> Option<&Zoned> {
        match &self.outcome {
            RunOutcome::Runs => Some(&self.planned),
            RunOutcome::Moved { to, .. } => Some(to),
            RunOutcome::Skipped { .. } => None,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    schedules: Vec<RawSchedule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    when: String,
    inventory: Option<String>,
    tags: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    policy: String,
    on_freeze: Option<String>,
    expedite_within: Option<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    cves: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    approved: Vec<String>,
    #[serde(default)]
    approve: Vec<RawRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
    after_days: i64,
}

/// The longest wait a rule can set: ten years.
const MAX_AFTER_DAYS: i64 = 3650;

impl Schedules {
    /// Reads and validates the schedules file at `path`.
    pub fn check(path: &Path) -> Result<(Option<Schedules>, Diagnostics), std::io::Error> {
        Schedules::read(path, None)
    }

    /// Reads and validates the schedules file at `path` for a daemon whose sources are
    /// `sources`: a schedule's `sources` must name some of them.
    pub fn check_for(
        path: &Path,
        sources: &[String],
    ) -> Result<(Option<Schedules>, Diagnostics), std::io::Error> {
        Schedules::read(path, Some(sources))
    }

    fn read(
        path: &Path,
        sources: Option<&[String]>,
    ) -> Result<(Option<Schedules>, Diagnostics), std::io::Error> {
        match ringleader_diag::read_file("schedules", path) {
            Ok(text) => Ok(Schedules::parse_for(path, &text, sources)),
            Err(ringleader_diag::FileError::Invalid(diags)) => Ok((None, diags)),
            Err(ringleader_diag::FileError::Read { error, .. }) => Err(error),
        }
    }

    /// Validates schedules `text` read from `path`: every problem at once.
    pub fn parse(path: &Path, text: &str) -> (Option<Schedules>, Diagnostics) {
        Schedules::parse_for(path, text, None)
    }

    /// [`Schedules::parse`], and, given the names of the sources that will run the
    /// schedules, a schedule's `sources` that names another is an error.
    pub fn parse_for(
        path: &Path,
        text: &str,
        known_sources: Option<&[String]>,
    ) -> (Option<Schedules>, Diagnostics) {
        let mut d = Diagnostics::new(path, text);
        let Some(raw) = d.toml_from_str::<RawFile>(text, HINT) else {
            d.sort();
            return (None, d);
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if raw.schedules.is_empty() {
            d.error_at(
                &[Seg::Key("schedules")],
                "the file has no schedules",
                "add a [[schedules]] table: docs/schedules.md",
            );
        }
        let mut names = HashSet::new();
        let mut schedules = Vec::new();
        for (i, s) in raw.schedules.iter().enumerate() {
            let at = |key: &'static str| [Seg::Key("schedules"), Seg::Index(i), Seg::Key(key)];
            if s.name.trim().is_empty() {
                d.error_at(
                    &at("name"),
                    "the schedule has no name",
                    "name it, e.g. `patch-tuesday`",
                );
            } else if !names.insert(s.name.clone()) {
                d.error_at(
                    &at("name"),
                    format!("schedule name `{}` is used twice", s.name),
                    "give every schedule its own name",
                );
            }
            let when = match Recurrence::parse(&s.when) {
                Ok(r) => Some(r),
                Err(e) => {
                    // At the word at fault inside the string (after its opening quote).
                    let span = d.span_of(&at("when"));
                    let start = (span.start + 1 + e.start).min(span.end);
                    let end = (start + e.len).min(span.end).max(start);
                    d.error(
                        start..end,
                        &format!("schedules[{i}].when"),
                        e.message.clone(),
                        &e.hint,
                    );
                    None
                }
            };
            let on_freeze = match s.on_freeze.as_deref() {
                None | Some("move") => OnFreeze::Move,
                Some("skip") => OnFreeze::Skip,
                Some(other) => {
                    d.error_at(
                        &at("on_freeze"),
                        format!("`{other}` is not what a run in a freeze can do"),
                        "`move` (to the first day after the freeze) or `skip`",
                    );
                    OnFreeze::Move
                }
            };
            let expedite_within = match s.expedite_within.as_deref().map(humantime::parse_duration)
            {
                None => EXPEDITE_WITHIN,
                Some(Ok(v)) if v <= MAX_EXPEDITE_WITHIN => v,
                Some(Ok(_)) => {
                    d.error_at(
                        &at("expedite_within"),
                        "`expedite_within` is longer than a week",
                        "an expedited patch starts within minutes or hours, e.g. `15m`",
                    );
                    EXPEDITE_WITHIN
                }
                Some(Err(e)) => {
                    d.error_at(
                        &at("expedite_within"),
                        format!(
                            "`{}` is not a duration: {e}",
                            s.expedite_within.as_deref().unwrap_or_default()
                        ),
                        "write e.g. `15m` or `1h`",
                    );
                    EXPEDITE_WITHIN
                }
            };
            let schedule_at = [Seg::Key("schedules"), Seg::Index(i)];
            let patches = PatchFilter {
                kinds: read_kinds(&mut d, &s.kinds, &schedule_at),
                severities: read_severities(&mut d, &s.severities, &schedule_at),
                cves: s.cves.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
            };
            let mut approval = Approval {
                approved: s.approved.clone(),
                ..Approval::default()
            };
            for (j, r) in s.approve.iter().enumerate() {
                let rule_at = [
                    Seg::Key("schedules"),
                    Seg::Index(i),
                    Seg::Key("approve"),
                    Seg::Index(j),
                ];
                let after_days = match u32::try_from(r.after_days) {
                    Ok(days) if r.after_days <= MAX_AFTER_DAYS => days,
                    _ => {
                        d.error_at(
                            &[&rule_at[..], &[Seg::Key("after_days")]].concat(),
                            format!("`after_days` is {}", r.after_days),
                            "give the days after a patch's release it is approved: 0 (on release) to 3650",
                        );
                        0
                    }
                };
                approval.rules.push(ApprovalRule {
                    kinds: read_kinds(&mut d, &r.kinds, &rule_at),
                    severities: read_severities(&mut d, &r.severities, &rule_at),
                    after_days,
                });
            }
            // An id excluded cannot also be approved or included.
            for (key, list, what) in [
                ("approved", &s.approved, "approved"),
                ("include", &s.include, "included"),
            ] {
                for (j, id) in list.iter().enumerate() {
                    if s.exclude.contains(id) {
                        d.error_at(
                            &[
                                Seg::Key("schedules"),
                                Seg::Index(i),
                                Seg::Key(key),
                                Seg::Index(j),
                            ],
                            format!("patch `{id}` is both {what} and excluded"),
                            "keep it in one of the two lists",
                        );
                    }
                }
            }
            let target = read_target(&mut d, s, i, base);
            let sources = read_names(
                &mut d,
                s.sources.as_deref(),
                &[Seg::Key("schedules"), Seg::Index(i), Seg::Key("sources")],
                "source",
                "leave `sources` out to take the patches of every source of the daemon, or name some, e.g. `[\"csaf-source\"]`",
            );
            if let (Some(known), Some(named)) = (known_sources, &s.sources) {
                for (j, name) in named.iter().enumerate() {
                    if !name.trim().is_empty() && !known.contains(name) {
                        d.error_at(
                            &[
                                Seg::Key("schedules"),
                                Seg::Index(i),
                                Seg::Key("sources"),
                                Seg::Index(j),
                            ],
                            format!(
                                "`{name}` is not a source of this daemon (its sources: {})",
                                known.join(", ")
                            ),
                            "name one of them, or give it to the daemon with --source",
                        );
                    }
                }
            }
            if s.policy.trim().is_empty() {
                d.error_at(
                    &at("policy"),
                    "no policy file named",
                    "give its path, relative to this file",
                );
            }
            if let (Some(when), Some(target)) = (when, target) {
                schedules.push(Schedule {
                    name: s.name.clone(),
                    when,
                    target,
                    sources,
                    policy: base.join(&s.policy),
                    on_freeze,
                    patches,
                    approval,
                    expedite_within,
                });
            }
        }
        d.sort();
        let ok = !d.has_errors();
        (ok.then_some(Schedules { schedules }), d)
    }
}

/// Which devices schedule `i` patches: exactly one of `inventory` (a file) and `tags`
/// (of the fleet registry).
fn read_target(d: &mut Diagnostics, s: &RawSchedule, i: usize, base: &Path) -> Option<Target> {
    let at = |key: &'static str| [Seg::Key("schedules"), Seg::Index(i), Seg::Key(key)];
    match (&s.inventory, &s.tags) {
        (Some(_), Some(_)) => {
            d.error_at(
                &at("tags"),
                "the schedule names both an inventory file and tags",
                "keep one: `inventory` patches the devices of a file, `tags` those of the fleet registry with one of the tags",
            );
            None
        }
        (None, None) => {
            d.error_at(
                &[Seg::Key("schedules"), Seg::Index(i)],
                format!("schedule `{}` names no devices", s.name),
                "give `inventory = \"fleet.toml\"` (a file, relative to this one) or `tags = [\"web\"]` (the fleet registry's devices with one of the tags)",
            );
            None
        }
        (Some(file), None) if file.trim().is_empty() => {
            d.error_at(
                &at("inventory"),
                "no inventory file named",
                "give its path, relative to this file",
            );
            None
        }
        (Some(file), None) => Some(Target::Inventory(base.join(file))),
        (None, Some(tags)) => {
            let tags = read_names(
                d,
                Some(tags),
                &at("tags"),
                "tag",
                "name the tags of the devices to patch, e.g. `[\"web\"]`",
            );
            (!tags.is_empty()).then_some(Target::Tags(tags))
        }
    }
}

/// The names of list `at` (sources, tags): an empty list, an empty name or one given
/// twice is an error. `None` (the key left out): none.
fn read_names(
    d: &mut Diagnostics,
    names: Option<&[String]>,
    at: &[Seg<'_>],
    what: &str,
    hint: &str,
) -> Vec<String> {
    let Some(names) = names else {
        return Vec::new();
    };
    if names.is_empty() {
        d.error_at(at, format!("the list names no {what}"), hint);
        return Vec::new();
    }
    let mut kept: Vec<String> = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let item = [at, &[Seg::Index(j)]].concat();
        if name.trim().is_empty() {
            d.error_at(&item, format!("an empty {what} name"), hint);
        } else if kept.contains(name) {
            d.error_at(
                &item,
                format!("{what} `{name}` is named twice"),
                "name each once",
            );
        } else {
            kept.push(name.clone());
        }
    }
    kept
}

/// The patch kinds `names` (the list `kinds` under `at`), each unknown one reported.
fn read_kinds(d: &mut Diagnostics, names: &[String], at: &[Seg<'_>]) -> Vec<PatchKind> {
    let mut kinds = Vec::new();
    for (j, k) in names.iter().enumerate() {
        match kind_named(k) {
            Some(v) => kinds.push(v),
            None => d.error_at(
                &[at, &[Seg::Key("kinds"), Seg::Index(j)]].concat(),
                format!("`{k}` is not a patch kind"),
                "use security, bugfix, feature or firmware",
            ),
        }
    }
    kinds
}

/// The severities `names` (the list `severities` under `at`), each unknown one
/// reported.
fn read_severities(d: &mut Diagnostics, names: &[String], at: &[Seg<'_>]) -> Vec<Severity> {
    let mut severities = Vec::new();
    for (j, v) in names.iter().enumerate() {
        match severity_named(v) {
            Some(s) => severities.push(s),
            None => d.error_at(
                &[at, &[Seg::Key("severities"), Seg::Index(j)]].concat(),
                format!("`{v}` is not a severity"),
                "use low, medium, high, critical or unknown",
            ),
        }
    }
    severities
}

/// The freeze `date` falls in, if any.
fn frozen(freezes: &[Freeze], date: jiff::civil::Date) -> Option<&Freeze> {
    freezes.iter().find(|f| f.from <= date && date <= f.to)
}

fn freeze_text(f: &Freeze) -> String {
    if f.reason.is_empty() {
        format!("freeze {} to {}", f.from, f.to)
    } else {
        format!("freeze {} to {} ({})", f.from, f.to, f.reason)
    }
}

impl PatchFilter {
    /// Whether the filter selects `patch`; the error says which list leaves it out.
    pub fn selects(&self, patch: &Patch) -> Result<(), String> {
        if self.exclude.contains(&patch.id) {
            return Err("excluded".into());
        }
        if !self.include.is_empty() && !self.include.contains(&patch.id) {
            return Err("not in `include`".into());
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&patch.kind) {
            return Err(format!("a {} patch, not of `kinds`", kind_name(patch.kind)));
        }
        if !self.severities.is_empty() && !self.severities.contains(&patch.severity) {
            return Err(format!(
                "of severity {}, not of `severities`",
                severity_name(patch.severity)
            ));
        }
        if !self.cves.is_empty()
            && !patch
                .cves
                .iter()
                .any(|c| self.cves.iter().any(|w| w.eq_ignore_ascii_case(c)))
        {
            return Err("fixes none of `cves`".into());
        }
        Ok(())
    }
}

impl ApprovalRule {
    fn matches(&self, patch: &Patch) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&patch.kind))
            && (self.severities.is_empty() || self.severities.contains(&patch.severity))
    }
}

/// When a schedule may roll a patch out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    /// From then on (seconds since the Unix epoch); a run before it leaves the patch
    /// for a later run.
    pub from: ringleader_types::Timestamp,
    /// `approved on release`, `approve[1]: 7 days after its release`, `in approved`.
    pub why: String,
}

impl Schedule {
    /// Whether its runs take the patches of the source named `source`.
    pub fn takes_from(&self, source: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == source)
    }

    /// From when the schedule's runs may roll `patch` out, or why they never do (the
    /// filters leave it out, or no approval rule matches it).
    pub fn eligible_from(&self, patch: &Patch) -> Result<Eligible, String> {
        self.patches.selects(patch)?;
        if self.approval.approved.contains(&patch.id) {
            return Ok(Eligible {
                from: patch.released,
                why: "in `approved`".into(),
            });
        }
        if self.approval.rules.is_empty() {
            return Ok(Eligible {
                from: patch.released,
                why: "approved on release (the schedule has no approval rules)".into(),
            });
        }
        let (i, rule) = self
            .approval
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(patch))
            .ok_or_else(|| {
                format!(
                    "no approval rule matches a {} patch of severity {}",
                    kind_name(patch.kind),
                    severity_name(patch.severity)
                )
            })?;
        Ok(Eligible {
            from: patch
                .released
                .saturating_add(i64::from(rule.after_days) * 86_400),
            why: format!("approve[{i}]: {} days after its release", rule.after_days),
        })
    }

    /// The schedule's runs after `after` until `count` of them run, through `freezes`
    /// (its policy's): those moved or skipped are listed too, with the freeze. Fewer
    /// when the recurrence has no more within 100 years.
    pub fn runs(&self, freezes: &[Freeze], after: Timestamp, count: usize) -> Vec<Run> {
        let mut out = Vec::new();
        let mut running = 0;
        let mut t = after;
        // Skipped runs do not count: a bound keeps a schedule frozen for ever finite.
        let mut budget = count.saturating_mul(50).saturating_add(100);
        while running < count && budget > 0 {
            budget -= 1;
            let Some(planned) = self.when.next_after(t) else {
                break;
            };
            t = planned.timestamp();
            let outcome = match frozen(freezes, planned.date()) {
                None => RunOutcome::Runs,
                Some(f) if self.on_freeze == OnFreeze::Skip => RunOutcome::Skipped {
                    freeze: freeze_text(f),
                },
                Some(f) => match self.moved_out(freezes, f) {
                    Some(to) => RunOutcome::Moved {
                        to,
                        freeze: freeze_text(f),
                    },
                    None => RunOutcome::Skipped {
                        freeze: freeze_text(f),
                    },
                },
            };
            // A run moved to or past the recurrence's next one is that run.
            let outcome = match outcome {
                RunOutcome::Moved { to, freeze }
                    if self
                        .when
                        .next_after(t)
                        .is_some_and(|next| next.timestamp() <= to.timestamp()) =>
                {
                    RunOutcome::Skipped {
                        freeze: format!("{freeze}; the next run comes first"),
                    }
                }
                other => other,
            };
            if !matches!(outcome, RunOutcome::Skipped { .. }) {
                running += 1;
            }
            out.push(Run {
                schedule: self.name.clone(),
                planned,
                outcome,
            });
        }
        out
    }

    /// The first day after `freeze` (and any freeze right after it) at the schedule's
    /// time in its zone.
    fn moved_out(&self, freezes: &[Freeze], freeze: &Freeze) -> Option<Zoned> {
        let mut date = freeze.to.checked_add(1.day()).ok()?;
        for _ in 0..1000 {
            match frozen(freezes, date) {
                Some(next) => date = next.to.checked_add(1.day()).ok()?,
                None => {
                    return date
                        .to_datetime(self.when.time)
                        .to_zoned(self.when.zone.clone())
                        .ok();
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Schedules, Vec<String>> {
        match Schedules::parse(Path::new("/etc/ringleader/schedules.toml"), text) {
            (Some(s), _) => Ok(s),
            (None, d) => Err(d.errors().map(|p| d.format(p)).collect()),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn freeze(from: &str, to: &str, reason: &str) -> Freeze {
        Freeze {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            reason: reason.into(),
        }
    }

    const PATCH_TUESDAY: &str = r#"
[[schedules]]
name = "patch-tuesday"
when = "second tuesday of the month + 2 days at 22:00 Europe/Amsterdam"
inventory = "fleet.toml"
policy = "policies/monthly.toml"
severities = ["high", "critical"]
kinds = ["security"]
"#;

    #[test]
    fn a_schedule_parses_with_its_files_next_to_the_schedules_file() {
        let s = parse(PATCH_TUESDAY).unwrap();
        let s = &s.schedules[0];
        assert_eq!(s.name, "patch-tuesday");
        assert_eq!(
            s.target,
            Target::Inventory("/etc/ringleader/fleet.toml".into())
        );
        assert!(s.sources.is_empty() && s.takes_from("csaf-source"));
        assert_eq!(s.policy, Path::new("/etc/ringleader/policies/monthly.toml"));
        assert_eq!(s.on_freeze, OnFreeze::Move);
        assert_eq!(s.patches.severities, [Severity::High, Severity::Critical]);
        assert_eq!(s.patches.kinds, [PatchKind::Security]);
        // December 2026: Tuesday the 8th, + 2 days: Thursday the 10th, 22:00 CET.
        let runs = s.runs(&[], ts("2026-12-01T00:00:00Z"), 2);
        let at: Vec<String> = runs.iter().map(|r| r.at().unwrap().to_string()).collect();
        assert_eq!(
            at,
            [
                "2026-12-10T22:00:00+01:00[Europe/Amsterdam]",
                "2027-01-14T22:00:00+01:00[Europe/Amsterdam]"
            ]
        );
    }

    #[test]
    fn a_run_in_a_freeze_is_moved_after_it_or_skipped_and_says_so() {
        let s = parse(PATCH_TUESDAY).unwrap().schedules.remove(0);
        let holidays = [freeze("2026-12-09", "2026-12-11", "year-end change freeze")];
        let runs = s.runs(&holidays, ts("2026-12-01T00:00:00Z"), 1);
        assert_eq!(runs.len(), 1);
        let RunOutcome::Moved { to, freeze: why } = &runs[0].outcome else {
            panic!("{runs:?}")
        };
        assert_eq!(
            to.to_string(),
            "2026-12-12T22:00:00+01:00[Europe/Amsterdam]"
        );
        assert_eq!(
            why,
            "freeze 2026-12-09 to 2026-12-11 (year-end change freeze)"
        );

        let mut skip = s.clone();
        skip.on_freeze = OnFreeze::Skip;
        let runs = skip.runs(&holidays, ts("2026-12-01T00:00:00Z"), 1);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(matches!(runs[0].outcome, RunOutcome::Skipped { .. }));
        assert_eq!(
            runs[1].at().unwrap().to_string(),
            "2027-01-14T22:00:00+01:00[Europe/Amsterdam]"
        );

        // Two freezes back to back: out of both. One that reaches past the next run:
        // skipped, the next run comes first.
        let back_to_back = [
            freeze("2026-12-09", "2026-12-11", ""),
            freeze("2026-12-12", "2026-12-13", ""),
        ];
        let runs = s.runs(&back_to_back, ts("2026-12-01T00:00:00Z"), 1);
        assert_eq!(
            runs[0].at().unwrap().to_string(),
            "2026-12-14T22:00:00+01:00[Europe/Amsterdam]"
        );
        let long = [freeze("2026-12-09", "2027-01-20", "")];
        let runs = s.runs(&long, ts("2026-12-01T00:00:00Z"), 1);
        assert!(
            matches!(runs[0].outcome, RunOutcome::Skipped { .. }),
            "{runs:?}"
        );
        assert!(
            matches!(runs[1].outcome, RunOutcome::Moved { .. }),
            "{runs:?}"
        );
        assert_eq!(
            runs[1].at().unwrap().to_string(),
            "2027-01-21T22:00:00+01:00[Europe/Amsterdam]"
        );
    }

    fn patch(id: &str, kind: PatchKind, severity: Severity, released: &str) -> Patch {
        Patch {
            id: id.into(),
            vendor: "v".into(),
            title: String::new(),
            component: "openssl".into(),
            fixed_version: "3.0.15".into(),
            applies_to: String::new(),
            scheme: None,
            kind,
            severity,
            cves: vec!["CVE-2024-0727".into()],
            prerequisites: vec![],
            supersedes: vec![],
            reboot_required: false,
            artifact: ringleader_types::Artifact {
                url: String::new(),
                sha256: String::new(),
                size: 0,
            },
            released: ts(released).as_second(),
        }
    }

    #[test]
    fn approval_rules_hold_a_patch_back_until_its_days_after_release_have_passed() {
        let s = parse(
            r#"
[[schedules]]
name = "monthly"
when = "second tuesday of the month at 22:00"
inventory = "fleet.toml"
policy = "p.toml"
exclude = ["bad-1"]
approved = ["urgent-fix"]

[[schedules.approve]]
severities = ["critical"]
after_days = 0

[[schedules.approve]]
kinds = ["security"]
after_days = 7

[[schedules.approve]]
kinds = ["bugfix"]
severities = ["high", "medium"]
after_days = 14
"#,
        )
        .unwrap()
        .schedules
        .remove(0);
        let released = "2026-12-01T12:00:00Z";
        let from = |p: &Patch| {
            s.eligible_from(p)
                .map(|e| (Timestamp::from_second(e.from).unwrap().to_string(), e.why))
        };
        // The first rule that matches decides: critical on release, even a bugfix.
        let critical = patch("c", PatchKind::Bugfix, Severity::Critical, released);
        assert_eq!(
            from(&critical).unwrap().0,
            "2026-12-01T12:00:00Z",
            "{:?}",
            from(&critical)
        );
        let security = patch("s", PatchKind::Security, Severity::Low, released);
        assert_eq!(
            from(&security).unwrap(),
            (
                "2026-12-08T12:00:00Z".to_string(),
                "approve[1]: 7 days after its release".to_string()
            )
        );
        let bugfix = patch("b", PatchKind::Bugfix, Severity::Medium, released);
        assert_eq!(from(&bugfix).unwrap().0, "2026-12-15T12:00:00Z");
        // No rule matches a low bugfix: never, and why.
        let low = patch("l", PatchKind::Bugfix, Severity::Low, released);
        assert_eq!(
            from(&low).unwrap_err(),
            "no approval rule matches a bugfix patch of severity low"
        );
        // `approved` comes before the rules; `exclude` before everything.
        let urgent = patch("urgent-fix", PatchKind::Bugfix, Severity::Low, released);
        assert_eq!(
            from(&urgent).unwrap(),
            (
                "2026-12-01T12:00:00Z".to_string(),
                "in `approved`".to_string()
            )
        );
        let bad = patch("bad-1", PatchKind::Security, Severity::Critical, released);
        assert_eq!(from(&bad).unwrap_err(), "excluded");

        // Without rules, every selected patch is approved on its release.
        let open = parse(PATCH_TUESDAY).unwrap().schedules.remove(0);
        let high = patch("h", PatchKind::Security, Severity::High, released);
        assert_eq!(open.eligible_from(&high).unwrap().from, high.released);
        let medium = patch("m", PatchKind::Security, Severity::Medium, released);
        assert_eq!(
            open.eligible_from(&medium).unwrap_err(),
            "of severity medium, not of `severities`"
        );
    }

    #[test]
    fn approval_rules_with_mistakes_are_located() {
        let found = parse(
            r#"
[[schedules]]
name = "monthly"
when = "every monday 20:00"
inventory = "fleet.toml"
policy = "p.toml"
exclude = ["x"]
approved = ["x"]

[[schedules.approve]]
severities = ["severe"]
after_days = -1

[[schedules.approve]]
kinds = ["os"]
after_days = 3651
"#,
        )
        .unwrap_err();
        for part in [
            "patch `x` is both approved and excluded",
            "`severe` is not a severity",
            "`after_days` is -1",
            "`os` is not a patch kind",
            "`after_days` is 3651",
        ] {
            assert!(found.iter().any(|f| f.contains(part)), "{part}: {found:#?}");
        }
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("/etc/ringleader/schedules.toml:12:14:")),
            "{found:#?}"
        );
        let found = parse(
            "[[schedules]]\nname = \"m\"\nwhen = \"every monday 20:00\"\ninventory = \"f.toml\"\npolicy = \"p.toml\"\n[[schedules.approve]]\nkinds = [\"security\"]\n",
        )
        .unwrap_err();
        assert!(
            found[0].contains("missing field `after_days`"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_schedule_patches_a_file_or_the_registry_tags_and_may_name_its_sources() {
        let s = parse(
            r#"
[[schedules]]
name = "web"
when = "every monday 20:00"
tags = ["web", "edge"]
sources = ["csaf-source", "debian-security"]
policy = "p.toml"
"#,
        )
        .unwrap()
        .schedules
        .remove(0);
        assert_eq!(s.target, Target::Tags(vec!["web".into(), "edge".into()]));
        assert!(s.takes_from("csaf-source") && s.takes_from("debian-security"));
        assert!(!s.takes_from("lvfs-source"));

        let found = parse(
            r#"
[[schedules]]
name = "both"
when = "every monday 20:00"
inventory = "fleet.toml"
tags = ["web"]
policy = "p.toml"

[[schedules]]
name = "neither"
when = "every monday 20:00"
policy = "p.toml"

[[schedules]]
name = "empty-lists"
when = "every monday 20:00"
tags = []
sources = []
policy = "p.toml"

[[schedules]]
name = "twice"
when = "every monday 20:00"
tags = ["web", "", "web"]
sources = ["csaf-source", "csaf-source"]
policy = "p.toml"
"#,
        )
        .unwrap_err();
        for part in [
            "schedules.toml:6:8: `schedules[0].tags`: the schedule names both an inventory file and tags",
            "`schedules[1]`: schedule `neither` names no devices",
            "`schedules[2].tags`: the list names no tag",
            "`schedules[2].sources`: the list names no source",
            "`schedules[3].tags[1]`: an empty tag name",
            "`schedules[3].tags[2]`: tag `web` is named twice",
            "`schedules[3].sources[1]`: source `csaf-source` is named twice",
        ] {
            assert!(found.iter().any(|f| f.contains(part)), "{part}: {found:#?}");
        }
        assert_eq!(found.len(), 7, "{found:#?}");

        // Against the daemon's sources: one it does not have is located.
        let text = "[[schedules]]\nname = \"m\"\nwhen = \"every monday 20:00\"\ntags = [\"web\"]\nsources = [\"csaf-source\", \"lvfs\"]\npolicy = \"p.toml\"\n";
        let known = ["csaf-source".to_string(), "lvfs-source".to_string()];
        let (ok, d) = Schedules::parse_for(Path::new("s.toml"), text, Some(&known));
        assert!(ok.is_none());
        let found: Vec<String> = d.errors().map(|p| d.format(p)).collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with(
                "s.toml:5:27: `schedules[0].sources[1]`: `lvfs` is not a source of this daemon (its sources: csaf-source, lvfs-source)"
            ),
            "{found:#?}"
        );
        assert!(
            Schedules::parse_for(Path::new("s.toml"), text, None)
                .0
                .is_some()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_at_its_place() {
        let found = parse(
            r#"
[[schedules]]
name = "weekly"
when = "every funday at 20:00"
inventory = "fleet.toml"
policy = "p.toml"
on_freeze = "postpone"
severities = ["urgent"]
kinds = ["security", "os"]
include = ["a"]
exclude = ["a"]

[[schedules]]
name = "weekly"
when = "every monday 20:00"
inventory = ""
policy = "p.toml"
colour = "blue"
"#,
        )
        .unwrap_err();
        assert_eq!(found.len(), 8, "{found:#?}");
        // The recurrence's mistake at the word: line 4, column 15 is `funday`.
        assert!(
            found.iter().any(|f| f.starts_with(
                "/etc/ringleader/schedules.toml:4:15: `schedules[0].when`: expected a weekday"
            )),
            "{found:#?}"
        );
        for part in [
            "`postpone` is not what a run in a freeze can do",
            "`urgent` is not a severity",
            "`os` is not a patch kind",
            "patch `a` is both included and excluded",
            "schedule name `weekly` is used twice",
            "no inventory file named",
            "unknown field `colour`",
        ] {
            assert!(found.iter().any(|f| f.contains(part)), "{part}: {found:#?}");
        }
        assert!(parse("").unwrap_err()[0].contains("the file has no schedules"));
    }
}
