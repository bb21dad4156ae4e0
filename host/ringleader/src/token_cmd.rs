//! `ringleader token ...`: the daemon's named API tokens, one file each in
//! `DATA/tokens/`. They work on the data directory itself (run them where the daemon
//! runs, as its user); the daemon picks changes up at the next request.

use clap::Subcommand;
use ringleader_api::Schema;
use ringleader_api::exit::ExitStatus;
use ringleader_api::token::{TokenCreated, TokenV1, TokensV1};
use ringleader_daemon::serve::auth;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a named API token.
    ///
    /// Writes a new random token to DATA/tokens/NAME (mode 0600) and prints that file's
    /// path: give it to the script or person (`--token-file FILE`). The daemon accepts it
    /// at once, no restart, and names it in the audit log of every change made with it.
    /// The token itself is never printed.
    New {
        /// 1 to 64 of a-z, 0-9, `.`, `_` and `-` (e.g. `ci-bot`, `ops.alice`).
        name: String,
        /// The daemon's data directory (`ringleader serve --data DIR`).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Print `{"name", "path"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the named API tokens: names, files, when made, and whether the daemon
    /// ignores one (a file others can read, or too short). Never the tokens.
    List {
        /// The daemon's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// One JSON object, `ringleader.tokens/v1`.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a named API token: its file is removed, and the daemon refuses the token
    /// from its next request on.
    Revoke {
        name: String,
        /// The daemon's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
}

pub fn run(cmd: TokenCommand) -> ExitCode {
    match go(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Failure)
        }
    }
}

fn go(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::New { name, data, json } => {
            let path = auth::create_named(&data, &name)?;
            if json {
                let out = TokenCreated {
                    name,
                    path: path.display().to_string(),
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}", path.display());
            }
        }
        TokenCommand::List { data, json } => {
            let tokens = auth::list_named(&data);
            if json {
                let out = TokensV1 {
                    schema: Schema::new(),
                    tokens: tokens
                        .iter()
                        .map(|t| TokenV1 {
                            name: t.name.clone(),
                            path: t.path.display().to_string(),
                            created: t.created.and_then(|c| jiff::Timestamp::try_from(c).ok()),
                            ignored: t.ignored.clone(),
                        })
                        .collect(),
                };
                // Its keys sorted at every level, as this command has always printed
                // them.
                let out = serde_json::to_value(&out)?;
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if tokens.is_empty() {
                println!(
                    "no named tokens in {} (`ringleader token new NAME --data {}` makes one)",
                    data.join(auth::TOKENS_DIR).display(),
                    data.display()
                );
            } else {
                for t in &tokens {
                    let created = t
                        .created
                        .and_then(|c| jiff::Timestamp::try_from(c).ok())
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into());
                    let state = match &t.ignored {
                        Some(why) => format!("IGNORED: {why}"),
                        None => "accepted".into(),
                    };
                    println!("{:<24} {created:<32} {state}", t.name);
                }
            }
        }
        TokenCommand::Revoke { name, data } => {
            let path = auth::revoke_named(&data, &name)?;
            println!("revoked `{name}` ({} removed)", path.display());
        }
    }
    Ok(())
}
