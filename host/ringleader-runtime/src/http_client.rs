//! The host side of the `http` capability: one blocking HTTP client, used from tokio's
//! blocking pool. Redirects are never followed (each hop must pass the allowlist), and
//! every size and time is capped.
//!
//! Plain GETs are revalidated: a response with an `ETag` or `Last-Modified` is kept
//! (per plugin, URL and request headers, [`MAX_KEPT_BYTES`] in all), and the next
//! same request asks the server with `If-None-Match` / `If-Modified-Since`; a `304`
//! gives the plugin the kept `200` again. A source plugin's `discover` runs once per
//! 5,000 devices and reads the same catalog each time: it is downloaded once.
//!
//! A `file:///PATH` URL (only one the operator set as a setting the plugin's manifest
//! and grant name, checked by `grants::Access::file_url` before it gets here) is read
//! from this machine's disk, at most [`limits::MAX_HTTP_BODY`] bytes, and answered like
//! an HTTP `200` with an `ETag` (inode, size and modification time, as web servers make
//! them) and a `Last-Modified`; while the file keeps them, a read again is answered
//! from what was kept, without reading the file ([`HttpClient::read_file`]): what a
//! `304` is for an HTTP feed.

use crate::limits;
use std::collections::{HashMap, VecDeque};
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
    /// Who asks (the plugin's name), when the response may be kept and revalidated:
    /// a GET without a body, credentials or conditions of its own (see
    /// [`HttpRequest::revalidatable`]).
    pub revalidate_for: Option<String>,
}

impl HttpRequest {
    /// Whether this request may be answered from a kept response after a `304`: a GET
    /// with no body, no credentials and no conditions or ranges of the plugin's own.
    pub fn revalidatable(&self) -> bool {
        const OWN: &[&str] = &[
            "authorization",
            "proxy-authorization",
            "x-auth-token",
            "cookie",
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            "range",
            "cache-control",
        ];
        self.method == "GET"
            && self.body.is_empty()
            && !self
                .headers
                .iter()
                .any(|(name, _)| OWN.iter().any(|own| name.eq_ignore_ascii_case(own)))
    }

    /// What a kept response is found by: who asked, the URL, and the headers.
    fn kept_key(&self) -> Option<String> {
        let plugin = self.revalidate_for.as_ref()?;
        let mut key = format!("{plugin}\n{}", self.url);
        for (name, value) in &self.headers {
            key.push_str(&format!("\n{}: {value}", name.to_ascii_lowercase()));
        }
        Some(key)
    }
}

/// Bytes kept for revalidation (bodies, headers and keys), for all plugins together;
/// the least recently used are let go first.
pub const MAX_KEPT_BYTES: usize = 64 << 20;
/// Responses kept, at most: many tiny ones (a plugin polling ever new URLs) are let go
/// like large ones.
pub const MAX_KEPT_RESPONSES: usize = 1024;

/// A response kept for revalidation, with its validators.
#[derive(Debug)]
struct Kept {
    etag: Option<String>,
    last_modified: Option<String>,
    response: HttpResponse,
    /// What it counts for against [`MAX_KEPT_BYTES`].
    size: usize,
}

/// The kept responses, least recently used first.
#[derive(Debug, Default)]
struct KeptResponses {
    by_key: HashMap<String, Kept>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Bytes a kept response counts for: its body, headers and key, and a little for the
/// bookkeeping.
fn kept_size(key: &str, response: &HttpResponse) -> usize {
    let headers: usize = response
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    response.body.len() + headers + 2 * key.len() + 128
}

impl KeptResponses {
    fn remove(&mut self, key: &str) {
        if let Some(kept) = self.by_key.remove(key) {
            self.bytes -= kept.size;
            self.order.retain(|k| k != key);
        }
    }

    /// A `304` confirmed the response kept under `key`: it is used again, so it is the
    /// last to be let go.
    fn used(&mut self, key: &str) {
        if let Some(at) = self.order.iter().position(|k| k == key)
            && let Some(key) = self.order.remove(at)
        {
            self.order.push_back(key);
        }
    }

