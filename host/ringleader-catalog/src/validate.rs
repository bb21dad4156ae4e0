//! The raw file's values checked, every problem recorded with its place, into patches.

use crate::{RawArtifact, RawCatalog, RawPatch};
use ringleader_diag::{Diagnostics, Seg, escape};
use ringleader_types::{Artifact, Patch, PatchKind, Severity};
use ringleader_version::{AnyRange, AnyVersion, Scheme};
use std::collections::HashMap;

const SEVERITIES: &[(&str, Severity)] = &[
    ("unknown", Severity::Unknown),
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];

const KINDS: &[(&str, PatchKind)] = &[
    ("security", PatchKind::Security),
    ("bugfix", PatchKind::Bugfix),
    ("feature", PatchKind::Feature),
    ("firmware", PatchKind::Firmware),
];

/// The value of `table` named `text`, or an error at `at` listing the names.
fn named<T: Copy>(
    table: &[(&str, T)],
    text: &str,
    what: &str,
    at: &[Seg<'_>],
    diags: &mut Diagnostics,
) -> Option<T> {
    let found = table
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v);
    if found.is_none() {
        let names: Vec<String> = table.iter().map(|(n, _)| format!("`{n}`")).collect();
        diags.error_at(
            at,
            format!("unknown {what} `{}`", escape(text)),
            &format!("expected one of {}", names.join(", ")),
        );
    }
    found
}

/// A value that must be there and not blank, or an error at the patch. One the file
/// has but that was left out for its type (already reported) is not reported again.
fn required(value: Option<String>, key: &str, at: &[Seg<'_>], diags: &mut Diagnostics) -> String {
    let mut place = at.to_vec();
    place.push(Seg::Key(key));
    if value.is_none() && diags.span_of(&place) != diags.span_of(at) {
        return String::new();
    }
    if let Some(v) = &value
        && v.chars().any(ringleader_diag::needs_escape)
    {
        diags.error_at(
            &place,
            format!("`{}` holds control or invisible characters", escape(v)),
            "write it again with plain characters",
        );
    }
    match value {
        Some(v) if !v.trim().is_empty() => v,
        Some(v) => {
            diags.error_at(&place, format!("`{key}` is empty"), HINTS.hint(key));
            v
        }
        None => {
            diags.error_at(at, format!("the patch has no `{key}`"), HINTS.hint(key));
            String::new()
        }
    }
}

/// What to write for a required key.
struct Hints;
const HINTS: Hints = Hints;

impl Hints {
    fn hint(&self, key: &str) -> &'static str {
        match key {
            "id" => "give every patch an id unique across all sources, e.g. `acme-agent-4.2.1`",
            "component" => {
                "the component it updates, as devices name it in the inventory's `components`"
            }
            "fixed-version" => "the version a device has after installing it",
            "kind" => "one of `security`, `bugfix`, `feature`, `firmware`",
            "vendor" => "set `vendor` on the patch, or once at the top of the file for every patch",
            _ => crate::HINT,
        }
    }
}

/// Whether `text` is a CVE id: `CVE-YYYY-NNNN`, four or more digits after the year.
fn is_cve(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && number.len() >= 4
        && year
            .bytes()
            .chain(number.bytes())
            .all(|b| b.is_ascii_digit())
}

/// The problem of artifact URL `url`, if it has one.
fn url_problem(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = match lower.split_once("://") {
        Some((scheme, rest)) if matches!(scheme, "https" | "http" | "file") => (scheme, rest),
        _ => {
            return Some(format!(
                "`{}` is not an `https://`, `http://` or `file://` URL",
                escape(url)
            ));
        }
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "`{}` holds spaces or control characters (write a space as `%20`)",
            escape(url)
        ));
    }
    if scheme == "file" {
        return (!rest.starts_with('/') || rest.len() < 2).then(|| {
            format!(
                "`{}` is not an absolute `file:///` path (three slashes, then the path on the device)",
                escape(url)
            )
        });
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.is_empty()
        .then(|| format!("`{}` names no host", escape(url)))
}

fn artifact(raw: RawArtifact, at: &[Seg<'_>], diags: &mut Diagnostics) -> Artifact {
    let place = |key: &'static str| {
        let mut p = at.to_vec();
        p.push(Seg::Key("artifact"));
        p.push(Seg::Key(key));
        p
    };
    if let Some(problem) = url_problem(&raw.url) {
        diags.error_at(
            &place("url"),
            problem,
            "where installers fetch it: `https://host/path`, or `file:///path` on the device (see the installer's docs); a patch installed from the devices' own repositories has no `artifact`",
        );
    }
    let sha256 = raw.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        diags.error_at(
            &place("sha256"),
            format!(
                "`{}` is not a SHA-256: 64 hex digits expected, {} characters given",
                escape(&raw.sha256),
                raw.sha256.chars().count()
            ),
            "the output of `sha256sum FILE`, without the file name",
        );
    }
    Artifact {
        url: raw.url,
        sha256,
        size: raw.size,
    }
}

