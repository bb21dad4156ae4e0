//! `ringleader plugin run`, run as a plugin author would run it: the real binary, the
//! bundled plugins' sealed manifests, real Debian packages built here with `dpkg-deb`,
//! and a device that is a directory with its own dpkg database, reached over the
//! `local` transport.

use ringleader_tests::peers::{self, dpkg_version, serve_files as serve};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringleader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(args)
        // The command's own default filter: the plugin's log lines on stderr.
        .env_remove("RINGLEADER_LOG")
        .env_remove("RINGLEADER_CACHE_DIR")
        .output()
        .expect("run ringleader")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The run's exit status, with its output when it is not the one expected.
fn expect_status(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn manifest(name: &str) -> String {
    ringleader_bundled_plugins::manifest_path(name)
        .display()
        .to_string()
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

fn load_schema(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(schemas_dir().join(name)).unwrap()).unwrap()
}

/// The validator of `docs/schemas/NAME`, with `patch.v1.json` known by its `$id` (the
/// run schema refers to it).
fn schema(name: &str) -> jsonschema::Validator {
    let patch = jsonschema::Resource::from_contents(load_schema("patch.v1.json")).unwrap();
    jsonschema::options()
        .with_resource("https://ringleader.dev/schemas/patch.v1.json", patch)
        .build(&load_schema(name))
        .expect("schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, doc: &serde_json::Value) {
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc}\nschema errors: {errors:#?}");
}

/// Runs with `--json` and returns the object, checked against the run schema.
fn run_json(args: &[&str], code: i32) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ringleader(&args);
    expect_status(&out, code);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_valid(&schema("plugin-run.v1.json"), &doc);
    doc
}

/// A Debian package built here, and the patch file that publishes it.
struct Deb {
    package: peers::Deb,
    path: PathBuf,
    patch: PathBuf,
}

/// Builds `NAME_VERSION_all.deb` in `dir` and writes `NAME-VERSION.json`, a patch whose
/// artifact is that package (by `file://` path, with its SHA-256 and size).
fn deb(dir: &Path, name: &str, version: &str) -> Deb {
    let package = peers::deb(dir, name, version, false);
    let patch = dir.join(format!("{name}-{version}.json"));
    let doc = serde_json::json!({
        "id": format!("{name}-{version}"),
        "vendor": "example",
        "title": format!("{name} {version}"),
        "component": name,
        "fixed_version": version,
        "kind": "bugfix",
        "artifact": {"url": package.url(), "sha256": package.sha256, "size": package.size},
        "released": "2026-10-13T00:00:00Z",
    });
    assert_valid(&schema("patch.v1.json"), &doc);
    std::fs::write(&patch, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    Deb {
        path: package.path.clone(),
        package,
        patch,
    }
}

/// A device root under `dir` with its own dpkg database, `installed` already in it.
fn device_root(dir: &Path, name: &str, installed: &Deb) -> PathBuf {
    peers::device_root(dir, name, &installed.package)
}

/// An inventory of one `local` device whose root is `root`.
fn local_inventory(dir: &Path, id: &str, root: &Path) -> PathBuf {
    let path = dir.join("inventory.toml");
    std::fs::write(
        &path,
        format!(
            "[[devices]]\nid = \"{id}\"\ntransport = {{ kind = \"local\", root = \"{}\" }}\ncomponents = {{ hello = \"1.0\" }}\n",
            root.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn dpkg_installer_preflight_install_verify_and_rollback_on_a_local_root() {
    let dir = tempfile::tempdir().unwrap();
    let old = deb(dir.path(), "hello", "1.0");
    let new = deb(dir.path(), "hello", "1.1");
    let root = device_root(dir.path(), "dev-1", &old);
    let inventory = local_inventory(dir.path(), "dev-1", &root);
    let dpkg = manifest("dpkg-installer");
    let (inv, patch, older) = (
        inventory.to_str().unwrap(),
        new.patch.to_str().unwrap(),
        old.patch.to_str().unwrap(),
    );
    let call = |function: &'static str| {
        vec![
            "plugin",
            "run",
            &dpkg,
            function,
            "--inventory",
            inv,
            "--device",
            "dev-1",
            "--patch",
            patch,
        ]
    };

    let out = ringleader(&call("preflight"));
    expect_status(&out, 0);
    assert!(
        text(&out.stdout).starts_with("dpkg-installer preflight hello-1.1 on dev-1: ready"),
        "{}",
        text(&out.stdout)
    );

    let out = ringleader(&call("install"));
    expect_status(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("installed version  1.1"), "{stdout}");
    // The plugin's own log line, on stderr.
    assert!(
        text(&out.stderr).contains("hello 1.1 installed on dev-1"),
        "{}",
        text(&out.stderr)
    );

    let report = run_json(&call("verify"), 0);
    assert_eq!(report["function"], "verify");
    assert_eq!(report["result"]["installed_version"], "1.1");
    assert_eq!(report["result"]["health"]["healthy"], true);
    assert_eq!(report["patch"]["id"], "hello-1.1");
    // The device as the engine shows it: its transport and root among its facts.
    let facts = report["devices"][0]["facts"].as_array().unwrap();
    assert!(
        facts.contains(&serde_json::json!([
            "local.root",
            root.display().to_string()
        ])),
        "{facts:?}"
    );
    assert!(facts.contains(&serde_json::json!(["transport", "local"])));
    // dpkg itself agrees.
    assert_eq!(dpkg_version(&root, "hello").as_deref(), Some("1.1"));

    let report = run_json(&call("preflight"), 0);
    assert_eq!(
        report["result"],
        serde_json::json!({"case": "already-installed", "version": "1.1"})
    );

    // Back to 1.0 with its package, as the engine would send it.
    let mut rollback = call("rollback");
    rollback.extend(["--to-patch", older]);
    let report = run_json(&rollback, 0);
    assert_eq!(report["target"]["version"], "1.0");
    assert_eq!(
        report["target"]["artifact"]["url"],
        format!("file://{}", old.path.display())
    );
    assert_eq!(report["result"]["installed_version"], "1.0");
    assert_eq!(dpkg_version(&root, "hello").as_deref(), Some("1.0"));

    let out = ringleader(&call("verify"));
    expect_status(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("installed version  1.0"), "{stdout}");
    assert!(stdout.contains("healthy            yes"), "{stdout}");
}

#[test]
fn a_plugin_error_exits_1_with_its_case_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let old = deb(dir.path(), "hello", "1.0");
    let new = deb(dir.path(), "hello", "1.1");
    let root = device_root(dir.path(), "dev-1", &old);
    let inventory = local_inventory(dir.path(), "dev-1", &root);
    // A package that is not what the patch published.
    let tampered = dir.path().join("tampered.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&new.patch).unwrap()).unwrap();
    doc["artifact"]["sha256"] = "0".repeat(64).into();
    std::fs::write(&tampered, doc.to_string()).unwrap();
    let dpkg = manifest("dpkg-installer");
    let args = [
        "plugin",
        "run",
        &dpkg,
        "install",
        "--inventory",
        inventory.to_str().unwrap(),
        "--patch",
        tampered.to_str().unwrap(),
    ];

    let out = ringleader(&args);
    expect_status(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: `install` returned plugin-error `permanent`: "),
        "{stderr}"
    );
    assert!(stderr.contains("not the published"), "{stderr}");
    assert_eq!(dpkg_version(&root, "hello").as_deref(), Some("1.0"));

    let report = run_json(&args, 1);
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["kind"], "plugin");
    assert_eq!(report["error"]["case"], "permanent");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SHA-256"),
        "{report}"
    );

    // Rolling back with no package of the version to return to: the plugin says so.
    let args = [
        "plugin",
        "run",
        &dpkg,
        "rollback",
        "--inventory",
        inventory.to_str().unwrap(),
        "--patch",
        new.patch.to_str().unwrap(),
        "--to-version",
        "0.9",
    ];
    let report = run_json(&args, 1);
    assert_eq!(report["target"]["version"], "0.9");
    assert_eq!(report["target"]["artifact"], serde_json::Value::Null);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no package of hello 0.9"),
        "{report}"
    );

    // A source that needs a setting it was not given.
    let inv = dir.path().join("debian.toml");
    std::fs::write(
        &inv,
        "[[devices]]\nid = \"deb-1\"\ncomponents = { openssl = \"3.0.11-1\" }\n",
    )
    .unwrap();
    let out = ringleader(&[
        "plugin",
        "run",
        &manifest("csaf-source"),
        "discover",
        "--inventory",
        inv.to_str().unwrap(),
    ]);
    expect_status(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("`discover` returned plugin-error `permanent`: no advisory index configured"),
        "{stderr}"
    );
}

#[test]
fn a_source_discovers_for_every_device_of_an_inventory_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        r#"{"devices": [
            {"id": "srv-1", "components": {"bios": "2.10.0", "bmc-firmware": "7.00.00"}},
            {"id": "srv-2", "tags": ["lab"], "components": {"nic-firmware": "22.10.0"}}
        ]}"#,
    )
    .unwrap();
    let source = manifest("sim-vendor-source");
    let inv = inventory.to_str().unwrap();

    let out = ringleader(&["plugin", "run", &source, "discover", "--inventory", inv]);
    expect_status(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("sim-vendor-source discover for 2 devices: "),
        "{stdout}"
    );
    for id in ["acme-bmc-7.10.30", "acme-bios-2.19.1", "acme-nic-22.31.6"] {
        assert!(stdout.contains(id), "{id} missing:\n{stdout}");
    }

    let report = run_json(
        &run_args(
            &source,
            "discover",
            &["--inventory", inv, "--device", "srv-2"],
        ),
        0,
    );
    assert_eq!(report["devices"].as_array().unwrap().len(), 1);
    assert_eq!(report["devices"][0]["tags"], serde_json::json!(["lab"]));
    let patches = report["result"].as_array().unwrap();
    assert!(
        patches.iter().any(|p| p["id"] == "acme-nic-22.31.6"),
        "{report}"
    );
    assert!(
        patches.iter().all(|p| p["id"] != "acme-bmc-7.10.30"),
        "{report}"
    );
    // A discovered patch is a patch file as it is.
    let validator = schema("patch.v1.json");
    for patch in patches {
        assert_valid(&validator, patch);
    }

    let report = run_json(&["plugin", "run", &source, "info"], 0);
    assert_eq!(report["result"]["name"], "sim-vendor-source");
    assert_eq!(report["devices"], serde_json::json!([]));
}

