//! The `csaf` and `lvfs` targets: the parsers of `plugins/csaf-source` and
//! `plugins/lvfs-source`, which run only as wasm components, fuzzed through the real
//! runtime. One file server on 127.0.0.1 and one loaded plugin serve a whole run: each
//! input is served (the server's ETag is a hash of the body, so a changed input is
//! answered 200, not 304, which the check verifies) and `discover` is called on it.
//!
//! Every call must return within [`HANG`](super::HANG): patches, or the plugin's own
//! typed error (a document the plugin cannot read is logged and the others read on).
//! A trap (a panic in the guest's parser), a deadline, a limit or a host panic is a
//! failure, and so is a panic of the host's catalog on the patches. After every error,
//! and every [`GOOD_EVERY`] inputs, a good document must still give its patches.

use super::{HANG, MAX_INPUT, Rng, mutate, root};
use ringleader_runtime::{CallErrorKind, Grants, Plugin, Runtime, RuntimeConfig, Services};
use ringleader_tests::guests::device;
use ringleader_tests::guests::encode::{gzip, zstd};
use ringleader_tests::peers::FileServer;
use ringleader_types::Device;
use std::collections::HashMap;
use std::path::Path;

/// A good call every this many inputs, besides one after every error.
const GOOD_EVERY: u64 = 32;

/// An input whose first line is this comment is an `index.txt` (served as the CSAF
/// provider's index, next to two good advisories `a.json` and `b.json`); any other
/// input is an advisory, served as `advisory.json` from an index listing it.
const INDEX_MARK: &[u8] = b"# fuzz: index.txt\n";

/// `dir`'s case folders (`tests/cases/KIND/`), sorted.
fn cases(kind: &str) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/cases").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `name` loaded into a runtime granting what it declares, but HTTP to 127.0.0.1 only
/// (a mutant naming another host must not reach out), with `settings`.
async fn load(name: &str, settings: &[(&str, String)]) -> Plugin {
    let path = ringleader_bundled_plugins::manifest_path(name);
    let manifest = ringleader_runtime::Manifest::load(&path).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared(name, &manifest.capabilities);
    let grant = grants.plugins.get_mut(name).unwrap();
    grant.http = vec!["127.0.0.1".into()];
    for (key, value) in settings {
        grant.settings.insert((*key).into(), value.clone());
    }
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        grants,
        services: Services::default(),
    })
    .expect("runtime");
    runtime
        .load(&path)
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// One server, one plugin, a fleet, and the good input that must give patches.
struct Harness {
    tokio: tokio::runtime::Runtime,
    server: FileServer,
    plugin: Plugin,
    fleet: Vec<Device>,
    /// What each path serves now, and what it served when last answered 200.
    current: HashMap<String, Vec<u8>>,
    fetched: HashMap<String, Vec<u8>>,
    inputs: u64,
    /// Calls that gave patches, none, the plugin's error.
    outcomes: [u64; 3],
    name: &'static str,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let [some, none, refused] = self.outcomes;
        eprintln!(
            "fuzz {}: {} calls of discover: {some} with patches, {none} without, {refused} refused with the plugin's error",
            self.name, self.inputs
        );
    }
}

impl Harness {
    fn new(name: &'static str, setting: &str, path: &str) -> Harness {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = FileServer::start(HashMap::new());
        let url = format!("{}{path}", server.url);
        let plugin = tokio.block_on(load(name, &[(setting, url)]));
        Harness {
            tokio,
            server,
            plugin,
            fleet: Vec::new(),
            current: HashMap::new(),
            fetched: HashMap::new(),
            inputs: 0,
            outcomes: [0; 3],
            name,
        }
    }

    fn serve(&mut self, files: &[(&str, &[u8])]) {
        for (path, body) in files {
            self.server.set(path, body.to_vec());
            self.current.insert((*path).to_string(), body.to_vec());
        }
    }

