//! When may an install start on a device: maintenance windows and freezes, evaluated in
//! the device's own time zone.

use crate::policy::{Freeze, Window};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use std::time::Duration;

/// The far future at which every computed time saturates: 9999-01-01T00:00:00Z. A
/// start at or after it never comes: an install held there waits (the rollout is
/// reported as waiting), nothing is asked to wake up for it, and time never jumps to
/// it. It sits a year inside jiff's range, so a date around it still converts in any
/// time zone.
pub const NEVER: Timestamp = Timestamp::constant(253_370_764_800, 0);

/// The latest date a policy (freezes) or a planning time may name: before 9000-01-01.
/// With durations at most [`MAX_DURATION`], whatever the planner and the core add to
/// such a date stays far below [`NEVER`] for any realistic number of rings; longer
/// sums saturate at [`NEVER`] rather than wrap.
pub const LAST_DATE: Date = jiff::civil::date(8999, 12, 31);

/// The longest duration a policy may give (soak, `unresponsive_after`, deferral):
/// 100 years (36,525 days).
pub const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// `t + d`, saturating at [`NEVER`] (never wrapping, never falling back to `t`).
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    add_seconds(t, i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `t + seconds` (which may be negative), saturating at [`NEVER`] and at jiff's
/// earliest time.
pub fn add_seconds(t: Timestamp, seconds: i64) -> Timestamp {
    let s = t.as_second().saturating_add(seconds);
    if s >= NEVER.as_second() {
        return NEVER.max(t);
    }
    Timestamp::from_second(s).unwrap_or(Timestamp::MIN)
}

/// Whether `t` can be planned from: before [`LAST_DATE`] ends (in UTC). Says the limit
/// when not (what `--at` and the like report).
pub fn check_time(t: Timestamp) -> Result<Timestamp, String> {
    if t.to_zoned(TimeZone::UTC).date() > LAST_DATE {
        return Err(format!(
            "{t} is past the scheduling limit: times must be before 9000-01-01T00:00:00Z"
        ));
    }
    Ok(t)
}

/// The earliest start, and what moved it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earliest {
    pub at: Timestamp,
    /// A freeze (by index in the policy) that pushed the start past its end.
    pub frozen_by: Option<usize>,
    /// The start was moved to the next opening of the maintenance window.
    pub waited_for_window: bool,
}

/// Bound on window/freeze hops: freezes end, windows open weekly; more means a bug.
const MAX_HOPS: usize = 1_000;

/// The earliest time at or after `t` when an install may start on a device in `tz`:
/// not on a frozen date, and inside `window` when there is one. Also says what delayed it.
/// Total: when no such time is representable (a freeze to the end of time, say) it is
/// [`NEVER`], never a time inside a freeze.
pub fn earliest(
    t: Timestamp,
    tz: &TimeZone,
    window: Option<&Window>,
    freezes: &[Freeze],
) -> Earliest {
    let mut frozen_by = None;
    let mut waited_for_window = false;
    let never = |frozen_by, waited_for_window| Earliest {
        at: NEVER,
        frozen_by,
        waited_for_window,
    };
    if t >= NEVER {
        return never(None, false);
    }
    let mut z = t.to_zoned(tz.clone());
    for _ in 0..MAX_HOPS {
        if z.timestamp() >= NEVER {
            return never(frozen_by, waited_for_window);
        }
        if let Some(i) = freezes
            .iter()
            .position(|f| f.from <= z.date() && z.date() <= f.to)
        {
            frozen_by.get_or_insert(i);
            let after = freezes[i].to.tomorrow().ok();
            match after.and_then(|d| at(d.to_datetime(jiff::civil::Time::midnight()), tz)) {
                Some(next) => z = next,
                None => return never(frozen_by, waited_for_window),
            }
            continue;
        }
        if let Some(w) = window
            && !inside(&z, w)
        {
            waited_for_window = true;
            match next_open(&z, w, tz) {
                Some(next) => z = next,
                None => return never(frozen_by, waited_for_window),
            }
            continue;
        }
        return Earliest {
            at: z.timestamp(),
            frozen_by,
            waited_for_window,
        };
    }
    // Hops without end: no start can be found, so none is made up.
    never(frozen_by, waited_for_window)
}

/// `dt` in `tz`; `None` past the representable range.
fn at(dt: DateTime, tz: &TimeZone) -> Option<Zoned> {
    // A local time skipped by a DST change resolves to the time just after the gap.
    dt.to_zoned(tz.clone()).ok()
}

fn opens_on(w: &Window, d: Date) -> bool {
    w.days[d.weekday().to_monday_zero_offset() as usize]
}

/// Whether `z` falls inside an opening of `w` (one that started today or yesterday).
pub fn inside(z: &Zoned, w: &Window) -> bool {
    let now = z.datetime();
    let today = z.date();
    let yesterday = today.yesterday().unwrap_or(today);
    [yesterday, today].into_iter().any(|d| {
        if !opens_on(w, d) {
            return false;
        }
        let start = d.to_datetime(w.start);
        let end_day = if w.end > w.start {
            d
        } else {
            d.tomorrow().unwrap_or(d)
        };
        let end = end_day.to_datetime(w.end);
        start <= now && now < end
    })
}