#[test]
fn discover_warns_about_the_patches_plan_refuses_exactly_as_plan_does() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"sloppy\"\ncomponents = { thing = \"0.9.0\" }\n",
    )
    .unwrap();
    let source = manifest("test-hostile-source");
    let inv = inventory.to_str().unwrap();
    let warnings = |out: &Output| -> Vec<String> {
        text(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .map(String::from)
            .collect()
    };

    let out = ringleader(&["plugin", "run", &source, "discover", "--inventory", inv]);
    expect_status(&out, 0);
    let run = warnings(&out);
    assert_eq!(
        run,
        [
            "warning: patch sloppy-latest from `test-hostile-source` is refused: fixed-version: `latest` is not a version: it does not start with a number",
            "warning: patch sloppy-twice from `test-hostile-source` is refused: duplicate patch id: `test-hostile-source` reported it twice, and the first is used",
        ],
        "{}",
        text(&out.stderr)
    );

    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rollout-policies/monthly-os.toml");
    let out = ringleader(&[
        "plan",
        "--policy",
        policy.to_str().unwrap(),
        "--inventory",
        inv,
        "--source",
        &source,
        "--at",
        "2026-12-01T00:00:00Z",
    ]);
    assert_eq!(warnings(&out), run, "{}", text(&out.stderr));
}

