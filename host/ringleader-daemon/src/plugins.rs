//! Plugins as commands name them, and the one place they are loaded.
//!
//! A name or a path: a value that contains `/`, or ends in `.toml` or `.wasm`, is a
//! path (a manifest, or a component with its manifest beside it); anything else is the
//! name of a plugin built into the binary (`ringleader plugin list`), and a name no
//! bundled plugin has is an error listing those there are. The rule looks at the text
//! only, never at the disk: a manifest in the current directory is `./x.plugin.toml`.
//!
//! `serve`, `demo`, `plan` and the `plugin` commands resolve what they are given with
//! [`PluginRef::resolve`], and [`Chosen`] fills in and grants the simulated vendor's
//! pair when a command is given no plugin: the one place default plugins are chosen,
//! granted ([`Chosen::grants`]) and loaded ([`Chosen::load`]).

use anyhow::{anyhow, bail};
use ringleader_bundled_plugins::Embedded;
use ringleader_engine::executor::Installers;
use ringleader_runtime::manifest::ManifestError;
use ringleader_runtime::{Grants, LoadError, Manifest, OperatorConfig, Plugin, Runtime};
use std::fmt;
use std::path::{Path, PathBuf};

/// A plugin as a command names it: built in, or a manifest on disk.
#[derive(Debug, Clone)]
pub enum PluginRef {
    /// Built into the binary: its sealed manifest and component.
    Bundled(Embedded),
    /// A manifest's path.
    Manifest(PathBuf),
}

/// Whether `given` names a file (a manifest or a component) rather than a bundled
/// plugin: it contains `/`, or ends in `.toml` or `.wasm` (or is not UTF-8).
/// A plugin's world as the JSON documents name it.
pub fn world_v1(world: ringleader_runtime::World) -> ringleader_api::plugin::World {
    match world {
        ringleader_runtime::World::PatchSource => ringleader_api::plugin::World::PatchSource,
        ringleader_runtime::World::Installer => ringleader_api::plugin::World::Installer,
    }
}

pub fn is_path(given: &Path) -> bool {
    match given.to_str() {
        Some(text) => text.contains('/') || text.ends_with(".toml") || text.ends_with(".wasm"),
        None => true,
    }
}

/// The bundled plugin named `name`; an error lists the bundled plugins.
pub fn bundled(name: &str) -> anyhow::Result<Embedded> {
    match ringleader_bundled_plugins::embedded(name) {
        Some(found) => Ok(found),
        None => bail!(
            "no bundled plugin is named `{}`; bundled plugins: {}",
            ringleader_diag::escape(name),
            bundled_names().join(", "),
        ),
    }
}

fn bundled_names() -> Vec<&'static str> {
    ringleader_bundled_plugins::EMBEDDED
        .iter()
        .map(|p| p.name)
        .collect()
}

/// Whether `path` names a component (`.wasm`) rather than a manifest.
pub fn is_component_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

/// The manifest beside component `x_y.wasm`: `x_y.plugin.toml`, else `x-y.plugin.toml`
/// (Cargo names the component of crate `x-y` with underscores), else `plugin.toml`.
/// When the first two both exist the component's own name wins, with a warning.
pub fn find_manifest(component: &Path) -> anyhow::Result<PathBuf> {
    let dir = component.parent().unwrap_or(Path::new("."));
    let stem = component
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidates = vec![dir.join(format!("{stem}.plugin.toml"))];
    if stem.contains('_') {
        candidates.push(dir.join(format!("{}.plugin.toml", stem.replace('_', "-"))));
    }
    candidates.push(dir.join("plugin.toml"));
    let found: Vec<&PathBuf> = candidates.iter().filter(|c| c.exists()).collect();
    match found[..] {
        [] => {
            let (last, rest) = candidates.split_last().expect("never empty");
            let rest: Vec<String> = rest.iter().map(|c| c.display().to_string()).collect();
            bail!(
                "{} has no manifest beside it (looked for {} and {}); write one as described in docs/plugin-authors.md, then run `ringleader plugin seal`",
                component.display(),
                rest.join(", "),
                last.display()
            )
        }
        [first, ..] => {
            let both = candidates.len() == 3 && first == &candidates[0] && candidates[1].exists();
            if both {
                eprintln!(
                    "warning: both {} and {} are beside {}: using {} (the component's own name); remove the other",
                    first.display(),
                    candidates[1].display(),
                    component.display(),
                    first.display()
                );
            }
            Ok(first.clone())
        }
    }
}

