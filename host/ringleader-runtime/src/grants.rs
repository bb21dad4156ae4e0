//! What the operator grants each plugin, and the one place where a capability use is
//! checked against both the plugin's manifest and the operator's grant.
//!
//! A plugin may use a capability only when its manifest declares it *and* the operator
//! grants it. Every host import goes through [`Access`]; there is no other path.
//!
//! An `http` entry `{setting:KEY}` (in the manifest, the grant, or both) is the host and
//! port of the URL in the operator's setting `KEY`, read at every request: the manifest
//! says which setting may name a host (a feed's), the operator's config which host; a
//! request elsewhere is refused.

use crate::manifest::Capabilities;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The operator's grants for one plugin. Same shape as a manifest's `[capabilities]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Hosts: `name`, `name:port`, `{device}` or `{setting:KEY}` (the host of the URL
    /// in this grant's setting `KEY`).
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

/// The operator's config file's content: grants for every plugin, by plugin name (a
/// plugin not listed is granted nothing; logging and the clock are always available),
/// and the credentials devices name by reference. Read by
/// [`OperatorConfig`](crate::config::OperatorConfig), the one parser of that file.
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

impl Grants {
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
        let settings = &self.granted.settings;
        let matches = |pattern: &String| host_matches(pattern, &host, port, device_host, settings);
        if !self.declared.http.iter().any(matches) {
            return Err(Denial(format!(
                "http to {} is not declared in the plugin's manifest (capabilities.http){}",
                host_port(&host, port),
                settings_said(&self.declared.http, settings)
            )));
        }
        if !self.granted.http.iter().any(matches) {
            return Err(Denial(format!(
                "http to {} is not granted to this plugin by the operator{}",
                host_port(&host, port),
                settings_said(&self.granted.http, settings)
            )));
        }
        Ok(())
    }

    /// May the plugin read the `file:///PATH` URL `url`? Only when `url` is exactly the
    /// operator's setting `KEY` of a `{setting:KEY}` entry of the manifest's `http`,
    /// and of the grant's: the operator chose the file, the plugin only reads it. A
    /// host name granted is no file; nothing else of the disk is reachable.
    pub fn file_url(&self, url: &str) -> Result<(), Denial> {
        let settings = &self.granted.settings;
        let named = |patterns: &[String]| {
            patterns
                .iter()
                .filter_map(|p| crate::manifest::setting_key(p))
                .any(|key| settings.get(key).is_some_and(|v| v == url))
        };
        let shown = ringleader_diag::escape(url);
        if !named(&self.declared.http) {
            return Err(Denial(format!(
                "reading {shown} is not declared in the plugin's manifest: a plugin reads a file:// URL only when it is the operator's setting of a `{{setting:KEY}}` entry of capabilities.http{}",
                settings_said(&self.declared.http, settings)
            )));
        }
        if !named(&self.granted.http) {
            return Err(Denial(format!(
                "reading {shown} is not granted to this plugin by the operator: grant the setting that names it (`http = [\"{{setting:KEY}}\"]`){}",
                settings_said(&self.granted.http, settings)
            )));
        }
        Ok(())
    }

    /// The `{setting:KEY}` entries (declared or granted) whose setting is set but is
    /// not a URL a plugin may reach, each as the sentence saying why. A setting not
    /// set is no problem here: its entry reaches nothing, and the plugin says what to
    /// set.
    pub fn setting_problems(&self) -> Vec<String> {
        let mut keys: Vec<&str> = self
            .declared
            .http
            .iter()
            .chain(&self.granted.http)
            .filter_map(|p| crate::manifest::setting_key(p))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let url = self.granted.settings.get(key)?;
                let refused = if crate::http_client::is_file_url(url) {
                    crate::http_client::file_url_path(url).err()
                } else {
                    setting_host(url).err()
                };
                refused.map(|why| {
                    format!(
                        "the setting `{key}` names the host the plugin may reach (`{{setting:{key}}}`), and is refused: {}",
                        ringleader_diag::escape(&why)
                    )
                })
            })
            .collect()
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
/// `pattern` (`{device}`, `{setting:KEY}`, `host`, `host:port`, `[v6]`, `[v6]:port`)
/// allows. Addresses are compared as addresses, so `[0::1]` is `::1`.
fn host_matches(
    pattern: &str,
    host: &str,
    port: u16,
    device_host: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> bool {
    if pattern == "{device}" {
        return device_host.is_some_and(|d| same_host(d, host));
    }
    if let Some(key) = crate::manifest::setting_key(pattern) {
        return settings
            .get(key)
            .and_then(|url| setting_host(url).ok())
            .is_some_and(|allowed| host_matches(&allowed, host, port, None, settings));
    }
    let Some((pattern_host, pattern_port)) = crate::manifest::split_host_port(pattern) else {
        return false;
    };
    let port_ok = pattern_port.is_none_or(|p| p.parse() == Ok(port));
    port_ok && same_host(pattern_host, host)
}

/// The `host:port` a setting's URL stands for in a `{setting:KEY}` entry: its host, and
/// its port (the scheme's, 80 or 443, when it names none), held to what a manifest may
/// declare (no special-purpose address, in any spelling).
pub fn setting_host(url: &str) -> Result<String, String> {
    let target = crate::http_client::target_of(url).map_err(|e| e.to_string())?;
    let entry = host_port(&target.host, target.port);
    crate::manifest::http_pattern(&entry).map_err(|problem| problem.message)
}

/// What the `{setting:KEY}` entries of `patterns` stand for now, for a refusal: the
/// operator sees which host the setting allows, or that it allows none.
fn settings_said(patterns: &[String], settings: &BTreeMap<String, String>) -> String {
    let mut said = String::new();
    for key in patterns
        .iter()
        .filter_map(|p| crate::manifest::setting_key(p))
    {
        if let Some(url) = settings.get(key)
            && crate::http_client::is_file_url(url)
        {
            let url = ringleader_diag::escape(url);
            said.push_str(&format!(
                "; `{{setting:{key}}}` is the file {url}, the operator's setting `{key}`"
            ));
            continue;
        }
        let what = match settings.get(key).map(|url| setting_host(url)) {
            Some(Ok(host)) => format!("{host}, the host of the operator's setting `{key}`"),
            Some(Err(why)) => format!(
                "no host: the operator's setting `{key}` is refused: {}",
                ringleader_diag::escape(&why)
            ),
            None => format!("no host: the operator's config sets no `{key}`"),
        };
        said.push_str(&format!("; `{{setting:{key}}}` is {what}"));
    }
    said
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

    /// Access declared `declared_http`, granted `granted_http` with the settings given.
    fn access_with(
        declared_http: &[&str],
        granted_http: &[&str],
        settings: &[(&str, &str)],
    ) -> Access {
        let mut a = access(declared_http, granted_http);
        a.granted.settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a
    }

    #[test]
    fn a_setting_entry_allows_the_host_and_port_of_the_operators_url_and_nothing_else() {
        let feed = [(
            "index",
            "https://csaf.corp.example/.well-known/csaf/index.txt",
        )];
        // Declared by the manifest, granted through the same setting.
        let a = access_with(&["{setting:index}"], &["{setting:index}"], &feed);
        assert!(a.http("csaf.corp.example", 443, None).is_ok());
        assert!(a.http("CSAF.corp.example", 443, None).is_ok());
        let denied = a.http("csaf.corp.example", 80, None).unwrap_err();
        assert_eq!(
            denied.0,
            "http to csaf.corp.example:80 is not declared in the plugin's manifest (capabilities.http); `{setting:index}` is csaf.corp.example:443, the host of the operator's setting `index`"
        );
        assert!(a.http("other.example", 443, None).is_err());
        // Granted by name instead: the same, the manifest's entry still the bound.
        let a = access_with(&["{setting:index}"], &["csaf.corp.example"], &feed);
        assert!(a.http("csaf.corp.example", 443, None).is_ok());
        assert!(a.http("csaf.corp.example", 8443, None).is_err());
        // An operator who grants more than the setting names: the manifest refuses it.
        let a = access_with(
            &["{setting:index}"],
            &["csaf.corp.example", "evil.example"],
            &feed,
        );
        let denied = a.http("evil.example", 443, None).unwrap_err();
        assert!(denied.0.contains("is not declared"), "{denied:?}");
        // A manifest that declares more than the operator names: the grant refuses it.
        let a = access_with(
            &["{setting:index}", "mirror.example"],
            &["{setting:index}"],
            &feed,
        );
        let denied = a.http("mirror.example", 443, None).unwrap_err();
        assert_eq!(
            denied.0,
            "http to mirror.example:443 is not granted to this plugin by the operator; `{setting:index}` is csaf.corp.example:443, the host of the operator's setting `index`"
        );
        // An explicit port, an IPv6 address.
        let a = access_with(
            &["{setting:metadata}"],
            &["{setting:metadata}"],
            &[("metadata", "http://[::1]:8080/firmware.xml.gz")],
        );
        assert!(a.http("::1", 8080, None).is_ok());
        assert!(a.http("::1", 80, None).is_err());
    }

    #[test]
    fn a_setting_entry_without_its_setting_or_with_a_bad_one_reaches_nothing() {
        let a = access_with(&["{setting:index}"], &["{setting:index}"], &[]);
        let denied = a.http("csaf.corp.example", 443, None).unwrap_err();
        assert!(
            denied
                .0
                .ends_with("`{setting:index}` is no host: the operator's config sets no `index`"),
            "{denied:?}"
        );
        assert!(
            a.setting_problems().is_empty(),
            "not set is the plugin's to say"
        );
        for (url, why) in [
            (
                "http://169.254.169.254/latest/meta-data",
                "cloud instance metadata",
            ),
            (
                "http://[::ffff:169.254.169.254]/",
                "cloud instance metadata",
            ),
            ("http://2852039166/", "dotted-decimal"),
            (
                "ftp://mirror.example/index.txt",
                "not an absolute http:// or https:// URL",
            ),
            (
                "/srv/csaf/index.txt",
                "not an absolute http:// or https:// URL",
            ),
        ] {
            let a = access_with(
                &["{setting:index}"],
                &["{setting:index}"],
                &[("index", url)],
            );
            let denied = a.http("169.254.169.254", 80, None).unwrap_err();
            assert!(denied.0.contains(why), "{url}: {denied:?}");
            let problems = a.setting_problems();
            assert_eq!(problems.len(), 1, "{url}: {problems:?}");
            assert!(
                problems[0].starts_with("the setting `index` names the host the plugin may reach (`{setting:index}`), and is refused: "),
                "{problems:?}"
            );
            assert!(problems[0].contains(why), "{url}: {problems:?}");
        }
        // A setting no entry names is only the plugin's business.
        let a = access_with(
            &["feeds.example"],
            &["feeds.example"],
            &[("index", "nonsense")],
        );
        assert!(a.setting_problems().is_empty());
    }

    #[test]
    fn a_file_url_is_read_only_when_it_is_a_declared_and_granted_setting() {
        let file = [("catalog", "file:///srv/catalog.toml")];
        let a = access_with(&["{setting:catalog}"], &["{setting:catalog}"], &file);
        assert!(a.file_url("file:///srv/catalog.toml").is_ok());
        assert!(a.setting_problems().is_empty());
        // Any other file, even beside it or spelled otherwise.
        for other in [
            "file:///etc/shadow",
            "file:///srv/./catalog.toml",
            "FILE:///srv/catalog.toml",
        ] {
            let denied = a.file_url(other).unwrap_err();
            assert!(denied.0.contains("is not declared"), "{other}: {denied:?}");
        }
        // Declared, not granted (a host granted is no file).
        let a = access_with(&["{setting:catalog}"], &["localhost"], &file);
        let denied = a.file_url("file:///srv/catalog.toml").unwrap_err();
        assert!(denied.0.contains("is not granted"), "{denied:?}");
        // Granted, not declared: the manifest names no setting.
        let a = access_with(&["feeds.example"], &["{setting:catalog}"], &file);
        let denied = a.file_url("file:///srv/catalog.toml").unwrap_err();
        assert!(denied.0.contains("is not declared"), "{denied:?}");
        // A file URL that is not one is refused at load.
        let a = access_with(
            &["{setting:catalog}"],
            &["{setting:catalog}"],
            &[("catalog", "file://server/c.toml")],
        );
        let problems = a.setting_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("no host"), "{problems:?}");
    }
}
