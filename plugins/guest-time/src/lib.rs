//! Dates and times to seconds since the Unix epoch, without a calendar library in the
//! guest: RFC 3339 times (`2022-01-04T08:38:00Z`, `2022-01-04T08:38:00.5+01:00`, as
//! CSAF writes them) and plain dates (`YYYY-MM-DD`, as AppStream's `date` is). Shared by
//! the plugins in this workspace (a library, not a plugin).

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether the date exists (no 30 February).
fn is_date(y: i64, m: i64, d: i64) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// An RFC 3339 time; `None` when it is not one (or names a day that does not exist).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| t.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !is_date(year, month, day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Skip fractional seconds, then read the offset.
    let mut rest = &t[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
pub fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.len() != 10 {
        return parse_rfc3339(t);
    }
    let b = t.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !t
            .bytes()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| t.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !is_date(year, month, day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2022-01-04T08:38:00.5+01:00"),
            Some(1_641_281_880)
        );
        assert_eq!(parse_date("2024-01-21"), Some(1_705_795_200));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
