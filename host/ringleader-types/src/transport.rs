//! How the host reaches a device, as data: the [`Route`] built from the inventory's
//! transport and the operator's [`Credential`]s. The runtime's `transport::Routes`
//! does the reaching.

use serde::Deserialize;
use std::path::PathBuf;

/// What the operator configures for a set of devices, named by the inventory's
/// `credentials = "NAME"`: a `[credentials.NAME]` table of the operator's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// SSH: the private key file.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// SSH: the known-hosts file the devices' host keys are checked against (the
    /// user's default when absent). Host keys are always checked.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// HTTP: basic authentication, added by the host to requests to the device; the
    /// plugin never sees it.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP: file holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// HTTPS: certificates (PEM) to trust for the device instead of the public web's
    /// roots: a BMC's self-signed certificate, or the CA that signed it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How to reach one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A simulated device.
    Sim,
    /// This machine.
    Local,
    /// SSH to `host` (port 22 unless given) as `user`.
    Ssh {
        host: String,
        port: Option<u16>,
        user: Option<String>,
        key: Option<PathBuf>,
        known_hosts: Option<PathBuf>,
    },
    /// Reached over HTTP only (a BMC): no `exec`; with `basic`, the operator's user
    /// name and password file, sent as basic authentication on requests to the device;
    /// with `ca`, the certificates its HTTPS is checked against.
    Http {
        basic: Option<(String, PathBuf)>,
        ca: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_table_reads_its_keys_and_refuses_others() {
        let c: Credential =
            toml::from_str("username = \"root\"\npassword_file = \"/p\"\nca_file = \"/ca.pem\"")
                .unwrap();
        assert_eq!(c.username.as_deref(), Some("root"));
        assert_eq!(c.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.ssh_key, None);
        let err = toml::from_str::<Credential>("password = \"x\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `password`"),
            "{err}"
        );
    }
}
