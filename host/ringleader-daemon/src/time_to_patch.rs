//! Time to patch from what the daemon keeps (docs/reports.md): each patch's first
//! sighting (the publications), the installs its rollouts' logs hold, and the devices
//! of the registry still lacking a patch (its compliance). The numbers are
//! `ringleader_planner::time_to_patch`'s; the continuous demo reads its rollouts'
//! logs the same way.

use jiff::Timestamp;
use ringleader_api::demo::TimeToPatchV1;
use ringleader_engine::store::{Record, StoredEvent};
use ringleader_planner::time_to_patch::SeverityTimes;
use std::collections::BTreeMap;

type Job = (u16, u32);

/// The installs a rollout's log holds: steps that succeeded, on devices not rolled
/// back since (a device rolled back and then retried keeps what the retry installed).
#[derive(Debug, Default)]
pub struct LogInstalls {
    /// Per job, its steps that succeeded and when.
    succeeded: BTreeMap<Job, Vec<(u16, i64)>>,
}

impl LogInstalls {
    /// Takes the next record of the log, in order.
    pub fn see(&mut self, record: &Record) {
        if let Record::Event { at, event } = record {
            match event {
                StoredEvent::StepSucceeded { job, step, .. } => {
                    self.succeeded.entry(*job).or_default().push((*step, *at));
                }
                StoredEvent::RollbackFinished { job, ok: true, .. } => {
                    self.succeeded.remove(job);
                }
                _ => {}
            }
        }
    }

    /// Each install as (device, patch, when), `job` naming a job's device and the
    /// patches of its steps; a job it does not know is left out.
    pub fn installs<'a>(
        self,
        job: impl Fn(Job) -> Option<(&'a str, &'a [String])>,
    ) -> Vec<(String, String, Timestamp)> {
        let mut out = Vec::new();
        for (j, steps) in self.succeeded {
            let Some((device, patches)) = job(j) else {
                continue;
            };
            for (step, at) in steps {
                if let (Some(patch), Ok(at)) =
                    (patches.get(usize::from(step)), Timestamp::from_second(at))
                {
                    out.push((device.to_string(), patch.clone(), at));
                }
            }
        }
        out
    }
}

/// One severity's numbers as the API gives them.
pub fn times_v1(t: &SeverityTimes) -> TimeToPatchV1 {
    TimeToPatchV1 {
        severity: t.severity.into(),
        patches: t.patches,
        pairs: t.pairs,
        installed: t.installed,
        outstanding: t.outstanding,
        median_seconds: t.median_secs,
        p95_seconds: t.p95_secs,
        within_7_days: t.within[0],
        within_14_days: t.within[1],
        within_30_days: t.within[2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_undoes_what_came_before_it_not_what_a_retry_installs_after() {
        let ok = |job: Job, step: u16, at: i64| Record::Event {
            at,
            event: StoredEvent::StepSucceeded {
                job,
                step,
                reboot_pending: false,
            },
        };
        let mut log = LogInstalls::default();
        log.see(&ok((0, 0), 0, 10));
        log.see(&ok((0, 1), 0, 11));
        log.see(&Record::Event {
            at: 12,
            event: StoredEvent::RollbackFinished {
                job: (0, 1),
                ok: true,
                reason: None,
            },
        });
        log.see(&ok((0, 0), 1, 13));
        log.see(&ok((0, 1), 0, 20));
        let jobs: BTreeMap<Job, (String, Vec<String>)> = [
            (
                (0, 0),
                ("a".to_string(), vec!["p1".to_string(), "p2".to_string()]),
            ),
            ((0, 1), ("b".to_string(), vec!["p1".to_string()])),
        ]
        .into();
        let got: Vec<(String, String, i64)> = log
            .installs(|j| jobs.get(&j).map(|(d, p)| (d.as_str(), p.as_slice())))
            .into_iter()
            .map(|(d, p, t)| (d, p, t.as_second()))
            .collect();
        let want = [("a", "p1", 10), ("a", "p2", 13), ("b", "p1", 20)]
            .map(|(d, p, t)| (d.to_string(), p.to_string(), t));
        assert_eq!(got, want);
    }
}
