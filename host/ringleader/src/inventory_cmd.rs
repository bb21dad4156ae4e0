//! `ringleader inventory ...`: check inventories.

use clap::Subcommand;
use ringleader_planner::inventory::{Inventory, InventoryError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Validate inventories (TOML or JSON; see docs/inventory.md).
    ///
    /// Prints a one-line summary per valid file; otherwise every problem found, each as
    /// `file:line:col: `key`: what is wrong (hint: how to fix it)`.
    ///
    /// Exit status: 0 when every file is valid; 1 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: InventoryCommand) -> ExitCode {
    let InventoryCommand::Check { files } = cmd;
    let mut ok = true;
    for file in &files {
        match Inventory::load(file) {
            Ok(inv) => {
                let mut sites: BTreeMap<&str, usize> = BTreeMap::new();
                let mut transports: BTreeMap<&str, usize> = BTreeMap::new();
                for d in &inv.devices {
                    *sites.entry(d.site.as_str()).or_default() += 1;
                    *transports.entry(d.transport.kind()).or_default() += 1;
                }
                let list = |m: &BTreeMap<&str, usize>| {
                    m.iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "{}: ok: {}; sites: {}; transports: {}",
                    file.display(),
                    crate::count(inv.devices.len(), "device", "devices"),
                    list(&sites),
                    list(&transports)
                );
            }
            Err(InventoryError::Invalid(d)) => {
                ok = false;
                eprintln!("{d}");
            }
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ringleader_api::exit::ExitStatus::Failure)
    }
}
