//! `ringleader catalog ...`: check an operator's own catalog (the file `catalog-source`
//! reads).

use clap::Subcommand;
use ringleader_api::catalog::{CatalogCheckV1, ProblemV1};
use ringleader_api::{Schema, exit::ExitStatus};
use ringleader_catalog::CatalogError;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate catalogs of patches (TOML, or JSON when the name ends in `.json`; see
    /// docs/bundled-plugins.md, catalog-source).
    ///
    /// Prints `FILE: ok: N patches` per valid file; otherwise every problem found (not
    /// only the first), each as `file:line:col: `key`: what is wrong (hint: how to fix
    /// it)`.
    ///
    /// Exit status: 0 when every file is valid; 1 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one `ringleader.catalog-check/v1` document per file, a line each
        /// (docs/schemas/catalog-check.v1.json), instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: CatalogCommand) -> ExitCode {
    let CatalogCommand::Check { files, json } = cmd;
    let mut ok = true;
    for file in &files {
        let report = check(file);
        ok &= report.valid;
        if json {
            let line = match serde_json::to_string(&report) {
                Ok(line) => line,
                Err(e) => {
                    eprintln!(
                        "error: failed to write the report of {}: {e}",
                        file.display()
                    );
                    return ExitCode::from(ExitStatus::Failure);
                }
            };
            if let Err(e) = crate::write_stdout(&format!("{line}\n")) {
                eprintln!("error: failed to write to stdout: {e}");
                return ExitCode::from(ExitStatus::Failure);
            }
        } else if report.valid {
            println!(
                "{}: ok: {}",
                file.display(),
                crate::count(report.patches.len(), "patch", "patches")
            );
        } else if let Some(error) = &report.error {
            eprintln!("error: {error}");
        } else {
            for problem in &report.problems {
                eprintln!("{}", problem.text);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ExitStatus::Failure)
    }
}

fn check(file: &std::path::Path) -> CatalogCheckV1 {
    let mut report = CatalogCheckV1 {
        schema: Schema::new(),
        path: file.display().to_string(),
        valid: false,
        patches: Vec::new(),
        problems: Vec::new(),
        error: None,
    };
    match ringleader_catalog::load(file) {
        Ok(patches) => {
            report.valid = true;
            report.patches = patches.into_iter().map(|p| p.id).collect();
        }
        Err(CatalogError::Invalid(diags)) => {
            report.problems = diags
                .errors()
                .map(|d| ProblemV1 {
                    line: d.line as u64,
                    column: d.column as u64,
                    key: d.key.clone(),
                    message: d.message.clone(),
                    hint: d.hint.clone(),
                    text: diags.format(d),
                })
                .collect();
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}
