//! A hostile patch source, for testing the host's caps on what plugins return.
//!
//! `discover` misbehaves according to the first device's id:
//!
//! | device id | what it returns |
//! |---|---|
//! | `ten-million` | 10,000,000 patches (the guest runs out of memory building them) |
//! | `too-many` | 120,000 small patches (fits the guest, over the host's cap) |
//! | `long-id` | one patch whose id is 2 MiB long (over the host's string cap) |
//! | `sloppy` | what the host's catalog refuses: a fixed version `latest`, and two different patches under one id, beside a well-formed patch |
//! | anything else | one well-formed patch |

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.1.0",
    world: "patch-source",
});

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::types::{
    Artifact, Device, Patch, PatchKind, PluginError, PluginInfo, Severity,
};

struct HostileSource;

fn patch(id: String) -> Patch {
    Patch {
        id,
        vendor: "hostile".into(),
        title: String::new(),
        component: "thing".into(),
        fixed_version: "1.0.0".into(),
        applies_to: String::new(),
        kind: PatchKind::Bugfix,
        severity: Severity::Unknown,
        cves: vec![],
        prerequisites: vec![],
        supersedes: vec![],
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: 0,
    }
}

impl Guest for HostileSource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "test-hostile-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "returns far too much on purpose".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        let mode = devices.first().map(|d| d.id.as_str()).unwrap_or("");
        Ok(match mode {
            "ten-million" => (0..10_000_000).map(|i| patch(i.to_string())).collect(),
            "too-many" => (0..120_000).map(|_| patch(String::new())).collect(),
            "long-id" => vec![patch("i".repeat(2 << 20))],
            "sloppy" => {
                let mut latest = patch("sloppy-latest".into());
                latest.fixed_version = "latest".into();
                let mut newer = patch("sloppy-twice".into());
                newer.fixed_version = "1.1.0".into();
                vec![
                    latest,
                    patch("sloppy-twice".into()),
                    newer,
                    patch("hostile-1".into()),
                ]
            }
            _ => vec![patch("hostile-1".into())],
        })
    }
}

export!(HostileSource);
