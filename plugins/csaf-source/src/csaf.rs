//! CSAF 2.0 documents: the parts a patch needs, and how packages are named in them.

use crate::ringleader::plugin::types::{Artifact, Patch, PatchKind, Severity, VersionScheme};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Deserialize)]
struct Doc {
    document: Document,
    #[serde(default)]
    product_tree: ProductTree,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Deserialize)]
struct Document {
    csaf_version: String,
    title: String,
    publisher: Publisher,
    tracking: Tracking,
    #[serde(default)]
    aggregate_severity: Option<AggregateSeverity>,
}

#[derive(Deserialize)]
struct Publisher {
    name: String,
}

#[derive(Deserialize)]
struct Tracking {
    id: String,
    initial_release_date: String,
}

#[derive(Deserialize)]
struct AggregateSeverity {
    text: String,
}

#[derive(Default, Deserialize)]
struct ProductTree {
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    full_product_names: Vec<Product>,
    #[serde(default)]
    relationships: Vec<Relationship>,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(default)]
    branches: Vec<Branch>,
    #[serde(default)]
    product: Option<Product>,
}

#[derive(Deserialize)]
struct Product {
    name: String,
    product_id: String,
    #[serde(default)]
    product_identification_helper: Option<Helper>,
}

#[derive(Deserialize)]
struct Helper {
    #[serde(default)]
    purl: Option<String>,
    /// A CPE name (`cpe:2.3:a:...`): names a product, not a package and version.
    #[serde(default)]
    cpe: Option<String>,
    /// Cryptographic hashes of the product's files (CSAF 2.0 `hashes`).
    #[serde(default)]
    hashes: Vec<Hashes>,
}

#[derive(Deserialize)]
struct Hashes {
    filename: String,
    file_hashes: Vec<FileHash>,
}

#[derive(Deserialize)]
struct FileHash {
    algorithm: String,
    value: String,
}

impl Helper {
    /// The SHA-256 the document gives for the file at `url` (the hash of the file of
    /// that name, or the only SHA-256 given).
    fn sha256_of(&self, url: &str) -> Option<String> {
        let file = url.rsplit('/').next().unwrap_or(url);
        let sha256 = |h: &Hashes| {
            h.file_hashes
                .iter()
                .find(|f| f.algorithm.eq_ignore_ascii_case("sha256"))
                .map(|f| f.value.to_ascii_lowercase())
        };
        self.hashes
            .iter()
            .find(|h| h.filename == file)
            .and_then(sha256)
            .or_else(|| match self.hashes.as_slice() {
                [only] => sha256(only),
                _ => None,
            })
    }
}

#[derive(Deserialize)]
struct Relationship {
    full_product_name: Product,
    product_reference: String,
}

#[derive(Deserialize)]
struct Vulnerability {
    #[serde(default)]
    cve: Option<String>,
    #[serde(default)]
    product_status: ProductStatus,
    #[serde(default)]
    remediations: Vec<Remediation>,
    #[serde(default)]
    scores: Vec<Score>,
}

#[derive(Default, Deserialize)]
struct ProductStatus {
    #[serde(default)]
    fixed: Vec<String>,
    #[serde(default)]
    known_affected: Vec<String>,
}

#[derive(Deserialize)]
struct Remediation {
    category: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    product_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Score {
    #[serde(default)]
    products: Vec<String>,
    #[serde(default)]
    cvss_v3: Option<Cvss>,
    #[serde(default)]
    cvss_v2: Option<Cvss>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(rename = "baseScore")]
    base_score: f64,
}

fn collect<'a>(branches: &'a [Branch], into: &mut HashMap<&'a str, &'a Product>) {
    for branch in branches {
        if let Some(product) = &branch.product {
            into.insert(&product.product_id, product);
        }
        collect(&branch.branches, into);
    }
}

/// Architectures of RPM file names.
const ARCHES: &[&str] = &[
    "x86_64", "noarch", "src", "i686", "i386", "aarch64", "ppc64le", "ppc64", "s390x",
];

/// A package: its name, version, and the scheme of its version when known.
type Package = (String, String, Option<VersionScheme>);

/// The version scheme of a purl type: `deb`, `rpm` and `apk` versions are ordered by
/// their package managers' rules; other types name none (the host's default rule).
fn scheme_of_purl_type(kind: &str) -> Option<VersionScheme> {
    match kind {
        "deb" => Some(VersionScheme::Deb),
        "rpm" => Some(VersionScheme::Rpm),
        "apk" => Some(VersionScheme::Apk),
        _ => None,
    }
}

