//! Routes `exec` to each device's own transport, as the inventory says: the simulated
//! fleet, this machine, or SSH (the system's OpenSSH client, with the operator's key and
//! known-hosts file).
//!
//! The inventory names a transport per device; the operator's config holds what a
//! transport needs that must not be in an inventory (keys, passwords), under
//! `[credentials.NAME]`, which devices name by reference. [`Route`] and [`Credential`]
//! are plain data, defined in `ringleader_types` and re-exported here.

use crate::services::{
    BoxFuture, DeviceAuth, DeviceExec, ExecError, ExecOutput, ExecRequest, LocalExec, run_program,
};
use ringleader_types::Device;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use ringleader_types::transport::{Credential, Route};

/// `exec` for a fleet whose devices each have their own transport.
#[derive(Debug)]
pub struct Routes {
    routes: RwLock<HashMap<String, Route>>,
    sim: Arc<dyn DeviceExec>,
}

impl Routes {
    /// The route of device `id`, if it has one.
    fn route(&self, id: &str) -> Option<Route> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// `sim` runs the commands of simulated devices.
    pub fn new(sim: Arc<dyn DeviceExec>) -> Routes {
        Routes {
            routes: RwLock::new(HashMap::new()),
            sim,
        }
    }

    /// Sets how `device` is reached (devices may join while a rollout runs).
    pub fn set(&self, device: &str, route: Route) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_string(), route);
    }
}

impl DeviceExec for Routes {
    fn run<'a>(
        &'a self,
        device: &'a Device,
        request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, ExecError>> {
        let route = self.route(&device.id);
        Box::pin(async move {
            match route {
                Some(Route::Sim) => self.sim.run(device, request).await,
                Some(Route::Local) => LocalExec.run(device, request).await,
                Some(Route::Ssh {
                    host,
                    port,
                    user,
                    key,
                    known_hosts,
                }) => {
                    let args = ssh_args(
                        &host,
                        port,
                        user.as_deref(),
                        key,
                        known_hosts.clone(),
                        &request,
                    );
                    let out = run_program(
                        "ssh",
                        &request.program,
                        &args,
                        request.stdin,
                        request.timeout,
                    )
                    .await?;
                    // 255 is ssh's own failure (connection, authentication, host key).
                    if out.exit_code == 255 {
                        let said = String::from_utf8_lossy(&out.stderr);
                        // A host key that does not check out stays so until an
                        // operator acts: retrying cannot help.
                        if let Some(why) =
                            host_key_problem(&host, port, known_hosts.as_deref(), &said)
                        {
                            return Err(ExecError::Permanent(format!(
                                "ssh to {host} failed: {why}"
                            )));
                        }
                        return Err(ExecError::Transient(format!(
                            "ssh to {host} failed: {}",
                            said.trim()
                        )));
                    }
                    Ok(out)
                }
                Some(Route::Http { .. }) => Err(ExecError::Permanent(format!(
                    "device {} is not reached by running programs (its transport has no exec)",
                    device.id
                ))),
                None => Err(ExecError::Permanent(format!(
                    "no transport is configured to reach device {}",
                    device.id
                ))),
            }
        })
    }
}

impl DeviceAuth for Routes {
    /// Basic authentication from the device's credentials (the password file's first
    /// line, read at each request so that a rotated password takes effect at once).
    fn authorization(&self, device: &Device) -> Option<String> {
        let route = self.route(&device.id);
        let Some(Route::Http {
            basic: Some((user, file)),
            ..
        }) = route
        else {
            return None;
        };
        let password = match std::fs::read_to_string(&file) {
            Ok(text) => text.lines().next().unwrap_or("").to_string(),
            Err(e) => {
                tracing::error!(
                    device = %device.id,
                    "cannot read the password file {}: {e}",
                    file.display()
                );
                return None;
            }
        };
        Some(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ))
    }

    fn tls_roots(&self, device: &Device) -> Option<PathBuf> {
        match self.route(&device.id) {
            Some(Route::Http { ca, .. }) => ca,
            _ => None,
        }
    }
}

/// Standard base64 with padding (RFC 4648), for basic authentication.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `ssh` command line for running `request` on `host`: batch mode (never a
/// prompt), host keys checked, the remote command quoted for the remote shell word by
/// word, so that arguments arrive exactly as given.
fn ssh_args(
    host: &str,
    port: Option<u16>,
    user: Option<&str>,
    key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    request: &ExecRequest,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Some(known_hosts) = known_hosts {
        args.extend([
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
        ]);
    }
    if let Some(key) = key {
        args.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            key.display().to_string(),
        ]);
    }
    if let Some(port) = port {
        args.extend(["-p".into(), port.to_string()]);
    }
    if let Some(user) = user {
        args.extend(["-l".into(), user.to_string()]);
    }
    args.push(host.to_string());
    args.push("--".into());
    let remote: Vec<String> = std::iter::once(&request.program)
        .chain(&request.args)
        .map(|word| shell_quote(word))
        .collect();
    args.push(remote.join(" "));
    args
}

