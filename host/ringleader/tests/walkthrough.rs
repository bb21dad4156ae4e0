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

#[test]
fn the_plugin_authors_walkthrough_builds_checks_and_runs() {
    let doc = std::fs::read_to_string(repo().join("docs/plugin-authors.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("acme-agent");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        block(&doc, "### 2.1 The crate", "toml"),
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        block(&doc, "### 2.2 The code", "rust"),
    )
    .unwrap();
    let manifest = krate.join("acme-agent.plugin.toml");
    std::fs::write(&manifest, block(&doc, "### 2.4 The manifest", "toml")).unwrap();
    let wit = repo().join("wit/ringleader-plugin@0.1.1");
    std::fs::create_dir_all(krate.join("wit")).unwrap();
    for file in std::fs::read_dir(&wit).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, krate.join("wit").join(file.file_name().unwrap())).unwrap();
    }
    // The plugins' own lock file: the same wit-bindgen, and no registry access.
    std::fs::copy(repo().join("plugins/Cargo.lock"), krate.join("Cargo.lock")).unwrap();

    // `cargo build --release --target wasm32-wasip2`, with this toolchain (the crate
    // is outside the repository and its rust-toolchain.toml) and a target directory
    // kept between runs.
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
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target);
    if rustc.exists() {
        build.env("RUSTC", &rustc);
    }
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        build.env_remove(var);
    }
    ok(
        build.output().unwrap(),
        "cargo build of the walkthrough's plugin",
    );
    let built = target.join("wasm32-wasip2/release/acme_agent.wasm");
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
