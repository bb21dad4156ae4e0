//! Vendor versions and version ranges: the `vendor` scheme, today's rule.
//!
//! Vendors do not all write semver (`2.19.1-a03`, `7.10.30.00`, `1.2`). Every version
//! string is read by one documented rule (docs/policies.md, "Versions"):
//!
//! 1. A leading `v` or `V` is dropped.
//! 2. The release is the leading run of dot-separated numbers: `7.10.30.00` has four
//!    parts, `1.2` two. Missing parts count as 0, so `1.2` = `1.2.0` and
//!    `7.10.30.00` = `7.10.30`. At most 8 parts; each fits in 64 bits.
//! 3. What follows `+` is build metadata: kept for display, ignored in comparisons.
//! 4. Anything else after the release (`-a03`, `rc1`, `~deb12u1`) is a pre-release
//!    tag, compared by semver's pre-release rules (`semver::Prerelease` when it is
//!    valid semver, else as text); a version with a tag sorts before the same release
//!    without one.
//!
//! A string with no leading number (`latest`, `A03`) is not a version: an error names it.
//!
//! Ranges (`applies-to`) are comma-separated comparators that must all hold, with
//! `||` between alternatives: `>=2.0.0, <2.19.1`, `=1.2.3`, `^1.2`, `~1.2.3`, `*`.
//! A bare version means exactly that version (`2.10.0` = `=2.10.0`), unlike Cargo.

use crate::range::{Bound, Comparators, Op};
use std::cmp::Ordering;
use std::fmt;

/// Most numeric parts a version may have.
pub const MAX_PARTS: usize = 8;

/// A parsed vendor version. Ordering follows the module's rule; `Eq` agrees with it
/// (`1.2` == `1.2.0`).
#[derive(Clone)]
pub struct Version {
    parts: [u64; MAX_PARTS],
    len: u8,
    pre: Pre,
    text: Box<str>,
}

#[derive(Clone, PartialEq, Eq)]
enum Pre {
    None,
    Semver(semver::Prerelease),
    Text(Box<str>),
}

/// A string that is not a version or not a range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not {what}: {reason}")]
pub struct VersionError {
    pub text: String,
    pub what: &'static str,
    pub reason: String,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = |reason: &str| VersionError {
            text: text.to_string(),
            what: "a version",
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix(['v', 'V'])
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or(trimmed);
        if !body.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("it does not start with a number"));
        }
        let mut parts = [0u64; MAX_PARTS];
        let mut len = 0usize;
        let mut rest = body;
        loop {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if len == MAX_PARTS {
                return Err(err("it has more than 8 numeric parts"));
            }
            parts[len] = rest[..digits]
                .parse()
                .map_err(|_| err("a numeric part is too large"))?;
            len += 1;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(next) if next.starts_with(|c: char| c.is_ascii_digit()) => rest = next,
                _ => break,
            }
        }
        let without_build = rest.split_once('+').map_or(rest, |(pre, _)| pre);
        let tag = without_build.trim_start_matches(['-', '.', '_', '~']);
        let pre = if tag.is_empty() {
            Pre::None
        } else {
            match semver::Prerelease::new(tag) {
                Ok(p) => Pre::Semver(p),
                Err(_) => Pre::Text(tag.into()),
            }
        };
        Ok(Version {
            parts,
            len: len as u8,
            pre,
            text: trimmed.into(),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn release(&self) -> &[u64] {
        &self.parts[..usize::from(self.len)]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.text)
    }
}

impl Ord for Version {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Missing parts are zeros, and `parts` is zero-filled: compare all slots.
        self.parts
            .cmp(&other.parts)
            .then_with(|| match (&self.pre, &other.pre) {
                (Pre::None, Pre::None) => Ordering::Equal,
                (Pre::None, _) => Ordering::Greater,
                (_, Pre::None) => Ordering::Less,
                (Pre::Semver(a), Pre::Semver(b)) => a.cmp(b),
                (a, b) => pre_text(a).cmp(pre_text(b)),
            })
    }
}

fn pre_text(pre: &Pre) -> &str {
    match pre {
        Pre::None => "",
        Pre::Semver(p) => p.as_str(),
        Pre::Text(t) => t,
    }
}

impl PartialOrd for Version {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// A version range: alternatives (`||`) of comparator sets (`,`), read by the syntax
/// every scheme shares (`crate::range`), with caret and tilde ranges.
#[derive(Clone, Debug)]
pub struct Range {
    comparators: Comparators<Version>,
    text: Box<str>,
}

impl Range {
    /// Everything: the range of an empty `applies-to`.
    pub fn any() -> Range {
        Range {
            comparators: Comparators::any(),
            text: "*".into(),
        }
    }

