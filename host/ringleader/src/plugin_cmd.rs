//! `ringleader plugin ...`: check, seal, list, export and run plugins (`run` is in
//! `plugin_run.rs`).

use anyhow::{Context, bail};
use clap::Subcommand;
use ringleader_api::Schema;
use ringleader_api::exit::ExitStatus;
use ringleader_api::plugin::{
    CacheOutcome as CacheV1, CapabilitiesV1, CheckedPluginV1, LimitsV1, ListedPluginV1,
    PluginCheckV1, PluginListV1,
};
use ringleader_runtime::cache::{CacheOutcome, ComponentCache};
use ringleader_runtime::{Manifest, Plugin, Runtime, RuntimeConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate plugins and print what they are and what they ask for.
    ///
    /// PATH is a plugin's manifest (`NAME.plugin.toml` or `plugin.toml`) or its component
    /// (`.wasm`, with the manifest beside it: for `x_y.wasm`, `x_y.plugin.toml`, else
    /// `x-y.plugin.toml` as Cargo's crate names go, else `plugin.toml`), or the name of a
    /// bundled plugin (no `/`, not ending in `.toml` or `.wasm`). The plugin is loaded the way the engine
    /// loads it: the manifest is checked, the component's SHA-256 compared with it, its
    /// world and WIT package version read, it is compiled (and cached), and its `info`
    /// is called.
    ///
    /// Exit status: 0 when every plugin is valid; 1 when one is not, with one sentence
    /// saying what is wrong and what to do.
    Check {
        /// Manifests or components to check, or bundled plugins by name.
        #[arg(required_unless_present = "bundled")]
        paths: Vec<PathBuf>,
        /// Check a plugin built into this binary instead (see `ringleader plugin list`).
        #[arg(long, value_name = "NAME", conflicts_with = "paths")]
        bundled: Option<String>,
        /// Print one JSON object per plugin (schema `ringleader.plugin-check/v1`,
        /// docs/schemas/plugin-check.v1.json) instead of text.
        #[arg(long)]
        json: bool,
        /// Where compiled components are cached
        /// [default: $XDG_CACHE_HOME/ringleader/components]
        #[arg(long, env = "RINGLEADER_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Compile without reading or writing the cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Write the SHA-256 of a plugin's component into its manifest.
    ///
    /// Run it after every build of the component: the host refuses a component whose
    /// checksum does not match its manifest. Comments and layout of the manifest are kept.
    Seal {
        /// The manifest to update.
        manifest: PathBuf,
    },
    /// List the plugins built into this binary: name, world, version, description.
    ///
    /// Each is named by its name wherever a plugin is given (`serve --installer`,
    /// `serve --source`, `plan --source`, `plugin check`, `plugin run`).
    List {
        /// Print JSON (schema `ringleader.plugin-list/v1`).
        #[arg(long)]
        json: bool,
    },
    /// Write a bundled plugin's sealed manifest and component into a directory.
    ///
    /// DIR/NAME.plugin.toml and DIR/NAME.wasm: the plugin exactly as the binary runs
    /// it, to read, check, or load by path. DIR is created if it does not exist;
    /// existing files are not overwritten unless --force is given.
    Export {
        /// The bundled plugin (see `ringleader plugin list`).
        name: String,
        /// The directory to write into.
        dir: PathBuf,
        /// Overwrite the files if they exist.
        #[arg(long)]
        force: bool,
    },
    Run(crate::plugin_run::RunArgs),
}

pub async fn run(cmd: PluginCommand) -> ExitCode {
    let result = match cmd {
        PluginCommand::Check {
            paths,
            bundled,
            json,
            cache_dir,
            no_cache,
        } => {
            let cache_dir = if no_cache {
                None
            } else {
                cache_dir.or_else(ComponentCache::default_dir)
            };
            return check(paths, bundled, json, cache_dir).await;
        }
        PluginCommand::Seal { manifest } => seal(&manifest),
        PluginCommand::List { json } => list(json),
        PluginCommand::Export { name, dir, force } => export(&name, &dir, force),
        PluginCommand::Run(args) => return crate::plugin_run::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Failure)
        }
    }
}

