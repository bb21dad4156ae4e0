//! The exit-code table of docs/cli.md is `ExitStatus`.

use ringleader_api::exit::ExitStatus;
use std::path::Path;

#[test]
fn the_cli_reference_lists_every_exit_status() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Exit status"))
        .expect("docs/cli.md has an `## Exit status` section");
    let listed: Vec<u8> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    let ours: Vec<u8> = ExitStatus::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(
        listed, ours,
        "docs/cli.md's table and ringleader_api::exit::ExitStatus"
    );
}