/// A package's name, version and scheme from a purl: `pkg:TYPE/NS/NAME@VERSION?epoch=E`.
fn from_purl(purl: &str) -> Option<Package> {
    let rest = purl.strip_prefix("pkg:")?;
    let (path, tail) = rest.split_once('@')?;
    let scheme = path
        .split('/')
        .next()
        .and_then(|kind| scheme_of_purl_type(&kind.to_ascii_lowercase()));
    let name = percent_decoded(path.rsplit('/').next()?);
    let (version, qualifiers) = match tail.split_once('?') {
        Some((v, q)) => (v, q.split('#').next().unwrap_or("")),
        None => (tail.split('#').next().unwrap_or(tail), ""),
    };
    // `+` is written `%2B` in purls (`pkg:deb/debian/libc6@2.36-9%2Bdeb12u7`).
    let version = percent_decoded(version);
    let epoch = qualifiers
        .split('&')
        .find_map(|q| q.strip_prefix("epoch="))
        .filter(|e| *e != "0");
    let version = match epoch {
        Some(e) => format!("{e}:{version}"),
        None => version.to_string(),
    };
    (!name.is_empty() && !version.is_empty()).then_some((name, version, scheme))
}

/// `text` with its `%XX` escapes decoded; an escape that is not one is kept as written.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A package's name and version from an RPM file name
/// `NAME-[EPOCH:]VERSION-RELEASE.ARCH` (no scheme: only a purl says it).
fn from_rpm_name(name: &str) -> Option<Package> {
    let (base, arch) = name.rsplit_once('.')?;
    if !ARCHES.contains(&arch) {
        return None;
    }
    let mut parts = base.rsplitn(3, '-');
    let release = parts.next()?;
    let version = parts.next()?;
    let package = parts.next()?;
    let starts_with_digit = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_digit());
    (starts_with_digit(version) && !package.is_empty())
        .then(|| (package.to_string(), format!("{version}-{release}"), None))
}

fn severity_of_text(text: &str) -> Option<Severity> {
    Some(match text.to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "important" | "high" => Severity::High,
        "moderate" | "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => return None,
    })
}

fn severity_of_score(score: f64) -> Severity {
    match score {
        s if s >= 9.0 => Severity::Critical,
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        s if s > 0.0 => Severity::Low,
        _ => Severity::Unknown,
    }
}

/// What one advisory fixes in one package at one version.
#[derive(Default)]
struct Fix {
    cves: BTreeSet<String>,
    url: Option<String>,
    sha256: Option<String>,
    score: f64,
}

/// What one document gave: its patches, or why there are none.
pub struct Read {
    pub patches: Vec<Patch>,
    /// When there are no patches: why, as a sentence for the log.
    pub nothing: Option<String>,
}

/// Why a document that was read gave no patch, as a sentence for the log.
fn why_nothing(
    doc: &Doc,
    package_of: &dyn Fn(&str) -> Option<Package>,
    products: &HashMap<&str, &Product>,
    references: &HashMap<&str, &str>,
) -> String {
    let fixed: BTreeSet<&str> = doc
        .vulnerabilities
        .iter()
        .flat_map(|v| v.product_status.fixed.iter().map(String::as_str))
        .collect();
    if doc.vulnerabilities.is_empty() {
        return "it lists no vulnerabilities".into();
    }
    if fixed.is_empty() {
        let affected = doc
            .vulnerabilities
            .iter()
            .any(|v| !v.product_status.known_affected.is_empty());
        let workaround = doc
            .vulnerabilities
            .iter()
            .flat_map(|v| &v.remediations)
            .any(|r| r.category == "workaround" || r.category == "mitigation");
        return match (affected, workaround) {
            (true, true) => "no product has the `fixed` status: its products are `known_affected`, with a workaround or mitigation only (nothing to install)".into(),
            (true, false) => "no product has the `fixed` status: its products are `known_affected` only (no fix yet)".into(),
            _ => "no product has the `fixed` status".into(),
        };
    }
    let mut unmapped: Vec<&str> = fixed
        .iter()
        .copied()
        .filter(|id| package_of(id).is_none())
        .collect();
    let cpe_only = unmapped.iter().all(|id| {
        let product = products.get(references.get(id).copied().unwrap_or(id));
        product
            .and_then(|p| p.product_identification_helper.as_ref())
            .is_some_and(|h| h.purl.is_none() && h.cpe.is_some())
    });
    let shown = unmapped.len().min(5);
    let more = unmapped.len() - shown;
    unmapped.truncate(shown);
    format!(
        "no package and version for its fixed products {}{}: {}",
        unmapped.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        if cpe_only {
            "they are named by CPE only, and a patch needs a purl (`pkg:deb/...@VERSION`) or an RPM file name"
        } else {
            "neither a purl (`pkg:deb/...@VERSION`) nor an RPM file name `NAME-VERSION-RELEASE.ARCH`"
        }
    )
}