/// What to fix when ssh refused the device's host key (`said`: ssh's stderr), or
/// `None` when that is not why it failed.
fn host_key_problem(
    host: &str,
    port: Option<u16>,
    known_hosts: Option<&std::path::Path>,
    said: &str,
) -> Option<String> {
    if !said.contains("Host key verification failed") {
        return None;
    }
    let target = match port {
        Some(port) if port != 22 => format!("[{host}]:{port}"),
        _ => host.to_string(),
    };
    let file = known_hosts.map_or_else(
        || "the known_hosts file of the user running ringleader (~/.ssh/known_hosts)".to_string(),
        |f| f.display().to_string(),
    );
    let lines: Vec<&str> = said.lines().map(str::trim).collect();
    if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || said.contains("has changed and") {
        let fingerprint = lines
            .iter()
            .find(|l| l.starts_with("SHA256:"))
            .map_or(String::new(), |f| format!(" ({})", f.trim_end_matches('.')));
        let offending = lines
            .iter()
            .find_map(|l| l.strip_prefix("Offending "))
            .and_then(|l| l.rsplit_once(':'))
            .map_or(String::new(), |(_, line)| format!(" (line {line})"));
        return Some(format!(
            "the device's host key{fingerprint} is not the one {file} holds for {target}{offending}: permanent until an operator acts. If the device was reinstalled or its key rotated, check the new key out of band, remove the old one (`ssh-keygen -f {file} -R '{target}'`) and add the new; if not, someone may be intercepting the connection"
        ));
    }
    if lines
        .iter()
        .any(|l| l.starts_with("No ") && l.contains("host key is known"))
    {
        let keyscan = match port {
            Some(port) if port != 22 => format!("ssh-keyscan -p {port} {host}"),
            _ => format!("ssh-keyscan {host}"),
        };
        return Some(format!(
            "{file} holds no host key for {target}: permanent until an operator acts; add the device's key to it (`{keyscan}`, checked out of band)"
        ));
    }
    Some(format!(
        "host key verification failed ({}): permanent until an operator acts; check the line for {target} in {file}",
        lines.last().copied().unwrap_or_default()
    ))
}

/// `word` as one word for a POSIX shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn a_refused_host_key_says_what_to_fix() {
        let changed = "@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nThe fingerprint for the ED25519 key sent by the remote host is\nSHA256:THxx.\r\nOffending ED25519 key in /kh:3\r\nHost key for [10.0.0.5]:2222 has changed and you have requested strict checking.\r\nHost key verification failed.\r\n";
        let why =
            host_key_problem("10.0.0.5", Some(2222), Some(Path::new("/kh")), changed).unwrap();
        assert!(
            why.starts_with("the device's host key (SHA256:THxx) is not the one /kh holds for [10.0.0.5]:2222 (line 3): permanent until an operator acts"),
            "{why}"
        );
        assert!(
            why.contains("ssh-keygen -f /kh -R '[10.0.0.5]:2222'"),
            "{why}"
        );
        let unknown = "No ED25519 host key is known for 10.0.0.5 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        let why = host_key_problem("10.0.0.5", None, None, unknown).unwrap();
        assert!(why.contains("holds no host key for 10.0.0.5"), "{why}");
        assert!(why.contains("`ssh-keyscan 10.0.0.5`"), "{why}");
        let refused = "ssh: connect to host 10.0.0.5 port 22: Connection refused\r\n";
        assert_eq!(host_key_problem("10.0.0.5", None, None, refused), None);
    }

    #[test]
    fn basic_auth_is_base64_of_user_and_password() {
        assert_eq!(base64(b"admin:secret"), "YWRtaW46c2VjcmV0");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn ssh_commands_quote_every_word_and_check_host_keys() {
        let request = ExecRequest {
            program: "dpkg-query".into(),
            args: vec!["-W".into(), "it's; rm -rf /".into()],
            stdin: vec![],
            timeout: Duration::from_secs(1),
        };
        let args = ssh_args(
            "10.0.0.5",
            Some(2222),
            Some("root"),
            Some("/k".into()),
            Some("/kh".into()),
            &request,
        );
        assert!(args.contains(&"StrictHostKeyChecking=yes".to_string()));
        assert!(args.contains(&"UserKnownHostsFile=/kh".to_string()));
        assert_eq!(
            args.last().unwrap(),
            r"'dpkg-query' '-W' 'it'\''s; rm -rf /'"
        );
        let at = args.iter().position(|a| a == "10.0.0.5").unwrap();
        assert_eq!(args[at + 1], "--");
    }
}