#[test]
fn a_plan_from_refused_source_documents_says_so_and_exits_8() {
    let base = serve(HashMap::from([
        (
            "/feed/index.txt".to_string(),
            b"bad-1.json\nbad-2.json\n".to_vec(),
        ),
        ("/feed/bad-1.json".to_string(), b"not json".to_vec()),
        (
            "/feed/bad-2.json".to_string(),
            b"{\"document\": 1}".to_vec(),
        ),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"deb-1\"\ncomponents = { openssl = \"3.0.11-1\" }\n",
    )
    .unwrap();
    let config = dir.path().join("ringleader.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.csaf-source]\nhttp = [\"127.0.0.1\"]\nsettings = {{ index = \"{base}/feed/index.txt\" }}\n"
        ),
    )
    .unwrap();
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rollout-policies/monthly-os.toml");
    let csaf = manifest("csaf-source");
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--source",
            &csaf,
            "--config",
            config.to_str().unwrap(),
            "--at",
            "2026-12-01T00:00:00Z",
        ];
        args.extend_from_slice(extra);
        ringleader(&args)
    };
    let out = plan(&[]);
    expect_status(&out, 8);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(", 2 source documents refused"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad-1.json is not valid CSAF 2.0"),
        "{stderr}"
    );

    let out = plan(&["--json"]);
    expect_status(&out, 8);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&schema("plan.v1.json"), &doc);
    assert_eq!(doc["totals"]["refused_documents"], 2, "{doc}");
}

