//! Version order: how Ringleader reads and compares the versions of each ecosystem.
//! Pure: no I/O, no allocation when comparing.
//!
//! A component's versions are read by one [`Scheme`] (docs/policies.md, "Versions"):
//!
//! - [`deb`]: Debian, exactly as dpkg (`2:9.0.1378-2+deb12u1`, `3.0.15-1~deb12u1`);
//! - [`rpm`]: RPM, as `rpmvercmp` and `rpm.labelCompare` (`1:0.17-64.el7`, `1.0^git1`);
//! - [`apk`]: Alpine, as apk-tools (`1.2.3_rc1-r2`);
//! - [`semver`]: strict SemVer 2.0.0 (`1.2.3-rc.1`), build metadata ignored;
//! - [`vendor`]: the documented rule for vendor versions (`2.19.1-a03`, `7.10.30.00`).
//!   Its [`Version`], [`Range`] and [`VersionError`] keep their names at the crate's
//!   root, where the planner has always found them (`ringleader_planner::version`).
//!
//! Each scheme's `Version` is parsed once and has a total order (`Ord`, with `Eq` its
//! equality: `1.0` == `1.0-0` in `deb`). [`AnyVersion`] holds a version of any scheme
//! and [`AnyRange`] a range of one: comparing across schemes is an error
//! ([`SchemeMismatch`]), never an answer. A text a scheme cannot read is a
//! [`VersionError`] naming the scheme and the text: "`1:abc` is not a deb version: the
//! upstream version must start with a digit" (callers add the device or patch).

pub mod apk;
pub mod deb;
mod key;
mod range;
pub mod rpm;
pub mod semver;
pub mod vendor;

pub use vendor::{MAX_PARTS, Range, Version, VersionError};

use range::Comparators;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// How a component's versions are read and ordered.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Deb,
    Rpm,
    Apk,
    Semver,
    Vendor,
}

impl Scheme {
    pub const ALL: [Scheme; 5] = [
        Scheme::Deb,
        Scheme::Rpm,
        Scheme::Apk,
        Scheme::Semver,
        Scheme::Vendor,
    ];

