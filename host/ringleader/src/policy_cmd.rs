//! `ringleader policy ...`: check rollout policies.

use clap::Subcommand;
use ringleader_planner::policy::{Policy, Select};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate rollout policies.
    ///
    /// Prints a one-line summary per valid file. For a file with errors, prints every
    /// problem found (not only the first), each as `file:line:col: `key`: what is wrong
    /// (hint: how to fix it)`. Warnings (for example a ring that can never contain a
    /// device) are printed too but do not fail the check.
    ///
    /// Exit status: 0 when every file is valid; 1 when one has errors.
    Check {
        /// Policy files (`rollout-policies/*.toml`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check { files } => check(&files),
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match Policy::check(file) {
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
            Ok((policy, diags)) => {
                for d in &diags.list {
                    eprintln!("{}", diags.format(d));
                }
                match policy {
                    Some(p) => println!("{}: ok: {}", file.display(), summary(&p)),
                    None => ok = false,
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ringleader_api::exit::ExitStatus::Failure)
    }
}

fn summary(p: &Policy) -> String {
    let rings: Vec<String> = p
        .rings
        .iter()
        .map(|r| match &r.select {
            Select::Rest => format!("{} (rest)", r.name),
            Select::Filter {
                percent: Some(pc), ..
            } => format!("{} ({pc}%)", r.name),
            Select::Filter { .. } => r.name.clone(),
        })
        .collect();
    let mut parts = vec![
        format!("policy `{}`", p.name),
        format!(
            "{}: {}",
            crate::count(p.rings.len(), "ring", "rings"),
            rings.join(", ")
        ),
    ];
    if !p.windows.is_empty() {
        parts.push(crate::count(p.windows.len(), "window", "windows"));
    }
    if !p.freezes.is_empty() {
        parts.push(crate::count(p.freezes.len(), "freeze", "freezes"));
    }
    if p.expedite.is_some() {
        parts.push("expedite".into());
    }
    if !p.approved.is_empty() {
        let components: Vec<&str> = p.approved.keys().map(String::as_str).collect();
        parts.push(format!("approved versions for {}", components.join(", ")));
    }
    parts.join("; ")
}
