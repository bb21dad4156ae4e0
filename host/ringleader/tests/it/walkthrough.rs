//! The walkthrough in `docs/plugin-authors.md` ("Writing an installer from nothing"),
//! done as a reader would: its `Cargo.toml`, `src/lib.rs` and manifest are taken from
//! the document, built for `wasm32-wasip2`, sealed, checked, and run against a fake
//! device with `ringleader plugin run`. When the document's code stops working, this
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first fenced block of `lang` after the heading `heading` in the document.
fn block<'a>(doc: &'a str, heading: &str, lang: &str) -> &'a str {
    let section = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("plugin-authors.md has no heading {heading:?}"))..];
    let fence = format!("```{lang}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"))
        + fence.len();
    let len = section[start..].find("```").expect("the block ends");
    &section[start..start + len]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn ringleader(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RINGLEADER_LOG")
        .output()
        .unwrap()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    ok(out, "sha256sum")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `cargo build --release --target wasm32-wasip2` of the crate in `krate`, with this
/// toolchain (the crate is outside the repository and its rust-toolchain.toml) and a
/// target directory kept between runs; returns the component `NAME.wasm` it built.
fn build(krate: &Path, name: &str) -> PathBuf {
    // The plugins' own lock file: the same wit-bindgen, and no registry access.
    std::fs::copy(repo().join("plugins/Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = Path::new(&cargo).with_file_name("rustc");
    // Beside the workspace's own build: <target>/debug/ringleader -> <target>/walkthrough.
    let target = Path::new(BIN)
        .ancestors()
        .nth(2)
        .expect("the binary is in <target>/<profile>/")
        .join("walkthrough");
    let mut build = Command::new(&cargo);
    build
        .args([
            "build",
            "--release",
            "--offline",
            "--target",
            "wasm32-wasip2",
        ])
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", &target);
    if rustc.exists() {
        build.env("RUSTC", &rustc);
    }
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        build.env_remove(var);
    }
    ok(build.output().unwrap(), &format!("cargo build of {name}"));
    target.join(format!("wasm32-wasip2/release/{name}.wasm"))
}

/// A crate made from the page: section 2.1's `Cargo.toml` under `name`, `lib.rs`, and
/// the WIT files.
fn krate(dir: &Path, doc: &str, name: &str, lib_rs: &str) -> PathBuf {
    let krate = dir.join(name);
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        block(doc, "### 2.1 The crate", "toml").replace("\"acme-agent\"", &format!("\"{name}\"")),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), lib_rs).unwrap();
    let wit = repo().join("wit/ringleader-plugin@0.1.1");
    std::fs::create_dir_all(krate.join("wit")).unwrap();
    for file in std::fs::read_dir(&wit).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, krate.join("wit").join(file.file_name().unwrap())).unwrap();
    }
    krate
}

