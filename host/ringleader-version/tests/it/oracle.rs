//! The real tools as judges: dpkg for `deb`, rpm (its Python bindings, `python3-rpm`)
//! for `rpm`. Both are installed by `tests/peers/install.sh` (through
//! `ringleader_tests::peers`, which runs it when one is missing); a missing tool fails
//! the test, never skips it.
//!
//! Per scheme, proptest generates pairs of versions (`generate`), and for each pair:
//! both read here: the tool must order them as we do, and read them without a warning;
//! one refused here: dpkg must refuse or warn about it too (rpm reads almost anything,
//! so for rpm this is only counted). Then the versions read here, sorted by our order,
//! are checked pair by pair along the sorted list: the tool's order is a total one, so
//! agreeing on each neighbour means agreeing on every pair of the list. A disagreement
//! is shrunk (proptest's shrinking, one tool call per step) to a small pair and reported.
//!
//! `RINGLEADER_ORACLE_CASES` sets the number of pairs per scheme (default 2,000 for deb:
//! one dpkg process per comparison, run two at a time; 20,000 for rpm: one Python
//! process for all), `RINGLEADER_ORACLE_SEED` the seed (default 13).

use crate::cases::{self, Case};
use crate::generate;
use libtest_mimic::{Failed, Trial};
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use ringleader_version::{Scheme, rpm};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("oracle::deb_order_matches_dpkg", || {
            property(&Dpkg::new(), generate::deb_pairs(), cases(2_000))
        }),
        Trial::test("oracle::rpm_order_matches_rpm", || {
            property(&Rpm::new(), generate::rpm_pairs(), cases(20_000))
        }),
        Trial::test("oracle::deb_cases_agree_with_dpkg", || {
            data_cases(&Dpkg::new(), Scheme::Deb)
        }),
        Trial::test("oracle::rpm_cases_agree_with_rpm", || {
            data_cases(&Rpm::new(), Scheme::Rpm)
        }),
    ]
}

fn cases(default: usize) -> usize {
    std::env::var("RINGLEADER_ORACLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("RINGLEADER_ORACLE_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(13)
}

/// What a tool said of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Both read, ordered alike.
    Compared,
    /// One refused here, and by the tool (or, for rpm, not asked).
    Refused,
    /// A disagreement, said in a sentence.
    Disagree(String),
}

trait Oracle: Sync {
    /// The tool's name and version, for messages.
    fn name(&self) -> String;
    fn scheme(&self) -> Scheme;
    fn judge(&self, pairs: &[(String, String)]) -> Vec<Verdict>;
}

