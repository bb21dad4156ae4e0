//! Runs checked by hand against a calendar (and Python's zoneinfo for the DST nights).

use super::*;

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The next `n` runs after `after`, as UTC instants.
fn runs(text: &str, after: &str, n: usize) -> Vec<String> {
    Recurrence::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .next_runs(t(after), n)
        .iter()
        .map(|z| z.timestamp().to_string())
        .collect()
}

#[test]
fn patch_tuesday_plus_two_days_in_amsterdam() {
    // December 2026: Tuesday the 1st, so the second Tuesday is the 8th, +2: the 10th;
    // 22:00 CET is 21:00 UTC. March 2027's is the 9th, +2: the 11th (still CET).
    assert_eq!(
        runs(
            "second tuesday of the month + 2 days at 22:00 Europe/Amsterdam",
            "2026-12-02T12:00:00Z",
            4
        ),
        [
            "2026-12-10T21:00:00Z",
            "2027-01-14T21:00:00Z",
            "2027-02-11T21:00:00Z",
            "2027-03-11T21:00:00Z"
        ]
    );
    // The run itself is not "after" itself: asked at that instant, the next month's.
    assert_eq!(
        runs(
            "second tuesday of the month + 2 days at 22:00 Europe/Amsterdam",
            "2026-12-10T21:00:00Z",
            1
        ),
        ["2027-01-14T21:00:00Z"]
    );
}

#[test]
fn an_offset_may_carry_a_run_into_the_next_month() {
    // The last Friday of January 2027 is the 29th; five days later is 3 February.
    assert_eq!(
        runs(
            "last friday of the month + 5 days at 08:00",
            "2027-01-20T00:00:00Z",
            2
        ),
        ["2027-02-03T08:00:00Z", "2027-03-03T08:00:00Z"]
    );
}

#[test]
fn weekly_runs_and_every_day() {
    // Monday 7 December 2026 at 20:00 UTC (no zone: UTC).
    assert_eq!(
        runs("every monday 20:00", "2026-12-02T12:00:00Z", 2),
        ["2026-12-07T20:00:00Z", "2026-12-14T20:00:00Z"]
    );
    assert_eq!(
        runs(
            "Every Tuesday, Thursday at 06:30 UTC",
            "2026-12-02T12:00:00Z",
            3
        ),
        [
            "2026-12-03T06:30:00Z",
            "2026-12-08T06:30:00Z",
            "2026-12-10T06:30:00Z"
        ]
    );
}

#[test]
fn every_fourteen_days_from_a_date() {
    // 2026-01-05 + 14 days x 24 = 2026-12-07.
    assert_eq!(
        runs(
            "every 14 days from 2026-01-05 at 22:00",
            "2026-12-02T00:00:00Z",
            2
        ),
        ["2026-12-07T22:00:00Z", "2026-12-21T22:00:00Z"]
    );
    // Nothing before the first date.
    assert_eq!(
        runs(
            "every 14 days from 2027-01-04 at 22:00",
            "2026-01-01T00:00:00Z",
            1
        ),
        ["2027-01-04T22:00:00Z"]
    );
}

#[test]
fn a_time_skipped_by_dst_runs_after_the_gap_and_a_repeated_one_runs_once() {
    // Amsterdam springs forward on 28 March 2027 at 02:00 CET: 02:30 does not exist
    // and runs at 03:30 CEST (01:30 UTC), once.
    assert_eq!(
        runs(
            "every day at 02:30 Europe/Amsterdam",
            "2027-03-26T12:00:00Z",
            3
        ),
        [
            "2027-03-27T01:30:00Z",
            "2027-03-28T01:30:00Z",
            "2027-03-29T00:30:00Z"
        ]
    );
    // It falls back on 25 October 2026: 02:30 occurs twice; the run is at the first
    // (CEST, 00:30 UTC) and not again an hour later.
    assert_eq!(
        runs(
            "every day at 02:30 Europe/Amsterdam",
            "2026-10-24T12:00:00Z",
            2
        ),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

#[test]
fn a_month_without_the_day_has_no_run() {
    assert_eq!(
        runs("day 31 of the month at 03:00", "2027-01-01T00:00:00Z", 3),
        [
            "2027-01-31T03:00:00Z",
            "2027-03-31T03:00:00Z",
            "2027-05-31T03:00:00Z"
        ]
    );
}

/// Each mistake is named with its place in the text.
#[test]
fn mistakes_are_located() {
    let err = |text: &str| Recurrence::parse(text).unwrap_err();
    let e = err("every funday 20:00");
    assert_eq!((e.start, e.len), (6, 6), "{e:?}");
    assert!(e.message.contains("found `funday`"), "{e}");
    let e = err("second tuesday of the month at 25:00");
    assert_eq!((e.start, e.len), (31, 5), "{e:?}");
    assert_eq!(e.message, "`25:00` is not a time of day");
    let e = err("every monday 20:00 Europe/Gotham");
    assert_eq!(e.start, 19);
    assert_eq!(e.message, "unknown time zone `Europe/Gotham`");
    let e = err("fifth monday of the month at 10:00");
    assert!(e.message.starts_with("a recurrence starts with"), "{e}");
    let e = err("every 14 weeks from 2026-01-05 at 10:00");
    assert_eq!(e.message, "expected `days` after the number");
    let e = err("every monday");
    assert_eq!((e.start, e.len), (12, 0));
    assert!(e.message.contains("time of day"), "{e}");
    let e = err("   ");
    assert_eq!(e.message, "the recurrence is empty");
    let e = err("day 32 of the month at 10:00");
    assert_eq!(e.message, "the day of the month must be 1 to 31, not 32");
    let e = err("every monday 20:00 UTC tomorrow");
    assert!(e.message.contains("unexpected `tomorrow`"), "{e}");
}
