//! LVFS / fwupd AppStream metadata to patches: see the crate's documentation for the
//! mapping. Nothing here does I/O; warnings are returned for the caller to log.

use crate::ringleader::plugin::types::{Artifact, Patch, PatchKind, Severity};
use crate::version;
use roxmltree::{Document, Node, ParsingOptions};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// Most alternatives (`||`) an `applies-to` range may have. Each `ne` requirement
/// doubles them; real metadata has at most one.
const MAX_ALTERNATIVES: usize = 8;

/// What was read from one metadata file.
pub struct Catalog {
    pub patches: Vec<Patch>,
    /// One line per skipped component or release, saying which and why.
    pub warnings: Vec<String>,
    /// Firmware components in the file.
    pub components: usize,
    /// Of those, the ones whose id some device has.
    pub relevant: usize,
}

/// One usable release, before `supersedes` is known.
struct Candidate {
    version: String,
    /// Where the release starts in the file (a byte offset).
    offset: usize,
    patch: Patch,
}

/// Why a release gives no patch: the whole component is malformed, or the release
/// is well-formed but cannot be used.
enum Skip {
    Component(String),
    Release(String),
}

/// Line and column of places in the metadata, for messages. The index of line starts
/// is built on the first question, so that a file with nothing to report costs nothing
/// and each further message costs a binary search, not a scan of the file.
struct Places<'a> {
    text: &'a str,
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Places<'a> {
    fn new(text: &'a str) -> Places<'a> {
        Places {
            text,
            line_starts: std::cell::OnceCell::new(),
        }
    }

    /// Where byte `at` is, as `line L, column C` (columns in characters, as roxmltree
    /// counts them).
    fn of_byte(&self, at: usize) -> String {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let line = starts.partition_point(|&start| start <= at).max(1);
        let start = starts[line - 1];
        let col = self.text.get(start..at).map_or(0, |s| s.chars().count()) + 1;
        format!("line {line}, column {col}")
    }

    /// Where `node` starts.
    fn of(&self, node: Node) -> String {
        self.of_byte(node.range().start)
    }
}

/// The patches in `xml`, the metadata file at `url`, for the firmware components whose
/// ids are in `installed`. An error (not well-formed XML, not AppStream metadata) names
/// the URL and the place.
pub fn read(xml: &str, url: &str, installed: &BTreeSet<&str>) -> Result<Catalog, String> {
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, options).map_err(|e| {
        use roxmltree::Error as E;
        let place = match e {
            // These carry no position: the document ended too soon.
            E::UnexpectedEndOfStream | E::UnclosedRootNode => Places::new(xml).of_byte(xml.len()),
            _ => {
                let pos = e.pos();
                format!("line {}, column {}", pos.row, pos.col)
            }
        };
        let what = e.to_string().replacen(&format!(" at {}", e.pos()), "", 1);
        format!("{url}, {place}: not well-formed XML: {what}")
    })?;
    let places = Places::new(xml);
    let root = doc.root_element();
    let components: Vec<Node> = match root.tag_name().name() {
        "components" => root
            .children()
            .filter(|n| n.has_tag_name("component"))
            .collect(),
        // A single component's metainfo file is a catalog of one.
        "component" => vec![root],
        other => {
            return Err(format!(
                "{url}, {}: expected AppStream metadata, whose root element is <components> (as in LVFS's firmware.xml), found <{other}>",
                places.of(root)
            ));
        }
    };

    let mut catalog = Catalog {
        patches: Vec::new(),
        warnings: Vec::new(),
        components: 0,
        relevant: 0,
    };
    // Component id -> its usable releases, over every <component> with that id
    // (LVFS lists each uploaded firmware as a component of its own, one release each).
    let mut found: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for component in components {
        if component.attribute("type") != Some("firmware") {
            continue;
        }
        catalog.components += 1;
        let Some(id) = text_of(component, "id") else {
            catalog.warnings.push(format!(
                "skipped a firmware component ({}): it has no <id>",
                places.of(component)
            ));
            continue;
        };
        if !installed.contains(id) {
            continue;
        }
        catalog.relevant += 1;
        match releases(&places, component, id, url) {
            Ok((usable, skipped)) => {
                catalog.warnings.extend(skipped);
                let known = found.entry(id.to_string()).or_default();
                for candidate in usable {
                    if let Some(first) = known.iter().find(|k| k.version == candidate.version) {
                        catalog.warnings.push(format!(
                            "skipped release {} of {id} ({}): the same version is listed at {}, which is used",
                            candidate.version,
                            places.of_byte(candidate.offset),
                            places.of_byte(first.offset)
                        ));
                    } else {
                        known.push(candidate);
                    }
                }
            }
            Err(why) => catalog.warnings.push(format!(
                "skipped component {id} ({}): {why}",
                places.of(component)
            )),
        }
    }

    for (_, mut candidates) in found {
        candidates.sort_by(|a, b| version::compare(&a.version, &b.version));
        let ids: Vec<(String, String)> = candidates
            .iter()
            .map(|c| (c.version.clone(), c.patch.id.clone()))
            .collect();
        for mut candidate in candidates {
            candidate.patch.supersedes = ids
                .iter()
                .filter(|(v, _)| version::compare(v, &candidate.version).is_lt())
                .map(|(_, id)| id.clone())
                .collect();
            catalog.patches.push(candidate.patch);
        }
    }
    Ok(catalog)
}

