//! What the crash tests check in a rollout log: every result after its dispatch, and
//! a resumed run's decisions equal to an uninterrupted run's. Shared by the demo's and
//! the daemon's kill tests.

use ringleader_engine::store::{Record, Store, StoredEvent};
use std::path::Path;

/// Every record of the rollout store in `dir`, in order.
pub fn records(dir: &Path) -> Vec<Record> {
    Store::open(dir)
        .unwrap_or_else(|e| panic!("open the rollout store {}: {e}", dir.display()))
        .records()
        .unwrap_or_else(|e| panic!("read the rollout log in {}: {e}", dir.display()))
}

/// Every result in `log` follows its dispatch.
pub fn assert_write_ahead(log: &[Record]) {
    let mut dispatched = std::collections::HashSet::new();
    let mut rollbacks = std::collections::HashSet::new();
    let mut reboots = std::collections::HashSet::new();
    for (seq, record) in log.iter().enumerate() {
        match record {
            Record::Dispatched { job, step, .. } => {
                dispatched.insert((*job, *step));
            }
            Record::RollbackDispatched { job, .. } => {
                rollbacks.insert(*job);
            }
            Record::RebootDispatched { job, .. } => {
                reboots.insert(*job);
            }
            Record::Event {
                event: StoredEvent::RebootFinished { job, .. },
                ..
            } => assert!(
                reboots.contains(job),
                "record {seq}: the reboot of job {job:?} has no dispatch before it"
            ),
            Record::Event {
                event:
                    StoredEvent::StepSucceeded { job, step, .. }
                    | StoredEvent::StepFailed { job, step, .. },
                ..
            } => assert!(
                dispatched.contains(&(*job, *step)),
                "record {seq}: the result of job {job:?} step {step} has no dispatch before it"
            ),
            Record::Event {
                event: StoredEvent::RollbackFinished { job, .. },
                ..
            } => assert!(
                rollbacks.contains(job),
                "record {seq}: the rollback of job {job:?} has no dispatch before it"
            ),
            _ => {}
        }
    }
}

/// The two logs hold the same events, dispatches and decisions at the same times:
/// equal second by second, in any order within a second, leaving out what only says
/// the engine restarted (`resumed` records and the ticks of time passing, which move
/// nothing by themselves).
pub fn assert_same_decisions(reference: &[Record], resumed: &[Record]) {
    let by_second = |log: &[Record]| {
        let mut seconds: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for record in log {
            let at = match record {
                Record::Resumed { .. }
                | Record::Event {
                    event: StoredEvent::Tick,
                    ..
                } => continue,
                Record::Event { at, .. }
                | Record::Dispatched { at, .. }
                | Record::RollbackDispatched { at, .. }
                | Record::RebootDispatched { at, .. }
                | Record::BootObserved { at, .. }
                | Record::Observed { at, .. }
                | Record::Joined { at, .. }
                | Record::Decided { at, .. }
                | Record::Audit { at, .. }
                | Record::Stalled { at, .. } => *at,
            };
            seconds
                .entry(at)
                .or_default()
                .push(serde_json::to_string(record).unwrap());
        }
        for records in seconds.values_mut() {
            records.sort();
        }
        seconds
    };
    let (reference, resumed) = (by_second(reference), by_second(resumed));
    for (at, records) in &reference {
        assert_eq!(
            resumed.get(at),
            Some(records),
            "the logs differ at {}",
            jiff::Timestamp::from_second(*at).unwrap()
        );
    }
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        resumed.keys().collect::<Vec<_>>(),
        "the resumed log has records at other times"
    );
}
