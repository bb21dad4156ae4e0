//! RPM versions (`rpm`): `[epoch:]version[-release]`, ordered as rpm orders them
//! (`rpmvercmp`, rpm >= 4.15, with `~` and `^`; epoch, version, release as
//! `rpm.labelCompare` compares them).
//!
//! Reading: blanks around the text are dropped; the epoch is the number before the
//! `:` (0 when there is none: `0:1.0` = `1.0`); the release is what follows the `-`.
//! Version and release are non-empty and hold letters, digits and `. _ + ~ ^` (what
//! `rpmbuild` allows, macros aside); the version holds no `-` (rpm would read
//! `1.0-2-3` as version `1.0-2`; `rpmbuild` refuses it, so does this).
//!
//! Order (as `rpmvercmp`): each of version and release is a run of segments: digits
//! (compared as numbers, leading zeros ignored), letters (compared as ASCII text),
//! `~` and `^`; other characters only separate segments (`1.0` = `1_0`, `1.a` = `1a`).
//! Compared segment by segment: `~` sorts before everything, even the end
//! (`1.0~rc1` < `1.0`); `^` after the end but before any segment (`1.0` < `1.0^git1`
//! < `1.0.1`); a number is newer than letters (`1.0` > `1.a`); when one version runs
//! out of segments, the one with more is newer. Epochs compare first as numbers; then
//! versions; then releases, where a version without a release sorts before any release
//! of it (`1.0` < `1.0-1`, as `rpm.labelCompare` has it; rpm's dependency check instead
//! treats a missing release as matching every release).
//!
//! Sort key: the epoch (4 bytes), then the version's segments, 0x02 (the end), then,
//! with a release, its segments and 0x02. A segment is one byte for `~` (0x01) or
//! `^` (0x03), 0x04 with the letters and a 0x00, or 0x05 with the number
//! ([`crate::key`]): the end sorts after `~` and before `^`, letters and numbers.

use crate::VersionError;
use crate::key::{digits_at, push_digits};

const TILDE: u8 = 0x01;
const END: u8 = 0x02;
const CARET: u8 = 0x03;
const LETTERS: u8 = 0x04;
const NUMBER: u8 = 0x05;

/// An RPM version (epoch, version, release). `Eq` is rpm's equality (`1.0` == `1_0`,
/// `1.01` == `1.1`, `0:1.0` == `1.0`).
#[derive(Clone)]
pub struct Version {
    key: Box<[u8]>,
    text: Box<str>,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = |reason: String| VersionError {
            text: text.to_string(),
            what: "an rpm version",
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty".into()));
        }
        let (epoch, rest) = match trimmed.split_once(':') {
            None => (0, trimmed),
            Some((epoch, rest)) => {
                if epoch.is_empty() {
                    return Err(err("the epoch before `:` is empty".into()));
                }
                if !epoch.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(format!(
                        "the epoch `{epoch}` before `:` is not a number"
                    )));
                }
                let epoch = epoch
                    .parse::<u32>()
                    .map_err(|_| err(format!("the epoch is larger than {}", u32::MAX)))?;
                (epoch, rest)
            }
        };
        let (version, release) = match rest.split_once('-') {
            None => (rest, None),
            Some((version, release)) => (version, Some(release)),
        };
        check(version, "version").map_err(&err)?;
        if let Some(release) = release {
            check(release, "release").map_err(&err)?;
        }
        let mut key = Vec::with_capacity(8 + 2 * trimmed.len());
        key.extend_from_slice(&epoch.to_be_bytes());
        push_segments(&mut key, version.as_bytes());
        if let Some(release) = release {
            push_segments(&mut key, release.as_bytes());
        }
        Ok(Version {
            key: key.into(),
            text: trimmed.into(),
        })
    }

    /// The version as written (without surrounding blanks).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn epoch(&self) -> u32 {
        u32::from_be_bytes([self.key[0], self.key[1], self.key[2], self.key[3]])
    }

    /// The version: between the epoch's `:` and the release's `-`.
    pub fn version(&self) -> &str {
        let rest = self.text.split_once(':').map_or(&*self.text, |(_, r)| r);
        rest.split_once('-').map_or(rest, |(v, _)| v)
    }

    /// The release, after the `-`.
    pub fn release(&self) -> Option<&str> {
        let rest = self.text.split_once(':').map_or(&*self.text, |(_, r)| r);
        rest.split_once('-').map(|(_, r)| r)
    }
}

