//! Alpine versions (`apk`), ordered and checked as apk-tools (`src/version.c`) does:
//! `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`.
//!
//! - a number, then any number of `.number` (`1.2.10`);
//! - at most one lowercase letter, right after a number (`1.2.3b`);
//! - any number of suffixes, each optionally numbered: `_alpha`, `_beta`, `_pre`,
//!   `_rc` sort before the release without them (`1.0_rc1` < `1.0`); `_cvs`, `_svn`,
//!   `_git`, `_hg`, `_p` after it (`1.0` < `1.0_p1`);
//! - at most one commit hash: `~` and lowercase hex digits (`1.0~1234abcd`);
//! - at most one revision, last: `-r` and a number (`1.0-r2`).
//!
//! Anything else (`1.0bc`, `1.0_foo`, `1.0-2`, `1.0-r1.1`, `a`) is refused, as
//! `apk version --check` refuses it. Numbers are at most 2^64 - 1 (apk-tools wraps
//! larger ones; here they are refused).
//!
//! Order (as apk-tools): token by token. Tokens of the same kind compare by value:
//! numbers numerically, except that a number after `.` with a leading zero compares
//! as text (`1.01` < `1.1`, `1.0` < `1.00`, as Gentoo's rule has it); letters and
//! hashes as text; suffixes `alpha` < `beta` < `pre` < `rc` < `cvs` < `svn` < `git` <
//! `hg` < `p`. Where the kinds differ, or one version ends: a pre-release suffix sorts
//! lowest, then the end, a revision, a hash, a suffix number, a later suffix, a letter,
//! a `.number` (so `1.0_rc1` < `1.0` < `1.0-r1` < `1.0_p1` < `1.0a` < `1.0.1`).
//!
//! Sort key: the first number (8 bytes), then for each token its rank in that list
//! (one byte) and its value: numbers in 8 bytes, a `.number` with a leading zero as
//! its digits and 0x00, letters and suffixes in a byte, a hash as its digits and 0x00.

use crate::VersionError;
use crate::key::{digits_at, parse_u64};

// The rank of a token where two versions part: lowest first.
const PRE_SUFFIX: u8 = 1;
const END: u8 = 2;
const REVISION: u8 = 3;
const HASH: u8 = 4;
const SUFFIX_NUMBER: u8 = 5;
const POST_SUFFIX: u8 = 6;
const LETTER: u8 = 7;
const DIGITS: u8 = 8;

/// The suffixes apk-tools knows, in order: the first four sort before the release.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const PRE_SUFFIXES: usize = 4;

/// What the previous token was: which tokens may follow (apk-tools' `TOKEN_*`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    Hash,
    Revision,
}