    /// Keeps `response` when it can be revalidated and fits.
    fn keep(&mut self, key: String, response: &HttpResponse) {
        self.remove(&key);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let etag = header("etag");
        let last_modified = header("last-modified");
        let no_store =
            header("cache-control").is_some_and(|c| c.to_ascii_lowercase().contains("no-store"));
        if response.status != 200
            || response.truncated
            || no_store
            || (etag.is_none() && last_modified.is_none())
            || response.body.len() > MAX_KEPT_BYTES / 4
        {
            return;
        }
        let size = kept_size(&key, response);
        while self.bytes + size > MAX_KEPT_BYTES || self.by_key.len() >= MAX_KEPT_RESPONSES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(kept) = self.by_key.remove(&oldest) {
                self.bytes -= kept.size;
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.by_key.insert(
            key,
            Kept {
                etag,
                last_modified,
                response: response.clone(),
                size,
            },
        );
    }
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

impl HttpFailure {
    /// The same failure, its message after `what` (`GET http://...: ...`).
    fn about(self, what: &str) -> HttpFailure {
        match self {
            HttpFailure::Transient(m) => HttpFailure::Transient(format!("{what}: {m}")),
            HttpFailure::Permanent(m) => HttpFailure::Permanent(format!("{what}: {m}")),
        }
    }
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
        .map_err(|e| HttpFailure::Permanent(format!("`{}` is not a URL: {e}", shown_url(url))))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => {
            return Err(HttpFailure::Permanent(format!(
                "`{}` is not an absolute http:// or https:// URL",
                shown_url(url)
            )));
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| HttpFailure::Permanent(format!("`{}` has no host", shown_url(url))))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(default_port),
    })
}

/// `url` as errors and logs show it: without credentials (`user:password@`) and with
/// the query and fragment cut to `?…`, where feeds and BMCs are given tokens.
pub fn shown_url(url: &str) -> String {
    let (rest, cut) = match url.find(['?', '#']) {
        Some(at) => (&url[..at], "?…"),
        None => (url, ""),
    };
    let (scheme, after) = match rest.split_once("://") {
        Some((scheme, after)) => (format!("{scheme}://"), after),
        None => (String::new(), rest),
    };
    let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}{host}{path}{cut}")
}

/// Whether `url` is a `file:` URL (its scheme in any case).
pub fn is_file_url(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
}

/// The path of a `file:///PATH` URL: absolute, `%XX` escapes decoded. A host
/// (`file://server/...`), a relative path, a query or fragment, or an escape that is
/// not UTF-8 or stands for NUL is refused.
pub fn file_url_path(url: &str) -> Result<PathBuf, String> {
    let shown = ringleader_diag::escape(url);
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("file://"))
        .map(|_| &url[7..])
        .ok_or_else(|| format!("`{shown}` is not a file:// URL"))?;
    if !rest.starts_with('/') {
        return Err(format!(
            "`{shown}` is not a file:/// URL: a file URL names a path on this machine (three slashes, then the absolute path), no host"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "`{shown}` has a query or fragment, which a file has not (write `?` as `%3F`, `#` as `%23`)"
        ));
    }
    let mut bytes = Vec::with_capacity(rest.len());
    let mut input = rest.bytes();
    while let Some(b) = input.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = [input.next(), input.next()];
        let value = match hex {
            [Some(h), Some(l)] => std::str::from_utf8(&[h, l])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match value {
            Some(v) if v != 0 => bytes.push(v),
            _ => {
                return Err(format!(
                    "`{shown}` has an escape that is not `%XX` (or is `%00`)"
                ));
            }
        }
    }
    let path = String::from_utf8(bytes)
        .map_err(|_| format!("`{shown}` has escapes that are not UTF-8"))?;
    Ok(PathBuf::from(path))
}

/// A file's validators: an `ETag` from its inode, size and modification time (as web
/// servers make them), and its modification time as an HTTP date.
fn file_validators(meta: &std::fs::Metadata) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let etag = format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    (etag, http_date(meta.mtime()))
}

/// `seconds` since the epoch as an HTTP date (`Tue, 03 Nov 2026 14:30:00 GMT`).
fn http_date(seconds: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads the file at `path` for a `file://` request: its validators, and its content
/// (at most [`limits::MAX_HTTP_BODY`] bytes) unless `unchanged` says the content kept
/// under the same `ETag` serves, or `head`.
fn read_file_blocking(
    path: &Path,
    head: bool,
    unchanged: Option<&str>,
) -> Result<(Option<HttpResponse>, String), HttpFailure> {
    let cannot =
        |e: std::io::Error| HttpFailure::Permanent(format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(HttpFailure::Permanent(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let (etag, last_modified) = file_validators(&meta);
    if unchanged == Some(etag.as_str()) && !head {
        return Ok((None, etag));
    }
    let mut body = Vec::new();
    if !head {
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(limits::MAX_HTTP_BODY as u64 + 1)
                    .read_to_end(&mut body)
            })
            .map_err(cannot)?;
    }
    let truncated = body.len() > limits::MAX_HTTP_BODY;
    body.truncate(limits::MAX_HTTP_BODY);
    let response = HttpResponse {
        status: 200,
        headers: vec![
            ("content-length".into(), meta.len().to_string()),
            ("etag".into(), etag.clone()),
            ("last-modified".into(), last_modified),
        ],
        body,
        truncated,
    };
    Ok((Some(response), etag))
}

/// The HTTP client shared by all plugins of a runtime: one agent for the public web's
/// roots, and one per file of certificates an operator gave for devices.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    /// Per file of certificates: the agent, and the file's stamp when it was read.
    with_roots: Arc<Mutex<HashMap<PathBuf, (Stamp, ureq::Agent)>>>,
    kept: Arc<Mutex<KeptResponses>>,
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
            kept: Arc::default(),
        }
    }
}

