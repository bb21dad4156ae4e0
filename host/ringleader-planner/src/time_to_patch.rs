//! Time to patch: for each severity, how long devices took from a patch's
//! publication (when Ringleader first saw it) to its install, and the share of the
//! devices that needed it which had it within 7, 14 and 30 days (Windows Autopatch's
//! "95% within 21 days" style of target). Pure: publications, the pairs that needed
//! each patch, the installs and the time of the report in; numbers out.
//!
//! - The durations are those of the installed pairs: the median and the 95th
//!   percentile by nearest rank (the smallest duration at or above that share of
//!   them). Pairs not installed yet are counted apart (`outstanding`).
//! - "Within N days" counts a pair once it is decided: installed within N days, or
//!   published at least N days before the report. A pair published fewer than N days
//!   ago and not installed yet may still make it, and is left out of that share.

use crate::compliance::{SEVERITIES, rank};
use ringleader_types::{Severity, Timestamp};
use std::collections::HashMap;

/// The windows the shares are given for, in days.
pub const WITHIN_DAYS: [u32; 3] = [7, 14, 30];

const DAY: i64 = 86_400;

/// A patch and when it was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub patch: String,
    pub severity: Severity,
    /// Seconds since the Unix epoch.
    pub published: Timestamp,
}

/// A device that needed a patch, and when it got it, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub patch: String,
    pub device: String,
    pub installed: Option<Timestamp>,
}

/// One severity's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityTimes {
    pub severity: Severity,
    /// Patches of this severity published.
    pub patches: u32,
    /// (device, patch) pairs that needed one of them.
    pub pairs: u32,
    pub installed: u32,
    /// Needed, not installed yet.
    pub outstanding: u32,
    /// Seconds from publication to install; `None` with no installs.
    pub median_secs: Option<i64>,
    pub p95_secs: Option<i64>,
    /// Per [`WITHIN_DAYS`] window: the share (0 to 1) of the decided pairs installed
    /// within it; `None` when no pair is decided yet.
    pub within: [Option<f64>; WITHIN_DAYS.len()],
}

/// The report at `at`, one entry per severity that has a publication, most severe
/// first. A pair whose patch has no publication is left out; an install before its
/// publication counts as at it (seen late: the source reported it after devices had
/// it); a publication or an install after `at` is not counted (a report for an
/// earlier time).
pub fn report(publications: &[Publication], pairs: &[Pair], at: Timestamp) -> Vec<SeverityTimes> {
    let by_id: HashMap<&str, &Publication> = publications
        .iter()
        .filter(|p| p.published <= at)
        .map(|p| (p.patch.as_str(), p))
        .collect();
    let mut patches = [0u32; SEVERITIES.len()];
    for p in by_id.values() {
        patches[rank(p.severity)] += 1;
    }
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); SEVERITIES.len()];
    let mut needed = [0u32; SEVERITIES.len()];
    let mut decided = [[0u32; WITHIN_DAYS.len()]; SEVERITIES.len()];
    let mut made_it = [[0u32; WITHIN_DAYS.len()]; SEVERITIES.len()];
    for pair in pairs {
        let Some(p) = by_id.get(pair.patch.as_str()) else {
            continue;
        };
        let r = rank(p.severity);
        needed[r] += 1;
        // An install after the report's time is not known at it.
        let took = pair
            .installed
            .filter(|t| *t <= at)
            .map(|t| (t - p.published).max(0));
        if let Some(took) = took {
            durations[r].push(took);
        }
        for (w, days) in WITHIN_DAYS.iter().enumerate() {
            let window = i64::from(*days) * DAY;
            let within = took.is_some_and(|t| t <= window);
            if within || at.saturating_sub(p.published) >= window {
                decided[r][w] += 1;
                made_it[r][w] += u32::from(within);
            }
        }
    }
    SEVERITIES
        .iter()
        .rev()
        .filter(|s| patches[rank(**s)] > 0)
        .map(|&severity| {
            let r = rank(severity);
            let d = &mut durations[r];
            d.sort_unstable();
            let mut within = [None; WITHIN_DAYS.len()];
            for (w, share) in within.iter_mut().enumerate() {
                if decided[r][w] > 0 {
                    *share = Some(f64::from(made_it[r][w]) / f64::from(decided[r][w]));
                }
            }
            SeverityTimes {
                severity,
                patches: patches[r],
                pairs: needed[r],
                installed: d.len() as u32,
                outstanding: needed[r] - d.len() as u32,
                median_secs: nearest_rank(d, 50),
                p95_secs: nearest_rank(d, 95),
                within,
            }
        })
        .collect()
}

