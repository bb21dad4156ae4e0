//! Standing schedules (`schedules.toml`, docs/schedules.md): which inventory, which
//! policy, which patches, and when, as a recurrence in a time zone
//! (`ringleader-recurrence`). Parsed like every file people write: every problem at
//! once, each at its file:line:col, a recurrence's mistake at the word at fault.
//!
//! A run that falls on a date of one of its policy's `[[freeze]]`s (in the schedule's
//! zone) is moved to the first day after the freeze, at the schedule's time, or skipped,
//! as the schedule says (`on_freeze`); [`Schedule::runs`] says which, and why.

use crate::policy::{Freeze, kind_name, severity_name};
use jiff::{Timestamp, ToSpan, Zoned};
use ringleader_diag::{Diagnostics, Seg};
use ringleader_recurrence::Recurrence;
use ringleader_types::{PatchKind, Severity};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const HINT: &str = "a schedules file holds [[schedules]] tables with name, when, inventory, policy, on_freeze and the patch filters kinds, severities, cves, include, exclude: see docs/schedules.md";

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

/// One standing schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub when: Recurrence,
    /// Paths as written, resolved against the schedules file's directory.
    pub inventory: PathBuf,
    pub policy: PathBuf,
    pub on_freeze: OnFreeze,
    pub patches: PatchFilter,
}

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
    inventory: String,
    policy: String,
    on_freeze: Option<String>,
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
}

const KINDS: [PatchKind; 4] = [
    PatchKind::Security,
    PatchKind::Bugfix,
    PatchKind::Feature,
    PatchKind::Firmware,
];

impl Schedules {
    /// Reads and validates the schedules file at `path`.
    pub fn check(path: &Path) -> Result<(Option<Schedules>, Diagnostics), std::io::Error> {
        match ringleader_diag::read_file("schedules", path) {
            Ok(text) => Ok(Schedules::parse(path, &text)),
            Err(ringleader_diag::FileError::Invalid(diags)) => Ok((None, diags)),
            Err(ringleader_diag::FileError::Read { error, .. }) => Err(error),
        }
    }

    /// Validates schedules `text` read from `path`: every problem at once.
    pub fn parse(path: &Path, text: &str) -> (Option<Schedules>, Diagnostics) {
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
            let mut patches = PatchFilter {
                cves: s.cves.clone(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
                ..PatchFilter::default()
            };
            for (j, k) in s.kinds.iter().enumerate() {
                match KINDS.into_iter().find(|v| kind_name(*v) == k) {
                    Some(v) => patches.kinds.push(v),
                    None => d.error_at(
                        &[
                            Seg::Key("schedules"),
                            Seg::Index(i),
                            Seg::Key("kinds"),
                            Seg::Index(j),
                        ],
                        format!("`{k}` is not a patch kind"),
                        "use security, bugfix, feature or firmware",
                    ),
                }
            }
            for (j, v) in s.severities.iter().enumerate() {
                match crate::compliance::SEVERITIES
                    .into_iter()
                    .find(|s| severity_name(*s) == v)
                {
                    Some(s) => patches.severities.push(s),
                    None => d.error_at(
                        &[
                            Seg::Key("schedules"),
                            Seg::Index(i),
                            Seg::Key("severities"),
                            Seg::Index(j),
                        ],
                        format!("`{v}` is not a severity"),
                        "use low, medium, high, critical or unknown",
                    ),
                }
            }
            for (j, id) in s.include.iter().enumerate() {
                if s.exclude.contains(id) {
                    d.error_at(
                        &[
                            Seg::Key("schedules"),
                            Seg::Index(i),
                            Seg::Key("include"),
                            Seg::Index(j),
                        ],
                        format!("patch `{id}` is both included and excluded"),
                        "keep it in one of the two lists",
                    );
                }
            }
            for key in ["inventory", "policy"] {
                let file = if key == "inventory" {
                    &s.inventory
                } else {
                    &s.policy
                };
                if file.trim().is_empty() {
                    d.error_at(
                        &at(key),
                        format!("no {key} file named"),
                        "give its path, relative to this file",
                    );
                }
            }
            if let Some(when) = when {
                schedules.push(Schedule {
                    name: s.name.clone(),
                    when,
                    inventory: base.join(&s.inventory),
                    policy: base.join(&s.policy),
                    on_freeze,
                    patches,
                });
            }
        }
        d.sort();
        let ok = !d.has_errors();
        (ok.then_some(Schedules { schedules }), d)
    }
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

impl Schedule {
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
        assert_eq!(s.inventory, Path::new("/etc/ringleader/fleet.toml"));
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