fn check(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    match part
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !"._+~^".contains(c))
    {
        None => Ok(()),
        Some('-') => Err("it has more than one `-` (one separates version and release)".into()),
        Some(':') => Err("it has more than one `:` (one ends the epoch)".into()),
        Some(c) => Err(format!(
            "`{}` may not appear in the {what} (letters, digits and `._+~^` may)",
            c.escape_debug()
        )),
    }
}

/// Appends the segments of a version or release, then [`END`].
fn push_segments(key: &mut Vec<u8>, part: &[u8]) {
    let mut i = 0;
    while let Some(&c) = part.get(i) {
        if c == b'~' {
            key.push(TILDE);
            i += 1;
        } else if c == b'^' {
            key.push(CARET);
            i += 1;
        } else if c.is_ascii_digit() {
            let n = digits_at(&part[i..]);
            key.push(NUMBER);
            push_digits(key, &part[i..i + n]);
            i += n;
        } else if c.is_ascii_alphabetic() {
            let n = part[i..]
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .unwrap_or(part.len() - i);
            key.push(LETTERS);
            key.extend_from_slice(&part[i..i + n]);
            key.push(0);
            i += n;
        } else {
            i += 1;
        }
    }
    key.push(END);
}

crate::key::keyed_version!("rpm");

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reason(s: &str) -> String {
        Version::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn rpmvercmp_order() {
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0^"));
        assert!(v("1.0^git1") < v("1.0.1"));
        assert!(v("1.0^git1") < v("1.01"), "1.01 = 1.1");
        assert!(v("1.0~rc1^git1") > v("1.0~rc1"));
        assert_eq!(v("1.0"), v("1_0"));
        assert_eq!(v("10.0001"), v("10.1"));
        assert!(v("1.0") > v("1.a"), "numbers are newer than letters");
        assert!(v("1.0a") < v("1.0aa"));
        assert!(v("6.0.rc1") > v("6.0"));
        assert!(v("1.fc17") > v("1b.fc17"), "rpm's documented oddity");
    }

    #[test]
    fn epoch_version_release() {
        assert!(v("1:1.0") > v("2.0"));
        assert_eq!(v("0:1.0-1"), v("1.0-1"));
        assert!(v("1.0") < v("1.0-1"), "no release sorts first");
        assert!(v("1.0-1") < v("1.0-1.el9"));
        assert!(v("1.0-1.el9") < v("1.0-1.el9_1"));
        assert!(v("1.0-9") < v("1.0.1-1"));
        let x = v("2:1.0.1-3.el9");
        assert_eq!(
            (x.epoch(), x.version(), x.release()),
            (2, "1.0.1", Some("3.el9"))
        );
        assert_eq!(v("1.0").release(), None);
    }

    #[test]
    fn refusals_say_why() {
        assert!(reason("").contains("empty"));
        assert!(reason("a:1.0").contains("epoch `a`"));
        assert!(reason(":1.0").contains("epoch before `:` is empty"));
        assert!(reason("1.0-").contains("release is empty"));
        assert!(reason("-1").contains("version is empty"));
        assert!(reason("1.0-2-3").contains("more than one `-`"));
        assert!(reason("1:2:3").contains("more than one `:`"));
        assert!(reason("1.0 1").contains("` ` may not appear in the version"));
        assert!(reason("1.0-%{dist}").contains("`%` may not appear in the release"));
        assert!(reason("4294967296:1").contains("larger than 4294967295"));
    }
}