/// An Alpine package version. `Eq` is apk's equality (`1.0-r01` == `1.0-r1`).
#[derive(Clone)]
pub struct Version {
    key: Box<[u8]>,
    text: Box<str>,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = |reason: String| VersionError {
            text: text.to_string(),
            what: "an apk version",
            reason,
        };
        let trimmed = text.trim();
        let b = trimmed.as_bytes();
        let mut key = Vec::with_capacity(16 + 2 * b.len());
        let first = digits_at(b);
        if first == 0 {
            return Err(err("it does not start with a number".into()));
        }
        push_number(&mut key, &b[..first]).map_err(&err)?;
        let mut i = first;
        let mut prev = Token::Digit;
        while let Some(&c) = b.get(i) {
            match c {
                b'a'..=b'z' => {
                    if prev > Token::Digit {
                        return Err(err(format!(
                            "the letter `{}` does not follow a number (one letter may, as in `1.2a`)",
                            c as char
                        )));
                    }
                    key.extend_from_slice(&[LETTER, c]);
                    i += 1;
                    prev = Token::Letter;
                }
                b'.' => {
                    if prev > Token::Digit {
                        return Err(err("`.` does not follow a number".into()));
                    }
                    let n = digits_at(&b[i + 1..]);
                    if n == 0 {
                        return Err(err("no number follows a `.`".into()));
                    }
                    let digits = &b[i + 1..i + 1 + n];
                    key.push(DIGITS);
                    if digits[0] == b'0' {
                        // apk-tools compares these as text: below every number
                        // without a leading zero.
                        key.push(0);
                        key.extend_from_slice(digits);
                        key.push(0);
                    } else {
                        key.push(1);
                        push_number(&mut key, digits).map_err(&err)?;
                    }
                    i += 1 + n;
                    prev = Token::Digit;
                }
                b'0'..=b'9' => {
                    // Only a suffix's number: digits after digits were taken with them,
                    // and a letter is the last thing of the release.
                    if prev != Token::Suffix {
                        return Err(err(format!(
                            "a number follows the letter `{}` (a letter ends the release, as in `1.2a`)",
                            b[i - 1] as char
                        )));
                    }
                    let n = digits_at(&b[i..]);
                    key.push(SUFFIX_NUMBER);
                    push_number(&mut key, &b[i..i + n]).map_err(&err)?;
                    i += n;
                    prev = Token::SuffixNumber;
                }
                b'_' => {
                    if prev > Token::SuffixNumber {
                        return Err(err(
                            "a suffix `_...` comes before the commit hash and the revision".into(),
                        ));
                    }
                    let n = b[i + 1..]
                        .iter()
                        .position(|c| !c.is_ascii_lowercase())
                        .unwrap_or(b.len() - i - 1);
                    let name = &trimmed[i + 1..i + 1 + n];
                    let Some(index) = SUFFIXES.iter().position(|s| *s == name) else {
                        return Err(err(format!(
                            "`_{name}` is not a suffix (alpha, beta, pre, rc; cvs, svn, git, hg, p)"
                        )));
                    };
                    let rank = if index < PRE_SUFFIXES {
                        PRE_SUFFIX
                    } else {
                        POST_SUFFIX
                    };
                    key.extend_from_slice(&[rank, index as u8]);
                    i += 1 + n;
                    prev = Token::Suffix;
                }
                b'~' => {
                    if prev >= Token::Hash {
                        return Err(err(
                            "a commit hash `~...` comes once, before the revision".into()
                        ));
                    }
                    let n = b[i + 1..]
                        .iter()
                        .position(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                        .unwrap_or(b.len() - i - 1);
                    if n == 0 {
                        return Err(err(
                            "no commit hash (lowercase hex digits) follows `~`".into()
                        ));
                    }
                    key.push(HASH);
                    key.extend_from_slice(&b[i + 1..i + 1 + n]);
                    key.push(0);
                    i += 1 + n;
                    prev = Token::Hash;
                }
                b'-' => {
                    if prev >= Token::Revision {
                        return Err(err("there is more than one revision `-rN`".into()));
                    }
                    if b.get(i + 1) != Some(&b'r') {
                        return Err(err(
                            "a `-` is not followed by `r` (the revision is `-rN`)".into()
                        ));
                    }
                    let n = digits_at(&b[i + 2..]);
                    if n == 0 {
                        return Err(err("no number follows `-r`".into()));
                    }
                    key.push(REVISION);
                    push_number(&mut key, &b[i + 2..i + 2 + n]).map_err(&err)?;
                    i += 2 + n;
                    prev = Token::Revision;
                }
                _ => {
                    let c = trimmed[i..].chars().next().unwrap_or_default();
                    return Err(err(format!(
                        "`{}` may not appear in an apk version",
                        c.escape_debug()
                    )));
                }
            }
        }
        key.push(END);
        Ok(Version {
            key: key.into(),
            text: trimmed.into(),
        })
    }

    /// The version as written (without surrounding blanks).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn push_number(key: &mut Vec<u8>, digits: &[u8]) -> Result<(), String> {
    let n = parse_u64(digits).ok_or_else(|| format!("a number is larger than {}", u64::MAX))?;
    key.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

crate::key::keyed_version!("apk");

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
    fn apk_order() {
        let chain = [
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_beta",
            "1.0_pre",
            "1.0_rc1",
            "1.0",
            "1.0-r1",
            "1.0~abc",
            "1.0_cvs",
            "1.0_p1",
            "1.0a",
            "1.0.1",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert!(v("1.01") < v("1.1"));
        assert!(v("1.0") < v("1.00"));
        assert!(v("1.09") < v("1.1"));
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("006"), v("6"), "the first number is a number");
        assert!(
            v("1.0_p") < v("1.0_p0"),
            "a suffix number, even 0, sorts after none"
        );
        assert_eq!(v("1.0-r01"), v("1.0-r1"));
    }

    #[test]
    fn refusals_say_why() {
        assert!(reason("").contains("does not start with a number"));
        assert!(reason("a").contains("does not start with a number"));
        assert!(reason("1.0bc").contains("letter `c` does not follow a number"));
        assert!(reason("1.0a1").contains("a number follows the letter `a`"));
        assert!(reason("1.0_foo").contains("`_foo` is not a suffix"));
        assert!(reason("1.0_").contains("`_` is not a suffix"));
        assert!(reason("1.0-2").contains("not followed by `r`"));
        assert!(reason("1.0-r").contains("no number follows `-r`"));
        assert!(reason("1.0-r1-r2").contains("more than one revision"));
        assert!(reason("1.0-r1.1").contains("`.` does not follow a number"));
        assert!(reason("1.0~").contains("no commit hash"));
        assert!(reason("1.0~12_p1").contains("before the commit hash"));
        assert!(reason("1..0").contains("no number follows a `.`"));
        assert!(reason("1.0A").contains("`A` may not appear"));
        assert!(reason("99999999999999999999").contains("larger than"));
    }
}
