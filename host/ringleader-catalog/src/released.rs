//! `released`: a date (`2026-11-03`, midnight UTC) or an RFC 3339 time
//! (`2026-11-03T14:30:00Z`, `2026-11-03T16:30:00+02:00`), as seconds since the epoch.
//! Written here, not with a date crate: a few lines, and nothing more to build for
//! wasm32-wasip2.

use ringleader_types::Timestamp;

/// `released` as written: a string, or a TOML date or date-time written unquoted
/// (`released = 2026-11-03`), as its text (the `toml` crate hands a datetime to serde
/// as a map of one private key).
pub(crate) fn string_or_datetime<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a date such as \"2026-11-03\" or an RFC 3339 time")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<String>, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Option<String>, A::Error> {
            let entry: Option<(String, String)> = map.next_entry()?;
            match entry {
                Some((_, datetime)) => Ok(Some(datetime)),
                None => Err(serde::de::Error::invalid_type(
                    serde::de::Unexpected::Map,
                    &self,
                )),
            }
        }
    }
    d.deserialize_any(Visit)
}

/// Reads `text` as a date or an RFC 3339 time; the error says what was expected.
pub fn parse_released(text: &str) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "`{}` is not a date (`2026-11-03`) or an RFC 3339 time (`2026-11-03T14:30:00Z`)",
            ringleader_diag::escape(text)
        )
    };
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let year = digits(&b[0..4]).ok_or_else(bad)?;
    let month = digits(&b[5..7]).ok_or_else(bad)?;
    let day = digits(&b[8..10]).ok_or_else(bad)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "`{}` is not a day of the calendar",
            ringleader_diag::escape(text)
        ));
    }
    let date = days_from_civil(year, month, day) * 86_400;
    if b.len() == 10 {
        return Ok(date);
    }
    // `T` (or `t`, or a space, as RFC 3339 allows) and `HH:MM:SS`, then a fraction
    // (ignored), then `Z` or `+HH:MM` / `-HH:MM`.
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let hour = digits(&b[11..13]).ok_or_else(bad)?;
    let minute = digits(&b[14..16]).ok_or_else(bad)?;
    // 60: a leap second, read as the next second's start.
    let second = digits(&b[17..19]).ok_or_else(bad)?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad());
        }
        rest = &fraction[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2]).ok_or_else(bad)?;
            let m = digits(&[*m1, *m2]).ok_or_else(bad)?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return Err(bad()),
    };
    Ok(date + hour * 3600 + minute * 60 + second - offset)
}

/// The number written in ASCII digits `b`, if all are digits.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_read_in_utc() {
        assert_eq!(parse_released("1970-01-01"), Ok(0));
        assert_eq!(parse_released("2026-11-03"), Ok(1_793_664_000));
        assert_eq!(parse_released("2026-11-03T14:30:00Z"), Ok(1_793_716_200));
        assert_eq!(
            parse_released("2026-11-03T16:30:00.250+02:00"),
            Ok(1_793_716_200)
        );
        assert_eq!(parse_released("2024-02-29"), Ok(1_709_164_800));
        assert_eq!(parse_released("1969-12-31T23:59:59Z"), Ok(-1));
        for bad in [
            "",
            "2026-11",
            "2026/11/03",
            "2026-13-01",
            "2025-02-29",
            "2026-11-03T25:00:00Z",
            "2026-11-03T14:30:00",
            "2026-11-03T14:30:00+0200",
            "2026-11-03T14:30Z",
            "yesterday",
            "２０２６-11-03",
        ] {
            assert!(parse_released(bad).is_err(), "{bad}");
        }
    }
}
