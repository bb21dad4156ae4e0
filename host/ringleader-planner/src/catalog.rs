//! The catalog: every patch the patch-source plugins reported, checked and indexed.
//!
//! Patches with versions or ranges that cannot be read are refused here, each with a
//! sentence naming the patch and the plugin that reported it; the rest of the catalog is
//! still used. A patch is read in the scheme it names, else as `vendor` (today's rule);
//! one that names none is read again, when first needed, in the scheme of a device's
//! component that names one ([`CatalogPatch::reading`]). Prerequisites form a graph across vendors (petgraph): a cycle is an error
//! naming every patch in it.

use crate::version::{AnyRange, AnyVersion, Range, Scheme, Version};
use petgraph::graph::{DiGraph, NodeIndex};
use ringleader_types::Patch;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Index of a patch in [`Catalog::patches`].
pub type PatchIndex = u32;

/// A patch's fixed version and `applies-to`, read in one scheme.
#[derive(Debug, Clone)]
pub struct Reading {
    pub fixed: AnyVersion,
    pub applies_to: AnyRange,
}

impl Reading {
    /// Reads `patch` in `scheme`; the error names the key and why. A patch that names
    /// no scheme is read as `vendor` by the rule's own words ("is not a version"), as
    /// before schemes existed.
    fn of(patch: &Patch, scheme: Scheme) -> Result<Reading, String> {
        let legacy = patch.scheme.is_none() && scheme == Scheme::Vendor;
        let fixed = AnyVersion::parse(scheme, &patch.fixed_version).map_err(|e| {
            let e = match Version::parse(&patch.fixed_version) {
                Err(old) if legacy => old,
                _ => e,
            };
            format!("fixed-version: {e}")
        })?;
        let applies_to = AnyRange::parse(scheme, &patch.applies_to).map_err(|e| {
            let e = match Range::parse(&patch.applies_to) {
                Err(old) if legacy => old,
                _ => e,
            };
            format!("applies-to: {e}")
        })?;
        Ok(Reading { fixed, applies_to })
    }
}

/// A patch with its versions parsed.
#[derive(Debug, Clone)]
pub struct CatalogPatch {
    pub patch: Patch,
    /// The plugin that reported it.
    pub source: String,
    /// Read in the scheme it names, else as `vendor`.
    own: Reading,
    /// A patch that names no scheme read in each other scheme (by `Scheme as usize`),
    /// when first asked for: in the schemes devices' components name.
    others: [OnceLock<Result<Reading, String>>; Scheme::ALL.len()],
    /// Indices of the prerequisites that are in the catalog.
    pub prerequisites: Vec<PatchIndex>,
    /// Prerequisite ids that no source reported.
    pub missing_prerequisites: Vec<String>,
    /// Indices of patches that supersede this one.
    pub superseded_by: Vec<PatchIndex>,
}

/// A patch that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub patch_id: String,
    pub source: String,
    pub reason: String,
}

/// A checked catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub patches: Vec<CatalogPatch>,
    /// Patch indices by component name.
    pub by_component: HashMap<String, Vec<PatchIndex>>,
    pub by_id: HashMap<String, PatchIndex>,
    pub refused: Vec<Refused>,
}

/// Prerequisites that form a cycle: no order can satisfy them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_cycles(.cycles))]
pub struct CycleError {
    /// Each cycle's patch ids, sorted.
    pub cycles: Vec<Vec<String>>,
}

