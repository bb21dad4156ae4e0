//! Ordering firmware versions, by the rule the host uses (docs/policies.md, "Versions"):
//! the leading run of dot-separated numbers compared part by part (missing parts count
//! as 0), then a version with a tag after the numbers (`1.2.3-rc1`) before the same
//! numbers without one. The plugin needs it only to tell which releases of a component
//! are older than which; the host decides what applies to a device.

use std::cmp::Ordering;

/// The numeric parts and the tag after them; `None` when `text` does not start with a
/// number (after an optional `v`), which the host would not take as a version.
fn split(text: &str) -> Option<(Vec<u64>, &str)> {
    let text = text.trim();
    let body = text
        .strip_prefix(['v', 'V'])
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(text);
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        // A part too large for 64 bits sorts as the largest.
        parts.push(rest[..digits].parse().unwrap_or(u64::MAX));
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => rest = next,
            _ => break,
        }
    }
    while parts.last() == Some(&0) {
        parts.pop();
    }
    let tag = rest.split('+').next().unwrap_or_default();
    Some((parts, tag.trim_start_matches(['-', '.', '_', '~'])))
}

/// Whether the host can read `text` as a version.
pub fn is_version(text: &str) -> bool {
    split(text).is_some()
}

/// `a` against `b`. Strings that are not versions sort before versions, and among
/// themselves as text, so the order is total and never panics.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (split(a), split(b)) {
        (Some((pa, ta)), Some((pb, tb))) => pa.cmp(&pb).then_with(|| match (ta, tb) {
            ("", "") => Ordering::Equal,
            ("", _) => Ordering::Greater,
            (_, "") => Ordering::Less,
            (ta, tb) => ta.cmp(tb),
        }),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}