pub(crate) fn validate(raw: RawCatalog, diags: &mut Diagnostics) -> Vec<Patch> {
    if let Some(vendor) = &raw.vendor {
        required(Some(vendor.clone()), "vendor", &[], diags);
    }
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut patches = Vec::with_capacity(raw.patches.len());
    for (i, p) in raw.patches.into_iter().enumerate() {
        patches.push(patch(p, i, raw.vendor.as_deref(), &mut ids, diags));
    }
    // Prerequisites are among the file's patches: an id that is not is a typo, or a
    // patch of another source (which the planner could not order against this one).
    for (i, patch) in patches.iter().enumerate() {
        for (j, id) in patch.prerequisites.iter().enumerate() {
            let at = [
                Seg::Key("patches"),
                Seg::Index(i),
                Seg::Key("prerequisites"),
                Seg::Index(j),
            ];
            if *id == patch.id {
                diags.error_at(
                    &at,
                    format!("the patch `{}` names itself as a prerequisite", escape(id)),
                    "remove it: prerequisites are other patches a device needs first",
                );
            } else if !ids.contains_key(id) {
                diags.error_at(
                    &at,
                    format!(
                        "unknown prerequisite `{}`: no patch of this catalog has that id",
                        escape(id)
                    ),
                    "name the `id` of a patch in this file (ids are case-sensitive)",
                );
            }
        }
        for (j, id) in patch.supersedes.iter().enumerate() {
            if *id == patch.id {
                let at = [
                    Seg::Key("patches"),
                    Seg::Index(i),
                    Seg::Key("supersedes"),
                    Seg::Index(j),
                ];
                diags.error_at(
                    &at,
                    format!("the patch `{}` says it supersedes itself", escape(id)),
                    "`supersedes` names older patches this one replaces",
                );
            }
        }
    }
    patches
}

fn patch(
    p: RawPatch,
    i: usize,
    file_vendor: Option<&str>,
    ids: &mut HashMap<String, usize>,
    diags: &mut Diagnostics,
) -> Patch {
    let here = [Seg::Key("patches"), Seg::Index(i)];
    let at = |key: &'static str| [Seg::Key("patches"), Seg::Index(i), Seg::Key(key)];
    let id = required(p.id, "id", &here, diags);
    if !id.trim().is_empty()
        && let Some(first) = ids.insert(id.clone(), i)
    {
        let first_at = [Seg::Key("patches"), Seg::Index(first), Seg::Key("id")];
        let (line, _) = diags.locate(diags.span_of(&first_at).start);
        diags.error_at(
            &at("id"),
            format!(
                "duplicate patch id `{}` (first used on line {line})",
                escape(&id)
            ),
            "patch ids must be unique",
        );
        // The first keeps the id: prerequisites name it.
        ids.insert(id.clone(), first);
    }
    let vendor = match (p.vendor, file_vendor) {
        (Some(v), _) => required(Some(v), "vendor", &here, diags),
        (None, Some(v)) => v.to_string(),
        (None, None) => {
            diags.error_at(&here, "the patch has no `vendor`", HINTS.hint("vendor"));
            String::new()
        }
    };
    let component = required(p.component, "component", &here, diags);
    let fixed_version = required(p.fixed_version.clone(), "fixed-version", &here, diags);
    let scheme = match &p.scheme {
        None => Some(Scheme::Vendor),
        Some(text) => match text.parse::<Scheme>() {
            Ok(s) => Some(s),
            Err(e) => {
                diags.error_at(
                    &at("scheme"),
                    e.to_string(),
                    "the scheme of the component's package manager (`deb` for dpkg and apt, `rpm`, `apk`), `semver`, or `vendor` for firmware (the default)",
                );
                None
            }
        },
    };
    let applies_to = p.applies_to.unwrap_or_default();
    if let Some(scheme) = scheme {
        if p.fixed_version.is_some()
            && !fixed_version.trim().is_empty()
            && let Err(e) = AnyVersion::parse(scheme, &fixed_version)
        {
            diags.error_at(
                &at("fixed-version"),
                e.to_string(),
                match scheme {
                    Scheme::Vendor => {
                        "a vendor version starts with a number, e.g. `2.19.1` or `7.10.30.00`; for a package, name its `scheme` (`deb`, `rpm`, `apk`, `semver`)"
                    }
                    _ => {
                        "write the version as the package manager shows it (`dpkg-query -W`, `rpm -q`, `apk info`), or name another `scheme`"
                    }
                },
            );
        }
        if let Err(e) = AnyRange::parse(scheme, &applies_to) {
            diags.error_at(
                &at("applies-to"),
                e.to_string(),
                "comparisons joined by commas, e.g. `>= 4.0.0, < 4.2.1`, in the patch's scheme; leave it out for any version below `fixed-version`",
            );
        }
    }
    let severity = match &p.severity {
        None => Some(Severity::Unknown),
        Some(text) => named(SEVERITIES, text, "severity", &at("severity"), diags),
    };
    let kind = match &p.kind {
        Some(text) => named(KINDS, text, "kind", &at("kind"), diags),
        None => {
            diags.error_at(&here, "the patch has no `kind`", HINTS.hint("kind"));
            None
        }
    };
    for (j, cve) in p.cves.iter().enumerate() {
        if !is_cve(cve) {
            diags.error_at(
                &[
                    Seg::Key("patches"),
                    Seg::Index(i),
                    Seg::Key("cves"),
                    Seg::Index(j),
                ],
                format!("`{}` is not a CVE id", escape(cve)),
                "write CVE ids as `CVE-2026-12345`",
            );
        }
    }
    let released = match &p.released {
        None => 0,
        Some(text) => crate::parse_released(text).unwrap_or_else(|e| {
            diags.error_at(
                &at("released"),
                e,
                "the day the fix was released, quoted: `released = \"2026-11-03\"`",
            );
            0
        }),
    };
    let artifact = match p.artifact {
        Some(raw) => artifact(raw, &here, diags),
        None => Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
    };
    Patch {
        title: p.title.unwrap_or_else(|| id.clone()),
        id,
        vendor,
        component,
        fixed_version,
        applies_to,
        scheme,
        kind: kind.unwrap_or(PatchKind::Bugfix),
        severity: severity.unwrap_or(Severity::Unknown),
        cves: p.cves,
        prerequisites: p.prerequisites,
        supersedes: p.supersedes,
        reboot_required: p.reboot,
        artifact,
        released,
    }
}