#[test]
fn grants_and_settings_come_from_the_operator_config() {
    let (base, dir, inventory) = one_advisory_feed("feed");
    let config = dir.path().join("ringleader.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.csaf-source]\nhttp = [\"127.0.0.1\"]\nsettings = {{ index = \"{base}/feed/index.txt\" }}\n"
        ),
    )
    .unwrap();
    let csaf = manifest("csaf-source");
    let inv = inventory.to_str().unwrap();
    let report = run_json(
        &run_args(
            &csaf,
            "discover",
            &["--inventory", inv, "--config", config.to_str().unwrap()],
        ),
        0,
    );
    let ids: Vec<&str> = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&"EXL-2024-0042/openssl"), "{report}");

    // A config that grants the plugin no http: the plugin is told it was denied.
    let stingy = dir.path().join("stingy.toml");
    std::fs::write(
        &stingy,
        format!("[plugins.csaf-source]\nsettings = {{ index = \"{base}/feed/index.txt\" }}\n"),
    )
    .unwrap();
    let report = run_json(
        &run_args(
            &csaf,
            "discover",
            &["--inventory", inv, "--config", stingy.to_str().unwrap()],
        ),
        1,
    );
    assert_eq!(report["error"]["case"], "denied", "{report}");

    // Without a config: the manifest's own capabilities, and --setting for settings.
    let index = format!("index={base}/feed/index.txt");
    let out = ringleader(&[
        "plugin",
        "run",
        &csaf,
        "discover",
        "--inventory",
        inv,
        "--setting",
        &index,
    ]);
    expect_status(&out, 0);
    assert!(
        text(&out.stdout).contains("EXL-2024-0042/openssl"),
        "{}",
        text(&out.stdout)
    );
}

/// A bundled source named by its name, pointed at the operator's own feed by the
/// config alone (`{setting:index}`); a setting naming a host no plugin may reach is an
/// input that cannot be used.
#[test]
fn a_bundled_source_by_name_reads_the_feed_the_operator_names() {
    let (base, dir, inventory) = one_advisory_feed("mirror");
    let inv = inventory.to_str().unwrap();
    let config = |index: &str| {
        let file = dir.path().join("ringleader.toml");
        std::fs::write(
            &file,
            format!(
                "[plugins.csaf-source]\nhttp = [\"{{setting:index}}\"]\nsettings = {{ index = \"{index}\" }}\n"
            ),
        )
        .unwrap();
        file.display().to_string()
    };
    let mirror = config(&format!("{base}/mirror/index.txt"));
    let report = run_json(
        &run_args(
            "csaf-source",
            "discover",
            &["--inventory", inv, "--config", &mirror],
        ),
        0,
    );
    assert_eq!(report["plugin"], "csaf-source");
    let ids: Vec<&str> = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&"EXL-2024-0042/openssl"), "{report}");

    let metadata_service = config("http://169.254.169.254/latest/index.txt");
    let out = ringleader(&run_args(
        "csaf-source",
        "discover",
        &["--inventory", inv, "--config", &metadata_service],
    ));
    expect_status(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("plugin `csaf-source` cannot be given its operator settings: the setting `index` names the host the plugin may reach (`{setting:index}`), and is refused: `169.254.169.254:80` is the cloud instance metadata service"),
        "{stderr}"
    );
}

/// `plugin run MANIFEST FUNCTION REST...`
fn run_args<'a>(manifest: &'a str, function: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["plugin", "run", manifest, function];
    args.extend_from_slice(rest);
    args
}