/// The trimmed text of `node`'s first child element `name`, if not empty.
fn text_of<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The text of `node`'s child `name` in the default language: the one without
/// `xml:lang` (translations carry one), else the first.
fn untranslated<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    let all = || node.children().filter(move |n| n.has_tag_name(name));
    all()
        .find(|n| n.attribute((roxmltree::NS_XML_URI, "lang")).is_none())
        .or_else(|| all().next())
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The usable releases of one component and a warning per release skipped; an error
/// when the component is malformed.
fn releases(
    places: &Places,
    component: Node,
    id: &str,
    url: &str,
) -> Result<(Vec<Candidate>, Vec<String>), String> {
    let name = untranslated(component, "name").or_else(|| untranslated(component, "summary"));
    let vendor = untranslated(component, "developer_name")
        .or_else(|| {
            component
                .children()
                .find(|n| n.has_tag_name("developer"))
                .and_then(|d| untranslated(d, "name"))
        })
        .unwrap_or("lvfs");
    let reboot_required = component
        .children()
        .filter(|n| n.has_tag_name("categories"))
        .flat_map(|c| c.children().filter(|n| n.has_tag_name("category")))
        .any(|c| c.text().map(str::trim) == Some("X-System"));
    let component_requires: Vec<Node> = requirements(component).collect();

    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for release in component
        .children()
        .filter(|n| n.has_tag_name("releases"))
        .flat_map(|r| r.children().filter(|n| n.has_tag_name("release")))
    {
        let Some(version) = release
            .attribute("version")
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Err(format!(
                "the <release> at {} has no `version`",
                places.of(release)
            ));
        };
        let released = released(release)
            .map_err(|why| format!("release {version} ({}): {why}", places.of(release)))?;
        let requires: Vec<Node> = component_requires
            .iter()
            .copied()
            .chain(requirements(release))
            .collect();
        let result = artifact(release, url)
            .and_then(|artifact| Ok((artifact, applies_to(&requires, version)?)));
        let (artifact, applies_to) = match result {
            Ok(found) => found,
            Err(Skip::Release(why)) => {
                skipped.push(format!(
                    "skipped release {version} of {id} ({}): {why}",
                    places.of(release)
                ));
                continue;
            }
            Err(Skip::Component(why)) => {
                return Err(format!("release {version} ({}): {why}", places.of(release)));
            }
        };
        let mut cves: Vec<String> = Vec::new();
        for issue in release
            .children()
            .filter(|n| n.has_tag_name("issues"))
            .flat_map(|i| i.children().filter(|n| n.has_tag_name("issue")))
            .filter(|i| i.attribute("type") == Some("cve"))
        {
            if let Some(cve) = issue.text().map(str::trim).filter(|c| !c.is_empty())
                && !cves.iter().any(|known| known == cve)
            {
                cves.push(cve.to_string());
            }
        }
        usable.push(Candidate {
            version: version.to_string(),
            offset: release.range().start,
            patch: Patch {
                id: format!("lvfs:{id}/{version}"),
                vendor: vendor.to_string(),
                title: format!("{} {version}", name.unwrap_or(id)),
                component: id.to_string(),
                fixed_version: version.to_string(),
                applies_to,
                kind: PatchKind::Firmware,
                severity: match release.attribute("urgency").map(str::trim) {
                    Some("low") => Severity::Low,
                    Some("medium") => Severity::Medium,
                    Some("high") => Severity::High,
                    Some("critical") => Severity::Critical,
                    _ => Severity::Unknown,
                },
                cves,
                prerequisites: vec![],
                supersedes: vec![],
                reboot_required,
                artifact,
                released,
            },
        });
    }
    Ok((usable, skipped))
}

/// The `<requires>` children of `node`.
fn requirements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(|n| n.has_tag_name("requires"))
        .flat_map(|r| r.children().filter(Node::is_element))
}

