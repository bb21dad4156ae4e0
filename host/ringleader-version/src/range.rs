//! Ranges of the `deb`, `rpm`, `apk` and `semver` schemes, in the syntax the vendor
//! rule's ranges have: comparators separated by `,` must all hold, `||` separates
//! alternatives, `*` is anything, an empty range is anything; a comparator is `>=`,
//! `>`, `<`, `<=` or `=` and a version, or a bare version (exactly that version).
//! Caret (`^`) and tilde (`~`) ranges exist for `semver` only (and for `vendor`, by its
//! own [`crate::vendor::Range`]): in `deb`, `rpm` and `apk` versions `~` and `^` mean
//! something else.
//!
//! Operators are the leading run of `< > = ^ ~ !` of a comparator. A `deb` or `apk`
//! version starts with a digit and an `rpm` version holds none of `< > = !`, so the
//! operator is never part of the version; an `rpm` version that starts with `~` or `^`
//! is written after `= ` (with the space).

use crate::VersionError;
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, order: Ordering) -> bool {
        match self {
            Op::Eq => order.is_eq(),
            Op::Gt => order.is_gt(),
            Op::Ge => order.is_ge(),
            Op::Lt => order.is_lt(),
            Op::Le => order.is_le(),
        }
    }
}

/// Alternatives of comparator sets, over one scheme's versions.
#[derive(Clone, Debug)]
pub(crate) struct Comparators<V> {
    alternatives: Vec<Vec<(Op, V)>>,
}

impl<V: Ord> Comparators<V> {
    /// Everything.
    pub(crate) fn any() -> Comparators<V> {
        Comparators {
            alternatives: vec![vec![]],
        }
    }

    pub(crate) fn matches(&self, v: &V) -> bool {
        self.alternatives
            .iter()
            .any(|all| all.iter().all(|(op, bound)| op.holds(v.cmp(bound))))
    }
}

/// A scheme's versions as range bounds.
pub(crate) trait Bound: Ord + Sized {
    fn parse(text: &str) -> Result<Self, VersionError>;

    /// `^v` (`caret`) or `~v` as comparators; `None` in schemes without them.
    fn caret_or_tilde(v: Self, caret: bool) -> Option<Vec<(Op, Self)>> {
        let _ = (v, caret);
        None
    }
}

impl Bound for crate::deb::Version {
    fn parse(text: &str) -> Result<Self, VersionError> {
        Self::parse(text)
    }
}

impl Bound for crate::rpm::Version {
    fn parse(text: &str) -> Result<Self, VersionError> {
        Self::parse(text)
    }
}

impl Bound for crate::apk::Version {
    fn parse(text: &str) -> Result<Self, VersionError> {
        Self::parse(text)
    }
}

impl Bound for crate::semver::Version {
    fn parse(text: &str) -> Result<Self, VersionError> {
        Self::parse(text)
    }

    fn caret_or_tilde(v: Self, caret: bool) -> Option<Vec<(Op, Self)>> {
        let next = v.next(caret);
        let mut comparators = vec![(Op::Ge, v)];
        comparators.extend(next.map(|next| (Op::Lt, next)));
        Some(comparators)
    }
}

/// Parses `text` as a range of `V`s; errors are "`text` is not a `what`: reason".
pub(crate) fn parse<V: Bound>(
    text: &str,
    what: &'static str,
) -> Result<Comparators<V>, VersionError> {
    let err = |reason: String| VersionError {
        text: text.to_string(),
        what,
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Comparators::any());
    }
    let mut alternatives = Vec::new();
    for alternative in text.split("||") {
        let mut comparators = Vec::new();
        for item in alternative.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(err(
                    "an empty comparator (two commas, or `||` with nothing on one side)".into(),
                ));
            }
            if item == "*" {
                continue;
            }
            let end = item
                .find(|c: char| !matches!(c, '<' | '>' | '=' | '^' | '~' | '!'))
                .unwrap_or(item.len());
            let (op, rest) = item.split_at(end);
            let version = || V::parse(rest.trim()).map_err(|e| err(e.to_string()));
            match op {
                "" | "=" => comparators.push((Op::Eq, version()?)),
                ">" => comparators.push((Op::Gt, version()?)),
                ">=" => comparators.push((Op::Ge, version()?)),
                "<" => comparators.push((Op::Lt, version()?)),
                "<=" => comparators.push((Op::Le, version()?)),
                "^" | "~" => match V::caret_or_tilde(version()?, op == "^") {
                    Some(both) => comparators.extend(both),
                    None => {
                        return Err(err(format!(
                            "`{op}` ranges are for semver and vendor versions: write bounds, as in `>= 1.2, < 1.3`"
                        )));
                    }
                },
                "<<" | ">>" => {
                    return Err(err(format!(
                        "unknown operator `{op}` (Debian's `{op}` is written `{}` here)",
                        &op[..1]
                    )));
                }
                other => return Err(err(format!("unknown operator `{other}`"))),
            }
        }
        alternatives.push(comparators);
    }
    Ok(Comparators { alternatives })
}