async fn check(
    paths: Vec<PathBuf>,
    bundled: Option<String>,
    json: bool,
    cache_dir: Option<PathBuf>,
) -> ExitCode {
    let runtime = match Runtime::new(RuntimeConfig {
        cache_dir,
        ..RuntimeConfig::default()
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(ExitStatus::Failure);
        }
    };
    let mut all_valid = true;
    let targets: Vec<Target> = match bundled {
        Some(name) => vec![Target::Bundled(name)],
        None => paths
            .into_iter()
            .map(|p| {
                if ringleader_daemon::plugins::is_path(&p) {
                    Target::Path(p)
                } else {
                    Target::Bundled(p.to_string_lossy().into_owned())
                }
            })
            .collect(),
    };
    for target in targets {
        let shown = target.to_string();
        let outcome = check_one(&runtime, &target).await;
        all_valid &= outcome.is_ok();
        if json {
            let report = match outcome {
                Ok(plugin) => PluginCheckV1 {
                    schema: Schema::new(),
                    path: shown,
                    valid: true,
                    error: None,
                    plugin: Some(plugin),
                },
                Err(e) => PluginCheckV1 {
                    schema: Schema::new(),
                    path: shown,
                    valid: false,
                    error: Some(format!("{e:#}")),
                    plugin: None,
                },
            };
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("error: failed to write JSON: {e}");
                    return ExitCode::from(ExitStatus::Failure);
                }
            }
        } else {
            match outcome {
                Ok(plugin) => print_human(&plugin),
                Err(e) => eprintln!("error: {e:#}"),
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ExitStatus::Failure)
    }
}

enum Target {
    Path(PathBuf),
    Bundled(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Path(p) => write!(f, "{}", p.display()),
            Target::Bundled(name) => write!(f, "bundled:{name}"),
        }
    }
}

async fn check_one(runtime: &Runtime, target: &Target) -> anyhow::Result<CheckedPluginV1> {
    let plugin = match target {
        Target::Bundled(name) => {
            // A name, by the rule of `plugins.rs` (an unknown one also gets the hint
            // about paths); `--bundled` with what looks like a path is no name at all.
            let plugin = if ringleader_daemon::plugins::is_path(Path::new(name)) {
                ringleader_daemon::plugins::PluginRef::Bundled(ringleader_daemon::plugins::bundled(
                    name,
                )?)
            } else {
                ringleader_daemon::plugins::PluginRef::resolve(Path::new(name))?
            };
            plugin.load(runtime).await?
        }
        Target::Path(path) => {
            let manifest = if ringleader_daemon::plugins::is_component_path(path) {
                // What the component is comes first: "not a component" is the more
                // useful sentence than "no manifest" for a file that is not a plugin.
                runtime.inspect(path)?;
                ringleader_daemon::plugins::find_manifest(path)?
            } else {
                path.clone()
            };
            runtime.load(&manifest).await?
        }
    };
    let summary = match target {
        Target::Path(_) => runtime.inspect(&plugin.manifest().component).ok(),
        Target::Bundled(_) => None,
    };
    Ok(describe(
        &plugin,
        summary.map(|s| s.imports).unwrap_or_default(),
    ))
}

fn describe(plugin: &Plugin, imports: Vec<String>) -> CheckedPluginV1 {
    let m = plugin.manifest();
    CheckedPluginV1 {
        name: m.name.clone(),
        version: m.version.to_string(),
        description: m.description.clone(),
        world: ringleader_daemon::plugins::world_v1(m.world),
        wit_version: plugin.wit_version().to_string(),
        component: m.component.display().to_string(),
        sha256: m.sha256.clone(),
        capabilities: CapabilitiesV1 {
            http: m.capabilities.http.clone(),
            exec: m.capabilities.exec.clone(),
            kv: m.capabilities.kv,
        },
        limits: LimitsV1 {
            timeout_ms: u64::try_from(m.limits.timeout.as_millis()).unwrap_or(u64::MAX),
            memory_bytes: m.limits.memory_bytes,
            hostcalls: m.limits.hostcalls,
        },
        imports,
        cache: match plugin.cache_outcome() {
            CacheOutcome::Hit => CacheV1::Hit,
            CacheOutcome::Miss => CacheV1::Miss,
            CacheOutcome::Uncached => CacheV1::Uncached,
        },
        warnings: m.warnings(),
    }
}