#[test]
fn inputs_that_cannot_be_used_exit_2_and_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inventory = d.join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"dev-1\"\ncomponents = { hello = \"1.0\" }\n\n[[devices]]\nid = \"dev-2\"\n",
    )
    .unwrap();
    let inv = inventory.to_str().unwrap();
    let patch = d.join("hello-1.1.json");
    std::fs::write(
        &patch,
        r#"{"id": "hello-1.1", "vendor": "example", "component": "hello", "fixed_version": "1.1",
  "kind": "bugfix",
  "artifact": {"url": "file:///nowhere/hello_1.1_all.deb", "sha256": "00", "size": "788"}}"#,
    )
    .unwrap();
    let bad_patch = patch.to_str().unwrap();
    let dpkg = manifest("dpkg-installer");
    let fails = |args: &[&str], needles: &[&str]| {
        let out = ringleader(args);
        expect_status(&out, 2);
        let stderr = text(&out.stderr);
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        for needle in needles {
            assert!(stderr.contains(needle), "`{needle}` missing in:\n{stderr}");
        }
    };

    // A device the inventory does not have: named, with the inventory and its devices.
    fails(
        &run_args(
            &dpkg,
            "verify",
            &[
                "--inventory",
                inv,
                "--device",
                "dev-9",
                "--patch",
                bad_patch,
            ],
        ),
        &[
            &format!("device `dev-9` is not in the inventory {inv}"),
            "dev-1, dev-2",
        ],
    );
    // Several devices and no --device.
    fails(
        &run_args(&dpkg, "verify", &["--inventory", inv, "--patch", bad_patch]),
        &["has 2 devices: say which with --device ID"],
    );
    // A patch file with a wrong type: file, line, column and key.
    fails(
        &run_args(
            &dpkg,
            "verify",
            &[
                "--inventory",
                inv,
                "--device",
                "dev-1",
                "--patch",
                bad_patch,
            ],
        ),
        &[
            &format!("{bad_patch}:3:"),
            "`artifact.size`: invalid type: string \"788\", expected u64",
            "docs/schemas/patch.v1.json",
        ],
    );
    // A missing key, named with its place.
    let missing = d.join("missing.json");
    std::fs::write(
        &missing,
        "{\"id\": \"x\", \"vendor\": \"v\", \"component\": \"hello\",\n \"kind\": \"bugfix\", \"artifact\": {\"url\": \"\", \"sha256\": \"\", \"size\": 0}}\n",
    )
    .unwrap();
    let missing = missing.to_str().unwrap().to_string();
    fails(
        &run_args(
            &dpkg,
            "verify",
            &["--inventory", inv, "--device", "dev-1", "--patch", &missing],
        ),
        &[
            &format!("{missing}:2:"),
            "`fixed_version`: missing field `fixed_version`",
        ],
    );
    // Not JSON at all.
    let garbage = d.join("garbage.json");
    std::fs::write(&garbage, "id = \"x\"\n").unwrap();
    let garbage = garbage.to_str().unwrap().to_string();
    fails(
        &run_args(
            &dpkg,
            "verify",
            &["--inventory", inv, "--device", "dev-1", "--patch", &garbage],
        ),
        &[&format!("{garbage}:1:1: expected value")],
    );
    // A function the plugin's world does not have.
    fails(
        &run_args(
            &manifest("sim-vendor-source"),
            "install",
            &[
                "--inventory",
                inv,
                "--device",
                "dev-1",
                "--patch",
                bad_patch,
            ],
        ),
        &[
            "`install` is a function of the installer world, and `sim-vendor-source` is a patch-source plugin: its functions are info and discover",
        ],
    );
    fails(
        &["plugin", "run", &dpkg, "discover", "--inventory", inv],
        &["`discover` is a function of the patch-source world"],
    );
    // An installer function without a patch; a flag the function does not take.
    fails(
        &["plugin", "run", &dpkg, "install", "--inventory", inv],
        &["`install` needs --patch FILE"],
    );
    fails(
        &run_args(
            &dpkg,
            "verify",
            &[
                "--inventory",
                inv,
                "--patch",
                bad_patch,
                "--to-version",
                "1.0",
            ],
        ),
        &["`verify` takes no --to-version"],
    );
    // An inventory with a problem: located by the inventory's own parser.
    let broken = d.join("broken.toml");
    std::fs::write(
        &broken,
        "[[devices]]\nid = \"dev-1\"\ntimezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let broken = broken.to_str().unwrap().to_string();
    fails(
        &run_args(
            &manifest("sim-vendor-source"),
            "discover",
            &["--inventory", &broken],
        ),
        &[&format!(
            "{broken}:3:12: `devices[0].timezone`: unknown time zone"
        )],
    );
    // An ssh device naming credentials no config defines.
    let ssh = d.join("ssh.toml");
    std::fs::write(
        &ssh,
        "[[devices]]\nid = \"far-1\"\ntransport = { kind = \"ssh\", address = \"10.0.0.5\", credentials = \"ops\" }\n",
    )
    .unwrap();
    let ssh = ssh.to_str().unwrap().to_string();
    let good_patch = d.join("good.json");
    std::fs::write(
        &good_patch,
        r#"{"id": "hello-1.1", "vendor": "example", "component": "hello", "fixed_version": "1.1",
  "kind": "bugfix", "artifact": {"url": "file:///nowhere.deb", "sha256": "00", "size": 1}}"#,
    )
    .unwrap();
    fails(
        &run_args(
            &dpkg,
            "verify",
            &["--inventory", &ssh, "--patch", good_patch.to_str().unwrap()],
        ),
        &["device far-1: credentials `ops` are not defined in the operator's config"],
    );
    // An unknown function: clap lists the possible ones.
    fails(
        &["plugin", "run", &dpkg, "uninstall"],
        &["invalid value 'uninstall'", "preflight"],
    );
}