    /// `discover` on what is served now: the patches' count, or the plugin's own
    /// error; anything else is the failure. A path answered 304 must serve what it
    /// served when last answered 200: each changed input is really fetched.
    fn discover(&mut self) -> Result<Result<usize, String>, String> {
        self.inputs += 1;
        let before = self.server.answered().len();
        let call = self.plugin.discover(&self.fleet);
        let result = self
            .tokio
            .block_on(async { tokio::time::timeout(HANG, call).await })
            .map_err(|_| format!("hang: discover did not return within {HANG:?}"))?;
        for (path, status) in self.server.answered_since(before) {
            let now = self.current.get(&path);
            match status {
                200 => {
                    if let Some(now) = now {
                        self.fetched.insert(path, now.clone());
                    }
                }
                304 if self.fetched.get(&path) != now => {
                    return Err(format!("{path} changed but was answered 304"));
                }
                _ => {}
            }
        }
        match result {
            Ok(patches) => {
                self.outcomes[usize::from(patches.is_empty())] += 1;
                // The host's catalog takes or refuses each patch (its versions, its
                // range, its release time), without panicking.
                let reported = patches
                    .iter()
                    .map(|p| (p.clone(), self.name.to_string()))
                    .collect();
                let _ = ringleader_planner::catalog::Catalog::build(reported);
                Ok(Ok(patches.len()))
            }
            Err(e) => match e.kind {
                CallErrorKind::Plugin(_) => {
                    self.outcomes[2] += 1;
                    Ok(Err(e.to_string()))
                }
                CallErrorKind::Trap(_) => Err(format!(
                    "trap in the guest (a panic on feed data must be an error): {e}"
                )),
                _ => Err(format!("not the plugin's own error: {e}")),
            },
        }
    }

    /// After an error, and every [`GOOD_EVERY`] inputs: `good` (files to serve) still
    /// gives patches.
    fn still_good(&mut self, error: bool, good: &[(&str, &[u8])]) -> Result<(), String> {
        if !error && !self.inputs.is_multiple_of(GOOD_EVERY) {
            return Ok(());
        }
        self.serve(good);
        match self.discover()? {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err("after this input, a good document gave no patches".into()),
            Err(e) => Err(format!("after this input, a good document failed: {e}")),
        }
    }
}

/// Values that reach the feed parsers' corners: CSAF's purls, RPM names, scores and
/// dates; AppStream's versions, dates, sizes, checksums, locations and entities.
const FEED_TOKENS: &[&str] = &[
    "\"pkg:rpm/redhat/openssl@3.0.7-1.el9?epoch=99999999999999999999\"",
    "\"pkg:rpm/redhat/x@?epoch=\"",
    "\"pkg:deb/debian/x@\"",
    "\"pkg:\"",
    "\"pkg:rpm/%ZZ@1\"",
    "\"openssl-1:3.0.7-1.el9.x86_64\"",
    "\"-1:-.x\"",
    "\"x-:.\"",
    "\"category\": \"fixed\"",
    "\"fixed\": [\"x\"]",
    "\"product_id\": \"\"",
    "\"base_score\": 1e309",
    "\"base_score\": -1",
    "\"2024-02-30T25:61:61Z\"",
    "\"+999999-12-31T00:00:00Z\"",
    "\"\\ud800\"",
    "version=\"1.2.3\"",
    "version=\"99999999999999999999.1\"",
    "version=\"\"",
    "date=\"9999-12-31\"",
    "date=\"2024-02-30\"",
    "timestamp=\"99999999999999999\"",
    "timestamp=\"-99999999999\"",
    "urgency=\"critical\"",
    "<release version=\"9.9\" date=\"2020-01-01\">",
    "<checksum type=\"sha256\" target=\"container\">",
    "<size type=\"download\">18446744073709551616</size>",
    "<location>../../../x.cab</location>",
    "<location>//other.example/x.cab</location>",
    "<location>http://[::1/x</location>",
    "<firmware compare=\"ge\">",
    "<id compare=\"ge\" version=\"1.0\">",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&undefined;",
    "<!DOCTYPE c [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>",
    "&b;",
    "<!--",
    "-->",
    "</component>",
    "<component type=\"firmware\">",
];

/// `mutate`, then now and then a feed token put in.
fn feed_mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = mutate(rng, seeds);
    for _ in 0..rng.below(3) {
        let at = rng.below(input.len() + 1);
        let token = FEED_TOKENS[rng.below(FEED_TOKENS.len())].as_bytes();
        input.splice(at..at, token.iter().copied());
    }
    input.truncate(MAX_INPUT);
    input
}

/// Every CSAF case's advisory, and an index of each kind.
pub fn csaf_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = cases("csaf")
        .iter()
        .map(|dir| read(&dir.join("advisory.json")))
        .collect();
    for index in [
        "a.json\nb.json\n",
        "# comment\n\n  a.json  \r\nmissing.json\n/feed/b.json\n",
        "../feed/a.json\nb.json\na.json\n",
    ] {
        seeds.push([INDEX_MARK, index.as_bytes()].concat());
    }
    seeds
}

