use super::*;
use ringleader_types::{PatchKind, Scheme, Severity};

const GOOD: &str = r#"
vendor = "acme"

[[patches]]
id = "acme-agent-4.2.1"
title = "ACME agent 4.2.1: fixes the updater's signature check"
component = "acme-agent"
fixed-version = "4.2.1"
scheme = "semver"
applies-to = ">= 4.0.0, < 4.2.1"
severity = "high"
kind = "security"
cves = ["CVE-2026-10001"]
released = "2026-11-03"
artifact = { url = "https://repo.example/acme-agent-4.2.1.deb", sha256 = "5F70BF18A086007016E948B04AED3B82103A36BEA41755B6CDDFAF10ACE3C6EF", size = 1024 }

[[patches]]
id = "bios-2.19.1"
vendor = "dell"
component = "bios"
fixed-version = "2.19.1"
kind = "firmware"
prerequisites = ["acme-agent-4.2.1"]
reboot = true
"#;

#[test]
fn a_good_catalog_gives_its_patches() {
    let patches = parse(Path::new("c.toml"), GOOD).unwrap();
    assert_eq!(patches.len(), 2);
    let agent = &patches[0];
    assert_eq!(agent.vendor, "acme");
    assert_eq!(agent.scheme, Some(Scheme::Semver));
    assert_eq!(agent.severity, Severity::High);
    assert_eq!(agent.kind, PatchKind::Security);
    assert_eq!(agent.released, 1_793_664_000);
    assert_eq!(
        agent.artifact.sha256,
        "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    let bios = &patches[1];
    assert_eq!(bios.vendor, "dell");
    assert_eq!(bios.title, "bios-2.19.1");
    assert_eq!(bios.scheme, Some(Scheme::Vendor));
    assert_eq!(bios.severity, Severity::Unknown);
    assert!(bios.reboot_required);
    assert!(
        bios.artifact.url.is_empty(),
        "no artifact: a repository install"
    );
}

#[test]
fn json_is_the_same_schema() {
    let json = r#"{"vendor": "acme", "patches": [{"id": "a", "component": "x", "fixed-version": "1.2", "kind": "bugfix"}]}"#;
    let patches = parse(Path::new("c.json"), json).unwrap();
    assert_eq!(patches[0].fixed_version, "1.2");
    assert_eq!(format_of(Path::new("file:///srv/c.JSON?x=1")), Format::Json);
    assert_eq!(format_of(Path::new("https://h/c.toml")), Format::Toml);
}

#[test]
fn every_problem_is_named_with_its_place() {
    let bad = GOOD
        .replace("\"bios-2.19.1\"", "\"acme-agent-4.2.1\"")
        .replace(
            "scheme = \"semver\"",
            "scheme = \"semver\"\ncolour = \"red\"",
        )
        .replace("\"high\"", "\"urgent\"")
        .replace("\"CVE-2026-10001\"", "\"CVE-26-1\"")
        .replace("https://repo", "ftp://repo")
        .replace("5F70", "5F7")
        .replace("\"2.19.1\"", "\"latest\"")
        .replace("[\"acme-agent-4.2.1\"]", "[\"acme-agent-4.2.0\"]");
    let err = parse(Path::new("c.toml"), &bad).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        "c.toml:10:1: `colour`: unknown field `colour`",
        "c.toml:12:12: `patches[0].severity`: unknown severity `urgent`",
        "c.toml:14:9: `patches[0].cves[0]`: `CVE-26-1` is not a CVE id",
        "c.toml:16:20: `patches[0].artifact.url`: `ftp://repo.example",
        "c.toml:16:72: `patches[0].artifact.sha256`: `5F7",
        "c.toml:19:6: `patches[1].id`: duplicate patch id `acme-agent-4.2.1` (first used on line 5)",
        "c.toml:22:17: `patches[1].fixed-version`: `latest` is not a vendor version",
        "c.toml:24:18: `patches[1].prerequisites[0]`: unknown prerequisite `acme-agent-4.2.0`",
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(line.starts_with(want), "{line}\n  expected {want}\n{err}");
    }
}

#[test]
fn versions_and_ranges_are_read_in_the_patch_scheme() {
    let one = |extra: &str| {
        let text = format!(
            "vendor = \"v\"\n[[patches]]\nid = \"p\"\ncomponent = \"libfoo1\"\nkind = \"bugfix\"\n{extra}\n"
        );
        parse(Path::new("c.toml"), &text).map_err(|e| e.to_string())
    };
    assert!(one("fixed-version = \"2.36-9+deb12u7\"\nscheme = \"deb\"\napplies-to = \">= 2.36-9+deb12u4, < 2.36-9+deb12u7\"").is_ok());
    let err = one("fixed-version = \"1.0\"\nscheme = \"semver\"").unwrap_err();
    assert!(
        err.contains("`patches[0].fixed-version`") && err.contains("semver"),
        "{err}"
    );
    let err =
        one("fixed-version = \"1.0.0\"\nscheme = \"semver\"\napplies-to = \"> = 1\"").unwrap_err();
    assert!(err.contains("`patches[0].applies-to`"), "{err}");
    let err = one("fixed-version = \"1.0\"\nscheme = \"dpkg\"").unwrap_err();
    assert!(err.contains("`patches[0].scheme`"), "{err}");
    let err = one("").unwrap_err();
    assert!(
        err.contains("c.toml:2:1: `patches[0]`: the patch has no `fixed-version`"),
        "{err}"
    );
    let err = one("fixed-version = \"1.0\"\nreleased = \"2026-02-30\"").unwrap_err();
    assert!(
        err.contains("`patches[0].released`: `2026-02-30` is not a day"),
        "{err}"
    );
}

#[test]
fn json_problems_are_located_and_bytes_that_are_not_utf8_too() {
    let json = "{\"patches\": [\n  {\"id\": \"a\", \"vendor\": \"v\", \"component\": \"x\", \"fixed-version\": \"1\", \"kind\": \"hotfix\"}\n]}";
    let err = parse(Path::new("c.json"), json).unwrap_err().to_string();
    assert!(
        err.starts_with("c.json:2:78: `patches[0].kind`: unknown kind `hotfix`"),
        "{err}"
    );
    let err = parse(Path::new("c.json"), "{\"patches\": [{\"idd\": 1}]}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `idd`"), "{err}");
    let err = parse_bytes(Path::new("c.toml"), b"vendor = \"a\xffb\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml:1:12: the catalog is not valid UTF-8"),
        "{err}"
    );
}