    /// The name people write (`deb`, ..., as serde reads it).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
            Scheme::Semver => "semver",
            Scheme::Vendor => "vendor",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Scheme`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a version scheme (one of: deb, rpm, apk, semver, vendor)")]
pub struct UnknownScheme {
    pub text: String,
}

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(text: &str) -> Result<Scheme, UnknownScheme> {
        Scheme::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| UnknownScheme { text: text.into() })
    }
}

/// A version compared with a version, or matched against a range, of another scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot compare {found} version `{text}` with {expected} versions: versions of different schemes have no order"
)]
pub struct SchemeMismatch {
    pub expected: Scheme,
    pub found: Scheme,
    pub text: String,
}

/// A parsed version of any scheme. Ordered only against versions of its own scheme,
/// by [`AnyVersion::try_cmp`]: there is deliberately no `Ord` or `PartialEq`, which
/// would have to answer for two schemes.
#[derive(Clone, Debug)]
pub enum AnyVersion {
    Deb(deb::Version),
    Rpm(rpm::Version),
    Apk(apk::Version),
    Semver(semver::Version),
    Vendor(vendor::Version),
}

impl AnyVersion {
    pub fn parse(scheme: Scheme, text: &str) -> Result<AnyVersion, VersionError> {
        Ok(match scheme {
            Scheme::Deb => AnyVersion::Deb(deb::Version::parse(text)?),
            Scheme::Rpm => AnyVersion::Rpm(rpm::Version::parse(text)?),
            Scheme::Apk => AnyVersion::Apk(apk::Version::parse(text)?),
            Scheme::Semver => AnyVersion::Semver(semver::Version::parse(text)?),
            Scheme::Vendor => {
                AnyVersion::Vendor(vendor::Version::parse(text).map_err(|e| VersionError {
                    what: "a vendor version",
                    ..e
                })?)
            }
        })
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            AnyVersion::Deb(_) => Scheme::Deb,
            AnyVersion::Rpm(_) => Scheme::Rpm,
            AnyVersion::Apk(_) => Scheme::Apk,
            AnyVersion::Semver(_) => Scheme::Semver,
            AnyVersion::Vendor(_) => Scheme::Vendor,
        }
    }

    /// The version as written (without surrounding blanks).
    pub fn as_str(&self) -> &str {
        match self {
            AnyVersion::Deb(v) => v.as_str(),
            AnyVersion::Rpm(v) => v.as_str(),
            AnyVersion::Apk(v) => v.as_str(),
            AnyVersion::Semver(v) => v.as_str(),
            AnyVersion::Vendor(v) => v.as_str(),
        }
    }

    /// The order of two versions of one scheme; an error for two schemes.
    #[inline]
    pub fn try_cmp(&self, other: &AnyVersion) -> Result<Ordering, SchemeMismatch> {
        match (self, other) {
            (AnyVersion::Deb(a), AnyVersion::Deb(b)) => Ok(a.cmp(b)),
            (AnyVersion::Rpm(a), AnyVersion::Rpm(b)) => Ok(a.cmp(b)),
            (AnyVersion::Apk(a), AnyVersion::Apk(b)) => Ok(a.cmp(b)),
            (AnyVersion::Semver(a), AnyVersion::Semver(b)) => Ok(a.cmp(b)),
            (AnyVersion::Vendor(a), AnyVersion::Vendor(b)) => Ok(a.cmp(b)),
            _ => Err(SchemeMismatch {
                expected: self.scheme(),
                found: other.scheme(),
                text: other.as_str().into(),
            }),
        }
    }
}

impl fmt::Display for AnyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version range of one scheme (`>= 2.36-9+deb12u4, < 2.36-9+deb12u7` in `deb`):
/// comparators separated by `,` must all hold, `||` separates alternatives, a bare
/// version is exactly that version; `^` and `~` ranges in `semver` and `vendor` only
/// (docs/policies.md, "Versions").
#[derive(Clone, Debug)]
pub struct AnyRange {
    comparators: RangeOf,
    text: Box<str>,
}

#[derive(Clone, Debug)]
enum RangeOf {
    Deb(Comparators<deb::Version>),
    Rpm(Comparators<rpm::Version>),
    Apk(Comparators<apk::Version>),
    Semver(Comparators<semver::Version>),
    Vendor(vendor::Range),
}

impl AnyRange {
    /// Every version of `scheme`: the range of an empty `applies-to`.
    pub fn any(scheme: Scheme) -> AnyRange {
        let comparators = match scheme {
            Scheme::Deb => RangeOf::Deb(Comparators::any()),
            Scheme::Rpm => RangeOf::Rpm(Comparators::any()),
            Scheme::Apk => RangeOf::Apk(Comparators::any()),
            Scheme::Semver => RangeOf::Semver(Comparators::any()),
            Scheme::Vendor => RangeOf::Vendor(vendor::Range::any()),
        };
        AnyRange {
            comparators,
            text: "*".into(),
        }
    }

    pub fn parse(scheme: Scheme, text: &str) -> Result<AnyRange, VersionError> {
        let comparators = match scheme {
            Scheme::Deb => RangeOf::Deb(range::parse(text, "a deb version range")?),
            Scheme::Rpm => RangeOf::Rpm(range::parse(text, "an rpm version range")?),
            Scheme::Apk => RangeOf::Apk(range::parse(text, "an apk version range")?),
            Scheme::Semver => RangeOf::Semver(range::parse(text, "a semver version range")?),
            Scheme::Vendor => {
                RangeOf::Vendor(vendor::Range::parse(text).map_err(|e| VersionError {
                    what: "a vendor version range",
                    ..e
                })?)
            }
        };
        let text = text.trim();
        Ok(AnyRange {
            comparators,
            text: if text.is_empty() { "*" } else { text }.into(),
        })
    }

    pub fn scheme(&self) -> Scheme {
        match self.comparators {
            RangeOf::Deb(_) => Scheme::Deb,
            RangeOf::Rpm(_) => Scheme::Rpm,
            RangeOf::Apk(_) => Scheme::Apk,
            RangeOf::Semver(_) => Scheme::Semver,
            RangeOf::Vendor(_) => Scheme::Vendor,
        }
    }

    /// Whether `version` is in the range; an error for a version of another scheme.
    #[inline]
    pub fn matches(&self, version: &AnyVersion) -> Result<bool, SchemeMismatch> {
        match (&self.comparators, version) {
            (RangeOf::Deb(r), AnyVersion::Deb(v)) => Ok(r.matches(v)),
            (RangeOf::Rpm(r), AnyVersion::Rpm(v)) => Ok(r.matches(v)),
            (RangeOf::Apk(r), AnyVersion::Apk(v)) => Ok(r.matches(v)),
            (RangeOf::Semver(r), AnyVersion::Semver(v)) => Ok(r.matches(v)),
            (RangeOf::Vendor(r), AnyVersion::Vendor(v)) => Ok(r.matches(v)),
            _ => Err(SchemeMismatch {
                expected: self.scheme(),
                found: version.scheme(),
                text: version.as_str().into(),
            }),
        }
    }

    /// The range as written (`*` for an empty one).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for AnyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests;
