//! Sort keys: a version parsed once into bytes whose plain byte order (`memcmp`) is the
//! scheme's order, so comparing two versions allocates nothing and branches little.
//!
//! Each scheme's module says how it lays out its key. What they share: a number is
//! written as its count of significant digits, then those digits, so that a longer
//! number is larger and numbers of one length compare digit by digit, for any length;
//! a fixed-width number (epoch, apk's numbers) is big-endian.

use std::cmp::Ordering;

/// Appends the run of ASCII digits `digits` as a number of any size: leading zeros
/// dropped, then the count of digits left (one byte below 255, else 255 and eight
/// bytes), then the digits. Zero (or an empty run) is the single byte 0.
pub(crate) fn push_digits(key: &mut Vec<u8>, digits: &[u8]) {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first..];
    match u8::try_from(significant.len()) {
        Ok(len) if len < u8::MAX => key.push(len),
        _ => {
            key.push(u8::MAX);
            key.extend_from_slice(&(significant.len() as u64).to_be_bytes());
        }
    }
    key.extend_from_slice(significant);
}

/// The byte order of two keys (as `<[u8]>::cmp`), eight bytes at a time: keys are
/// short, and most pairs part in their first words, where a call to `memcmp` would cost
/// more than the comparison.
#[inline]
pub(crate) fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let (mut a8, mut b8) = (a[..common].chunks_exact(8), b[..common].chunks_exact(8));
    for (x, y) in a8.by_ref().zip(b8.by_ref()) {
        let x = u64::from_be_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(y.try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The value of a run of ASCII digits, if it fits in 64 bits.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Length of the run of ASCII digits at the start of `bytes`.
pub(crate) fn digits_at(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(bytes.len())
}

/// The traits of a version type that is a sort key and its text (`key: Box<[u8]>`,
/// `text: Box<str>`): order and equality are the key's, display is the text.
macro_rules! keyed_version {
    ($scheme:literal) => {
        impl Ord for Version {
            #[inline]
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                crate::key::cmp(&self.key, &other.key)
            }
        }

        impl PartialOrd for Version {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl PartialEq for Version {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                self.key == other.key
            }
        }

        impl Eq for Version {}

        impl std::hash::Hash for Version {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.key.hash(state);
            }
        }

        impl std::fmt::Display for Version {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl std::fmt::Debug for Version {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($scheme, "::Version({})"), self.text)
            }
        }
    };
}
pub(crate) use keyed_version;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(digits: &str) -> Vec<u8> {
        let mut k = Vec::new();
        push_digits(&mut k, digits.as_bytes());
        k
    }

    #[test]
    fn numbers_of_any_length_keep_their_order() {
        assert_eq!(key("0"), key(""));
        assert_eq!(key("007"), key("7"));
        assert!(key("9") < key("10"));
        assert!(key("19") < key("20"));
        let long = "1".repeat(300);
        let longer = "1".repeat(301);
        assert!(key(&"9".repeat(254)) < key(&long));
        assert!(key(&long) < key(&longer));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(digits_at(b"12a"), 2);
    }

    #[test]
    fn cmp_is_byte_order() {
        let keys: [&[u8]; 9] = [
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgi",
            b"abcdefghijklmnopq",
            b"b",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
