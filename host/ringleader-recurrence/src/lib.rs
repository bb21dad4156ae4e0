//! When standing schedules run (issue 16): a recurrence as people write it, parsed with
//! the place of every mistake, and its runs computed in its own time zone.
//!
//! The forms (words in any case, spaces between them free):
//!
//! - `every WEEKDAY[, WEEKDAY...] [at] HH:MM [ZONE]`: `every monday 20:00`,
//!   `every tuesday, thursday at 06:30 Europe/Berlin`; `every day at 02:30 UTC`;
//! - `every N days from YYYY-MM-DD [at] HH:MM [ZONE]`: `every 14 days from 2026-01-05
//!   at 22:00`;
//! - `ORDINAL WEEKDAY of the month [+ N days] [at] HH:MM [ZONE]`, ORDINAL one of
//!   `first`, `second`, `third`, `fourth`, `last`: `second tuesday of the month + 2
//!   days at 22:00 Europe/Amsterdam` (Patch Tuesday, two days later);
//! - `day N of the month [at] HH:MM [ZONE]` (1 to 31; a month without day N has no
//!   run that month).
//!
//! ZONE is an IANA time zone name; without one, `UTC`. Times are wall-clock times in
//! the zone: a run at a time a DST change skips (02:30 on a spring-forward night)
//! happens at the same offset after the gap (03:30), and one at a time that occurs
//! twice (the fall-back hour) happens at the first of the two; each day has one run.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// A recurrence that could not be read: where in the text (byte offsets), what is
/// wrong, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte offset of the word at fault in the text.
    pub start: usize,
    /// Its length (0 at the end of the text).
    pub len: usize,
    pub message: String,
    pub hint: String,
}

/// Which days a recurrence runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// These weekdays, every week (all seven: every day).
    Weekly(Vec<Weekday>),
    /// Every `n` days, counted from `from`.
    EveryN { n: u32, from: Date },
    /// The `nth` (1 to 4, or -1 for the last) `weekday` of each month, then `offset`
    /// days later (which may fall in the next month).
    NthWeekday {
        nth: i8,
        weekday: Weekday,
        offset: i32,
    },
    /// Day `day` of each month.
    DayOfMonth(i8),
}

/// A parsed recurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub days: Days,
    pub time: Time,
    pub zone: TimeZone,
    /// The zone as written (`UTC` when none was).
    pub zone_name: String,
    /// The text it was read from, trimmed.
    pub text: String,
}

/// A word of the text and where it is.
#[derive(Debug, Clone, Copy)]
struct Word<'a> {
    text: &'a str,
    start: usize,
}

fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        // `,` and `+` are words of their own.
        let sep = c.is_whitespace() || c == ',' || c == '+';
        match (sep, start) {
            (true, Some(s)) => {
                out.push(Word {
                    text: &text[s..i],
                    start: s,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
        if c == ',' || c == '+' {
            out.push(Word {
                text: &text[i..i + 1],
                start: i,
            });
        }
    }
    if let Some(s) = start {
        out.push(Word {
            text: &text[s..],
            start: s,
        });
    }
    out
}

const FORMS: &str = "write `every monday 20:00`, `every day at 02:30`, `every 14 days from 2026-01-05 at 22:00`, `second tuesday of the month + 2 days at 22:00 Europe/Amsterdam` or `day 1 of the month at 03:00`";

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word.to_ascii_lowercase().as_str() {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn ordinal(word: &str) -> Option<i8> {
    Some(match word.to_ascii_lowercase().as_str() {
        "first" | "1st" => 1,
        "second" | "2nd" => 2,
        "third" | "3rd" => 3,
        "fourth" | "4th" => 4,
        "last" => -1,
        _ => return None,
    })
}

/// Reads the words left to right.
struct Reader<'a> {
    text: &'a str,
    words: Vec<Word<'a>>,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<Word<'a>> {
        self.words.get(self.at).copied()
    }

    fn next(&mut self) -> Option<Word<'a>> {
        let w = self.peek();
        self.at += usize::from(w.is_some());
        w
    }

    fn error(&self, word: Option<Word<'_>>, message: String, hint: &str) -> ParseError {
        let (start, len) = word.map_or((self.text.len(), 0), |w| (w.start, w.text.len()));
        ParseError {
            start,
            len,
            message,
            hint: hint.to_string(),
        }
    }

    /// The next word, which must be `want` (case-insensitive).
    fn expect(&mut self, want: &str, hint: &str) -> Result<(), ParseError> {
        match self.next() {
            Some(w) if w.text.eq_ignore_ascii_case(want) => Ok(()),
            other => Err(self.error(
                other,
                match other {
                    Some(w) => format!("expected `{want}`, found `{}`", w.text),
                    None => format!("expected `{want}` at the end"),
                },
                hint,
            )),
        }
    }

    fn number(
        &mut self,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ParseError> {
        let w = self.next();
        match w.and_then(|w| w.text.parse::<i64>().ok()) {
            Some(n) if range.contains(&n) => Ok(n),
            Some(n) => Err(self.error(
                w,
                format!(
                    "{what} must be {} to {}, not {n}",
                    range.start(),
                    range.end()
                ),
                FORMS,
            )),
            None => Err(self.error(
                w,
                match w {
                    Some(w) => format!("expected {what} (a number), found `{}`", w.text),
                    None => format!("expected {what} (a number) at the end"),
                },
                FORMS,
            )),
        }
    }

    /// `[at] HH:MM [ZONE]` and the end.
    fn time_and_zone(&mut self) -> Result<(Time, TimeZone, String), ParseError> {
        if self
            .peek()
            .is_some_and(|w| w.text.eq_ignore_ascii_case("at"))
        {
            self.next();
        }
        let w = self.next();
        let time = match w {
            Some(w) => parse_time(w.text).ok_or_else(|| {
                self.error(
                    Some(w),
                    format!("`{}` is not a time of day", w.text),
                    "write the time as HH:MM on a 24-hour clock, e.g. `22:00` or `02:30`",
                )
            })?,
            None => {
                return Err(self.error(
                    None,
                    "expected the time of day (HH:MM) at the end".into(),
                    "end with the time, e.g. `at 22:00`, and optionally a time zone such as `Europe/Amsterdam`",
                ));
            }
        };
        let (zone, name) = match self.next() {
            None => (TimeZone::UTC, "UTC".to_string()),
            Some(w) => match jiff::tz::db().get(w.text) {
                Ok(tz) => (tz, w.text.to_string()),
                Err(_) => {
                    return Err(self.error(
                        Some(w),
                        format!("unknown time zone `{}`", w.text),
                        "use an IANA name such as `Europe/Amsterdam`, `America/New_York` or `UTC`",
                    ));
                }
            },
        };
        if let Some(extra) = self.next() {
            return Err(self.error(
                Some(extra),
                format!("unexpected `{}` after the time zone", extra.text),
                FORMS,
            ));
        }
        Ok((time, zone, name))
    }
}

fn parse_time(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    Time::new(h, m, 0, 0).ok()
}

impl Recurrence {
    /// Reads `text` (see the crate's docs for the forms).
    pub fn parse(text: &str) -> Result<Recurrence, ParseError> {
        let trimmed = text.trim();
        let offset = text.len() - text.trim_start().len();
        let mut r = Reader {
            text,
            words: words(text),
            at: 0,
        };
        let first = r.peek();
        let days = match first.map(|w| w.text.to_ascii_lowercase()) {
            None => {
                return Err(ParseError {
                    start: offset,
                    len: 0,
                    message: "the recurrence is empty".into(),
                    hint: FORMS.into(),
                });
            }
            Some(w) if w == "every" => {
                r.next();
                match r.peek() {
                    Some(w) if w.text.eq_ignore_ascii_case("day") => {
                        r.next();
                        Days::Weekly(vec![
                            Weekday::Monday,
                            Weekday::Tuesday,
                            Weekday::Wednesday,
                            Weekday::Thursday,
                            Weekday::Friday,
                            Weekday::Saturday,
                            Weekday::Sunday,
                        ])
                    }
                    Some(w) if w.text.parse::<i64>().is_ok() => {
                        let n = r.number("the number of days", 1..=3650)? as u32;
                        let unit = r.next();
                        if !unit.is_some_and(|u| {
                            u.text.eq_ignore_ascii_case("days")
                                || u.text.eq_ignore_ascii_case("day")
                        }) {
                            return Err(r.error(
                                unit,
                                "expected `days` after the number".into(),
                                "write `every 14 days from 2026-01-05 at 22:00`",
                            ));
                        }
                        r.expect("from", "write `every 14 days from 2026-01-05 at 22:00`: the date the count starts on")?;
                        let w = r.next();
                        let from =
                            w.and_then(|w| w.text.parse::<Date>().ok()).ok_or_else(|| {
                                r.error(
                                    w,
                                    match w {
                                        Some(w) => format!("`{}` is not a date", w.text),
                                        None => "expected the date the count starts on".into(),
                                    },
                                    "write the date as YYYY-MM-DD, e.g. `2026-01-05`",
                                )
                            })?;
                        Days::EveryN { n, from }
                    }
                    _ => {
                        let mut days = Vec::new();
                        loop {
                            let w = r.next();
                            match w.and_then(|w| weekday(w.text)) {
                                Some(d) if !days.contains(&d) => days.push(d),
                                Some(_) => {
                                    return Err(r.error(
                                        w,
                                        format!("`{}` is named twice", w.map_or("", |w| w.text)),
                                        "name each weekday once",
                                    ));
                                }
                                None => {
                                    return Err(r.error(
                                        w,
                                        match w {
                                            Some(w) => format!("expected a weekday, `day` or a number of days after `every`, found `{}`", w.text),
                                            None => "expected a weekday after `every`".into(),
                                        },
                                        FORMS,
                                    ));
                                }
                            }
                            match r.peek() {
                                Some(w) if w.text == "," => {
                                    r.next();
                                }
                                Some(w) if w.text.eq_ignore_ascii_case("and") => {
                                    r.next();
                                }
                                _ => break,
                            }
                        }
                        Days::Weekly(days)
                    }
                }
            }
            Some(w) if w == "day" => {
                r.next();
                let day = r.number("the day of the month", 1..=31)? as i8;
                let hint = "write `day 1 of the month at 03:00`";
                r.expect("of", hint)?;
                r.expect("the", hint)?;
                r.expect("month", hint)?;
                Days::DayOfMonth(day)
            }
            Some(w) if ordinal(&w).is_some() => {
                let nth = ordinal(&w).unwrap_or(1);
                r.next();
                let w = r.next();
                let weekday = w.and_then(|w| weekday(w.text)).ok_or_else(|| {
                    r.error(
                        w,
                        format!(
                            "expected a weekday after `{}`",
                            first.map_or("", |f| f.text)
                        ),
                        "write e.g. `second tuesday of the month at 22:00`",
                    )
                })?;
                let hint = "write e.g. `second tuesday of the month + 2 days at 22:00`";
                r.expect("of", hint)?;
                r.expect("the", hint)?;
                r.expect("month", hint)?;
                let mut offset = 0;
                if r.peek().is_some_and(|w| w.text == "+") {
                    r.next();
                    offset = r.number("the days after it", 0..=27)? as i32;
                    let unit = r.next();
                    if !unit.is_some_and(|u| {
                        u.text.eq_ignore_ascii_case("days") || u.text.eq_ignore_ascii_case("day")
                    }) {
                        return Err(r.error(unit, "expected `days` after the number".into(), hint));
                    }
                }
                Days::NthWeekday {
                    nth,
                    weekday,
                    offset,
                }
            }
            Some(_) => {
                return Err(r.error(
                    first,
                    format!(
                        "a recurrence starts with `every`, `day` or an ordinal (`first` ... `fourth`, `last`), not `{}`",
                        first.map_or("", |w| w.text)
                    ),
                    FORMS,
                ));
            }
        };
        let (time, zone, zone_name) = r.time_and_zone()?;
        Ok(Recurrence {
            days,
            time,
            zone,
            zone_name,
            text: trimmed.to_string(),
        })
    }

    /// Whether the schedule runs on `date` (a date in its zone).
    fn runs_on(&self, date: Date) -> bool {
        match &self.days {
            Days::Weekly(days) => days.contains(&date.weekday()),
            Days::EveryN { n, from } => {
                let days = (date - *from).get_days();
                date >= *from && days % (*n as i32) == 0
            }
            Days::DayOfMonth(day) => date.day() == *day,
            Days::NthWeekday {
                nth,
                weekday,
                offset,
            } => {
                // The base day is `offset` days before `date`, in its own month.
                let Ok(base) = date.checked_sub((*offset as i64).days()) else {
                    return false;
                };
                base.weekday() == *weekday
                    && match *nth {
                        -1 => is_last(base),
                        n => nth_of(base) == n,
                    }
            }
        }
    }

    /// The run on `date` (in its zone), as an instant.
    fn run_on(&self, date: Date) -> Option<Zoned> {
        // `compatible`: a skipped time moves past the gap, a repeated one takes the
        // first of the two.
        date.to_datetime(self.time).to_zoned(self.zone.clone()).ok()
    }

    /// The first run strictly after `after`; `None` when there is none within the next
    /// 100 years.
    pub fn next_after(&self, after: Timestamp) -> Option<Zoned> {
        let start = after.to_zoned(self.zone.clone()).date();
        let mut date = start.checked_sub(1.day()).ok()?;
        for _ in 0..(366 * 100 + 2) {
            if self.runs_on(date)
                && let Some(run) = self.run_on(date)
                && run.timestamp() > after
            {
                return Some(run);
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }

    /// The next `count` runs after `after`.
    pub fn next_runs(&self, after: Timestamp, count: usize) -> Vec<Zoned> {
        let mut out = Vec::with_capacity(count);
        let mut t = after;
        while out.len() < count {
            match self.next_after(t) {
                Some(run) => {
                    t = run.timestamp();
                    out.push(run);
                }
                None => break,
            }
        }
        out
    }
}

/// Which occurrence of its weekday in its month `date` is (1 to 5).
fn nth_of(date: Date) -> i8 {
    (date.day() - 1) / 7 + 1
}

/// Whether `date` is the last of its weekday in its month.
fn is_last(date: Date) -> bool {
    date.checked_add(7.days())
        .map_or(true, |later| later.month() != date.month())
}

#[cfg(test)]
mod tests;
