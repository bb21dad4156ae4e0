//! Version pairs for the oracle tests, biased to what the order rules care about:
//! versions are glued from pieces (digit runs with and without leading zeros, letters
//! of both cases, `~ + . - :`, and for rpm `^ _`), mostly in the scheme's shape
//! (`[epoch:]upstream[-revision]`), some at random; half the pairs are a version and a
//! small edit of it, so that near-equal versions (where orders differ) are frequent.

use proptest::prelude::*;
use proptest::sample::{Index, select};

const DEB_EPOCH: &[&str] = &["0", "1", "2", "01", "10"];
const DEB_FIRST: &[&str] = &["0", "1", "2", "9", "10", "00", "01", "99"];
const DEB_UPSTREAM: &[&str] = &[
    "0", "1", "2", "9", "10", "01", "00", "99", "a", "b", "z", "A", "Z", "~", "~~", "+", ".", "-",
    ":", "~rc", "+dfsg", "+deb12u", ".0", "1.0",
];
const DEB_REVISION: &[&str] = &[
    "0", "1", "2", "9", "10", "01", "a", "b", "Z", "~", "+", ".", "+b", "~deb12u", "+deb12u",
    "~bpo",
];
/// What dpkg refuses or warns about, beside the pieces above.
const DEB_ODD: &[&str] = &["_", "!", ",", "^", "é", " ", "a:", "-", ":"];

const RPM_EPOCH: &[&str] = &["0", "1", "2", "01", "10"];
const RPM_VERSION: &[&str] = &[
    "0", "1", "2", "9", "10", "01", "00", "a", "b", "z", "A", "Z", "xyz", "~", "^", "+", "_", ".",
    "rc", "git", "~rc", "^git", ".0", "1.0",
];
const RPM_RELEASE: &[&str] = &[
    "0", "1", "2", "10", "01", "el", "el9", "fc", "a", "_", "~", "^", ".", "+",
];
/// What the rpm scheme refuses, beside the pieces above.
const RPM_ODD: &[&str] = &["-", ":", "!", "%", " ", "é", "a:"];

/// A change to a version's pieces.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, &'static str),
    Replace(Index, &'static str),
    Remove(Index),
}

fn edits(pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<Index>(), select(pieces)).prop_map(|(i, p)| Edit::Insert(i, p)),
        (any::<Index>(), select(pieces)).prop_map(|(i, p)| Edit::Replace(i, p)),
        any::<Index>().prop_map(Edit::Remove),
    ];
    prop::collection::vec(edit, 1..3)
}

fn apply(mut pieces: Vec<&'static str>, edits: &[Edit]) -> Vec<&'static str> {
    for edit in edits {
        match *edit {
            Edit::Insert(i, p) => pieces.insert(i.index(pieces.len() + 1), p),
            Edit::Replace(i, p) if !pieces.is_empty() => {
                let at = i.index(pieces.len());
                pieces[at] = p;
            }
            Edit::Remove(i) if pieces.len() > 1 => {
                pieces.remove(i.index(pieces.len()));
            }
            _ => {}
        }
    }
    pieces
}

/// Half independent pairs, half a version and an edit of it.
fn pairs(
    version: BoxedStrategy<Vec<&'static str>>,
    edit_pieces: &'static [&'static str],
) -> BoxedStrategy<(String, String)> {
    let independent =
        (version.clone(), version.clone()).prop_map(|(a, b)| (a.concat(), b.concat()));
    let related = (version, edits(edit_pieces)).prop_map(|(a, edits)| {
        let b = apply(a.clone(), &edits);
        (a.concat(), b.concat())
    });
    prop_oneof![independent, related].boxed()
}

fn shaped(
    epochs: &'static [&'static str],
    first: &'static [&'static str],
    body: &'static [&'static str],
    tail: &'static [&'static str],
) -> impl Strategy<Value = Vec<&'static str>> {
    (
        prop::option::weighted(0.3, select(epochs)),
        select(first),
        prop::collection::vec(select(body), 0..6),
        prop::option::weighted(0.6, prop::collection::vec(select(tail), 1..4)),
    )
        .prop_map(|(epoch, first, body, tail)| {
            let mut pieces = Vec::new();
            if let Some(epoch) = epoch {
                pieces.extend([epoch, ":"]);
            }
            pieces.push(first);
            pieces.extend(body);
            if let Some(tail) = tail {
                pieces.push("-");
                pieces.extend(tail);
            }
            pieces
        })
}

fn all(parts: &[&'static [&'static str]]) -> &'static [&'static str] {
    Vec::leak(parts.concat())
}

pub fn deb_pairs() -> BoxedStrategy<(String, String)> {
    let every = all(&[DEB_UPSTREAM, DEB_REVISION, DEB_ODD]);
    let version = prop_oneof![
        9 => shaped(DEB_EPOCH, DEB_FIRST, DEB_UPSTREAM, DEB_REVISION),
        1 => prop::collection::vec(select(every), 1..8),
    ]
    .boxed();
    pairs(version, all(&[DEB_UPSTREAM, DEB_REVISION]))
}

pub fn rpm_pairs() -> BoxedStrategy<(String, String)> {
    let every = all(&[RPM_VERSION, RPM_RELEASE, RPM_ODD]);
    let version = prop_oneof![
        9 => shaped(RPM_EPOCH, RPM_VERSION, RPM_VERSION, RPM_RELEASE),
        1 => prop::collection::vec(select(every), 1..8),
    ]
    .boxed();
    pairs(version, all(&[RPM_VERSION, RPM_RELEASE]))
}