/// The `percent`th percentile of `sorted` by nearest rank.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T00:00:00Z.
    const T0: Timestamp = 1_795_910_400;

    fn publication(patch: &str, severity: Severity, day: i64) -> Publication {
        Publication {
            patch: patch.into(),
            severity,
            published: T0 + day * DAY,
        }
    }

    fn pair(patch: &str, device: usize, installed_day: Option<f64>) -> Pair {
        Pair {
            patch: patch.into(),
            device: format!("dev-{device}"),
            installed: installed_day.map(|d| T0 + (d * DAY as f64) as i64),
        }
    }

    #[test]
    fn medians_percentiles_and_shares_by_severity() {
        let publications = [
            publication("crit-1", Severity::Critical, 0),
            publication("high-1", Severity::High, 0),
            publication("high-2", Severity::High, 20),
        ];
        // crit-1 (day 0): installed after 1, 2, 3 and 20 days on four devices.
        let mut pairs: Vec<Pair> = [1.0, 2.0, 3.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, d)| pair("crit-1", i, Some(*d)))
            .collect();
        // high-1 (day 0): after 5 and 15 days, one never; high-2 (day 20): one
        // device not yet, at day 25 (5 days after: not decided for any window).
        pairs.push(pair("high-1", 0, Some(5.0)));
        pairs.push(pair("high-1", 1, Some(15.0)));
        pairs.push(pair("high-1", 2, None));
        pairs.push(pair("high-2", 0, None));
        // A patch without a publication is left out.
        pairs.push(pair("unknown", 0, Some(1.0)));
        let at = T0 + 25 * DAY;
        let r = report(&publications, &pairs, at);
        assert_eq!(r.len(), 2);
        let crit = &r[0];
        assert_eq!(crit.severity, Severity::Critical);
        assert_eq!(
            (crit.patches, crit.pairs, crit.installed, crit.outstanding),
            (1, 4, 4, 0)
        );
        // Sorted 1, 2, 3, 20 days: the median by nearest rank is the 2nd, the 95th the 4th.
        assert_eq!(crit.median_secs, Some(2 * DAY));
        assert_eq!(crit.p95_secs, Some(20 * DAY));
        // Published 25 days before the report: 7 and 14 days are decided for every
        // pair, 3 of 4 within. 30 days: the 20-day install is within, 4 of 4.
        assert_eq!(crit.within, [Some(0.75), Some(0.75), Some(1.0)]);
        // At day 10 the 20-day install is not known: 3 installed, 1 outstanding, and
        // the 14-day window is not decided for it.
        let early = report(&publications, &pairs, T0 + 10 * DAY);
        assert_eq!((early[0].installed, early[0].outstanding), (3, 1));
        assert_eq!(early[0].within, [Some(0.75), Some(1.0), Some(1.0)]);
        // high-2 is published after day 10: only high-1 counts.
        assert_eq!((early[1].patches, early[1].pairs), (1, 3));
        let high = &r[1];
        assert_eq!(
            (high.patches, high.pairs, high.installed, high.outstanding),
            (2, 4, 2, 2)
        );
        assert_eq!(high.median_secs, Some(5 * DAY));
        assert_eq!(high.p95_secs, Some(15 * DAY));
        // 7 days: high-1's three pairs are decided (25 days since): 1 of 3; high-2's
        // pair is 5 days old, undecided. 14 days: 1 of 3. 30 days: high-1's
        // uninstalled pair is 25 days old, undecided; its two installs are within: 2
        // of 2.
        let third = 1.0 / 3.0;
        assert_eq!(high.within, [Some(third), Some(third), Some(1.0)]);
    }

    #[test]
    fn an_install_seen_before_its_publication_counts_as_at_it_and_empty_is_none() {
        let publications = [publication("p", Severity::Low, 3)];
        let r = report(&publications, &[pair("p", 0, Some(1.0))], T0 + 4 * DAY);
        assert_eq!(r[0].median_secs, Some(0));
        assert_eq!(r[0].within, [Some(1.0), Some(1.0), Some(1.0)]);
        let r = report(&publications, &[], T0 + 4 * DAY);
        assert_eq!(
            (r[0].pairs, r[0].median_secs, r[0].within),
            (0, None, [None; 3])
        );
        assert!(report(&[], &[], T0).is_empty());
    }
}