/// Our order of two texts of `scheme`, or the first that does not parse.
fn ours(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, (String, String)> {
    let parse = |t: &str| {
        ringleader_version::AnyVersion::parse(scheme, t).map_err(|e| (t.to_string(), e.to_string()))
    };
    let (va, vb) = (parse(a)?, parse(b)?);
    Ok(va.try_cmp(&vb).expect("one scheme"))
}

fn property(
    oracle: &dyn Oracle,
    strategy: BoxedStrategy<(String, String)>,
    count: usize,
) -> Result<(), Failed> {
    let started = Instant::now();
    let seed = seed();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let mut trees = Vec::with_capacity(count);
    for _ in 0..count {
        trees.push(strategy.new_tree(&mut runner).map_err(|e| e.to_string())?);
    }
    let pairs: Vec<_> = trees.iter().map(|t| t.current()).collect();
    let verdicts = oracle.judge(&pairs);
    if let Some(i) = verdicts
        .iter()
        .position(|v| matches!(v, Verdict::Disagree(_)))
    {
        let (pair, verdict) = shrink(oracle, &mut *trees[i]);
        return Err(format!(
            "{} and we disagree (seed {seed}, pair {i}: `{}` `{}`: {:?}); shrunk to `{}` `{}`: {verdict:?}",
            oracle.name(),
            pairs[i].0,
            pairs[i].1,
            verdicts[i],
            pair.0,
            pair.1
        )
        .into());
    }
    let compared = verdicts.iter().filter(|v| **v == Verdict::Compared).count();

    // Every version we read, in our order: the tool must agree with each neighbour.
    let scheme = oracle.scheme();
    let texts: BTreeSet<&str> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .filter(|t| ringleader_version::AnyVersion::parse(scheme, t).is_ok())
        .collect();
    let mut sorted: Vec<_> = texts
        .into_iter()
        .take(count / 2)
        .map(|t| (ringleader_version::AnyVersion::parse(scheme, t).unwrap(), t))
        .collect();
    sorted.sort_by(|(a, _), (b, _)| a.try_cmp(b).unwrap());
    let neighbours: Vec<_> = sorted
        .windows(2)
        .map(|w| (w[0].1.to_string(), w[1].1.to_string()))
        .collect();
    for (pair, verdict) in neighbours.iter().zip(oracle.judge(&neighbours)) {
        if let Verdict::Disagree(why) = verdict {
            return Err(format!(
                "{} and we disagree on neighbours in our order `{}` `{}`: {why}",
                oracle.name(),
                pair.0,
                pair.1
            )
            .into());
        }
    }
    let n = sorted.len();
    eprintln!(
        "{scheme}: {} agrees on {count} generated pairs ({compared} compared, {} with a version refused here) and on the {} pairs of {n} versions sorted here (seed {seed}, {:.1} s)",
        oracle.name(),
        count - compared,
        n * n.saturating_sub(1) / 2,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Shrinks a disagreeing pair (proptest's simplify and complicate, one tool call each).
fn shrink(
    oracle: &dyn Oracle,
    tree: &mut dyn ValueTree<Value = (String, String)>,
) -> ((String, String), Verdict) {
    let disagrees = |pair: &(String, String)| {
        let verdict = oracle.judge(std::slice::from_ref(pair)).remove(0);
        matches!(verdict, Verdict::Disagree(_)).then_some(verdict)
    };
    let mut best = tree.current();
    let mut verdict = disagrees(&best).unwrap_or(Verdict::Disagree("not again".into()));
    let mut steps = 0;
    let mut more = tree.simplify();
    while more && steps < 1_000 {
        steps += 1;
        let pair = tree.current();
        match disagrees(&pair) {
            Some(v) => {
                best = pair;
                verdict = v;
                more = tree.simplify();
            }
            None => more = tree.complicate(),
        }
    }
    (best, verdict)
}

/// The data files' order cases (and readings, and for deb refusals), before the tool.
fn data_cases(oracle: &dyn Oracle, scheme: Scheme) -> Result<(), Failed> {
    let mut pairs = Vec::new();
    let mut expected = Vec::new();
    for (line, _, case) in cases::read(scheme) {
        match case {
            Case::Order(a, order, b) => {
                pairs.push((a, b));
                expected.push((line, Verdict::Compared, order));
            }
            Case::Parts(a, _) => {
                pairs.push((a.clone(), a));
                expected.push((line, Verdict::Compared, Ordering::Equal));
            }
            // dpkg reads an empty text as no version at all, and a signed epoch
            // (`strtol`): both refused here on purpose.
            Case::Refused(a, _) if scheme == Scheme::Deb && !a.trim().is_empty() => {
                pairs.push((a.clone(), a));
                expected.push((line, Verdict::Refused, Ordering::Equal));
            }
            _ => {}
        }
    }
    let verdicts = oracle.judge(&pairs);
    let wrong: Vec<_> = expected
        .iter()
        .zip(&pairs)
        .zip(&verdicts)
        .filter(|(((_, want, _), _), got)| want != *got)
        .map(|(((line, _, _), (a, b)), got)| format!("{scheme}.txt:{line}: `{a}` `{b}`: {got:?}"))
        .collect();
    if !wrong.is_empty() {
        return Err(format!("{} disagrees:\n{}", oracle.name(), wrong.join("\n")).into());
    }
    eprintln!(
        "{scheme}: {} agrees with the {} order cases and refusals of {scheme}.txt",
        oracle.name(),
        pairs.len()
    );
    Ok(())
}

/// `dpkg --compare-versions`, one process per question, two at a time.
struct Dpkg {
    dpkg: &'static Path,
}

impl Dpkg {
    fn new() -> Dpkg {
        Dpkg {
            dpkg: ringleader_tests::peers::dpkg(),
        }
    }

    /// Exit status (0: true, 1: false, 2: an error) and what dpkg said on stderr.
    fn ask(&self, a: &str, op: &str, b: &str) -> (i32, String) {
        let out = Command::new(self.dpkg)
            .args(["--compare-versions", "--", a, op, b])
            .output()
            .expect("run dpkg");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    fn judge_one(&self, a: &str, b: &str) -> Verdict {
        match ours(Scheme::Deb, a, b) {
            Ok(order) => {
                let op = match order {
                    Ordering::Less => "lt",
                    Ordering::Equal => "eq",
                    Ordering::Greater => "gt",
                };
                match self.ask(a, op, b) {
                    (0, said) if said.is_empty() => Verdict::Compared,
                    (0 | 1, said) if !said.is_empty() => {
                        Verdict::Disagree(format!("read here; dpkg says: {said}"))
                    }
                    (1, _) => {
                        let theirs = ["lt", "eq", "gt"]
                            .into_iter()
                            .find(|op| self.ask(a, op, b).0 == 0)
                            .unwrap_or("?");
                        Verdict::Disagree(format!("`{a}` {op} `{b}` here, {theirs} for dpkg"))
                    }
                    (code, said) => Verdict::Disagree(format!("dpkg exited {code}: {said}")),
                }
            }
            Err((text, why)) => {
                if text.trim().is_empty() || signed_epoch(&text) {
                    return Verdict::Refused;
                }
                let (_, said) = self.ask(&text, "eq", &text);
                if said.contains("bad syntax") {
                    Verdict::Refused
                } else {
                    Verdict::Disagree(format!("{why}; dpkg reads it without a word"))
                }
            }
        }
    }
}

/// `+1:2`, `-0:2`: dpkg reads the epoch with `strtol`, which takes a sign; the deb
/// scheme takes digits only (docs/policies.md).
fn signed_epoch(text: &str) -> bool {
    text.trim_matches([' ', '\t'])
        .split_once(':')
        .and_then(|(epoch, _)| epoch.strip_prefix(['+', '-']))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

impl Oracle for Dpkg {
    fn name(&self) -> String {
        let out = Command::new(self.dpkg)
            .arg("--version")
            .output()
            .expect("dpkg");
        let first = String::from_utf8_lossy(&out.stdout);
        let version = first
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()));
        format!("dpkg {}", version.unwrap_or("?"))
    }

    fn scheme(&self) -> Scheme {
        Scheme::Deb
    }

    fn judge(&self, pairs: &[(String, String)]) -> Vec<Verdict> {
        const AT_ONCE: usize = 2;
        let mut verdicts = vec![Verdict::Compared; pairs.len()];
        std::thread::scope(|scope| {
            let chunk = pairs.len().div_ceil(AT_ONCE).max(1);
            for (pairs, verdicts) in pairs.chunks(chunk).zip(verdicts.chunks_mut(chunk)) {
                scope.spawn(move || {
                    for ((a, b), verdict) in pairs.iter().zip(verdicts) {
                        *verdict = self.judge_one(a, b);
                    }
                });
            }
        });
        verdicts
    }
}

/// One `/usr/bin/python3` with rpm's bindings, reading pairs as JSON lines and
/// answering each with rpm's reading of both (`rpm.ver`: epoch, version, release) and
/// `rpm.labelCompare` of them.
struct Rpm {
    process: Mutex<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

const RPM_JUDGE: &str = r#"
import json, sys, rpm
def read(text):
    v = rpm.ver(text)
    return [v.e, v.v, v.r]
for line in iter(sys.stdin.readline, ""):
    a, b = json.loads(line)
    try:
        ra, rb = read(a), read(b)
        answer = [ra, rb, rpm.labelCompare(tuple(ra), tuple(rb))]
    except Exception as e:
        answer = repr(e)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"#;

impl Rpm {
    fn new() -> Rpm {
        let python = ringleader_tests::peers::python3_rpm();
        let mut child = Command::new(python)
            .args(["-c", RPM_JUDGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start /usr/bin/python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Rpm {
            process: Mutex::new((child, stdin, stdout)),
        }
    }

    fn check(a: &str, b: &str, answer: &serde_json::Value) -> Verdict {
        let order = match ours(Scheme::Rpm, a, b) {
            Ok(order) => order,
            Err(_) => return Verdict::Refused,
        };
        let Some([ra, rb, cmp]) = answer
            .as_array()
            .and_then(|a| <&[_; 3]>::try_from(a.as_slice()).ok())
        else {
            return Verdict::Disagree(format!("rpm failed: {answer}"));
        };
        for (text, read) in [(a, ra), (b, rb)] {
            let v = rpm::Version::parse(text).unwrap();
            let ours = serde_json::json!([
                text.trim().split_once(':').map(|(e, _)| e),
                v.version(),
                v.release()
            ]);
            if &ours != read {
                return Verdict::Disagree(format!(
                    "`{text}` read as {ours} here, {read} by rpm.ver"
                ));
            }
        }
        let theirs = match cmp.as_i64() {
            Some(-1) => Ordering::Less,
            Some(0) => Ordering::Equal,
            Some(1) => Ordering::Greater,
            _ => return Verdict::Disagree(format!("rpm.labelCompare answered {cmp}")),
        };
        if theirs == order {
            Verdict::Compared
        } else {
            Verdict::Disagree(format!("`{a}` {order:?} `{b}` here, {theirs:?} for rpm"))
        }
    }
}

impl Oracle for Rpm {
    fn name(&self) -> String {
        let python = ringleader_tests::peers::python3_rpm();
        let out = Command::new(python)
            .args(["-c", "import rpm; print(rpm.__version__)"])
            .output()
            .expect("python3");
        format!("rpm {}", String::from_utf8_lossy(&out.stdout).trim())
    }

    fn scheme(&self) -> Scheme {
        Scheme::Rpm
    }

    fn judge(&self, pairs: &[(String, String)]) -> Vec<Verdict> {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        let (_, stdin, stdout) = &mut *process;
        let mut verdicts = Vec::with_capacity(pairs.len());
        // A chunk's questions and answers each fit in a pipe's buffer: no deadlock.
        for chunk in pairs.chunks(200) {
            let asked: Vec<_> = chunk
                .iter()
                .filter(|(a, b)| ours(Scheme::Rpm, a, b).is_ok())
                .collect();
            for (a, b) in &asked {
                // Blanks around a version are dropped here, never seen by rpm.
                writeln!(stdin, "{}", serde_json::json!([a.trim(), b.trim()]))
                    .expect("write to python3");
            }
            stdin.flush().expect("write to python3");
            let mut answers = Vec::with_capacity(asked.len());
            for _ in &asked {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("read from python3");
                answers.push(serde_json::from_str(&line).unwrap_or(serde_json::Value::Null));
            }
            let mut answers = answers.into_iter();
            for (a, b) in chunk {
                verdicts.push(match ours(Scheme::Rpm, a, b) {
                    Ok(_) => Rpm::check(a, b, &answers.next().unwrap()),
                    Err(_) => Verdict::Refused,
                });
            }
        }
        verdicts
    }
}

impl Drop for Rpm {
    fn drop(&mut self) {
        let process = self.process.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = process.0.kill();
        let _ = process.0.wait();
    }
}
