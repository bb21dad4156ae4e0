//! The tracker's JSON, read as a stream (`serde_json` over the gzip decoder), keeping
//! only the source packages and releases the devices need: the whole file is tens of
//! MiB of JSON, of which a fleet needs a few hundred KiB.
//!
//! Shape (the tracker's `tracker_service.py`, `_get_json`): `{SOURCE: {ISSUE:
//! {description?, debianbug?, scope?, releases: {CODENAME: {status, fixed_version?,
//! urgency?, repositories, nodsa?, nodsa_reason?, next_point_update?}}}}}`, where
//! ISSUE is a CVE id or a `TEMP-...` id and `status` is `resolved`, `open` or
//! `undetermined`. Fields not listed here, and fields this plugin does not read, are
//! ignored; the source packages and releases no device needs are skipped unread.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufReader, Read};
use std::rc::Rc;

/// Most bytes of JSON read from one body once decompressed: the whole tracker file is
/// about 60 MiB of JSON today; streamed, it is never held in memory at once, so the
/// limit is against a body that would decompress without end (a gzip bomb), not a
/// memory budget.
pub const MAX_JSON_BYTES: u64 = 1 << 30;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// What the devices need: their source packages and their releases.
#[derive(Debug, Default)]
pub struct Wanted {
    pub sources: BTreeSet<String>,
    pub releases: BTreeSet<String>,
}

/// One issue in one release of one source package.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// `resolved`, `open` or `undetermined`.
    pub status: String,
    /// The version that fixes the issue, when `resolved`; `0` means the release was
    /// never affected.
    #[serde(default)]
    pub fixed_version: Option<String>,
    /// `low`, `medium`, `high` (each perhaps with `**`: derived from NVD),
    /// `unimportant`, `not yet assigned`, `end-of-life`.
    #[serde(default)]
    pub urgency: Option<String>,
}

/// Issue id -> release -> entry.
pub type Issues = BTreeMap<String, BTreeMap<String, Entry>>;

/// What was kept of the file.
#[derive(Debug, Default)]
pub struct Feed {
    /// Source packages in the file, kept or not.
    pub sources_read: usize,
    /// Source package -> its issues, for the wanted sources and releases only.
    pub sources: BTreeMap<String, Issues>,
}

/// A reader that fails once more than `left` bytes came through.
struct Capped<R> {
    inner: R,
    left: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.hit.set(true);
            return Err(std::io::Error::other("too large"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The tracker's file in `body` (plain JSON or gzip, told apart by its first bytes),
/// fetched from `url`, keeping what `wanted` names. An error names the URL, the place
/// in the file (the path of keys, and line and column) and what was expected.
pub fn read(body: &[u8], url: &str, wanted: &Wanted) -> Result<Feed, String> {
    let gzip = body.starts_with(GZIP_MAGIC);
    let inner: Box<dyn Read + '_> = if gzip {
        // Multi-member: `cat a.gz b.gz` is a valid gzip file too.
        Box::new(flate2::read::MultiGzDecoder::new(body))
    } else {
        Box::new(body)
    };
    let hit = Rc::new(Cell::new(false));
    let capped = Capped {
        inner,
        left: MAX_JSON_BYTES,
        hit: hit.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(64 << 10, capped));
    let mut track = serde_path_to_error::Track::new();
    let result = FeedSeed { wanted }
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
        .and_then(|feed| de.end().map(|()| feed));
    result.map_err(|e| {
        if hit.get() {
            return format!(
                "{url}: the body holds more than {} MiB of JSON once decompressed, this plugin's limit",
                MAX_JSON_BYTES >> 20
            );
        }
        if e.is_io() && gzip {
            return format!("{url}: the gzip-compressed body cannot be decompressed: {e}");
        }
        let path = track.path().to_string();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        format!(
            "{url}: not the Debian Security Tracker's JSON{at}: {e} (expected {{SOURCE: {{ISSUE: {{\"releases\": {{CODENAME: {{\"status\": ..., \"fixed_version\": ..., \"urgency\": ...}}}}}}}}}}, as https://security-tracker.debian.org/tracker/data/json serves it)"
        )
    })
}

struct FeedSeed<'a> {
    wanted: &'a Wanted,
}

impl<'de> DeserializeSeed<'de> for FeedSeed<'_> {
    type Value = Feed;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Feed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FeedSeed<'_> {
    type Value = Feed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of source packages")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Feed, A::Error> {
        let mut feed = Feed::default();
        while let Some(source) = map.next_key::<String>()? {
            feed.sources_read += 1;
            if self.wanted.sources.contains(&source) {
                let issues = map.next_value_seed(SourceSeed {
                    wanted: self.wanted,
                })?;
                feed.sources.entry(source).or_default().extend(issues);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(feed)
    }
}

/// One source package: issue id -> issue.
struct SourceSeed<'a> {
    wanted: &'a Wanted,
}

impl<'de> DeserializeSeed<'de> for SourceSeed<'_> {
    type Value = Issues;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Issues, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed<'_> {
    type Value = Issues;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of issues (CVE ids) of a source package")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Issues, A::Error> {
        let mut issues = Issues::new();
        while let Some(issue) = map.next_key::<String>()? {
            let releases = map.next_value_seed(IssueSeed {
                wanted: self.wanted,
            })?;
            if !releases.is_empty() {
                issues.insert(issue, releases);
            }
        }
        Ok(issues)
    }
}

/// One issue: its `releases`, the rest ignored.
struct IssueSeed<'a> {
    wanted: &'a Wanted,
}

