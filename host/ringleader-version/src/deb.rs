//! Debian versions (`deb`): `[epoch:]upstream[-revision]`, ordered exactly as dpkg
//! orders them (`lib/dpkg/version.c`, `verrevcmp`), checked as dpkg's `parseversion`
//! checks them.
//!
//! Reading (as dpkg): blanks around the version are dropped; the epoch is the number
//! before the first `:` (0 when there is none, at most 2147483647); the revision is
//! what follows the last `-` (empty when there is none: `1.0` = `1.0-0`); the upstream
//! version is what lies between. The upstream version may hold letters, digits and
//! `. + - ~ :`, the revision letters, digits and `. + ~`.
//!
//! Where dpkg only warns, this refuses: an upstream version that does not start with a
//! digit (`1:abc`), a character dpkg does not allow (`1.0_1`). dpkg still compares
//! such versions, with a warning, but Debian policy forbids them: a version that a
//! device's packages cannot lawfully have is an error naming it, never a guess. dpkg also reads an epoch with a sign (`+1:2`, through `strtol`); here an
//! epoch is digits only.
//!
//! Order (as dpkg): epochs as numbers, then the upstream versions, then the revisions,
//! each by `verrevcmp`: alternately a run of non-digits, compared character by character
//! where `~` sorts before everything (even the end: `1.0~rc1` < `1.0`), then the end,
//! then letters, then the other characters (in ASCII order); and a run of digits,
//! compared as a number (`1.09` = `1.9`). So `2.36-9+deb12u4` < `2.36-9+deb12u7` and
//! `3.0.15-1~deb12u1` < `3.0.15-1`.
//!
//! Sort key: the epoch (4 bytes), then the upstream version and the revision, each
//! written as its runs: every character of a non-digit run as one byte (`~` 0x01,
//! letters as themselves, others with the high bit set), 0x02 where the run ends, the
//! digit run as a number ([`crate::key`]), and 0x02 after the last run. A version with
//! more runs meets 0x02 where the other ended, which sorts after `~` and before any
//! other character, as dpkg's end of string does.

use crate::VersionError;
use crate::key::push_digits;

/// The largest epoch dpkg reads (`INT_MAX`).
pub const MAX_EPOCH: u32 = i32::MAX as u32;

const TILDE: u8 = 0x01;
/// Ends a run of non-digits, and ends a part (upstream, revision).
const END: u8 = 0x02;
const OTHER: u8 = 0x80;

/// A Debian version. `Eq` is dpkg's equality (`1.09` == `1.9`, `1.0` == `1.0-0`).
#[derive(Clone)]
pub struct Version {
    key: Box<[u8]>,
    text: Box<str>,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = |reason: String| VersionError {
            text: text.to_string(),
            what: "a deb version",
            reason,
        };
        let trimmed = text.trim_matches([' ', '\t']);
        if trimmed.is_empty() {
            return Err(err("it is empty".into()));
        }
        if trimmed.contains([' ', '\t']) {
            return Err(err("it has embedded spaces".into()));
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
                    .ok()
                    .filter(|&e| e <= MAX_EPOCH)
                    .ok_or_else(|| err(format!("the epoch is larger than {MAX_EPOCH}")))?;
                if rest.is_empty() {
                    return Err(err("nothing follows the epoch's `:`".into()));
                }
                (epoch, rest)
            }
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            None => (rest, ""),
            Some((_, "")) => return Err(err("the revision after the last `-` is empty".into())),
            Some(parts) => parts,
        };
        if upstream.is_empty() {
            return Err(err("the upstream version is empty".into()));
        }
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err("the upstream version must start with a digit".into()));
        }
        if let Some(c) = upstream
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !".-+~:".contains(c))
        {
            return Err(err(format!(
                "`{}` may not appear in the upstream version (letters, digits and `.+-~:` may)",
                c.escape_debug()
            )));
        }
        if let Some(c) = revision
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !".+~".contains(c))
        {
            return Err(err(format!(
                "`{}` may not appear in the revision (letters, digits and `.+~` may)",
                c.escape_debug()
            )));
        }
        let mut key = Vec::with_capacity(8 + 2 * trimmed.len());
        key.extend_from_slice(&epoch.to_be_bytes());
        push_part(&mut key, upstream.as_bytes());
        push_part(&mut key, revision.as_bytes());
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

    /// The upstream version: between the epoch's `:` and the revision's `-`.
    pub fn upstream(&self) -> &str {
        let rest = self.text.split_once(':').map_or(&*self.text, |(_, r)| r);
        rest.rsplit_once('-').map_or(rest, |(u, _)| u)
    }

    /// The revision: after the last `-`; empty when there is none.
    pub fn revision(&self) -> &str {
        let rest = self.text.split_once(':').map_or(&*self.text, |(_, r)| r);
        rest.rsplit_once('-').map_or("", |(_, r)| r)
    }
}