fn print_human(p: &CheckedPluginV1) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("{} {}: valid {} plugin", p.name, p.version, p.world);
    if !p.description.is_empty() {
        println!("  {}", p.description);
    }
    println!(
        "  world         {} (ringleader:plugin@{})",
        p.world, p.wit_version
    );
    println!("  component     {}", p.component);
    println!("  sha256        {}", p.sha256);
    println!(
        "  capabilities  http: {}; exec: {}; kv: {}",
        list(&p.capabilities.http),
        list(&p.capabilities.exec),
        if p.capabilities.kv { "yes" } else { "no" }
    );
    println!(
        "  limits        timeout {}, memory {}, host calls {}",
        humantime::format_duration(std::time::Duration::from_millis(p.limits.timeout_ms)),
        ringleader_runtime::limits::format_size(p.limits.memory_bytes),
        p.limits.hostcalls
    );
    if !p.imports.is_empty() {
        println!("  imports       {}", p.imports.join(", "));
    }
    for warning in &p.warnings {
        println!("  warning       {warning}");
    }
}

fn list(json: bool) -> anyhow::Result<()> {
    let mut plugins = Vec::new();
    for p in ringleader_bundled_plugins::EMBEDDED {
        let m = Manifest::parse(&p.origin(), p.manifest)?;
        plugins.push(ListedPluginV1 {
            name: p.name.to_string(),
            world: ringleader_daemon::plugins::world_v1(m.world),
            version: m.version.to_string(),
            description: m.description,
            wit_version: m.wit_version.to_string(),
            sha256: m.sha256,
            capabilities: CapabilitiesV1 {
                http: m.capabilities.http,
                exec: m.capabilities.exec,
                kv: m.capabilities.kv,
            },
        });
    }
    if json {
        let doc = PluginListV1 {
            schema: Schema::new(),
            plugins,
        };
        crate::write_stdout(&format!("{}\n", serde_json::to_string(&doc)?))?;
    } else {
        let lines: String = plugins
            .iter()
            .map(|e| {
                format!(
                    "{:<24} {:<13} {:<8} {}\n",
                    e.name, e.world, e.version, e.description
                )
            })
            .collect();
        crate::write_stdout(&lines)?;
    }
    Ok(())
}

/// Writes the bundled plugin `name`'s sealed manifest and component into `dir`.
fn export(name: &str, dir: &Path, force: bool) -> anyhow::Result<()> {
    let plugin = ringleader_daemon::plugins::bundled(name)?;
    let manifest = dir.join(format!("{name}.plugin.toml"));
    // The sealed manifest names its component (`component = "NAME.wasm"`), beside it.
    let component = dir.join(
        Manifest::parse(&plugin.origin(), plugin.manifest)?
            .component
            .file_name()
            .context("the bundled manifest names no component file")?,
    );
    if !force {
        let existing: Vec<String> = [&manifest, &component]
            .iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{}: give --force to overwrite, or another directory",
                existing.join(" and "),
                if existing.len() == 1 { "s" } else { "" }
            );
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the directory {}", dir.display()))?;
    for (path, bytes) in [
        (&component, plugin.component),
        (&manifest, plugin.manifest.as_bytes()),
    ] {
        write_new(path, bytes, force)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    println!(
        "exported {name} {}: {} and {}",
        Manifest::parse(&plugin.origin(), plugin.manifest)?.version,
        manifest.display(),
        component.display()
    );
    Ok(())
}

/// Writes `bytes` to `path`: a new file, or with `replace` one that may exist (written
/// beside it and renamed over it, so a reader never sees half a file).
fn write_new(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    use std::io::Write;
    if !replace {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        return file.write_all(bytes);
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// Writes the component's SHA-256 into the manifest, keeping its comments and layout.
fn seal(manifest_path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("failed to read {}", manifest_path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("failed to parse {} as TOML", manifest_path.display()))?;
    let Some(name) = doc.get("name").and_then(|v| v.as_str()).map(str::to_owned) else {
        bail!(
            "{} has no `name`; see docs/plugin-authors.md for the manifest format",
            manifest_path.display()
        );
    };
    let component = doc
        .get("component")
        .and_then(|v| v.as_str())
        .map_or_else(|| format!("{name}.wasm"), str::to_owned);
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let component_path = dir.join(&component);
    let bytes = std::fs::read(&component_path).with_context(|| {
        format!(
            "failed to read the component {} named by {}",
            component_path.display(),
            manifest_path.display()
        )
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    doc["sha256"] = toml_edit::value(sha256.clone());
    std::fs::write(manifest_path, doc.to_string())
        .with_context(|| format!("failed to write {}", manifest_path.display()))?;
    // The result must load: report anything else wrong with the manifest now.
    Manifest::load(manifest_path)?;
    println!("sealed {} with sha256 {sha256}", manifest_path.display());
    Ok(())
}