#[test]
fn the_plugin_authors_walkthrough_builds_checks_and_runs() {
    let doc = std::fs::read_to_string(repo().join("docs/plugin-authors.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let krate = krate(
        dir.path(),
        &doc,
        "acme-agent",
        block(&doc, "### 2.2 The code", "rust"),
    );
    let manifest = krate.join("acme-agent.plugin.toml");
    std::fs::write(&manifest, block(&doc, "### 2.4 The manifest", "toml")).unwrap();

    let built = build(&krate, "acme_agent");
    let expected = krate.join("target/wasm32-wasip2/release/acme_agent.wasm");
    std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
    std::fs::copy(&built, &expected).unwrap();

    // 2.5 Seal and check.
    let manifest = manifest.to_str().unwrap();
    ok(ringleader(&["plugin", "seal", manifest]), "plugin seal");
    let check = ok(ringleader(&["plugin", "check", manifest]), "plugin check");
    assert!(
        check.contains("acme-agent 1.0.0: valid installer plugin"),
        "{check}"
    );

    // 2.6 A fake device, 2.7 patch files.
    let device = dir.path().join("device");
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(device.join("opt/acme-agent")).unwrap();
    std::fs::create_dir_all(&repo_dir).unwrap();
    for v in ["1.0", "1.1"] {
        std::fs::write(
            repo_dir.join(format!("agent-{v}")),
            format!("agent build {v}\n"),
        )
        .unwrap();
    }
    std::fs::copy(
        repo_dir.join("agent-1.0"),
        device.join("opt/acme-agent/agent"),
    )
    .unwrap();
    std::fs::write(device.join("opt/acme-agent/VERSION"), "1.0").unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        format!(
            "[[devices]]\nid = \"dev-1\"\ntransport = {{ kind = \"local\", root = \"{}\" }}\ncomponents = {{ acme-agent = \"1.0\" }}\n",
            device.display()
        ),
    )
    .unwrap();
    for v in ["1.0", "1.1"] {
        let file = repo_dir.join(format!("agent-{v}"));
        let patch = serde_json::json!({
            "id": format!("acme-agent-{v}"), "vendor": "acme", "component": "acme-agent",
            "fixed_version": v, "kind": "bugfix",
            "artifact": {"url": format!("file://{}", file.display()), "sha256": sha256(&file),
                         "size": std::fs::metadata(&file).unwrap().len()}
        });
        std::fs::write(
            dir.path().join(format!("agent-{v}.json")),
            patch.to_string(),
        )
        .unwrap();
    }

    // 2.8 Run it.
    let inventory = inventory.to_str().unwrap();
    let patch = |v: &str| {
        dir.path()
            .join(format!("agent-{v}.json"))
            .display()
            .to_string()
    };
    let run = |function: &str, extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "run",
            manifest,
            function,
            "--inventory",
            inventory,
        ];
        args.extend_from_slice(extra);
        ringleader(&args)
    };
    let preflight = ok(run("preflight", &["--patch", &patch("1.1")]), "preflight");
    assert!(preflight.contains("ready"), "{preflight}");
    let install = ok(run("install", &["--patch", &patch("1.1")]), "install");
    assert!(install.contains("installed version  1.1"), "{install}");
    let again = ok(run("install", &["--patch", &patch("1.1")]), "install again");
    assert!(again.contains("already installed"), "{again}");
    assert_eq!(
        std::fs::read_to_string(device.join("opt/acme-agent/VERSION")).unwrap(),
        "1.1"
    );
    let back = ok(
        run(
            "rollback",
            &["--patch", &patch("1.1"), "--to-patch", &patch("1.0")],
        ),
        "rollback",
    );
    assert!(back.contains("installed version  1.0"), "{back}");
    assert_eq!(
        std::fs::read_to_string(device.join("opt/acme-agent/agent")).unwrap(),
        "agent build 1.0\n"
    );
}

#[test]
fn the_patch_source_example_builds_and_reports_a_feed() {
    let doc = std::fs::read_to_string(repo().join("docs/plugin-authors.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let krate = krate(
        dir.path(),
        &doc,
        "acme-feed",
        block(&doc, "### 9.1 The code", "rust"),
    );
    let built = build(&krate, "acme_feed");
    let expected = krate.join("target/wasm32-wasip2/release/acme_feed.wasm");
    std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
    std::fs::copy(&built, &expected).unwrap();
    // The page's manifest, its feed's host on this machine instead.
    let manifest = krate.join("acme-feed.plugin.toml");
    let page = block(&doc, "### 9.1 The code", "toml");
    assert!(page.contains("name = \"acme-feed\""), "{page}");
    std::fs::write(
        &manifest,
        page.replace("downloads.acme.example", "127.0.0.1"),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    ok(ringleader(&["plugin", "seal", manifest]), "plugin seal");
    let check = ok(ringleader(&["plugin", "check", manifest]), "plugin check");
    assert!(
        check.contains("acme-feed 1.0.0: valid patch-source plugin"),
        "{check}"
    );
    assert!(!check.contains("warning"), "{check}");

    let base = ringleader_tests::peers::serve_files(std::collections::HashMap::from([(
        "/acme/feed.txt".to_string(),
        b"# ACME releases\n\
          acme-agent 1.1 high https://downloads.acme.example/agent-1.1 81ebbd5fafbe655f0ff78bc3f56ec346b879763674c455a5c72173a5b68b1cc0 16\n\
          acme-agent 1.2 critical\n\
          acme-agent 1.3 high https://downloads.acme.example/agent-1.3\n\
          acme-other 2.0 low\n"
            .to_vec(),
    )]));
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[devices]]\nid = \"dev-1\"\ncomponents = { acme-agent = \"1.0\" }\n",
    )
    .unwrap();
    let setting = format!("feed={base}/acme/feed.txt");
    let out = ringleader(&[
        "plugin",
        "run",
        manifest,
        "discover",
        "--inventory",
        inventory.to_str().unwrap(),
        "--setting",
        &setting,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(out.clone(), "discover")).unwrap();
    let patches = report["result"].as_array().unwrap();
    let ids: Vec<&str> = patches.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme-agent-1.1", "acme-agent-1.2"], "{report}");
    assert_eq!(patches[0]["artifact"]["size"], 16);
    assert_eq!(
        patches[1]["artifact"],
        serde_json::json!({"url": "", "sha256": "", "size": 0}),
        "an advisory only"
    );
    // The line it could not read is one warning, naming the feed and the line.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{base}/acme/feed.txt line 4: 4 words, expected 3 or 6"
        )),
        "{stderr}"
    );
}