fn describe_cycles(cycles: &[Vec<String>]) -> String {
    cycles
        .iter()
        .map(|c| {
            format!(
                "prerequisites form a cycle between patches {}; no install order can satisfy them (a patch-source plugin reports wrong prerequisites)",
                c.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Catalog {
    /// Checks and indexes `reported` (patch, source plugin) pairs. A later duplicate id
    /// is refused. Fails only when prerequisites form a cycle.
    pub fn build(reported: Vec<(Patch, String)>) -> Result<Catalog, CycleError> {
        let mut catalog = Catalog::default();
        for (patch, source) in reported {
            let refuse = |reason: String| Refused {
                patch_id: patch.id.clone(),
                source: source.clone(),
                reason,
            };
            if let Some(&first) = catalog.by_id.get(&patch.id) {
                let other = &catalog.patches[first as usize].source;
                catalog.refused.push(refuse(if *other == source {
                    format!(
                        "duplicate patch id: `{other}` reported it twice, and the first is used"
                    )
                } else {
                    format!("duplicate patch id, already reported by `{other}`")
                }));
                continue;
            }
            let own = match Reading::of(&patch, patch.scheme.unwrap_or(Scheme::Vendor)) {
                Ok(r) => r,
                Err(e) => {
                    catalog.refused.push(refuse(e));
                    continue;
                }
            };
            let index = catalog.patches.len() as PatchIndex;
            catalog.by_id.insert(patch.id.clone(), index);
            catalog
                .by_component
                .entry(patch.component.clone())
                .or_default()
                .push(index);
            catalog.patches.push(CatalogPatch {
                patch,
                source,
                own,
                others: Default::default(),
                prerequisites: Vec::new(),
                missing_prerequisites: Vec::new(),
                superseded_by: Vec::new(),
            });
        }
        catalog.link();
        catalog.check_cycles()?;
        Ok(catalog)
    }

    /// Resolves prerequisite and supersedence ids into indices.
    fn link(&mut self) {
        let mut superseded_by: Vec<(PatchIndex, PatchIndex)> = Vec::new();
        for (i, p) in self.patches.iter_mut().enumerate() {
            for id in &p.patch.prerequisites {
                match self.by_id.get(id) {
                    Some(&j) => p.prerequisites.push(j),
                    None => p.missing_prerequisites.push(id.clone()),
                }
            }
            for id in &p.patch.supersedes {
                if let Some(&j) = self.by_id.get(id) {
                    superseded_by.push((j, i as PatchIndex));
                }
            }
        }
        for (old, new) in superseded_by {
            self.patches[old as usize].superseded_by.push(new);
        }
    }

    fn check_cycles(&self) -> Result<(), CycleError> {
        let mut graph: DiGraph<PatchIndex, ()> = DiGraph::with_capacity(self.patches.len(), 0);
        let nodes: Vec<NodeIndex> = (0..self.patches.len())
            .map(|i| graph.add_node(i as PatchIndex))
            .collect();
        for (i, p) in self.patches.iter().enumerate() {
            for &pre in &p.prerequisites {
                graph.add_edge(nodes[pre as usize], nodes[i], ());
            }
        }
        let mut cycles: Vec<Vec<String>> = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
            .map(|scc| {
                let mut ids: Vec<String> = scc
                    .iter()
                    .map(|n| self.patches[graph[*n] as usize].patch.id.clone())
                    .collect();
                ids.sort();
                ids
            })
            .collect();
        if cycles.is_empty() {
            return Ok(());
        }
        cycles.sort();
        Err(CycleError { cycles })
    }

    pub fn get(&self, index: PatchIndex) -> &CatalogPatch {
        &self.patches[index as usize]
    }
}

impl CatalogPatch {
    /// The scheme the patch names, if it does.
    pub fn scheme(&self) -> Option<Scheme> {
        self.patch.scheme
    }

    /// The patch read in its own scheme: the one it names, else `vendor`.
    pub fn own(&self) -> &Reading {
        &self.own
    }

    /// The patch read in `scheme`; the error names the key, the scheme and the text.
    /// A patch that names its scheme is read in that one only ([`crate::plan`]
    /// refuses a pair of two schemes before asking).
    #[inline]
    pub fn reading(&self, scheme: Scheme) -> Result<&Reading, &str> {
        if scheme == self.own.fixed.scheme() {
            return Ok(&self.own);
        }
        self.others[scheme as usize]
            .get_or_init(|| Reading::of(&self.patch, scheme))
            .as_ref()
            .map_err(String::as_str)
    }
}
