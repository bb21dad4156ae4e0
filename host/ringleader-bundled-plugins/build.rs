//! Builds every plugin in `plugins/` as a WebAssembly component (wasm32-wasip2, release)
//! and writes, for each, `<name>.wasm` and a sealed manifest `<name>.plugin.toml`
//! (the crate's `plugin.toml` plus `component` and `sha256`) into `$OUT_DIR/plugins/`.
//!
//! Plugins are always built in release: a debug guest is ~35x larger and slower to load.
//! They are built into one shared target dir beside the host's, so debug and release
//! host builds reuse the same guest build.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const TARGET: &str = "wasm32-wasip2";

/// Every crate in `plugins/`. Those without a `plugin.toml` are test components that
/// are deliberately not plugins; they are copied without a manifest.
const PLUGINS: &[&str] = &[
    "sim-vendor-source",
    "sim-vendor-installer",
    "dpkg-installer",
    "apt-installer",
    "redfish-firmware",
    "csaf-source",
    "lvfs-source",
    "debian-security-source",
    "catalog-source",
    "test-hostile-source",
    "test-hostile-installer",
    "test-future-wit",
    "test-cli-command",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let plugins_dir = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    println!(
        "cargo:rerun-if-changed={}",
        plugins_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins_dir.join("Cargo.lock").display()
    );
    for plugin in PLUGINS {
        println!(
            "cargo:rerun-if-changed={}",
            plugins_dir.join(plugin).display()
        );
    }
    // Libraries the plugins share.
    println!(
        "cargo:rerun-if-changed={}",
        plugins_dir.join("guest-time").display()
    );
    // A host crate a plugin shares (debian-security-source orders Debian versions with
    // the host's own rule).
    println!(
        "cargo:rerun-if-changed={}",
        root.join("host/ringleader-version").display()
    );
    // And those catalog-source parses and validates the operator's catalog with (the
    // parser of `ringleader catalog check`).
    for shared in [
        "host/ringleader-catalog",
        "host/ringleader-diag",
        "host/ringleader-types",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(shared).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    ensure_target_installed();

    // $OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out: share <target>/wasm-plugins.
    let wasm_target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(plugins_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&wasm_target_dir);
    // The outer build's flags are for the host target, not for guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("failed to run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!(
            "failed to build the plugins in {} for {TARGET} (see the cargo output above)",
            plugins_dir.display()
        );
    }

    let dest = out_dir.join("plugins");
    fs::create_dir_all(&dest).expect("create $OUT_DIR/plugins");
    let built = wasm_target_dir.join(TARGET).join("release");
    for plugin in PLUGINS {
        seal(plugin, &plugins_dir.join(plugin), &built, &dest);
    }
}

/// Copies the component and writes its manifest with `component` and `sha256` filled in.
fn seal(plugin: &str, crate_dir: &Path, built: &Path, dest: &Path) {
    // Libraries are named with `_`, binaries (a command component) keep their `-`.
    let library = built.join(format!("{}.wasm", plugin.replace('-', "_")));
    let binary = built.join(format!("{plugin}.wasm"));
    let file = if library.exists() { library } else { binary };
    let bytes = fs::read(&file)
        .unwrap_or_else(|e| panic!("failed to read built plugin {}: {e}", file.display()));
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let wasm_name = format!("{plugin}.wasm");
    fs::write(dest.join(&wasm_name), &bytes).expect("write plugin component");

    let template = crate_dir.join("plugin.toml");
    if !template.exists() {
        return;
    }
    let manifest = fs::read_to_string(&template)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", template.display()));
    // Top-level keys must come before the first table, so they go first.
    let sealed = format!(
        "# Sealed by the build: do not edit; rebuild instead.\ncomponent = \"{wasm_name}\"\nsha256 = \"{sha256}\"\n{manifest}"
    );
    fs::write(dest.join(format!("{plugin}.plugin.toml")), sealed).expect("write manifest");
}

/// rust-toolchain.toml lists the target, but rustup only installs listed targets with
/// the toolchain itself; a machine that already had this toolchain may lack it.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    match rustup.status() {
        Ok(status) if status.success() => {}
        _ => panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed: \
             install it by hand, then build again"
        ),
    }
}
