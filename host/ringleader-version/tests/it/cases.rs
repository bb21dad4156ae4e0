//! The data-driven cases of `tests/cases/versions/` (their format: the README there).

use libtest_mimic::{Failed, Trial};
use ringleader_version::{AnyRange, AnyVersion, Scheme};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/versions")
}

/// One line of a case file.
#[derive(Debug, Clone)]
pub enum Case {
    Order(String, Ordering, String),
    Parts(String, [String; 3]),
    Valid(String),
    Refused(String, String),
    InRange(String, bool, String),
}

/// The cases of `FILE.txt` for `scheme`: (line number, text, case).
pub fn read(scheme: Scheme) -> Vec<(usize, String, Case)> {
    let path = dir().join(format!("{scheme}.txt"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (tokens, rest) = tokens(line).unwrap_or_else(|e| panic!("{scheme}.txt:{}: {e}", i + 1));
        if tokens.is_empty() {
            continue;
        }
        let case = match tokens.as_slice() {
            [a, op, b] if matches!(op.as_str(), "<" | "=" | ">") => {
                let order = match op.as_str() {
                    "<" => Ordering::Less,
                    "=" => Ordering::Equal,
                    _ => Ordering::Greater,
                };
                Case::Order(a.clone(), order, b.clone())
            }
            [a, arrow, e, p, r] if arrow == "=>" => {
                Case::Parts(a.clone(), [e.clone(), p.clone(), r.clone()])
            }
            [a, op, range] if op == "in" || op == "!in" => {
                Case::InRange(a.clone(), op == "in", range.clone())
            }
            [bang, a, reason @ ..] if bang == "!" => Case::Refused(a.clone(), reason.join(" ")),
            [a] => Case::Valid(a.clone()),
            _ => panic!("{scheme}.txt:{}: not a case: {line}", i + 1),
        };
        cases.push((i + 1, rest, case));
    }
    assert!(cases.len() >= 20, "cases of {scheme}.txt went missing");
    cases
}

/// The tokens of a line (blank-separated; double-quoted with `\t`, `\"`, `\\`; `#` to
/// the end is a comment) and the line without its comment.
fn tokens(line: &str) -> Result<(Vec<String>, String), String> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut end = line.len();
    while let Some(&(at, c)) = chars.peek() {
        if c == ' ' || c == '\t' {
            chars.next();
        } else if c == '#' {
            end = at;
            break;
        } else if c == '"' {
            chars.next();
            let mut token = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote".into()),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 't')) => token.push('\t'),
                        Some((_, c @ ('"' | '\\'))) => token.push(c),
                        other => return Err(format!("unknown escape {other:?}")),
                    },
                    Some((_, c)) => token.push(c),
                }
            }
            tokens.push(token);
        } else {
            let mut token = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == ' ' || c == '\t' || c == '#' {
                    break;
                }
                token.push(c);
                chars.next();
            }
            tokens.push(token);
        }
    }
    Ok((tokens, line[..end].trim().to_string()))
}

fn parse(scheme: Scheme, text: &str) -> Result<AnyVersion, Failed> {
    AnyVersion::parse(scheme, text).map_err(|e| e.to_string().into())
}

/// (epoch, version or upstream, release or revision) as the scheme reads them.
fn parts(v: &AnyVersion) -> Option<[String; 3]> {
    match v {
        AnyVersion::Deb(v) => Some([
            v.epoch().to_string(),
            v.upstream().into(),
            v.revision().into(),
        ]),
        AnyVersion::Rpm(v) => Some([
            v.epoch().to_string(),
            v.version().into(),
            v.release().unwrap_or_default().into(),
        ]),
        _ => None,
    }
}

fn run(scheme: Scheme, case: &Case) -> Result<(), Failed> {
    match case {
        Case::Order(a, order, b) => {
            let (va, vb) = (parse(scheme, a)?, parse(scheme, b)?);
            let forth = va.try_cmp(&vb)?;
            let back = vb.try_cmp(&va)?;
            if forth != *order || back != order.reverse() {
                return Err(format!(
                    "expected {a} {order:?} {b}; compared {forth:?} (and back {back:?})"
                )
                .into());
            }
        }
        Case::Parts(a, expected) => {
            let v = parse(scheme, a)?;
            let got = parts(&v).ok_or("`=>` cases are for deb and rpm")?;
            if &got != expected {
                return Err(format!("read as {got:?}, expected {expected:?}").into());
            }
        }
        Case::Valid(a) => {
            parse(scheme, a)?;
        }
        Case::Refused(a, reason) => match AnyVersion::parse(scheme, a) {
            Ok(v) => return Err(format!("accepted, as {v:?}").into()),
            Err(e) if e.to_string().contains(reason.as_str()) => {}
            Err(e) => return Err(format!("refused, but for another reason: {e}").into()),
        },
        Case::InRange(a, inside, range) => {
            let v = parse(scheme, a)?;
            let range = AnyRange::parse(scheme, range).map_err(|e| e.to_string())?;
            if range.matches(&v)? != *inside {
                return Err(format!(
                    "expected `{a}` {}in `{range}`",
                    if *inside { "" } else { "not " }
                )
                .into());
            }
        }
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for scheme in Scheme::ALL {
        for (line, text, case) in read(scheme) {
            trials.push(Trial::test(
                format!("{scheme}.txt:{line}: {text}"),
                move || run(scheme, &case),
            ));
        }
    }
    trials
}