impl<'de> DeserializeSeed<'de> for IssueSeed<'_> {
    type Value = BTreeMap<String, Entry>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> Result<BTreeMap<String, Entry>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IssueSeed<'_> {
    type Value = BTreeMap<String, Entry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an issue: an object with `releases`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut releases = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "releases" {
                releases = Some(map.next_value_seed(ReleasesSeed {
                    wanted: self.wanted,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        releases.ok_or_else(|| de::Error::missing_field("releases"))
    }
}

/// An issue's releases: codename -> entry, for the wanted codenames.
struct ReleasesSeed<'a> {
    wanted: &'a Wanted,
}

impl<'de> DeserializeSeed<'de> for ReleasesSeed<'_> {
    type Value = BTreeMap<String, Entry>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> Result<BTreeMap<String, Entry>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReleasesSeed<'_> {
    type Value = BTreeMap<String, Entry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of releases (codenames)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut releases = BTreeMap::new();
        while let Some(codename) = map.next_key::<String>()? {
            if self.wanted.releases.contains(&codename) {
                releases.insert(codename, map.next_value::<Entry>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(releases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wanted(sources: &[&str], releases: &[&str]) -> Wanted {
        Wanted {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            releases: releases.iter().map(|s| s.to_string()).collect(),
        }
    }

    const SAMPLE: &str = r#"{
      "glibc": {
        "CVE-2024-2961": {
          "description": "iconv overflow", "scope": "local", "debianbug": 1069191,
          "releases": {
            "bookworm": {"status": "resolved", "repositories": {"bookworm": "2.36-9+deb12u4", "bookworm-security": "2.36-9+deb12u7"}, "fixed_version": "2.36-9+deb12u7", "urgency": "high"},
            "trixie": {"status": "resolved", "repositories": {"trixie": "2.40-3"}, "fixed_version": "2.37-18", "urgency": "not yet assigned"}
          }
        },
        "TEMP-0000000-ABCDEF": {"releases": {"bookworm": {"status": "open", "repositories": {}, "urgency": "low**", "nodsa": "minor", "next_point_update": true}}}
      },
      "openssl": {"CVE-1": {"releases": {"bookworm": {"status": 5}}}}
    }"#;

    #[test]
    fn keeps_only_what_the_devices_need_and_skips_the_rest_unread() {
        let feed = read(SAMPLE.as_bytes(), "u", &wanted(&["glibc"], &["bookworm"])).unwrap();
        assert_eq!(feed.sources_read, 2);
        let glibc = &feed.sources["glibc"];
        assert_eq!(glibc.len(), 2);
        assert_eq!(
            glibc["CVE-2024-2961"]["bookworm"],
            Entry {
                status: "resolved".into(),
                fixed_version: Some("2.36-9+deb12u7".into()),
                urgency: Some("high".into()),
            }
        );
        assert!(!glibc["CVE-2024-2961"].contains_key("trixie"));
        assert_eq!(glibc["TEMP-0000000-ABCDEF"]["bookworm"].fixed_version, None);
        // openssl's malformed entry is in a package no device has: not read.
        assert!(!feed.sources.contains_key("openssl"));
    }

    #[test]
    fn a_malformed_entry_is_named_by_its_path_line_and_column() {
        let err = read(SAMPLE.as_bytes(), "u", &wanted(&["openssl"], &["bookworm"])).unwrap_err();
        assert!(
            err.starts_with("u: not the Debian Security Tracker's JSON at `openssl.CVE-1.releases.bookworm.status`: invalid type: integer `5`, expected a string at line 12 column 66"),
            "{err}"
        );
    }

    #[test]
    fn an_issue_without_releases_and_a_top_level_that_is_no_object_are_refused() {
        let err = read(
            br#"{"a": {"CVE-1": {"description": "x"}}}"#,
            "u",
            &wanted(&["a"], &["x"]),
        )
        .unwrap_err();
        assert!(
            err.contains("at `a.CVE-1`: missing field `releases`"),
            "{err}"
        );
        let err = read(b"[1, 2]", "u", &wanted(&["a"], &["x"])).unwrap_err();
        assert!(
            err.contains("expected an object of source packages at line 1 column 1"),
            "{err}"
        );
        let err = read(b"{\"a\": {}", "u", &wanted(&[], &[])).unwrap_err();
        assert!(
            err.contains("EOF while parsing an object at line 1 column 8"),
            "{err}"
        );
        let err = read(b"{} trailing", "u", &wanted(&[], &[])).unwrap_err();
        assert!(
            err.contains("trailing characters at line 1 column 4"),
            "{err}"
        );
        let err = read(b"", "u", &wanted(&[], &[])).unwrap_err();
        assert!(err.contains("EOF while parsing a value"), "{err}");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_gzip_body_is_decompressed_as_it_is_read() {
        let feed = read(
            &gzip(SAMPLE.as_bytes()),
            "u",
            &wanted(&["glibc"], &["trixie"]),
        )
        .unwrap();
        assert_eq!(
            feed.sources["glibc"]["CVE-2024-2961"]["trixie"]
                .fixed_version
                .as_deref(),
            Some("2.37-18")
        );
        let mut cut = gzip(SAMPLE.as_bytes());
        cut.truncate(cut.len() / 2);
        let err = read(&cut, "u", &wanted(&["glibc"], &["trixie"])).unwrap_err();
        assert!(
            err.starts_with("u: the gzip-compressed body cannot be decompressed"),
            "{err}"
        );
    }
}