/// Appends one part (upstream version or revision) as its runs: pairs of a non-digit
/// run (possibly empty only in the first pair) and a digit run (possibly empty only in
/// the last), then [`END`].
fn push_part(key: &mut Vec<u8>, part: &[u8]) {
    let mut i = 0;
    loop {
        while let Some(&c) = part.get(i).filter(|c| !c.is_ascii_digit()) {
            key.push(match c {
                b'~' => TILDE,
                c if c.is_ascii_alphabetic() => c,
                c => c | OTHER,
            });
            i += 1;
        }
        key.push(END);
        let digits = crate::key::digits_at(&part[i..]);
        push_digits(key, &part[i..i + digits]);
        i += digits;
        if i == part.len() {
            break;
        }
    }
    key.push(END);
}

crate::key::keyed_version!("deb");

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
    fn the_issue_cases() {
        assert!(v("2.36-9+deb12u4") < v("2.36-9+deb12u7"));
        assert!(v("5.2.15-2+b6") < v("5.2.15-2+b7"));
        assert!(v("2:9.0.1378-2") < v("2:9.0.1378-2+deb12u1"));
        assert!(v("3.0.15-1~deb12u1") < v("3.0.15-1"));
    }

    #[test]
    fn dpkg_order() {
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0~~") < v("1.0~"));
        assert!(v("1.0") < v("1.0a"));
        assert!(v("1.0a") < v("1.0+"));
        assert!(v("1.0") < v("1.0."));
        assert_eq!(v("1.0."), v("1.0.0"));
        assert_eq!(v("1.09"), v("1.9"));
        assert_eq!(v("1.0"), v("1.0-0"));
        assert_eq!(v("0:1.0"), v("1.0"));
        assert!(v("1:0.1") > v("9.9"));
        assert!(v("1.0-1") < v("1.0-1.1"));
        assert!(v("1.0+dfsg-1") > v("1.0-1"));
        assert!(v("10") > v("9"));
        assert!(v(&format!("1.{}", "9".repeat(300))) < v(&format!("1.1{}", "0".repeat(300))));
    }

    #[test]
    fn parts() {
        let x = v(" 2:9.0.1378-2+deb12u1\t");
        assert_eq!(x.as_str(), "2:9.0.1378-2+deb12u1");
        assert_eq!(x.epoch(), 2);
        assert_eq!(x.upstream(), "9.0.1378");
        assert_eq!(x.revision(), "2+deb12u1");
        let y = v("0:0-0:0-0");
        assert_eq!((y.epoch(), y.upstream(), y.revision()), (0, "0-0:0", "0"));
        assert_eq!(v("1.0").revision(), "");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            reason("1:abc"),
            "`1:abc` is not a deb version: the upstream version must start with a digit"
        );
        assert!(reason("").contains("empty"));
        assert!(reason("1.0 1").contains("embedded spaces"));
        assert!(reason(":1.0").contains("epoch before `:` is empty"));
        assert!(reason("a:1.0").contains("not a number"));
        assert!(reason("+1:1.0").contains("not a number"));
        assert!(reason("2147483648:1").contains("larger than 2147483647"));
        assert!(reason("1:").contains("nothing follows"));
        assert!(reason("1.0-").contains("revision after the last `-` is empty"));
        assert!(reason("-1").contains("upstream version is empty"));
        assert!(reason("1.0_1").contains("`_` may not appear in the upstream"));
        assert!(
            reason("1.0-1:2").contains("not a number"),
            "the epoch ends at the first `:`"
        );
        assert!(reason("1:1.0-1:2").contains("`:` may not appear in the revision"));
        assert!(v("2147483647:1").epoch() == MAX_EPOCH);
    }
}