impl PluginRef {
    /// What `given` names, by the rule above. A component's path is taken to the
    /// manifest beside it.
    pub fn resolve(given: &Path) -> anyhow::Result<PluginRef> {
        if !is_path(given) {
            let name = given.to_str().unwrap_or_default();
            return match bundled(name) {
                Ok(found) => Ok(PluginRef::Bundled(found)),
                Err(e) => Err(anyhow!(
                    "{e} (a plugin of your own is named by its manifest's path, e.g. `./{}.plugin.toml`)",
                    ringleader_diag::escape(name)
                )),
            };
        }
        if is_component_path(given) {
            return Ok(PluginRef::Manifest(find_manifest(given)?));
        }
        Ok(PluginRef::Manifest(given.to_owned()))
    }

    /// Each of `given`, resolved.
    pub fn resolve_all(given: &[PathBuf]) -> anyhow::Result<Vec<PluginRef>> {
        given.iter().map(|g| PluginRef::resolve(g)).collect()
    }

    /// The plugin's manifest, read and validated.
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        match self {
            PluginRef::Bundled(p) => Manifest::parse(&p.origin(), p.manifest),
            PluginRef::Manifest(path) => Manifest::load(path),
        }
    }

    /// Loads the plugin into `runtime` (checksum, world, compile, `info`).
    pub async fn load(&self, runtime: &Runtime) -> Result<Plugin, LoadError> {
        match self {
            PluginRef::Bundled(p) => {
                runtime
                    .load_embedded(&p.origin(), p.manifest, p.component)
                    .await
            }
            PluginRef::Manifest(path) => runtime.load(path).await,
        }
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Bundled(p) => write!(f, "bundled:{}", p.name),
            PluginRef::Manifest(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One of the simulated vendor's pair, which every binary has.
fn simulated(name: &str) -> PluginRef {
    PluginRef::Bundled(
        ringleader_bundled_plugins::embedded(name).expect("the simulated vendor is bundled"),
    )
}

/// The plugins a command runs with: the sources and installers it was given, or the
/// simulated vendor's when it was given none.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub sources: Vec<PluginRef>,
    /// The first is the default installer.
    pub installers: Vec<PluginRef>,
    /// The simulated vendor's installer stands in for installers none were given: it
    /// is granted what its manifest declares (it only reaches simulated devices).
    default_installer: bool,
}

impl Chosen {
    /// The sources and installers given (names or paths), the simulated vendor's
    /// where none is.
    pub fn new(sources: &[PathBuf], installers: &[PathBuf]) -> anyhow::Result<Chosen> {
        let mut sources = PluginRef::resolve_all(sources)?;
        if sources.is_empty() {
            sources.push(simulated(ringleader_bundled_plugins::SIM_VENDOR_SOURCE));
        }
        let mut installers = PluginRef::resolve_all(installers)?;
        let default_installer = installers.is_empty();
        if default_installer {
            installers.push(simulated(ringleader_bundled_plugins::SIM_VENDOR_INSTALLER));
        }
        Ok(Chosen {
            sources,
            installers,
            default_installer,
        })
    }

    /// The simulated vendor, as `ringleader demo` runs it.
    pub fn simulated() -> Chosen {
        Chosen::new(&[], &[]).expect("no plugin to resolve")
    }

    /// What the plugins are granted: what the operator's `config` grants (the plugins
    /// the operator named get only that), and the plugins filled in by default what
    /// their manifests declare.
    pub fn grants(&self, config: &OperatorConfig) -> anyhow::Result<Grants> {
        let mut grants = config.grants.clone();
        if self.default_installer {
            let installer = &self.installers[0];
            let manifest = installer.manifest()?;
            grants.allow_as_declared(&manifest.name, &manifest.capabilities);
        }
        Ok(grants)
    }

    /// The sources' names (from their manifests), as given.
    pub fn source_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for source in &self.sources {
            names.push(source.manifest()?.name);
        }
        Ok(names)
    }

    /// The installers' names (from their manifests), the default first.
    pub fn installer_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for installer in &self.installers {
            names.push(installer.manifest()?.name);
        }
        Ok(names)
    }

    /// Loads the sources into `runtime`.
    pub async fn load_sources(&self, runtime: &Runtime) -> Result<Vec<Plugin>, LoadError> {
        let mut sources = Vec::new();
        for source in &self.sources {
            sources.push(source.load(runtime).await?);
        }
        Ok(sources)
    }

    /// Loads the installers (the first the default) into `runtime`.
    pub async fn load_installers(&self, runtime: &Runtime) -> Result<Installers, LoadError> {
        let (first, rest) = self
            .installers
            .split_first()
            .expect("a default installer is filled in");
        let mut installers = Installers::new(first.load(runtime).await?);
        for installer in rest {
            installers = installers.with(installer.load(runtime).await?);
        }
        Ok(installers)
    }

    /// Loads the sources and the installers (the first the default) into `runtime`:
    /// the one place a rollout's plugins are loaded.
    pub async fn load(&self, runtime: &Runtime) -> Result<(Vec<Plugin>, Installers), LoadError> {
        let sources = self.load_sources(runtime).await?;
        Ok((sources, self.load_installers(runtime).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_what_has_no_slash_and_no_file_extension() {
        for path in [
            "./dpkg-installer",
            "plugins/x.plugin.toml",
            "x.plugin.toml",
            "plugin.toml",
            "acme.wasm",
            "/abs/acme",
        ] {
            assert!(is_path(Path::new(path)), "{path}");
        }
        for name in ["dpkg-installer", "csaf-source", "acme", "x.plugin"] {
            assert!(!is_path(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn every_bundled_plugin_resolves_by_name_and_an_unknown_name_lists_them() {
        for p in ringleader_bundled_plugins::EMBEDDED {
            let resolved = PluginRef::resolve(Path::new(p.name)).unwrap();
            assert_eq!(resolved.manifest().unwrap().name, p.name);
            assert_eq!(resolved.to_string(), format!("bundled:{}", p.name));
        }
        let err = PluginRef::resolve(Path::new("dpkg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("no bundled plugin is named `dpkg`"),
            "{err}"
        );
        for name in [
            "apt-installer",
            "catalog-source",
            "csaf-source",
            "debian-security-source",
            "dpkg-installer",
            "lvfs-source",
            "redfish-firmware",
        ] {
            assert!(err.contains(name), "{err}");
        }
        assert!(err.contains("`./dpkg.plugin.toml`"), "{err}");
    }

    #[test]
    fn the_simulated_vendor_stands_in_for_what_is_not_given_and_only_it_is_granted() {
        let chosen = Chosen::simulated();
        let grants = chosen.grants(&OperatorConfig::default()).unwrap();
        assert_eq!(grants.for_plugin("sim-vendor-installer").exec, ["sim-pkg"]);
        assert_eq!(chosen.installer_names().unwrap(), ["sim-vendor-installer"]);

        let named = Chosen::new(&[], &["dpkg-installer".into()]).unwrap();
        let grants = named.grants(&OperatorConfig::default()).unwrap();
        assert!(grants.plugins.is_empty(), "{grants:?}");
        assert_eq!(named.installer_names().unwrap(), ["dpkg-installer"]);
        assert_eq!(named.sources[0].to_string(), "bundled:sim-vendor-source");
    }
}