/// Mutations of advisories, and of an index now and then (an input from one seed
/// keeps its kind; splices may mix them).
pub fn csaf_mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let indexes: Vec<Vec<u8>> = seeds
        .iter()
        .filter(|s| s.starts_with(INDEX_MARK))
        .cloned()
        .collect();
    if rng.below(8) == 0 && !indexes.is_empty() {
        let mut input = mutate(rng, &indexes);
        if !input.starts_with(INDEX_MARK) {
            input.splice(0..0, INDEX_MARK.iter().copied());
        }
        // Not thousands of lines: each is a request.
        input.truncate(4096);
        return input;
    }
    let advisories: Vec<Vec<u8>> = seeds
        .iter()
        .filter(|s| !s.starts_with(INDEX_MARK))
        .cloned()
        .collect();
    let mut input = feed_mutate(rng, &advisories);
    if input.starts_with(INDEX_MARK) {
        input.insert(0, b' ');
    }
    input
}

/// The good advisory: it gives patches for the fleet.
const CSAF_GOOD: &str = "rpm-names-and-relationships";

pub fn csaf() -> super::Checker {
    let mut h = Harness::new("csaf-source", "index", "/feed/index.txt");
    // The fleet the CSAF cases are read for.
    h.fleet = ringleader_tests::guests::csaf::fleet();
    let dir = root().join("tests/cases/csaf");
    let good = read(&dir.join(CSAF_GOOD).join("advisory.json"));
    let other = read(&dir.join("purls-and-cvss-scores/advisory.json"));
    Box::new(move |input: &[u8]| {
        let files: [(&str, &[u8]); 3] = if input.starts_with(INDEX_MARK) {
            [
                ("/feed/index.txt", input),
                ("/feed/a.json", &good),
                ("/feed/b.json", &other),
            ]
        } else {
            [
                ("/feed/index.txt", b"advisory.json\n"),
                ("/feed/advisory.json", input),
                ("/feed/a.json", &good),
            ]
        };
        h.serve(&files);
        let error = h.discover()?.is_err();
        h.still_good(
            error,
            &[("/feed/index.txt", b"a.json\n"), ("/feed/a.json", &good)],
        )
    })
}

/// Every LVFS case's metadata, decompressed (as `metadata.xml` holds it).
pub fn lvfs_seeds() -> Vec<Vec<u8>> {
    cases("lvfs")
        .iter()
        .map(|dir| read(&dir.join("metadata.xml")))
        .collect()
}

/// Mutations of the XML; a quarter then compressed (gzip or zstd, as the plugin tells
/// them apart by their magic bytes), and some of those damaged after compressing. The
/// input is the body served.
pub fn lvfs_mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let xml = feed_mutate(rng, seeds);
    let mut body = match rng.below(8) {
        0 => gzip(&xml),
        1 => zstd(&xml),
        _ => return xml,
    };
    if rng.below(4) == 0 {
        for _ in 0..=rng.below(4) {
            let at = rng.below(body.len());
            body[at] ^= 1 << rng.below(8);
        }
    }
    body.truncate(MAX_INPUT);
    body
}

/// The good metadata and the seed that gives a patch for it.
const LVFS_GOOD: &str = "single-component-with-artifacts";

pub fn lvfs() -> super::Checker {
    let mut h = Harness::new("lvfs-source", "metadata", "/downloads/firmware.xml.gz");
    // Every case's devices (ids made unique).
    for (n, dir) in cases("lvfs").iter().enumerate() {
        let text = String::from_utf8(read(&dir.join("devices.txt"))).unwrap();
        for (m, line) in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .enumerate()
        {
            let mut words = line.split_whitespace();
            let id = format!("{}-{n}-{m}", words.next().unwrap());
            let components: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
            h.fleet.push(device(&id, &components));
        }
    }
    let good = read(
        &root()
            .join("tests/cases/lvfs")
            .join(LVFS_GOOD)
            .join("metadata.xml"),
    );
    Box::new(move |input: &[u8]| {
        h.serve(&[("/downloads/firmware.xml.gz", input)]);
        let error = h.discover()?.is_err();
        h.still_good(error, &[("/downloads/firmware.xml.gz", &good)])
    })
}
