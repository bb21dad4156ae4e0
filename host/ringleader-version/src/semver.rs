//! Semantic versions (`semver`): strict SemVer 2.0.0 (`1.2.3`, `1.2.3-rc.1+build.5`),
//! read by the `semver` crate. No leading `v`, no missing parts, no leading zeros.
//!
//! Order (SemVer 2.0.0 §11): major, minor, patch as numbers; a pre-release sorts
//! before its release, and pre-releases compare identifier by identifier (numbers
//! numerically and below text). Build metadata is ignored: `1.0.0+a` == `1.0.0+b`
//! (the `semver` crate's own `Ord` breaks that tie by the metadata; this does not).

use crate::VersionError;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A strict semantic version. `Eq` ignores build metadata.
#[derive(Clone)]
pub struct Version {
    version: ::semver::Version,
    text: Box<str>,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let trimmed = text.trim();
        let version = ::semver::Version::parse(trimmed).map_err(|e| VersionError {
            text: text.to_string(),
            what: "a semver version",
            reason: e.to_string(),
        })?;
        Ok(Version {
            version,
            text: trimmed.into(),
        })
    }

    /// The version as written (without surrounding blanks).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `semver` crate's reading.
    pub fn as_semver(&self) -> &::semver::Version {
        &self.version
    }

    /// The lowest version of the release after `self` that `^` (`caret`: the next
    /// major, or minor, or patch below 1.0, as Cargo has it) or `~` (the next minor)
    /// allows: its first possible pre-release, `X.Y.Z-0`. `None` past `u64::MAX`.
    pub(crate) fn next(&self, caret: bool) -> Option<Version> {
        let v = &self.version;
        let (major, minor, patch) = if !caret {
            (v.major, v.minor.checked_add(1)?, 0)
        } else if v.major > 0 {
            (v.major.checked_add(1)?, 0, 0)
        } else if v.minor > 0 {
            (0, v.minor.checked_add(1)?, 0)
        } else {
            (0, 0, v.patch.checked_add(1)?)
        };
        let mut next = ::semver::Version::new(major, minor, patch);
        next.pre = ::semver::Prerelease::new("0").ok()?;
        Some(Version {
            text: next.to_string().into(),
            version: next,
        })
    }

    fn key(&self) -> (u64, u64, u64, &::semver::Prerelease) {
        let v = &self.version;
        (v.major, v.minor, v.patch, &v.pre)
    }
}

impl Ord for Version {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
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
        self.key() == other.key()
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "semver::Version({})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn semver_order_without_build_metadata() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"));
        assert_eq!(v("1.0.0+a").cmp(&v("1.0.0+b")), Ordering::Equal);
        assert!(v("1.10.0") > v("1.9.0"));
        assert_eq!(v("1.2.3-rc.1+b").as_str(), "1.2.3-rc.1+b");
    }

    #[test]
    fn only_strict_semver() {
        for bad in ["1.2", "v1.2.3", "01.2.3", "1.2.3.4", "latest", ""] {
            let e = Version::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a semver version"), "{e}");
        }
    }

    #[test]
    fn next_releases() {
        let next = |s: &str, caret| v(s).next(caret).unwrap().to_string();
        assert_eq!(next("1.2.3", true), "2.0.0-0");
        assert_eq!(next("0.2.3", true), "0.3.0-0");
        assert_eq!(next("0.0.3", true), "0.0.4-0");
        assert_eq!(next("1.2.3", false), "1.3.0-0");
        assert!(v(&format!("{}.0.0", u64::MAX)).next(true).is_none());
    }
}