/// When the release came out: its `timestamp`, else its `date`.
fn released(release: Node) -> Result<i64, String> {
    if let Some(timestamp) = release.attribute("timestamp") {
        return timestamp.trim().parse().map_err(|_| {
            format!("`timestamp=\"{timestamp}\"` is not a number of seconds since 1970")
        });
    }
    if let Some(date) = release.attribute("date") {
        return guest_time::parse_date(date).ok_or_else(|| {
            format!("`date=\"{date}\"` is not a date (YYYY-MM-DD) or an RFC 3339 time")
        });
    }
    Err("it has neither `timestamp` nor `date`".into())
}

/// Where a release's cabinet is and how to check it: one place the metadata gives it.
#[derive(Default)]
struct Offer<'a> {
    locations: Vec<&'a str>,
    sha256: Option<&'a str>,
    sha1: bool,
    size: Option<&'a str>,
}

impl<'a> Offer<'a> {
    /// `<location>`, `<checksum>` and `<size>` children of `node`. Checksums count
    /// when their `target` is `container` (the cabinet, not the payload inside it);
    /// in an `<artifact>` they may also have no target, the artifact being the cabinet.
    fn of(node: Node<'a, '_>, in_artifact: bool) -> Offer<'a> {
        let mut offer = Offer::default();
        for child in node.children().filter(Node::is_element) {
            let text = child.text().map(str::trim).unwrap_or_default();
            match child.tag_name().name() {
                "location" if !text.is_empty() => offer.locations.push(text),
                "checksum"
                    if match child.attribute("target") {
                        Some(target) => target == "container",
                        None => in_artifact,
                    } =>
                {
                    match child.attribute("type") {
                        Some("sha256") if offer.sha256.is_none() => offer.sha256 = Some(text),
                        Some("sha1") => offer.sha1 = true,
                        _ => {}
                    }
                }
                "size" if child.attribute("type") == Some("download") => offer.size = Some(text),
                _ => {}
            }
        }
        offer
    }
}

/// The cabinet of `release`: its `<location>` with the `<checksum type="sha256"
/// target="container">` and `<size type="download">` beside it, else a binary
/// `<artifact>` (AppStream 1.0's form) with a location and a SHA-256.
fn artifact(release: Node, url: &str) -> Result<Artifact, Skip> {
    let offers = std::iter::once(Offer::of(release, false)).chain(
        release
            .children()
            .filter(|n| n.has_tag_name("artifacts"))
            .flat_map(|a| a.children().filter(|n| n.has_tag_name("artifact")))
            .filter(|a| a.attribute("type") == Some("binary"))
            .map(|a| Offer::of(a, true)),
    );
    let (mut located, mut only_sha1, mut other_schemes) = (false, false, Vec::new());
    for offer in offers {
        let Some(location) = offer.locations.iter().find_map(|l| {
            let resolved = resolve(url, l);
            if resolved.is_none() {
                other_schemes.push(*l);
            }
            resolved
        }) else {
            continue;
        };
        located = true;
        let Some(sha256) = offer.sha256 else {
            only_sha1 |= offer.sha1;
            continue;
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Skip::Release(format!(
                "its SHA-256 checksum `{sha256}` is not 64 hex digits"
            )));
        }
        let size = match offer.size {
            None => 0,
            Some(size) => size.parse().map_err(|_| {
                Skip::Component(format!(
                    "<size type=\"download\">{size}</size> is not a number of bytes"
                ))
            })?,
        };
        return Ok(Artifact {
            url: location,
            sha256: sha256.to_ascii_lowercase(),
            size,
        });
    }
    Err(Skip::Release(if only_sha1 {
        "its cabinet has only a sha1 checksum, no <checksum type=\"sha256\" target=\"container\">, and Ringleader verifies artifacts by SHA-256".into()
    } else if located {
        "its cabinet has no <checksum type=\"sha256\" target=\"container\">, and Ringleader verifies artifacts by SHA-256".into()
    } else if let Some(first) = other_schemes.first() {
        format!("its <location> `{first}` is not an http(s) URL")
    } else {
        "it has no <location>".into()
    }))
}

