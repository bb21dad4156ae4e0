//! A component for another world (a `wasi:cli` command), not a Ringleader plugin, for
//! testing that the host says so. It has no manifest.

fn main() {
    println!("hello from a command, not a plugin");
}