/// A file's identity and last change (inode, change time, size): a file of
/// certificates replaced or rewritten (by a renewal, say) is read again.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.ctime(), m.ctime_nsec(), m.len()))
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
    /// The agent for `ca`: made once per file, and again when the file changed.
    fn agent_for(&self, ca: Option<&Path>) -> Result<ureq::Agent, HttpFailure> {
        let Some(ca) = ca else {
            return Ok(self.agent.clone());
        };
        let now = stamp(ca);
        let mut agents = self.with_roots.lock().unwrap_or_else(|e| e.into_inner());
        let kept = agents.get(ca);
        if let Some((read, agent)) = kept
            && *read == now
        {
            return Ok(agent.clone());
        }
        match roots_from(ca) {
            Ok(roots) => {
                let made = agent(Some(roots));
                agents.insert(ca.to_owned(), (now, made.clone()));
                Ok(made)
            }
            // Being replaced (gone or half written for a moment): the certificates
            // read before serve on, until the file reads well again.
            Err(e) => match kept {
                Some((_, agent)) => {
                    tracing::warn!("{e}; using the certificates read from it before");
                    Ok(agent.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Sends `request` on tokio's blocking pool and reads at most
    /// [`limits::MAX_HTTP_BODY`] bytes of the response body.
    ///
    /// Every failure names the method and the URL ([`shown_url`]: without credentials
    /// or query).
    pub async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let agent = self
            .agent_for(request.ca.as_deref())
            .map_err(|e| e.about(&format!("{} {}", request.method, shown_url(&request.url))))?;
        let key = request.kept_key();
        // What a 304 stands for: the response kept when the request was made.
        let mut kept_before = None;
        if let Some(key) = &key {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(kept) = kept.by_key.get(key) {
                if let Some(etag) = &kept.etag {
                    request.headers.push(("if-none-match".into(), etag.clone()));
                }
                if let Some(date) = &kept.last_modified {
                    request
                        .headers
                        .push(("if-modified-since".into(), date.clone()));
                }
                kept_before = Some(kept.response.clone());
            }
        }
        let about = format!("{} {}", request.method, shown_url(&request.url));
        let response = tokio::task::spawn_blocking(move || send_blocking(&agent, request))
            .await
            .map_err(|e| HttpFailure::Transient(format!("{about}: http worker failed: {e}")))??;
        let Some(key) = key else {
            return Ok(response);
        };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if response.status == 304
            && let Some(before) = kept_before
        {
            kept.used(&key);
            return Ok(before);
        }
        kept.keep(key, &response);
        Ok(response)
    }
}

impl HttpClient {
    /// Answers a `GET` (or, `head`, a `HEAD`) of `file:///PATH` URL `url` for
    /// `plugin`, whose access to it is already checked: the file's content as a `200`,
    /// kept for `plugin` beside the HTTP responses. While the file's `ETag` stays what
    /// it was (the same inode, size and modification time), the kept response is
    /// given again without reading the file.
    pub async fn read_file(
        &self,
        plugin: &str,
        url: &str,
        head: bool,
    ) -> Result<HttpResponse, HttpFailure> {
        let method = if head { "HEAD" } else { "GET" };
        let about = format!("{method} {}", shown_url(url));
        let path =
            file_url_path(url).map_err(|e| HttpFailure::Permanent(format!("{about}: {e}")))?;
        let key = format!("{plugin}\nfile\n{url}");
        let kept_before = {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.by_key
                .get(&key)
                .and_then(|k| Some((k.etag.clone()?, k.response.clone())))
        };
        let unchanged = kept_before.as_ref().map(|(etag, _)| etag.clone());
        let (read, etag) = tokio::task::spawn_blocking(move || {
            read_file_blocking(&path, head, unchanged.as_deref())
        })
        .await
        .map_err(|e| HttpFailure::Transient(format!("{about}: file reader failed: {e}")))?
        .map_err(|e| e.about(&about))?;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match read {
            Some(response) => {
                if !head {
                    kept.keep(key, &response);
                }
                Ok(response)
            }
            None => {
                tracing::debug!(
                    plugin,
                    url = %shown_url(url),
                    etag,
                    "file unchanged since it was read: answered from what was kept"
                );
                kept.used(&key);
                match kept_before {
                    Some((_, response)) => Ok(response),
                    None => Err(HttpFailure::Transient(format!(
                        "{about}: what was kept of it was let go; read it again"
                    ))),
                }
            }
        }
    }
}

fn send_blocking(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let about = format!("{} {}", request.method, shown_url(&request.url));
    send_unnamed(agent, request).map_err(|e| e.about(&about))
}

fn send_unnamed(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
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

    #[test]
    fn every_failure_names_the_url_without_its_credentials_or_query() {
        // A port nothing listens on: connection refused.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut request = get(&[]);
        request.url = format!("http://127.0.0.1:{port}/feeds/catalog.xml?token=s3cret#part");
        let err = send_blocking(&agent(None), request.clone()).unwrap_err();
        let HttpFailure::Transient(message) = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.starts_with(&format!(
                "GET http://127.0.0.1:{port}/feeds/catalog.xml?…: "
            )),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");

        request.url = format!("http://feeder:pa55@127.0.0.1:{port}/x?key=k3y");
        let message = send_blocking(&agent(None), request)
            .unwrap_err()
            .to_string();
        assert!(
            !message.contains("pa55") && !message.contains("k3y"),
            "{message}"
        );
        assert!(
            message.contains(&format!("http://127.0.0.1:{port}/x")),
            "{message}"
        );
        assert_eq!(
            shown_url("https://u:p@host.example:8443/a/b?x=1"),
            "https://host.example:8443/a/b?…"
        );
        assert_eq!(shown_url("http://h/p"), "http://h/p");
        assert_eq!(shown_url("not a url?q"), "not a url?…");
    }

    fn get(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET",
            url: "http://feeds.example/catalog.xml".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            timeout: Duration::from_secs(1),
            ca: None,
            revalidate_for: Some("source".into()),
        }
    }

    #[test]
    fn only_plain_gets_are_revalidated() {
        assert!(get(&[("Accept", "application/xml")]).revalidatable());
        // Credentials (the plugin's, or the operator's the host added) and the
        // plugin's own conditions or ranges: sent as they are, never answered from
        // what was kept.
        assert!(!get(&[("Authorization", "Basic eDp5")]).revalidatable());
        assert!(!get(&[("if-none-match", "\"1\"")]).revalidatable());
        assert!(!get(&[("Range", "bytes=0-9")]).revalidatable());
        let mut post = get(&[]);
        post.method = "POST";
        assert!(!post.revalidatable());
        let mut with_body = get(&[]);
        with_body.body = b"x".to_vec();
        assert!(!with_body.revalidatable());
        // Another plugin, or other headers, is another response.
        let mut other = get(&[]);
        other.revalidate_for = Some("other".into());
        assert_ne!(get(&[]).kept_key(), other.kept_key());
        assert_ne!(get(&[]).kept_key(), get(&[("Accept", "x")]).kept_key());
    }

    fn response(status: u16, headers: &[(&str, &str)], size: usize) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![b'x'; size],
            truncated: false,
        }
    }

    #[test]
    fn responses_are_kept_when_they_can_be_revalidated_and_fit() {
        let mut kept = KeptResponses::default();
        kept.keep("a".into(), &response(200, &[("ETag", "\"1\"")], 10));
        kept.keep("b".into(), &response(200, &[("Last-Modified", "Mon")], 10));
        assert_eq!(kept.by_key["a"].etag.as_deref(), Some("\"1\""));
        assert_eq!(kept.by_key["b"].last_modified.as_deref(), Some("Mon"));
        // Not kept: no validator, not a 200, no-store, truncated.
        kept.keep("c".into(), &response(200, &[], 10));
        kept.keep("d".into(), &response(404, &[("ETag", "\"1\"")], 10));
        let no_store = [("ETag", "\"1\""), ("Cache-Control", "private, no-store")];
        kept.keep("e".into(), &response(200, &no_store, 10));
        let mut cut = response(200, &[("ETag", "\"1\"")], 10);
        cut.truncated = true;
        kept.keep("f".into(), &cut);
        assert_eq!(kept.by_key.len(), 2);
        let counted: usize = kept.by_key.values().map(|k| k.size).sum();
        assert_eq!(kept.bytes, counted);
        // A response that can no longer be kept replaces the kept one.
        kept.keep("a".into(), &response(200, &[], 10));
        assert!(!kept.by_key.contains_key("a"));
        assert_eq!(kept.bytes, kept.by_key["b"].size);
        // Past the limit, the least recently used go first.
        // Four of these fit with 40 bytes to spare, not with "b" beside them.
        let overhead = kept_size("q1", &response(200, &[("ETag", "\"q\"")], 0));
        let quarter = MAX_KEPT_BYTES / 4 - 10 - overhead;
        for key in ["q1", "q2", "q3", "q4"] {
            kept.keep(key.into(), &response(200, &[("ETag", "\"q\"")], quarter));
        }
        assert!(!kept.by_key.contains_key("b"));
        assert!(kept.by_key.contains_key("q1") && kept.by_key.contains_key("q4"));
        kept.used("q1");
        kept.keep("b".into(), &response(200, &[("ETag", "\"1\"")], 1000));
        assert!(!kept.by_key.contains_key("q2"));
        assert_eq!(kept.order, ["q3", "q4", "q1", "b"]);
        assert!(kept.bytes <= MAX_KEPT_BYTES);
        // Larger than a quarter of the limit: never kept.
        let big = MAX_KEPT_BYTES / 4 + 1;
        kept.keep("big".into(), &response(200, &[("ETag", "\"1\"")], big));
        assert!(!kept.by_key.contains_key("big"));
        // Many small ones: at most MAX_KEPT_RESPONSES.
        for n in 0..2 * MAX_KEPT_RESPONSES {
            kept.keep(format!("s{n}"), &response(200, &[("ETag", "\"s\"")], 0));
        }
        assert_eq!(kept.by_key.len(), MAX_KEPT_RESPONSES);
        assert_eq!(kept.order.len(), MAX_KEPT_RESPONSES);
    }

    #[test]
    fn file_urls_are_absolute_paths_with_escapes_decoded() {
        assert_eq!(
            file_url_path("file:///srv/catalog%20v2.toml").unwrap(),
            PathBuf::from("/srv/catalog v2.toml")
        );
        assert_eq!(file_url_path("FILE:///x").unwrap(), PathBuf::from("/x"));
        for bad in [
            "file://server/share/c.toml",
            "file:relative.toml",
            "file:///c.toml?x=1",
            "file:///c%2",
            "file:///c%00",
            "file:///c%ff",
            "https://h/c.toml",
        ] {
            assert!(file_url_path(bad).is_err(), "{bad}");
        }
        assert!(is_file_url("File:///x") && !is_file_url("https://x"));
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_793_716_200), "Tue, 03 Nov 2026 14:30:00 GMT");
    }

    #[tokio::test]
    async fn a_file_is_read_again_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, b"one").unwrap();
        let url = format!("file://{}", path.display());
        let client = HttpClient::default();
        let first = client.read_file("p", &url, false).await.unwrap();
        assert_eq!((first.status, first.body.as_slice()), (200, &b"one"[..]));
        assert!(first.headers.iter().any(|(k, _)| k == "etag"));
        // Rewritten in place with the same size and modification time: not read
        // again (what a server's ETag says too); the kept content is given.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        let again = client.read_file("p", &url, false).await.unwrap();
        assert_eq!(again.body, b"one");
        // Another plugin has its own.
        let other = client.read_file("q", &url, false).await.unwrap();
        assert_eq!(other.body, b"two");
        // Changed: read as it is now.
        std::fs::write(&path, b"three").unwrap();
        let now = client.read_file("p", &url, false).await.unwrap();
        assert_eq!(now.body, b"three");
        let head = client.read_file("p", &url, true).await.unwrap();
        assert!(head.body.is_empty());
        // Gone, or not a file: permanent, naming it.
        let dir_url = format!("file://{}", dir.path().display());
        let err = client.read_file("p", &dir_url, false).await.unwrap_err();
        assert!(
            matches!(&err, HttpFailure::Permanent(m) if m.contains("not a regular file")),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = client.read_file("p", &url, false).await.unwrap_err();
        let HttpFailure::Permanent(message) = &err else {
            panic!("{err:?}")
        };
        assert!(
            message.starts_with(&format!("GET {url}: cannot read ")),
            "{message}"
        );
    }
}
