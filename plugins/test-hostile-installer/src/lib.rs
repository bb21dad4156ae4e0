//! A hostile installer plugin, for testing the host's sandbox.
//!
//! `install` misbehaves according to the patch id it is given:
//!
//! | patch id | what it does |
//! |---|---|
//! | `loop` | spins forever |
//! | `memory-bomb` | allocates 1 MiB blocks until it dies |
//! | `huge-string` | returns a 1 GiB string (cannot even build it) |
//! | `oversized-string` | returns a 4 MiB string, over the host's result cap |
//! | `panic` | panics |
//! | `stack-overflow` | recurses without end |
//! | `hostcall-flood` | calls host imports in a tight loop |
//! | `stdout-flood` | prints 16 MiB to stdout (256 times what the host keeps) |
//! | `sleep` | asks the host to sleep for an hour |
//! | `http-undeclared` | requests a host not in its manifest |
//! | `http-declared:URL` | requests URL (its manifest declares 127.0.0.1) |
//! | `exec-undeclared` | runs `sh`, not in its manifest |
//! | `exec-declared` | runs `echo hello` (declared) |
//! | `kv-flood` | writes to kv until the quota refuses |
//! | anything else | succeeds |

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.1.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    Device, HealthReport, InstallOutcome, Patch, PluginError, PluginInfo, Readiness,
    RollbackTarget, VerifyReport,
};
use ringleader::plugin::{clock, exec, http, kv};
use std::hint::black_box;

struct Hostile;

fn outcome(detail: String) -> InstallOutcome {
    InstallOutcome {
        installed_version: "0.0.0".into(),
        reboot_pending: false,
        detail,
    }
}

/// Recurses without end. The call goes through a function pointer hidden from the
/// optimiser, so it cannot become a loop, and each frame lives on the wasm stack.
fn recurse(depth: u64) -> u64 {
    let next: fn(u64) -> u64 = black_box(recurse);
    next(depth + 1).wrapping_add(depth)
}

fn get(url: &str) -> Result<InstallOutcome, PluginError> {
    let response = http::send(&http::Request {
        method: http::Method::Get,
        url: url.into(),
        headers: vec![],
        body: vec![],
        timeout_ms: Some(5_000),
    })?;
    Ok(outcome(format!(
        "status {} body {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    )))
}

fn run(program: &str, args: &[&str]) -> Result<InstallOutcome, PluginError> {
    let output = exec::run(&exec::Command {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: vec![],
        timeout_ms: None,
    })?;
    Ok(outcome(format!(
        "exit {} stdout {}",
        output.exit_code,
        String::from_utf8_lossy(&output.stdout).trim()
    )))
}

impl Guest for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "test-hostile-installer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "misbehaves on purpose".into(),
        }
    }

    fn preflight(_device: Device, _patch: Patch) -> Result<Readiness, PluginError> {
        Ok(Readiness::Ready)
    }

    fn install(_device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        match patch.id.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut blocks = Vec::new();
                loop {
                    blocks.push(black_box(vec![7u8; 1 << 20]));
                }
            }
            "huge-string" => Ok(outcome("x".repeat(1 << 30))),
            "oversized-string" => Ok(outcome("x".repeat(4 << 20))),
            "panic" => panic!("hostile plugin panics on purpose"),
            "stack-overflow" => Ok(outcome(recurse(0).to_string())),
            "hostcall-flood" => loop {
                black_box(clock::now());
                log(Level::Trace, "flood");
            },
            "stdout-flood" => {
                let line = "y".repeat(1023);
                for _ in 0..(16 * 1024) {
                    println!("{line}");
                }
                Ok(outcome("printed 16 MiB".into()))
            }
            "sleep" => {
                clock::sleep(3_600_000);
                Ok(outcome("slept".into()))
            }
            "http-undeclared" => get("http://undeclared.invalid/steal"),
            "exec-undeclared" => run("sh", &["-c", "cat /etc/shadow"]),
            "exec-declared" => run("echo", &["hello"]),
            "kv-flood" => {
                let value = vec![0u8; 60 * 1024];
                for i in 0.. {
                    kv::set(&format!("flood/{i}"), &value)?;
                }
                unreachable!()
            }
            id => match id.strip_prefix("http-declared:") {
                Some(url) => get(url),
                None => Ok(outcome("behaved".into())),
            },
        }
    }

    fn verify(_device: Device, _patch: Patch) -> Result<VerifyReport, PluginError> {
        Ok(VerifyReport {
            installed_version: None,
            health: HealthReport {
                healthy: true,
                checks: vec![],
            },
        })
    }

    fn rollback(
        _device: Device,
        _patch: Patch,
        target: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        Ok(outcome(format!("rolled back to {}", target.version)))
    }
}

export!(Hostile);