    pub fn parse(text: &str) -> Result<Range, VersionError> {
        if text.trim().is_empty() {
            return Ok(Range::any());
        }
        Ok(Range {
            comparators: crate::range::parse(text, "a version range")?,
            text: text.trim().into(),
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.comparators.matches(v)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Bound for Version {
    fn parse(text: &str) -> Result<Self, VersionError> {
        Version::parse(text)
    }

    fn caret_or_tilde(v: Self, caret: bool) -> Option<Vec<(Op, Self)>> {
        let upper = bump(&v, caret);
        Some(vec![(Op::Ge, v), (Op::Lt, upper)])
    }
}

/// Upper bound of `^v` (caret: next major, or next minor/patch below 1.0 like Cargo)
/// or `~v` (tilde: next minor).
fn bump(v: &Version, caret: bool) -> Version {
    let release = v.release();
    let index = if caret {
        // ^0.0.3 -> <0.0.4, ^0.2.3 -> <0.3.0, ^1.2.3 -> <2.0.0
        release
            .iter()
            .take(3)
            .position(|&p| p != 0)
            .unwrap_or(release.len().min(3) - 1)
    } else {
        usize::from(release.len() > 1)
    };
    let mut parts = [0u64; MAX_PARTS];
    parts[..=index].copy_from_slice(&v.parts[..=index]);
    parts[index] = parts[index].saturating_add(1);
    let text: Vec<String> = parts[..=index.max(2)]
        .iter()
        .map(|p| p.to_string())
        .collect();
    Version {
        parts,
        len: (index + 1).max(3) as u8,
        // The lowest version of the bumped release: its first pre-release.
        pre: Pre::Text("".into()),
        text: text.join(".").into(),
    }
}

#[cfg(test)]
mod tests {
    /// What docs/plugin-authors.md (9.3) says of distribution suffixes, checked.
    #[test]
    fn distribution_suffixes_read_as_the_plugin_guide_says() {
        let v = |t: &str| Version::parse(t).unwrap();
        assert_eq!(
            v("3.0.15+deb12u1"),
            v("3.0.15"),
            "build metadata is ignored"
        );
        assert!(v("3.0.15-1~deb12u1") < v("3.0.15"), "a tag sorts before");
        assert!(v("3.0.15-1~deb12u1") > v("3.0.11-1"), "the release first");
        assert!(
            v("3.0.15-1") < v("3.0.15-1~deb12u1"),
            "tags by semver's rules, not dpkg's"
        );
        // An RPM epoch ends the release: `1:0.17-64.el7` is release 1 with a tag.
        assert!(v("1:0.17-64.el7") < v("1"));
        assert!(v("1:0.17-64.el7") > v("0.99"));
        assert!(v("1:0.17-64.el7") < v("1:0.17-65.el7"));
    }

    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn vendor_versions_parse_by_the_documented_rule() {
        assert_eq!(v("1.2"), v("1.2.0"));
        assert_eq!(v("7.10.30.00"), v("7.10.30"));
        assert!(v("7.10.30.01") > v("7.10.30"));
        assert_eq!(v("v2.1.0"), v("2.1.0"));
        assert!(v("2.19.1-a03") < v("2.19.1"));
        assert!(v("2.19.1-a03") > v("2.19.0"));
        assert!(v("2.19.1-a03") < v("2.19.1-a04"));
        assert!(
            v("1.0.0-alpha.2") < v("1.0.0-alpha.10"),
            "semver pre-release rules"
        );
        assert_eq!(v("1.2.3+build.7"), v("1.2.3"), "build metadata is ignored");
        assert!(v("3.0.11") < v("3.0.15"));
        assert!(v("10.0") > v("9.9.9"));
        assert_eq!(v("1.2.3").to_string(), "1.2.3");
    }

    #[test]
    fn non_versions_are_refused_with_a_reason() {
        for bad in [
            "",
            "latest",
            "A03",
            "v",
            "1.2.3.4.5.6.7.8.9",
            "99999999999999999999999",
        ] {
            let e = Version::parse(bad).unwrap_err();
            assert!(e.to_string().contains("is not a version"), "{e}");
        }
    }

    #[test]
    fn ranges() {
        let r = Range::parse(">=2.0.0, <2.19.1").unwrap();
        assert!(r.matches(&v("2.10.0")));
        assert!(
            r.matches(&v("2.19.1-a03")),
            "a pre-release of the bound is below it"
        );
        assert!(!r.matches(&v("2.19.1")));
        assert!(!r.matches(&v("1.9")));
        let r = Range::parse("<1.0 || >=2.0, <2.1").unwrap();
        assert!(r.matches(&v("0.9")) && r.matches(&v("2.0.5")) && !r.matches(&v("1.5")));
        assert!(Range::parse("2.10.0").unwrap().matches(&v("2.10")));
        assert!(!Range::parse("2.10.0").unwrap().matches(&v("2.10.1")));
        assert!(Range::parse("").unwrap().matches(&v("0.0.1")));
        assert!(Range::parse("*").unwrap().matches(&v("5")));
        let caret = Range::parse("^1.2").unwrap();
        assert!(caret.matches(&v("1.9.9")) && !caret.matches(&v("2.0.0")));
        assert!(
            !caret.matches(&v("2.0.0-rc1")),
            "a pre-release of the next major is out"
        );
        let caret0 = Range::parse("^0.2.3").unwrap();
        assert!(caret0.matches(&v("0.2.9")) && !caret0.matches(&v("0.3.0")));
        let tilde = Range::parse("~1.2.3").unwrap();
        assert!(tilde.matches(&v("1.2.9")) && !tilde.matches(&v("1.3.0")));
        assert!(Range::parse(">=1.0,,<2").is_err());
        assert!(Range::parse("=>1.0").is_err());
        assert!(Range::parse(">= latest").is_err());
    }
}
