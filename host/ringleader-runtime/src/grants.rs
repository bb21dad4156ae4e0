//! What the operator grants each plugin, and the one place where a capability use is
//! checked against both the plugin's manifest and the operator's grant.
//!
//! A plugin may use a capability only when its manifest declares it *and* the operator
//! grants it. Every host import goes through [`Access`]; there is no other path.

use crate::manifest::Capabilities;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// The operator's grants for one plugin. Same shape as a manifest's `[capabilities]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Hosts: `name`, `name:port` or `{device}`.
    #[serde(default)]
    pub http: Vec<String>,
    /// Programs runnable through `exec`.
    #[serde(default)]
    pub exec: Vec<String>,
    /// The plugin's key/value store.
    #[serde(default)]
    pub kv: bool,
    /// What the plugin reads through the `settings` interface (WIT 0.1.1): a feed's
    /// address, product lines to follow. Never secrets.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// The operator's config file: grants for every plugin, by plugin name (a plugin not
/// listed is granted nothing; logging and the clock are always available), and the
/// credentials devices name by reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub plugins: BTreeMap<String, Grant>,
    /// `[credentials.NAME]`: keys and passwords for transports, never in inventories
    /// and never visible to plugins.
    #[serde(default)]
    pub credentials: BTreeMap<String, crate::transport::Credential>,
}

/// Grants that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("failed to read plugin grants from {path}: {message}")]
pub struct GrantsError {
    pub path: String,
    pub message: String,
}

impl Grants {
    /// Parses the `[plugins.<name>]` tables of the operator's config file.
    pub fn parse(path: &Path, text: &str) -> Result<Grants, GrantsError> {
        toml::from_str(text).map_err(|e| GrantsError {
            path: path.display().to_string(),
            // The message quotes the file's line: its control characters escaped.
            message: ringleader_diag::escape(&e.to_string().trim().replace('\n', " ")).into_owned(),
        })
    }

    /// Grants a plugin exactly what its manifest asks for. For tests and the built-in
    /// demo plugins, whose manifests ship with the host.
    pub fn allow_as_declared(&mut self, plugin: &str, caps: &Capabilities) -> &mut Self {
        self.plugins.insert(
            plugin.to_string(),
            Grant {
                http: caps.http.clone(),
                exec: caps.exec.clone(),
                kv: caps.kv,
                settings: BTreeMap::new(),
            },
        );
        self
    }

    pub fn for_plugin(&self, name: &str) -> Grant {
        self.plugins.get(name).cloned().unwrap_or_default()
    }
}

/// The capabilities a loaded plugin may use: its manifest's declaration and the
/// operator's grant, checked together at every use.
#[derive(Debug, Clone)]
pub struct Access {
    declared: Capabilities,
    granted: Grant,
}