/// The patches of one CSAF 2.0 document; an error names the place in the document.
pub fn patches(bytes: &[u8]) -> Result<Read, String> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let doc: Doc = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        format!("at `{path}`: {}", e.inner())
    })?;
    if doc.document.csaf_version != "2.0" {
        return Err(format!(
            "at `document.csaf_version`: `{}`, but this source reads CSAF 2.0",
            doc.document.csaf_version
        ));
    }
    let released = guest_time::parse_rfc3339(&doc.document.tracking.initial_release_date)
        .ok_or_else(|| {
            format!(
                "at `document.tracking.initial_release_date`: `{}` is not an RFC 3339 time",
                doc.document.tracking.initial_release_date
            )
        })?;
    let mut products: HashMap<&str, &Product> = HashMap::new();
    collect(&doc.product_tree.branches, &mut products);
    for product in &doc.product_tree.full_product_names {
        products.insert(&product.product_id, product);
    }
    let references: HashMap<&str, &str> = doc
        .product_tree
        .relationships
        .iter()
        .map(|r| {
            (
                r.full_product_name.product_id.as_str(),
                r.product_reference.as_str(),
            )
        })
        .collect();
    let package_of = |id: &str| -> Option<Package> {
        let product = products.get(references.get(id).copied().unwrap_or(id))?;
        product
            .product_identification_helper
            .as_ref()
            .and_then(|h| h.purl.as_deref())
            .and_then(from_purl)
            .or_else(|| from_rpm_name(&product.name))
    };

    // Package -> (version, scheme) -> what fixes it there.
    let mut fixes: BTreeMap<String, BTreeMap<(String, Option<Scheme>), Fix>> = BTreeMap::new();
    for vulnerability in &doc.vulnerabilities {
        for id in &vulnerability.product_status.fixed {
            let Some((package, version, scheme)) = package_of(id) else {
                continue;
            };
            let fix = fixes
                .entry(package)
                .or_default()
                .entry((version, scheme.map(Scheme)))
                .or_default();
            if let Some(cve) = &vulnerability.cve {
                fix.cves.insert(cve.clone());
            }
            if fix.url.is_none() {
                fix.url = vulnerability
                    .remediations
                    .iter()
                    .find(|r| r.category == "vendor_fix" && r.product_ids.contains(id))
                    .and_then(|r| r.url.clone());
            }
            if fix.sha256.is_none()
                && let Some(url) = &fix.url
            {
                // The fixed product's own hashes, or those of the package it is built on.
                fix.sha256 = [Some(id.as_str()), references.get(id.as_str()).copied()]
                    .into_iter()
                    .flatten()
                    .filter_map(|id| products.get(id))
                    .filter_map(|p| p.product_identification_helper.as_ref())
                    .find_map(|h| h.sha256_of(url));
            }
            for score in vulnerability
                .scores
                .iter()
                .filter(|s| s.products.contains(id))
            {
                let base = score
                    .cvss_v3
                    .as_ref()
                    .or(score.cvss_v2.as_ref())
                    .map_or(0.0, |c| c.base_score);
                fix.score = fix.score.max(base);
            }
        }
    }

    let aggregate = doc
        .document
        .aggregate_severity
        .as_ref()
        .and_then(|a| severity_of_text(&a.text));
    let advisory = &doc.document.tracking.id;
    let mut out = Vec::new();
    for (package, versions) in fixes {
        let several = versions.len() > 1;
        for ((version, scheme), fix) in versions {
            out.push(Patch {
                id: if several {
                    format!("{advisory}/{package}/{version}")
                } else {
                    format!("{advisory}/{package}")
                },
                vendor: doc.document.publisher.name.clone(),
                title: doc.document.title.clone(),
                component: package.clone(),
                fixed_version: version,
                applies_to: String::new(),
                scheme: scheme.map(|s| s.0),
                kind: PatchKind::Security,
                severity: aggregate.unwrap_or_else(|| severity_of_score(fix.score)),
                cves: fix.cves.into_iter().collect(),
                prerequisites: vec![],
                supersedes: vec![],
                reboot_required: false,
                artifact: Artifact {
                    url: fix.url.unwrap_or_default(),
                    sha256: fix.sha256.unwrap_or_default(),
                    size: 0,
                },
                released,
            });
        }
    }
    let nothing = out
        .is_empty()
        .then(|| why_nothing(&doc, &package_of, &products, &references));
    Ok(Read {
        patches: out,
        nothing,
    })
}

/// A scheme as a map key (the generated enum has no `Ord`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Scheme(VersionScheme);

impl Scheme {
    fn rank(self) -> u8 {
        match self.0 {
            VersionScheme::Deb => 0,
            VersionScheme::Rpm => 1,
            VersionScheme::Apk => 2,
            VersionScheme::Semver => 3,
            VersionScheme::Vendor => 4,
        }
    }
}

impl PartialOrd for Scheme {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheme {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}
