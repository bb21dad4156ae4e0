//! The `ringleader` binary, run as a user or a script would run it. (The data-driven
//! cases of `policy check`, `plugin check` and `inventory check` are the `cases` test
//! binary: `host/ringleader/tests/cases/`.)

use std::path::Path;
use std::process::{Command, Output};

fn ringleader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(args)
        .env("RINGLEADER_LOG", "error")
        .env_remove("RINGLEADER_CACHE_DIR")
        .output()
        .expect("run ringleader")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/schemas")
        .join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, doc: &serde_json::Value) {
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc}\nschema errors: {errors:#?}");
}

#[test]
fn every_shipped_policy_passes_policy_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rollout-policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "the example policies went missing");
    let mut args = vec!["policy".to_string(), "check".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ringleader(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warnings either");
    assert_eq!(text(&out.stdout).lines().count(), files.len());
}

#[test]
fn check_json_of_every_plugin_matches_the_schema() {
    let validator = schema("plugin-check.v1.json");
    for name in ringleader_bundled_plugins::ALL {
        let path = ringleader_bundled_plugins::manifest_path(name);
        let out = ringleader(&[
            "plugin",
            "check",
            "--json",
            "--no-cache",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<_> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON object per plugin: {stdout}");
        let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_valid(&validator, &doc);
        // What a script reads.
        assert_eq!(doc["name"], *name);
        assert_eq!(doc["valid"], true);
        // Built against either WIT version this host implements or links.
        assert!(
            ["0.1.0", "0.1.1", "0.2.0", "0.3.0"].contains(&doc["wit_version"].as_str().unwrap()),
            "{doc}"
        );
        assert!(doc["capabilities"]["http"].is_array());
        assert!(["patch-source", "installer"].contains(&doc["world"].as_str().unwrap()));
    }
}

#[test]
fn check_accepts_the_component_path_and_finds_its_manifest() {
    let path = ringleader_bundled_plugins::component_path("sim-vendor-installer");
    let out = ringleader(&["plugin", "check", "--no-cache", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("sim-vendor-installer 0.1.0: valid installer plugin"),
        "{stdout}"
    );
    assert!(stdout.contains("exec: sim-pkg"), "{stdout}");
}

#[test]
fn a_wasm_named_as_cargo_names_it_finds_the_hyphenated_manifest() {
    // Cargo writes `sim_vendor_source.wasm` for the crate `sim-vendor-source`.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("sim_vendor_source.wasm");
    std::fs::copy(
        ringleader_bundled_plugins::component_path("sim-vendor-source"),
        &wasm,
    )
    .unwrap();
    let manifest = std::fs::read_to_string(ringleader_bundled_plugins::manifest_path(
        "sim-vendor-source",
    ))
    .unwrap()
    .replace(
        "component = \"sim-vendor-source.wasm\"",
        "component = \"sim_vendor_source.wasm\"",
    );
    let hyphenated = dir.path().join("sim-vendor-source.plugin.toml");
    std::fs::write(&hyphenated, &manifest).unwrap();
    let wasm_arg = wasm.to_str().unwrap();
    let out = ringleader(&["plugin", "check", "--no-cache", wasm_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("sim-vendor-source 0.1.0: valid"));
    assert_eq!(text(&out.stderr), "");
    let out = ringleader(&["plugin", "run", wasm_arg, "info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Both: the component's own name wins, and a warning says which was used.
    let exact = dir.path().join("sim_vendor_source.plugin.toml");
    std::fs::write(&exact, &manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["plugin", "check", "--no-cache", wasm_arg])
        .env_remove("RINGLEADER_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: both {} and {} are beside {wasm_arg}: using {}",
            exact.display(),
            hyphenated.display(),
            exact.display()
        )),
        "{stderr}"
    );

    // None: the error names every path tried.
    std::fs::remove_file(&exact).unwrap();
    std::fs::remove_file(&hyphenated).unwrap();
    let out = ringleader(&["plugin", "check", "--no-cache", wasm_arg]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for tried in [&exact, &hyphenated, &dir.path().join("plugin.toml")] {
        assert!(stderr.contains(&tried.display().to_string()), "{stderr}");
    }
}

#[test]
fn check_bundled_plugins_and_list_them() {
    let out = ringleader(&[
        "plugin",
        "check",
        "--bundled",
        "sim-vendor-source",
        "--no-cache",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = ringleader(&["plugin", "check", "--bundled", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no bundled plugin is named `nope`"),
        "{stderr}"
    );
    assert!(stderr.contains("sim-vendor-source"), "{stderr}");

    let out = ringleader(&["plugin", "list", "--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("plugin-list.v1.json"), &doc);
    // Every plugin of the product (issue 12: the real ones too), none of the tests'.
    let names: Vec<&str> = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "apt-installer",
            "catalog-source",
            "csaf-source",
            "debian-security-source",
            "dpkg-installer",
            "lvfs-source",
            "redfish-firmware",
            "sim-vendor-installer",
            "sim-vendor-source"
        ]
    );
}

/// A bundled plugin is named by its name wherever a plugin is given; what has a `/` or
/// ends in `.toml` or `.wasm` is a path; an unknown name lists the bundled ones.
#[test]
fn bundled_plugins_are_named_by_name_wherever_a_plugin_is_given() {
    // plugin check, positional.
    let out = ringleader(&["plugin", "check", "--no-cache", "dpkg-installer"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("dpkg-installer 0.1.0: valid installer plugin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("component     bundled:dpkg-installer/dpkg-installer.wasm"),
        "{stdout}"
    );
    // --bundled: every one of them.
    for name in [
        "redfish-firmware",
        "csaf-source",
        "lvfs-source",
        "debian-security-source",
        "catalog-source",
    ] {
        let out = ringleader(&["plugin", "check", "--bundled", name, "--json"]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid(&schema("plugin-check.v1.json"), &doc);
        assert_eq!(doc["path"], format!("bundled:{name}"));
    }
    // plugin run.
    let out = ringleader(&["plugin", "run", "lvfs-source", "info", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["result"]["name"], "lvfs-source", "{doc}");
    // plan --source: the simulated vendor named is the default, byte for byte.
    let by_default = plan(&["--json"]);
    let by_name = plan(&["--json", "--source", "sim-vendor-source"]);
    assert!(by_name.status.success(), "{}", text(&by_name.stderr));
    assert_eq!(text(&by_name.stdout), text(&by_default.stdout));

    // Unknown names, wherever given: exit 1 (2 for `plugin run`'s inputs), the bundled
    // names listed and how to name a file instead.
    let data = tempfile::tempdir().unwrap();
    let data = data.path().join("data");
    for (args, code) in [
        (vec!["plan", "--source", "dpkg"], 1),
        (
            vec![
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--installer",
                "dpkg",
            ],
            1,
        ),
        (
            vec![
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--source",
                "dpkg",
            ],
            1,
        ),
        (vec!["plugin", "check", "dpkg"], 1),
        (vec!["plugin", "run", "dpkg", "info"], 2),
    ] {
        let out = if args[0] == "plan" {
            plan(&args[1..])
        } else {
            ringleader(&args)
        };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("no bundled plugin is named `dpkg`; bundled plugins: apt-installer, catalog-source, csaf-source, debian-security-source, dpkg-installer, lvfs-source, redfish-firmware, sim-vendor-installer, sim-vendor-source (a plugin of your own is named by its manifest's path, e.g. `./dpkg.plugin.toml`)"),
            "{args:?}: {stderr}"
        );
    }
    // Nothing was started or created for the daemon that was refused its plugin.
    assert!(!data.exists());
    // A path is a path, even when a bundled plugin has that name.
    let out = ringleader(&["plugin", "check", "./dpkg-installer.plugin.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("./dpkg-installer.plugin.toml"), "{stderr}");
    assert!(!stderr.contains("bundled"), "{stderr}");
}

#[test]
fn plugin_list_says_what_each_bundled_plugin_is_and_asks_for() {
    let out = ringleader(&["plugin", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("plugin-list.v1.json"), &doc);
    let plugins = doc["plugins"].as_array().unwrap();
    let of = |name: &str| plugins.iter().find(|p| p["name"] == name).unwrap().clone();
    let dpkg = of("dpkg-installer");
    assert_eq!(dpkg["world"], "installer", "{dpkg}");
    assert_eq!(
        dpkg["capabilities"]["exec"],
        serde_json::json!([
            "dpkg",
            "dpkg-query",
            "sha256sum",
            "cat",
            "needrestart",
            "systemctl"
        ])
    );
    assert_eq!(of("csaf-source")["world"], "patch-source");
    assert_eq!(of("csaf-source")["wit_version"], "0.2.0");
    assert_eq!(of("redfish-firmware")["capabilities"]["kv"], true);
    // The checksum is the one of the component `plugin check --bundled` loads.
    let out = ringleader(&["plugin", "check", "--bundled", "lvfs-source", "--json"]);
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(of("lvfs-source")["sha256"], check["sha256"]);

    let out = ringleader(&["plugin", "list"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), plugins.len(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("dpkg-installer") && l.contains("installer")),
        "{stdout}"
    );
}

#[test]
fn plugin_export_writes_a_bundled_plugin_that_loads_by_path_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("pinned");
    let into_text = into.to_str().unwrap();
    let out = ringleader(&["plugin", "export", "redfish-firmware", into_text]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest = into.join("redfish-firmware.plugin.toml");
    let component = into.join("redfish-firmware.wasm");
    assert_eq!(
        text(&out.stdout),
        format!(
            "exported redfish-firmware 0.1.0: {} and {}\n",
            manifest.display(),
            component.display()
        )
    );
    // The files are the build's own, byte for byte, and load by path.
    assert_eq!(
        std::fs::read(&component).unwrap(),
        std::fs::read(ringleader_bundled_plugins::component_path(
            "redfish-firmware"
        ))
        .unwrap()
    );
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        std::fs::read(ringleader_bundled_plugins::manifest_path(
            "redfish-firmware"
        ))
        .unwrap()
    );
    let out = ringleader(&["plugin", "check", "--no-cache", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Again: refused, naming both files, and nothing is changed.
    std::fs::write(&component, b"kept").unwrap();
    let out = ringleader(&["plugin", "export", "redfish-firmware", into_text]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {} and {} already exist: give --force to overwrite, or another directory\n",
            manifest.display(),
            component.display()
        )
    );
    assert_eq!(std::fs::read(&component).unwrap(), b"kept");
    // One of them is enough to refuse.
    std::fs::remove_file(&manifest).unwrap();
    let out = ringleader(&["plugin", "export", "redfish-firmware", into_text]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("{} already exists", component.display())),
        "{}",
        text(&out.stderr)
    );
    assert!(!manifest.exists());
    // --force writes them again.
    let out = ringleader(&["plugin", "export", "redfish-firmware", into_text, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ringleader(&["plugin", "check", "--no-cache", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // An unknown name: the bundled ones, and nothing written.
    let other = dir.path().join("other");
    let out = ringleader(&["plugin", "export", "redfish", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "no bundled plugin is named `redfish`; bundled plugins: apt-installer, catalog-source, csaf-source, debian-security-source, dpkg-installer, lvfs-source, redfish-firmware"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!other.exists());
}

/// Runs `plugin check` on a file that is not a valid plugin: exit 1, and stderr is one
/// `error:` line containing `expected`.
fn refused(path: &Path, expected: &str) {
    let out = ringleader(&["plugin", "check", "--no-cache", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");

    let out = ringleader(&[
        "plugin",
        "check",
        "--json",
        "--no-cache",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("plugin-check.v1.json"), &doc);
    assert_eq!(doc["valid"], false);
    assert!(doc["error"].as_str().unwrap().contains(expected), "{doc}");
}

#[test]
fn check_says_what_a_non_plugin_is() {
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("readme.wasm");
    std::fs::write(&text_file, "# not wasm").unwrap();
    refused(&text_file, "is not a WebAssembly file");

    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    refused(&module, "is a core WebAssembly module, not a component");

    refused(
        &ringleader_bundled_plugins::component_path("test-cli-command"),
        "is a component but not a Ringleader plugin",
    );
    refused(
        &ringleader_bundled_plugins::component_path("test-future-wit"),
        "built against WIT package ringleader:plugin@2.0.0, which this host does not support",
    );

    let lonely = dir.path().join("lonely.wasm");
    std::fs::copy(
        ringleader_bundled_plugins::component_path("sim-vendor-source"),
        &lonely,
    )
    .unwrap();
    refused(&lonely, "no manifest beside it");
}

#[test]
fn seal_writes_the_checksum_and_keeps_comments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        ringleader_bundled_plugins::component_path("sim-vendor-installer"),
        dir.path().join("sim-vendor-installer.wasm"),
    )
    .unwrap();
    let manifest = dir.path().join("sim-vendor-installer.plugin.toml");
    // The crate's own template: no sha256 yet, comments to keep.
    let template = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/sim-vendor-installer/plugin.toml");
    std::fs::copy(template, &manifest).unwrap();

    let before = ringleader(&["plugin", "check", "--no-cache", manifest.to_str().unwrap()]);
    assert_eq!(before.status.code(), Some(1));
    assert!(text(&before.stderr).contains("ringleader plugin seal"));

    let out = ringleader(&["plugin", "seal", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sealed = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        sealed.contains("# Simulated devices are driven through their own package tool"),
        "{sealed}"
    );
    assert!(sealed.contains("sha256 = \""), "{sealed}");

    let after = ringleader(&["plugin", "check", "--no-cache", manifest.to_str().unwrap()]);
    assert!(after.status.success(), "{}", text(&after.stderr));
}

#[test]
fn help_explains_check() {
    let out = ringleader(&["plugin", "check", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("Exit status: 0 when every plugin is valid"),
        "{help}"
    );
    assert!(help.contains("--json"), "{help}");
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

fn plan(extra: &[&str]) -> Output {
    let policy = repo("rollout-policies/monthly-os.toml");
    let inventory = repo("docs/examples/inventory.toml");
    let mut args = vec![
        "plan",
        "--policy",
        &policy,
        "--inventory",
        &inventory,
        "--at",
        "2026-11-30T09:00:00Z",
    ];
    args.extend_from_slice(extra);
    ringleader(&args)
}

#[test]
fn plan_json_is_deterministic_matches_the_schema_and_places_every_device_once() {
    let first = plan(&["--json"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = plan(&["--json"]);
    assert_eq!(
        first.stdout, second.stdout,
        "the same inputs give byte-identical output"
    );

    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_valid(&schema("plan.v1.json"), &doc);
    // What a script reads: every device of the inventory once, in a ring or unassigned.
    let mut seen: Vec<String> = doc["rings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["devices"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap().to_string())
        .chain(
            doc["unassigned"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string()),
        )
        .collect();
    seen.sort();
    let total = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), total, "no device twice");
    assert_eq!(total, 15);
    assert_eq!(doc["rings"][0]["name"], "lab");
    assert_eq!(doc["rings"][0]["devices"][0]["id"], "srv-ams-001");

    let human = plan(&[]);
    assert!(human.status.success());
    let out = text(&human.stdout);
    assert!(
        out.starts_with(
            "plan of policy `monthly-os` as of 2026-11-30T09:00:00Z: 15 devices, 4 rings"
        ),
        "{out}"
    );
    assert!(
        out.contains("ring pilot:") && out.contains("needs approval"),
        "{out}"
    );
}

#[test]
fn plan_text_counts_in_the_singular_and_says_why_expedited_installs_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.toml");
    std::fs::write(
        &one,
        "[[devices]]\nid = \"lab-1\"\ntags = [\"lab\"]\ncomponents = { linux = \"6.1.99\" }\n",
    )
    .unwrap();
    let policy = repo("rollout-policies/monthly-os.toml");
    let out = ringleader(&[
        "plan",
        "--policy",
        &policy,
        "--inventory",
        one.to_str().unwrap(),
        "--at",
        "2026-11-30T09:00:00Z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": 1 device, 4 rings\n"), "{stdout}");
    assert!(
        stdout.contains("ring lab: 1 device in 1 batch [1]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ring canary: 0 devices in 1 batch [0]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("totals: 1 of 1 device in rings, 1 device-patch planned, "),
        "{stdout}"
    );
    assert!(
        !stdout.contains("(es)") && !stdout.contains(" 1 devices"),
        "{stdout}"
    );

    // The broad ring's expedited patch may start days before the ring: said first, with
    // why, and the ring's own line no longer shows an install before its start.
    let out = plan(&[]);
    let stdout = text(&out.stdout);
    let broad: Vec<&str> = stdout
        .split("\n\n")
        .find(|block| block.starts_with("ring broad:"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .lines()
        .collect();
    assert!(
        broad[1].starts_with(
            "  expedited patches from 2026-12-01T21:00:00Z, before the ring's start: "
        ),
        "{stdout}"
    );
    assert!(broad[1].contains("soak_factor 0.25"), "{stdout}");
    assert!(
        broad[2].starts_with(
            "  starts no earlier than 2026-12-06T09:00:00Z (first install 2026-12-07T"
        ),
        "{stdout}"
    );
}

#[test]
fn explain_says_why_for_every_patch() {
    let out = plan(&["--explain", "srv-ams-002", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("explain.v1.json"), &doc);
    assert_eq!(doc["ring"], "pilot", "tagged critical: not in the canary");
    let reason = |patch: &str| {
        doc["patches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["patch"] == patch)
            .map(|p| p["reason"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(reason("debian-sim-linux-6.1.115"), "planned");
    assert_eq!(reason("acme-bmc-7.10.30"), "not-applicable");
    assert_eq!(reason("acme-bios-2.19.1"), "prerequisite-not-planned");
    assert_eq!(reason("debian-sim-openssl-3.0.15"), "component-absent");

    let out = plan(&["--explain", "ws-sgp-004"]);
    let human = text(&out.stdout);
    assert!(
        human.contains("superseded by debian-sim-openssl-3.0.15"),
        "{human}"
    );

    let out = plan(&["--explain", "no-such-device"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("device `no-such-device` is not in the inventory"));
}

#[test]
fn plan_reports_every_problem_of_a_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inv.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"a\"\ntimezone = \"Nowhere\"\n[[devices]]\nid = \"a\"\n",
    )
    .unwrap();
    let out = ringleader(&[
        "plan",
        "--policy",
        &repo("rollout-policies/monthly-os.toml"),
        "--inventory",
        inventory.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("inv.toml:3:12: `devices[0].timezone`: unknown time zone"),
        "{stderr}"
    );
    assert!(
        stderr.contains("inv.toml:5:6: `devices[1].id`: duplicate device id `a`"),
        "{stderr}"
    );
}

fn demo(args: &[&str]) -> (Output, serde_json::Value) {
    let mut all = vec!["demo", "--json"];
    all.extend_from_slice(args);
    let out = ringleader(&all);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_valid(&schema("demo.v1.json"), &doc);
    (out, doc)
}

fn ring<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["rings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

#[test]
fn demo_completes_every_ring_without_a_duplicate_install() {
    let (out, doc) = demo(&["--devices", "400", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(doc["final_state"], "completed");
    assert_eq!(doc["duplicate_installs"], 0);
    assert_eq!(doc["approvals"], 1, "the pilot ring needs approval");
    assert_eq!(doc["outcomes"]["not_started"], 0);
    let total: u64 = [
        "done",
        "failed",
        "rolled_back",
        "rollback_failed",
        "not_started",
    ]
    .iter()
    .map(|k| doc["outcomes"][k].as_u64().unwrap())
    .sum();
    assert_eq!(total, 400, "every device ends in exactly one outcome");
    assert!(
        doc["virtual_duration_seconds"].as_i64().unwrap() > 7 * 86_400,
        "soaks take days"
    );
}

#[test]
fn demo_halts_the_canary_and_rolls_it_back_and_broad_never_starts() {
    let (out, doc) = demo(&["--devices", "1000", "--seed", "2", "--fail-permille", "30"]);
    assert_eq!(out.status.code(), Some(3), "halted: {doc}");
    assert_eq!(doc["final_state"], "halted");
    assert!(
        doc["halt_reason"]
            .as_str()
            .unwrap()
            .contains("in ring canary, over its failure budget"),
        "{doc}"
    );
    assert_eq!(ring(&doc, "lab")["done"], ring(&doc, "lab")["devices"]);
    assert!(ring(&doc, "canary")["rolled_back"].as_u64().unwrap() > 0);
    assert_eq!(
        ring(&doc, "canary")["done"],
        0,
        "every canary device that installed was rolled back"
    );
    assert_eq!(
        ring(&doc, "broad")["not_started"],
        ring(&doc, "broad")["devices"]
    );
    assert_eq!(doc["duplicate_installs"], 0);
}

#[test]
fn demo_text_says_what_each_count_counts_and_the_halt_line_agrees_with_the_table() {
    let args = ["--devices", "1000", "--seed", "2", "--fail-permille", "30"];
    let out = ringleader(&[&["demo"][..], &args].concat());
    assert_eq!(out.status.code(), Some(3), "halted");
    let stdout = text(&out.stdout);
    // `halted because 2 of 48 devices failed in ring canary, over its failure budget of 1`
    let halt = stdout
        .lines()
        .find_map(|l| l.strip_prefix("halted because "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let words: Vec<&str> = halt.split_whitespace().collect();
    let (failed, ring_name) = (words[0], words[7].trim_end_matches(','));
    let header = stdout
        .lines()
        .find(|l| l.starts_with("ring "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let columns: Vec<String> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(
        columns,
        [
            "ring",
            "devices",
            "done",
            "failed",
            "rolled back",
            "rollback failed",
            "not started",
            "failures"
        ],
        "{stdout}"
    );
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(ring_name))
        .unwrap()
        .split_whitespace()
        .collect();
    let n = |i: usize| row[i].parse::<u64>().unwrap();
    assert_eq!(
        n(1),
        n(2) + n(3) + n(4) + n(5) + n(6),
        "states: each device once: {stdout}"
    );
    assert_eq!(
        row[7], failed,
        "the halt line counts the `failures` column: {stdout}"
    );
    assert_ne!(
        n(3).to_string(),
        failed,
        "this seed has a failed device rolled back: {stdout}"
    );
    assert!(
        stdout.contains("each device once, by its state at the end"),
        "the table says what it counts: {stdout}"
    );
    let (_, doc) = demo(&args);
    assert_eq!(
        ring(&doc, ring_name)["failures"].to_string(),
        failed,
        "{doc}"
    );
}

#[test]
fn a_seed_gives_the_same_outcomes_every_run() {
    let strip = |mut doc: serde_json::Value| {
        doc.as_object_mut().unwrap().remove("real_duration_ms");
        doc.as_object_mut().unwrap().remove("plugin_call_ms");
        doc
    };
    let (_, first) = demo(&["--devices", "300", "--seed", "7", "--fail-permille", "10"]);
    let (_, second) = demo(&["--devices", "300", "--seed", "7", "--fail-permille", "10"]);
    assert_eq!(strip(first), strip(second));
}

/// The promise of crash safety, tested on the real process: a demo killed with SIGKILL
/// many times, in every phase of the rollout, and restarted with the same arguments
/// ends as an uninterrupted run: the same per-device outcomes, the same virtual end,
/// the same decision log, without a single duplicate install, every dispatch in the log
/// before its result.
///
/// The kills land at positions of the log the demo reports (`--progress-lines`), spread
/// over the whole uninterrupted run, so that a slow machine kills in the same phases as
/// a fast one; a few more land after short random delays, in the middle of whatever
/// the process is doing.
#[test]
fn a_demo_killed_in_every_phase_ends_as_an_uninterrupted_run() {
    use std::io::BufRead;
    // A fleet that goes through all four rings (budgets of 5%), with failures and
    // devices that never report (unresponsive deadlines), so that every kind of
    // decision is made.
    let policy = repo("benches/policies/four-rings.toml");
    let args = [
        "--devices",
        "1500",
        "--seed",
        "7",
        "--fail-permille",
        "10",
        "--hang-permille",
        "2",
        "--policy",
        &policy,
    ];
    let with_data = |data: &str| -> Vec<String> {
        let mut all: Vec<String> = ["demo", "--json", "--data", data]
            .map(String::from)
            .to_vec();
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let reference_dir = tempfile::tempdir().unwrap();
    let reference_data = reference_dir.path().to_str().unwrap().to_string();
    let all = with_data(&reference_data);
    let out = ringleader(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_eq!(reference["duplicate_installs"], 0);
    let reference_log = log_of(reference_dir.path());
    let length = reference_log.len() as u64;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let all = with_data(&data);
    let spawn = |kill_at: Option<u64>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringleader"));
        command
            .args(&all)
            .arg("--progress-lines")
            .env("RINGLEADER_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(n) = kill_at {
            command.env(ringleader_engine::store::KILL_AT_RECORD, n.to_string());
        }
        command.spawn().unwrap()
    };
    let positions = 24;
    let mut kills = 0;
    let mut finished = None;
    for k in 1..=positions {
        let target = length * k / (positions + 1);
        if k % 2 == 1 {
            // Killed by itself exactly as it is about to append record `target`.
            let out = spawn(Some(target)).wait_with_output().unwrap();
            if out.status.success() || out.status.code() == Some(3) {
                finished = Some(out);
                break;
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(out.status.signal(), Some(9), "{}", text(&out.stderr));
            kills += 1;
            continue;
        }
        // Killed from outside once the log it reports passed `target`.
        let mut child = spawn(None);
        let stderr = child.stderr.take().unwrap();
        let mut reached = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let log = line
                .strip_prefix("progress log=")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            if log.is_some_and(|n| n >= target) {
                reached = true;
                break;
            }
        }
        if !reached {
            finished = Some(child.wait_with_output().unwrap());
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    // And a few in the middle of whatever the process does at a random moment.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..4 {
        if finished.is_some() {
            break;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = spawn(None);
        std::thread::sleep(std::time::Duration::from_millis(100 + state % 400));
        if child.try_wait().unwrap().is_some() {
            finished = Some(child.wait_with_output().unwrap());
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let out =
        finished.unwrap_or_else(|| ringleader(&all.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(
        kills >= positions / 2,
        "the test must kill the demo in most phases ({kills})"
    );
    eprintln!("killed the demo {kills} times over a log of {length} records");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_eq!(doc["duplicate_installs"], 0, "{doc}");
    assert_eq!(doc["final_state"], reference["final_state"]);
    assert_eq!(doc["outcomes"], reference["outcomes"]);
    assert_eq!(
        doc["outcomes_digest"], reference["outcomes_digest"],
        "per-device outcomes"
    );
    assert_eq!(doc["virtual_end"], reference["virtual_end"]);
    let log = log_of(dir.path());
    ringleader_tests::logs::assert_write_ahead(&log);
    ringleader_tests::logs::assert_same_decisions(&reference_log, &log);
}

/// A full disk stops a demo cleanly (no panic, nothing dispatched after the failed
/// write, a message saying what to do), also when the process is killed while the disk
/// is full; once space is freed the same command resumes and ends as an uninterrupted
/// run, with every dispatch in the log before its result.
#[test]
fn a_demo_on_a_full_disk_stops_cleanly_and_resumes_as_an_uninterrupted_run() {
    use std::io::BufRead;
    let policy = repo("benches/policies/four-rings.toml");
    let args = [
        "--devices",
        "600",
        "--seed",
        "7",
        "--fail-permille",
        "10",
        "--hang-permille",
        "2",
        "--policy",
        &policy,
        "--json",
    ];
    let reference_dir = tempfile::tempdir().unwrap();
    let run = |data: &Path, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringleader"));
        command
            .arg("demo")
            .args(args)
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("RINGLEADER_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let out = run(reference_dir.path(), &[]).output().unwrap();
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let reference_log = log_of(reference_dir.path());
    let length = reference_log.len() as u64;

    let disk = ringleader_tests::peers::SmallDisk::new("8m");
    let data = disk.path().join("demo");
    // The disk that fills is the engine's. The simulated devices are other machines:
    // their state stays on a disk with room (a write they cannot make would fail an
    // install, and change the outcome for a reason no real device has).
    let devices = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(devices.path(), data.join("devices")).unwrap();
    // The disk fills at a third of the rollout (the demo stops by itself), then at two
    // thirds (killed while the disk is full).
    for (share, kill) in [(3, false), (3, true)] {
        let mut child = run(&data, &["--progress-lines"]).spawn().unwrap();
        let target = length * if kill { 2 } else { 1 } / share;
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut said = String::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let log = line
                .strip_prefix("progress log=")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            if log.is_some_and(|n| n >= target) {
                break;
            }
        }
        disk.fill();
        if kill {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = child.kill();
        }
        for line in lines.map_while(Result::ok) {
            said.push_str(&line);
            said.push('\n');
        }
        let status = child.wait().unwrap();
        if !kill {
            assert_eq!(status.code(), Some(1), "{said}");
            assert!(said.contains("No space left on device"), "{said}");
            assert!(said.contains("run the same command again"), "{said}");
        }
        assert!(!said.contains("panicked"), "{said}");
        disk.free();
    }
    let out = run(&data, &[]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_eq!(doc["duplicate_installs"], 0, "{doc}");
    assert_eq!(
        doc["outcomes_digest"], reference["outcomes_digest"],
        "resumed: {}\nuninterrupted: {}",
        doc["rings"], reference["rings"]
    );
    assert_eq!(doc["virtual_end"], reference["virtual_end"]);
    let log = log_of(&data);
    ringleader_tests::logs::assert_write_ahead(&log);
    ringleader_tests::logs::assert_same_decisions(&reference_log, &log);
}

/// The rollout log of the demo in `data`.
fn log_of(data: &Path) -> Vec<ringleader_engine::store::Record> {
    ringleader_tests::logs::records(&data.join("engine"))
}

/// The contract is not Rust-only: the example patch source written in Python
/// (`plugins/py-example-source`, built with componentize-py from PyPI by its own
/// `build.sh`) passes `plugin check` and feeds the planner.
#[test]
fn a_plugin_written_in_python_is_built_checked_and_used_by_the_planner() {
    let out = tempfile::tempdir().unwrap();
    let build = Command::new("bash")
        .arg(repo("plugins/py-example-source/build.sh"))
        .arg(out.path())
        .env("RINGLEADER", env!("CARGO_BIN_EXE_ringleader"))
        .output()
        .expect("run build.sh");
    assert!(
        build.status.success(),
        "{}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let manifest = out.path().join("py-example-source.plugin.toml");
    let manifest = manifest.to_str().unwrap();
    let check = ringleader(&["plugin", "check", "--json", manifest]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_valid(&schema("plugin-check.v1.json"), &report);
    assert_eq!(report["valid"], true, "{report}");
    let plan = ringleader(&[
        "plan",
        "--policy",
        &repo("rollout-policies/emergency-security.toml"),
        "--inventory",
        &repo("docs/examples/inventory.toml"),
        "--source",
        manifest,
        "--at",
        "2026-12-01T00:00:00Z",
        "--json",
    ]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains("py-example-openssl-3.0.15"), "{plan}");

    // A plugin-error raised in Python reaches the host as its case and message, the
    // way docs/plugin-authors.md (section 10) shows it, with lines of app.py.
    let inventory = out.path().join("failing.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"deb-1\"\nfacts = { \"py-example.fail\" = \"permanent\" }\ncomponents = { openssl = \"3.0.11\" }\n",
    )
    .unwrap();
    let run = ringleader(&[
        "plugin",
        "run",
        manifest,
        "discover",
        "--inventory",
        inventory.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains(
            "error: `discover` returned plugin-error `permanent`: deb-1 asks for a permanent failure"
        ),
        "{}",
        text(&run.stderr)
    );
    let doc = std::fs::read_to_string(repo("docs/plugin-authors.md")).unwrap();
    let app = std::fs::read_to_string(repo("plugins/py-example-source/app.py")).unwrap();
    let section = &doc[doc.find("## 10. Other languages").unwrap()..];
    let start = section.find("```python\n").expect("a Python example") + "```python\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    for line in example.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            app.lines().any(|l| l.trim() == line),
            "the page's Python `{line}` is not in app.py"
        );
    }
}

#[test]
fn manifests_and_configs_that_are_not_utf8_are_located_and_quoted_input_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("bad.plugin.toml");
    std::fs::write(&manifest, b"name = \"bad\"\ndescription = \"\xff\"\n").unwrap();
    let out = ringleader(&["plugin", "check", "--no-cache", manifest.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.plugin.toml:2:16: the plugin manifest is not valid UTF-8: byte 0xff"),
        "{stderr}"
    );

    // The operator config: not UTF-8, then a syntax error quoting a line with a
    // carriage return and a bidi override, which must reach the terminal escaped.
    let policy = repo("rollout-policies/monthly-os.toml");
    let inventory = repo("docs/examples/inventory.toml");
    let config = dir.path().join("config.toml");
    for (bytes, expected) in [
        (
            &b"[plugins.x]\nhttp = [\"\xc3\"]\n"[..],
            "config.toml:2:10: the config is not valid UTF-8: byte 0xc3",
        ),
        (
            "[plugins.x]\nhttp = [\"a\u{202e}\" \r 1]\n".as_bytes(),
            "\\u{202e}",
        ),
    ] {
        std::fs::write(&config, bytes).unwrap();
        let out = ringleader(&[
            "plan",
            "--policy",
            &policy,
            "--inventory",
            &inventory,
            "--config",
            config.to_str().unwrap(),
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains(['\r', '\u{202e}']),
            "raw control characters: {stderr:?}"
        );
    }
}

/// Every problem of the operator config at once, each at its line and column, before
/// any plugin runs.
#[test]
fn an_operator_config_with_two_problems_reports_both_located() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ringleader.toml");
    std::fs::write(
        &config,
        "[plugins.sim-vendor-source]\nhtp = [\"a.example\"]\n\n[credentials.bmc]\nusername = \"root\"\npassword = \"x\"\n",
    )
    .unwrap();
    let out = plan(&["--config", config.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the operator config is not valid:\n"),
        "{stderr}"
    );
    assert!(stderr.contains("ringleader.toml:2:1: `htp`: unknown field `htp`, expected one of `http`, `exec`, `kv`, `settings` (hint: remove the key or fix its spelling)"), "{stderr}");
    assert!(
        stderr.contains("ringleader.toml:6:1: `password`: unknown field `password`"),
        "{stderr}"
    );
}

/// A reader that went away (`ringleader plugin list | head -0`) ends the command
/// quietly: no panic, exit 0.
#[test]
fn listing_to_a_reader_that_went_away_is_no_error() {
    for args in [&["plugin", "list"][..], &["plugin", "list", "--json"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// The issue's four Debian cases, from a CSAF feed naming its packages by `pkg:deb`
/// purl, on a device whose inventory reads versions as `deb`: `plan --explain` decides
/// each as `dpkg --compare-versions` does, and says by which order.
#[test]
fn explain_orders_debian_versions_as_dpkg_does_and_says_so() {
    let rows = [
        ("libc6", "2.36-9+deb12u4", "2.36-9+deb12u7"),
        ("bash", "5.2.15-2+b6", "5.2.15-2+b7"),
        ("vim", "2:9.0.1378-2", "2:9.0.1378-2+deb12u1"),
        ("openssl", "3.0.15-1", "3.0.15-1~deb12u1"),
    ];
    let products: Vec<String> = rows
        .iter()
        .map(|(name, _, fixed)| {
            let purl = format!(
                "pkg:deb/debian/{name}@{}?arch=amd64",
                fixed.replace('+', "%2B")
            );
            format!(
                r#"{{"name": "{name} {fixed}", "product_id": "{name}-fixed", "product_identification_helper": {{"purl": "{purl}"}}}}"#
            )
        })
        .collect();
    let ids: Vec<String> = rows
        .iter()
        .map(|(name, ..)| format!("\"{name}-fixed\""))
        .collect();
    let advisory = format!(
        r#"{{"document": {{"category": "csaf_security_advisory", "csaf_version": "2.0", "title": "Debian updates",
  "publisher": {{"category": "vendor", "name": "Debian", "namespace": "https://www.debian.org"}},
  "tracking": {{"id": "DSA-0000-1", "initial_release_date": "2026-11-01T00:00:00Z", "current_release_date": "2026-11-01T00:00:00Z",
    "status": "final", "version": "1", "revision_history": [{{"date": "2026-11-01T00:00:00Z", "number": "1", "summary": "Initial"}}]}}}},
 "product_tree": {{"full_product_names": [{}]}},
 "vulnerabilities": [{{"cve": "CVE-2026-0001", "product_status": {{"fixed": [{}]}}}}]}}"#,
        products.join(", "),
        ids.join(", ")
    );
    let base = ringleader_tests::peers::serve_files(
        [
            ("/dsa/index.txt".to_string(), b"advisory.json\n".to_vec()),
            ("/dsa/advisory.json".to_string(), advisory.into_bytes()),
        ]
        .into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ringleader.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.csaf-source]\nhttp = [\"{{setting:index}}\"]\nsettings = {{ index = \"{base}/dsa/index.txt\" }}\n"
        ),
    )
    .unwrap();
    let inventory = dir.path().join("inventory.toml");
    let components: Vec<String> = rows
        .iter()
        .map(|(name, installed, _)| format!("{name} = \"{installed}\""))
        .collect();
    std::fs::write(
        &inventory,
        format!(
            "version-scheme = \"deb\"\n[[devices]]\nid = \"deb-1\"\ncomponents = {{ {} }}\n",
            components.join(", ")
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "name = \"p\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\n",
    )
    .unwrap();
    let explain = |json: bool| {
        let mut args = vec![
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--source",
            "csaf-source",
            "--config",
            config.to_str().unwrap(),
            "--at",
            "2026-11-30T09:00:00Z",
            "--explain",
            "deb-1",
        ];
        if json {
            args.push("--json");
        }
        let out = ringleader(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        out
    };
    let doc: serde_json::Value = serde_json::from_slice(&explain(true).stdout).unwrap();
    assert_valid(&schema("explain.v1.json"), &doc);
    let human = text(&explain(false).stdout);
    let dpkg = ringleader_tests::peers::dpkg();
    for (name, installed, fixed) in rows {
        // The judge: dpkg itself.
        let needed = Command::new(dpkg)
            .args(["--compare-versions", installed, "lt", fixed])
            .status()
            .unwrap()
            .success();
        let entry = doc["patches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["patch"] == format!("DSA-0000-1/{name}"))
            .unwrap_or_else(|| panic!("{name}: {doc}"));
        if needed {
            assert_eq!(entry["reason"], "planned", "{name}: {entry}");
            assert_eq!(entry["step"]["scheme"], "deb", "{entry}");
            assert_eq!(entry["step"]["from"], installed, "{entry}");
            let why = format!("installed {installed} < fixed {fixed} (deb order)");
            assert!(human.contains(&why), "{why}\n{human}");
        } else {
            assert_eq!(entry["reason"], "already-at-or-above", "{name}: {entry}");
            let why = format!(
                "version {installed} is already at or above the fixed version {fixed} (deb order)"
            );
            assert!(human.contains(&why), "{why}\n{human}");
        }
    }
}

/// The example catalog passes `catalog check`, and its JSON form (and that of every
/// valid case of tests/cases/catalog-check/) is what docs/schemas/catalog.v1.json
/// describes; a catalog the schema refuses is refused by the check too.
#[test]
fn the_example_catalog_is_valid_and_the_catalog_schema_describes_the_file() {
    let example = repo("docs/examples/catalog.toml");
    let out = ringleader(&["catalog", "check", &example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{example}: ok: 2 patches\n"));
    let validator = schema("catalog.v1.json");
    let toml_text = std::fs::read_to_string(&example).unwrap();
    let as_json: serde_json::Value = toml::from_str(&toml_text).unwrap();
    assert_valid(&validator, &as_json);
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/catalog-check");
    let mut judged = 0;
    for case in std::fs::read_dir(&cases).unwrap() {
        let case = case.unwrap().path();
        let json = case.join("catalog.json");
        let Ok(body) = std::fs::read_to_string(&json) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(&body) else {
            continue;
        };
        let status = std::fs::read_to_string(case.join("status.txt")).unwrap();
        let schema_says = validator.is_valid(&doc);
        if status.trim() == "0" {
            assert!(
                schema_says,
                "{}: valid, but not by the schema",
                case.display()
            );
        } else if !schema_says {
            judged += 1;
        }
    }
    assert!(judged >= 1, "no invalid JSON case the schema refuses");
}

/// `catalog check --json`: a document per file, valid or not, each what
/// docs/schemas/catalog-check.v1.json describes, read back as the API's type.
#[test]
fn catalog_check_json_matches_the_schema() {
    let validator = schema("catalog-check.v1.json");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[patches]]\nid = \"a\"\nvendor = \"v\"\ncomponent = \"x\"\nfixed-version = \"latest\"\nkind = \"hotfix\"\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    let example = repo("docs/examples/catalog.toml");
    let out = ringleader(&[
        "catalog",
        "check",
        "--json",
        &example,
        broken.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3, "{stdout}");
    for doc in &docs {
        assert_valid(&validator, doc);
    }
    let read: Vec<ringleader_api::catalog::CatalogCheckV1> = docs
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    assert!(read[0].valid);
    assert_eq!(
        read[0].patches,
        ["msp-agent-4.2.1-1", "r650-bios-2.19.1-hotfix"]
    );
    assert!(!read[1].valid);
    let keys: Vec<&str> = read[1].problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["patches[0].fixed-version", "patches[0].kind"]);
    assert_eq!(
        (read[1].problems[0].line, read[1].problems[0].column),
        (5, 17)
    );
    assert!(read[1].problems[1].text.starts_with(&format!(
        "{}:6:8: `patches[0].kind`: unknown kind `hotfix`",
        broken.display()
    )));
    assert!(!read[2].valid);
    assert!(
        read[2].error.as_deref().unwrap().contains("missing.json"),
        "{:?}",
        read[2]
    );
}

#[test]
fn schedule_list_and_next_print_their_published_documents() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/cases/schedule-next/freeze-moves-the-run");
    let file = case.join("schedules.toml");
    let file = file.to_str().unwrap();
    let out = ringleader(&["schedule", "list", "--schedules", file, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("schedules.v1.json"), &doc);
    let s = &doc["schedules"][0];
    assert_eq!(s["name"], "patch-tuesday");
    assert_eq!(s["zone"], "Europe/Amsterdam");
    assert_eq!(s["on_freeze"], "move");
    assert!(
        s["policy"]
            .as_str()
            .unwrap()
            .ends_with("freeze-moves-the-run/policy.toml")
    );
    assert_eq!(
        s["approval"]["approved"],
        serde_json::json!(["openssl-3.0.15"])
    );
    assert_eq!(
        s["approval"]["rules"][1],
        serde_json::json!({ "kinds": ["security", "firmware"], "severities": [], "after_days": 7 })
    );
    let out = ringleader(&["schedule", "list", "--schedules", file]);
    assert!(
        text(&out.stdout).contains(
            "approval:  openssl-3.0.15 at once; critical on release; security firmware 7 days after release; others never"
        ),
        "{}",
        text(&out.stdout)
    );

    let out = ringleader(&[
        "schedule",
        "next",
        "--schedules",
        file,
        "--count",
        "2",
        "--after",
        "2026-12-01T00:00:00Z",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("schedule-runs.v1.json"), &doc);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{doc}");
    assert_eq!(runs[0]["outcome"], "moved");
    assert_eq!(
        runs[0]["planned"],
        "2026-12-10T22:00:00+01:00[Europe/Amsterdam]"
    );
    assert_eq!(runs[0]["at"], "2026-12-14T22:00:00+01:00[Europe/Amsterdam]");
    assert_eq!(runs[1]["outcome"], "runs");

    // A file that is not there: said so, exit 1.
    let out = ringleader(&[
        "schedule",
        "next",
        "--schedules",
        "/nonexistent/schedules.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/schedules.toml"),
        "{}",
        text(&out.stderr)
    );
}