/// A feed on 127.0.0.1 under `/PREFIX/` holding one CSAF advisory of the test cases
/// (`index.txt`, `advisory.json`), a folder, and in it an inventory of one Debian
/// device with the advisory's package: the feed's base URL, the folder, the inventory.
fn one_advisory_feed(prefix: &str) -> (String, tempfile::TempDir, std::path::PathBuf) {
    let advisory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/cases/csaf/purls-and-cvss-scores/advisory.json");
    let base = serve(HashMap::from([
        (format!("/{prefix}/index.txt"), b"advisory.json\n".to_vec()),
        (
            format!("/{prefix}/advisory.json"),
            std::fs::read(advisory).unwrap(),
        ),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"deb-1\"\ncomponents = { openssl = \"3.0.11-1\" }\n",
    )
    .unwrap();
    (base, dir, inventory)
}

/// A CSAF document that gives no patch says why, at `info`, and `plugin run ...
/// discover` shows it on stderr (its default filter shows every line of the plugin):
/// here products named by CPE only, and one with only a workaround.
#[test]
fn discover_says_why_a_document_gave_no_patch() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/csaf");
    let read = |case: &str| std::fs::read(cases.join(case).join("advisory.json")).unwrap();
    let base = serve(HashMap::from([
        (
            "/nothing/index.txt".to_string(),
            b"cpe.json\nworkaround.json\n".to_vec(),
        ),
        (
            "/nothing/cpe.json".to_string(),
            read("products-named-by-cpe-only"),
        ),
        (
            "/nothing/workaround.json".to_string(),
            read("known-affected-with-a-workaround-only"),
        ),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"deb-1\"\ncomponents = { openssl = \"3.0.11-1\" }\n",
    )
    .unwrap();
    let config = dir.path().join("ringleader.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins.csaf-source]\nhttp = [\"{{setting:index}}\"]\nsettings = {{ index = \"{base}/nothing/index.txt\" }}\n"
        ),
    )
    .unwrap();
    let out = ringleader(&run_args(
        "csaf-source",
        "discover",
        &[
            "--inventory",
            inventory.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    expect_status(&out, 0);
    let stderr = text(&out.stderr);
    for why in [
        format!(
            "advisory {base}/nothing/cpe.json gives no patch: no package and version for its fixed products T000002: they are named by CPE only"
        ),
        format!(
            "advisory {base}/nothing/workaround.json gives no patch: no product has the `fixed` status: its products are `known_affected`, with a workaround or mitigation only (nothing to install)"
        ),
    ] {
        assert!(stderr.contains(&why), "{why}\n{stderr}");
    }
    assert!(stderr.contains("INFO"), "at info: {stderr}");
}

/// `catalog-source` by name, the operator's config naming a catalog file: the example
/// catalog's patches for the inventory's components; a broken catalog is the plugin's
/// permanent error naming the file, line and column.
#[test]
fn the_catalog_source_reads_the_operators_catalog_file() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"app1\"\ncomponents = { msp-agent = { version = \"4.1.0-1\", scheme = \"deb\" } }\n",
    )
    .unwrap();
    let config = |catalog: &Path| {
        let file = dir.path().join("ringleader.toml");
        std::fs::write(
            &file,
            format!(
                "[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
                catalog.display()
            ),
        )
        .unwrap();
        file.display().to_string()
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/catalog.toml");
    let example = example.canonicalize().unwrap();
    let inv = inventory.to_str().unwrap();
    let cfg = config(&example);
    let report = run_json(
        &run_args(
            "catalog-source",
            "discover",
            &["--inventory", inv, "--config", &cfg],
        ),
        0,
    );
    let ids: Vec<&str> = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["msp-agent-4.2.1-1"], "{report}");

    let broken = dir.path().join("catalog.toml");
    std::fs::write(&broken, "[[patches]]\nid = \"a\"\n").unwrap();
    let cfg = config(&broken);
    let out = ringleader(&run_args(
        "catalog-source",
        "discover",
        &["--inventory", inv, "--config", &cfg],
    ));
    expect_status(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1:1: `patches[0]`: the patch has no `vendor`",
            broken.display()
        )),
        "{stderr}"
    );
}