/// The next opening of `w` at or after `z`; `None` when there is none in range.
fn next_open(z: &Zoned, w: &Window, tz: &TimeZone) -> Option<Zoned> {
    let mut d = z.date();
    for _ in 0..8 {
        let start = d.to_datetime(w.start);
        if opens_on(w, d) && start >= z.datetime() {
            return at(start, tz);
        }
        d = d.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn weeknights() -> Window {
        let mut days = [false; 7];
        days[..4].fill(true); // mon-thu
        Window {
            days,
            start: time(22, 0, 0, 0),
            end: time(4, 0, 0, 0),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_crossing_midnight_is_open_the_next_morning() {
        let ams = TimeZone::get("Europe/Amsterdam").unwrap();
        // Friday 2026-12-04 02:00 local is inside Thursday's opening (22:00-04:00).
        let t = date(2026, 12, 4)
            .at(2, 0, 0, 0)
            .to_zoned(ams.clone())
            .unwrap();
        assert_eq!(
            earliest(t.timestamp(), &ams, Some(&weeknights()), &[]).at,
            t.timestamp()
        );
        // Friday 05:00 is past it: next opening is Monday 22:00.
        let t = date(2026, 12, 4)
            .at(5, 0, 0, 0)
            .to_zoned(ams.clone())
            .unwrap();
        let e = earliest(t.timestamp(), &ams, Some(&weeknights()), &[]);
        let expected = date(2026, 12, 7)
            .at(22, 0, 0, 0)
            .to_zoned(ams.clone())
            .unwrap();
        assert_eq!(e.at, expected.timestamp());
        assert!(e.waited_for_window && e.frozen_by.is_none());
    }

    #[test]
    fn windows_are_in_each_devices_own_time_zone() {
        let ams = TimeZone::get("Europe/Amsterdam").unwrap();
        let nyc = TimeZone::get("America/New_York").unwrap();
        // Monday 2026-11-30 12:00 UTC: Amsterdam opens at 21:00 UTC, New York at 03:00
        // UTC on Tuesday.
        let t = ts("2026-11-30T12:00:00Z");
        let a = earliest(t, &ams, Some(&weeknights()), &[]).at;
        let n = earliest(t, &nyc, Some(&weeknights()), &[]).at;
        assert_eq!(a, ts("2026-11-30T21:00:00Z"));
        assert_eq!(n, ts("2026-12-01T03:00:00Z"));
    }

    #[test]
    fn a_freeze_to_the_end_of_time_means_never() {
        let freeze = Freeze {
            from: date(1, 1, 1),
            to: date(9999, 12, 31),
            reason: "forever".into(),
        };
        for tz in [TimeZone::UTC, TimeZone::get("Pacific/Kiritimati").unwrap()] {
            let e = earliest(
                ts("2026-12-01T00:00:00Z"),
                &tz,
                None,
                std::slice::from_ref(&freeze),
            );
            assert_eq!((e.at, e.frozen_by), (NEVER, Some(0)));
            let e = earliest(
                ts("2026-12-01T00:00:00Z"),
                &tz,
                Some(&weeknights()),
                std::slice::from_ref(&freeze),
            );
            assert_eq!(e.at, NEVER);
        }
        // A freeze ending just before never: the start is never too, not a wrap.
        let late = Freeze {
            from: date(2026, 1, 1),
            to: date(9998, 12, 31),
            reason: String::new(),
        };
        assert_eq!(
            earliest(ts("2026-12-01T00:00:00Z"), &TimeZone::UTC, None, &[late]).at,
            NEVER
        );
        assert_eq!(
            earliest(Timestamp::MAX, &TimeZone::UTC, None, &[]).at,
            NEVER
        );
    }

    #[test]
    fn additions_saturate_at_never() {
        let t = ts("2026-12-01T00:00:00Z");
        assert_eq!(add(t, Duration::from_secs(2_920_000 * 86_400)), NEVER);
        assert_eq!(add(t, Duration::MAX), NEVER);
        assert_eq!(add(Timestamp::MAX, Duration::ZERO), Timestamp::MAX);
        assert_eq!(add(t, Duration::from_secs(60)), ts("2026-12-01T00:01:00Z"));
        assert_eq!(add_seconds(t, i64::MIN), Timestamp::MIN);
        assert!(check_time(ts("8999-12-31T23:59:59Z")).is_ok());
        assert!(check_time(ts("9000-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn freezes_push_past_their_last_day_then_windows_apply() {
        let utc = TimeZone::UTC;
        let freeze = Freeze {
            from: date(2026, 12, 21),
            to: date(2027, 1, 3),
            reason: "year end".into(),
        };
        let e = earliest(
            ts("2026-12-22T23:00:00Z"),
            &utc,
            Some(&weeknights()),
            std::slice::from_ref(&freeze),
        );
        // 2027-01-04 is a Monday; the window opens at 22:00.
        assert_eq!(e.at, ts("2027-01-04T22:00:00Z"));
        assert_eq!((e.frozen_by, e.waited_for_window), (Some(0), true));
        // Without a window: midnight after the freeze.
        let e = earliest(ts("2026-12-22T23:00:00Z"), &utc, None, &[freeze]);
        assert_eq!(e.at, ts("2027-01-04T00:00:00Z"));
    }
}
