//! The host side of the `http` capability: one blocking HTTP client, used from tokio's
//! blocking pool. Redirects are never followed (each hop must pass the allowlist), and
//! every size and time is capped.

use crate::limits;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP request a plugin asked for, already checked against its grants.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Certificates (PEM file) to check the server against instead of the public
    /// web's roots: the operator's, for the device the request goes to.
    pub ca: Option<PathBuf>,
}

/// The response given back to the plugin.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// Why a request failed, split the way the plugin's error is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpFailure {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// Where a URL points, for the allowlist check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Parses an absolute `http://` or `https://` URL into the host and port it reaches.
pub fn target_of(url: &str) -> Result<Target, HttpFailure> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| HttpFailure::Permanent(format!("`{url}` is not a URL: {e}")))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => {
            return Err(HttpFailure::Permanent(format!(
                "`{url}` is not an absolute http:// or https:// URL"
            )));
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| HttpFailure::Permanent(format!("`{url}` has no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(default_port),
    })
}

/// The HTTP client shared by all plugins of a runtime: one agent for the public web's
/// roots, and one per file of certificates an operator gave for devices.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    with_roots: Arc<Mutex<HashMap<PathBuf, ureq::Agent>>>,
}

fn agent(roots: Option<ureq::tls::RootCerts>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(limits::DEFAULT_HTTP_TIMEOUT))
        .user_agent(concat!("ringleader/", env!("CARGO_PKG_VERSION")));
    if let Some(roots) = roots {
        config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
    }
    ureq::Agent::new_with_config(config.build())
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient {
            agent: agent(None),
            with_roots: Arc::default(),
        }
    }
}

/// The certificates of a PEM file, as roots to trust.
fn roots_from(path: &Path) -> Result<ureq::tls::RootCerts, HttpFailure> {
    let pem = std::fs::read(path).map_err(|e| {
        HttpFailure::Permanent(format!(
            "cannot read the certificates in {} (ca_file of the device's credentials): {e}",
            path.display()
        ))
    })?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(HttpFailure::Permanent(format!(
            "{} (ca_file of the device's credentials) holds no PEM certificate",
            path.display()
        )));
    }
    Ok(ureq::tls::RootCerts::Specific(Arc::new(certs)))
}

impl HttpClient {
    /// The agent for `ca` (made once per file and kept; a changed file needs a restart).
    fn agent_for(&self, ca: Option<&Path>) -> Result<ureq::Agent, HttpFailure> {
        let Some(ca) = ca else {
            return Ok(self.agent.clone());
        };
        let mut agents = self.with_roots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = agents.get(ca) {
            return Ok(agent.clone());
        }
        let made = agent(Some(roots_from(ca)?));
        agents.insert(ca.to_owned(), made.clone());
        Ok(made)
    }

    /// Sends `request` on tokio's blocking pool and reads at most
    /// [`limits::MAX_HTTP_BODY`] bytes of the response body.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let agent = self.agent_for(request.ca.as_deref())?;
        tokio::task::spawn_blocking(move || send_blocking(&agent, request))
            .await
            .map_err(|e| HttpFailure::Transient(format!("http worker failed: {e}")))?
    }
}

fn send_blocking(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let mut builder = ureq::http::Request::builder()
        .method(request.method)
        .uri(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let http_request = builder
        .body(request.body)
        .map_err(|e| HttpFailure::Permanent(format!("invalid request: {e}")))?;
    let http_request = agent
        .configure_request(http_request)
        .timeout_global(Some(request.timeout))
        .build();
    let response = agent.run(http_request).map_err(|e| match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => HttpFailure::Permanent(e.to_string()),
        e => HttpFailure::Transient(e.to_string()),
    })?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limits::MAX_HTTP_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| HttpFailure::Transient(format!("failed to read the response body: {e}")))?;
    let truncated = body.len() > limits::MAX_HTTP_BODY;
    body.truncate(limits::MAX_HTTP_BODY);
    Ok(HttpResponse {
        status,
        headers,
        body,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_with_default_ports() {
        assert_eq!(
            target_of("https://BMC.example/redfish/v1").unwrap(),
            Target {
                host: "bmc.example".into(),
                port: 443
            }
        );
        assert_eq!(target_of("http://10.0.0.5:8000/x").unwrap().port, 8000);
        assert_eq!(target_of("http://[::1]:8000/").unwrap().host, "::1");
        assert!(target_of("ftp://x/").is_err());
        assert!(target_of("/relative").is_err());
        assert!(target_of("not a url").is_err());
    }
}
