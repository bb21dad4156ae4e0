//! When may an install start on a device: maintenance windows and freezes, evaluated in
//! the device's own time zone.

use crate::policy::{Freeze, Window};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

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
pub fn earliest(
    t: Timestamp,
    tz: &TimeZone,
    window: Option<&Window>,
    freezes: &[Freeze],
) -> Earliest {
    let mut z = t.to_zoned(tz.clone());
    let mut frozen_by = None;
    let mut waited_for_window = false;
    for _ in 0..MAX_HOPS {
        if let Some(i) = freezes
            .iter()
            .position(|f| f.from <= z.date() && z.date() <= f.to)
        {
            let after = freezes[i].to.tomorrow().unwrap_or(freezes[i].to);
            z = at(after.to_datetime(jiff::civil::Time::midnight()), tz);
            frozen_by.get_or_insert(i);
            continue;
        }
        if let Some(w) = window
            && !inside(&z, w)
        {
            z = next_open(&z, w, tz);
            waited_for_window = true;
            continue;
        }
        break;
    }
    Earliest {
        at: z.timestamp(),
        frozen_by,
        waited_for_window,
    }
}

fn at(dt: DateTime, tz: &TimeZone) -> Zoned {
    // A local time skipped by a DST change resolves to the time just after the gap.
    dt.to_zoned(tz.clone())
        .unwrap_or_else(|_| Timestamp::UNIX_EPOCH.to_zoned(tz.clone()))
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

/// The next opening of `w` at or after `z`.
fn next_open(z: &Zoned, w: &Window, tz: &TimeZone) -> Zoned {
    let mut d = z.date();
    for _ in 0..8 {
        let start = d.to_datetime(w.start);
        if opens_on(w, d) && start >= z.datetime() {
            return at(start, tz);
        }
        d = d.tomorrow().unwrap_or(d);
    }
    z.clone()
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