/// `location` resolved against the metadata file's `url` (RFC 3986, for the forms
/// metadata uses: absolute, `./name.cab`, `name.cab`, `../dir/name.cab`, `/path`);
/// `None` when it is not `http(s)`.
pub fn resolve(url: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if let Some(colon) = location.find(':')
        && location.find('/').is_none_or(|slash| colon < slash)
    {
        // Absolute: `https://...`, or another scheme (`ipfs://`, `file:`).
        let scheme = location[..colon].to_ascii_lowercase();
        return (matches!(scheme.as_str(), "http" | "https")
            && location[colon..].starts_with("://"))
        .then(|| location.to_string());
    }
    let base = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = base.split_once("://")?;
    if let Some(network) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{network}"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut segments: Vec<&str> = if location.starts_with('/') {
        Vec::new()
    } else {
        // The metadata file's directory.
        let mut dir: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if !path.ends_with('/') {
            dir.pop();
        }
        dir
    };
    for part in location.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            part => segments.push(part),
        }
    }
    Some(format!("{scheme}://{authority}/{}", segments.join("/")))
}

/// The `applies-to` range of a release fixed at `fixed` with these requirements, or
/// why a requirement cannot be expressed (the release is then skipped).
fn applies_to(requires: &[Node], fixed: &str) -> Result<String, Skip> {
    // Alternatives (joined by `||`), each a list of comparators that must all hold.
    let mut alternatives: Vec<Vec<String>> = vec![vec![]];
    let mut constrained = false;
    for requirement in requires {
        let compare = requirement.attribute("compare").map(str::trim);
        let version = requirement.attribute("version").map(str::trim);
        let text = requirement.text().map(str::trim).unwrap_or_default();
        let cannot =
            |why: &str| Skip::Release(format!("it requires {}: {why}", describe(*requirement)));
        match requirement.tag_name().name() {
            // The fwupd daemon's own version (or fwupd-efi's): not the device's business.
            "id" if text.starts_with("org.freedesktop.fwupd") => continue,
            "id" => {
                return Err(cannot(
                    "another component's version, which Ringleader cannot check",
                ));
            }
            "firmware" => {}
            "hardware" | "not_hardware" => {
                return Err(cannot(
                    "specific hardware (a HWID), which Ringleader cannot check",
                ));
            }
            "client" => {
                return Err(cannot(
                    "a feature of the fwupd client, which Ringleader cannot check",
                ));
            }
            _ => return Err(cannot("a kind of requirement this plugin does not know")),
        }
        if requirement.has_attribute("depth") {
            return Err(cannot(
                "the firmware of a parent or child device (`depth`), which Ringleader cannot check",
            ));
        }
        if !text.is_empty() {
            return Err(cannot(
                "the firmware of another device (by GUID or name), which Ringleader cannot check",
            ));
        }
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            if compare.is_none_or(|c| c == "any") {
                // `<firmware compare="any"/>`: no condition.
                continue;
            }
            return Err(cannot("a comparison without a version"));
        };
        if !version::is_version(version) || version.contains([',', '|']) {
            return Err(cannot("a version the host cannot compare"));
        }
        let choices: Vec<Vec<String>> = match compare {
            Some("ge") => vec![vec![format!(">={version}")]],
            Some("gt") => vec![vec![format!(">{version}")]],
            Some("le") => vec![vec![format!("<={version}")]],
            Some("lt") => vec![vec![format!("<{version}")]],
            Some("eq") => vec![vec![format!("={version}")]],
            Some("ne") => vec![vec![format!("<{version}")], vec![format!(">{version}")]],
            Some("any") => continue,
            _ => {
                return Err(cannot(
                    "a comparison (glob, regex or unknown) that a version range cannot express",
                ));
            }
        };
        constrained = true;
        alternatives = alternatives
            .iter()
            .flat_map(|all| {
                choices.iter().map(move |choice| {
                    let mut all = all.clone();
                    all.extend(choice.iter().cloned());
                    all
                })
            })
            .collect();
        if alternatives.len() > MAX_ALTERNATIVES {
            return Err(cannot("too many `ne` comparisons for a version range"));
        }
    }
    if !constrained {
        return Ok(String::new());
    }
    if !version::is_version(fixed) || fixed.contains([',', '|']) {
        return Err(Skip::Release(format!(
            "its version `{fixed}` is not one the host can compare, and a requirement needs a range"
        )));
    }
    Ok(alternatives
        .into_iter()
        .map(|mut all| {
            all.push(format!("<{fixed}"));
            all.join(", ")
        })
        .collect::<Vec<_>>()
        .join(" || "))
}

/// A requirement as it is written: `<firmware compare="ge" version="1.2">GUID</firmware>`.
fn describe(node: Node) -> String {
    let name = node.tag_name().name();
    let attributes: String = node
        .attributes()
        .map(|a| format!(" {}=\"{}\"", a.name(), a.value()))
        .collect();
    match node.text().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => format!("<{name}{attributes}>{text}</{name}>"),
        None => format!("<{name}{attributes}/>"),
    }
}