/// Why a capability use was refused, for the plugin's `denied` error and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl Access {
    pub fn new(declared: Capabilities, granted: Grant) -> Access {
        Access { declared, granted }
    }

    /// An operator setting for the plugin (settings need no declaration: they only
    /// tell the plugin what the operator chose).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.granted.settings.get(key).map(String::as_str)
    }

    /// May the plugin send a request to `host:port`, in a call about a device whose
    /// hostname is `device_host`?
    pub fn http(&self, host: &str, port: u16, device_host: Option<&str>) -> Result<(), Denial> {
        let host = host.to_ascii_lowercase();
        let matches = |pattern: &String| host_matches(pattern, &host, port, device_host);
        if !self.declared.http.iter().any(matches) {
            return Err(Denial(format!(
                "http to {} is not declared in the plugin's manifest (capabilities.http)",
                host_port(&host, port)
            )));
        }
        if !self.granted.http.iter().any(matches) {
            return Err(Denial(format!(
                "http to {} is not granted to this plugin by the operator",
                host_port(&host, port)
            )));
        }
        Ok(())
    }

    /// May the plugin run `program` on a device?
    pub fn exec(&self, program: &str) -> Result<(), Denial> {
        if !self.declared.exec.iter().any(|p| p == program) {
            return Err(Denial(format!(
                "exec of `{program}` is not declared in the plugin's manifest (capabilities.exec)"
            )));
        }
        if !self.granted.exec.iter().any(|p| p == program) {
            return Err(Denial(format!(
                "exec of `{program}` is not granted to this plugin by the operator"
            )));
        }
        Ok(())
    }

    /// May the plugin use its key/value store?
    pub fn kv(&self) -> Result<(), Denial> {
        if !self.declared.kv {
            return Err(Denial(
                "kv is not declared in the plugin's manifest (capabilities.kv)".into(),
            ));
        }
        if !self.granted.kv {
            return Err(Denial(
                "kv is not granted to this plugin by the operator".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `host:port` (as a request names it: IPv6 without brackets) is what
/// `pattern` (`{device}`, `host`, `host:port`, `[v6]`, `[v6]:port`) allows. Addresses
/// are compared as addresses, so `[0::1]` is `::1`.
fn host_matches(pattern: &str, host: &str, port: u16, device_host: Option<&str>) -> bool {
    if pattern == "{device}" {
        return device_host.is_some_and(|d| same_host(d, host));
    }
    let Some((pattern_host, pattern_port)) = crate::manifest::split_host_port(pattern) else {
        return false;
    };
    let port_ok = pattern_port.is_none_or(|p| p.parse() == Ok(port));
    port_ok && same_host(pattern_host, host)
}

fn same_host(a: &str, b: &str) -> bool {
    let unbracket = |h: &str| {
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
            .to_owned()
    };
    let (a, b) = (unbracket(a), unbracket(b));
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(&b),
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(declared_http: &[&str], granted_http: &[&str]) -> Access {
        Access::new(
            Capabilities {
                http: declared_http.iter().map(|s| s.to_string()).collect(),
                exec: vec!["dpkg".into()],
                kv: true,
            },
            Grant {
                http: granted_http.iter().map(|s| s.to_string()).collect(),
                exec: vec![],
                kv: false,
                settings: BTreeMap::new(),
            },
        )
    }

    #[test]
    fn http_needs_both_declaration_and_grant() {
        let a = access(&["a.example", "b.example"], &["b.example"]);
        assert!(a.http("b.example", 443, None).is_ok());
        let denied = a.http("a.example", 443, None).unwrap_err();
        assert!(denied.0.contains("not granted"), "{denied:?}");
        let denied = a.http("c.example", 443, None).unwrap_err();
        assert!(denied.0.contains("not declared"), "{denied:?}");
    }

    #[test]
    fn a_port_in_the_pattern_must_match() {
        let a = access(&["bmc:8443"], &["bmc:8443"]);
        assert!(a.http("bmc", 8443, None).is_ok());
        assert!(a.http("bmc", 443, None).is_err());
    }

    #[test]
    fn device_pattern_matches_only_the_calls_device() {
        let a = access(&["{device}"], &["{device}"]);
        assert!(a.http("10.0.0.5", 443, Some("10.0.0.5")).is_ok());
        assert!(a.http("10.0.0.6", 443, Some("10.0.0.5")).is_err());
        assert!(a.http("10.0.0.5", 443, None).is_err());
    }

    #[test]
    fn ipv6_literals_match_by_address() {
        let a = access(&["[::1]:8443", "[fd00::5]"], &["[::1]:8443", "[fd00:0::5]"]);
        // Requests name IPv6 hosts without brackets (`http://[::1]:8443/`).
        assert!(a.http("::1", 8443, None).is_ok());
        assert!(a.http("0:0::1", 8443, None).is_ok());
        assert!(a.http("::1", 443, None).is_err());
        assert!(a.http("FD00::5", 80, None).is_ok());
        let denied = a.http("::2", 8443, None).unwrap_err();
        assert!(
            denied.0.contains("http to [::2]:8443 is not declared"),
            "{denied:?}"
        );
        let d = access(&["{device}"], &["{device}"]);
        assert!(d.http("fd00::7", 443, Some("[fd00::7]")).is_ok());
        assert!(d.http("fd00::7", 443, Some("fd00::7")).is_ok());
    }

    #[test]
    fn exec_and_kv_need_grants_too() {
        let a = access(&[], &[]);
        assert!(a.exec("dpkg").unwrap_err().0.contains("not granted"));
        assert!(a.exec("sh").unwrap_err().0.contains("not declared"));
        assert!(a.kv().unwrap_err().0.contains("not granted"));
    }

    #[test]
    fn grants_parse_from_the_operator_config() {
        let g = Grants::parse(
            Path::new("ringleader.toml"),
            "[plugins.acme-bios]\nhttp = [\"{device}\"]\nkv = true\n",
        )
        .unwrap();
        assert_eq!(g.for_plugin("acme-bios").http, ["{device}"]);
        assert_eq!(g.for_plugin("other"), Grant::default());
        let err = Grants::parse(Path::new("r.toml"), "[plugins.x]\nhtp = []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `htp`"), "{err}");
    }
}
