//! The host imports: one `impl` per capability interface, all on [`HostState`]
//! (0.1.1's; those of later versions call them, in `forward`).
//!
//! Every import first spends one unit of the call's host-call budget, then asks
//! [`Access`](crate::grants::Access) whether the plugin may do what it asks. A refusal
//! is a `denied` error returned to the plugin plus a `tracing` warning naming plugin,
//! capability and target; it is never a trap.

use crate::bindings::PluginError;
use crate::bindings::host::{clock, exec, http, kv, log, settings, types};
use crate::grants::Denial;
use crate::http_client::{self, HttpFailure, HttpRequest};
use crate::limits;
use crate::services::{ExecError, ExecRequest, KvError};
use crate::state::{CallScope, Fault, HostState};
use std::time::Duration;

/// Logs a refusal and turns it into the plugin's `denied` error.
fn deny(scope: &CallScope, capability: &str, target: &str, denial: Denial) -> PluginError {
    tracing::warn!(
        plugin = %scope.plugin,
        capability,
        target,
        "plugin denied: {}",
        denial.0
    );
    PluginError::Denied(denial.0)
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [truncated]");
    }
    text
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.scope.charge()?;
        let message = truncate(message, limits::MAX_LOG_MESSAGE);
        let plugin = &*self.scope.plugin;
        if matches!(level, log::Level::Warn | log::Level::Error) {
            self.scope
                .warnings
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match level {
            log::Level::Trace => tracing::trace!(plugin = %plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin = %plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin = %plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin = %plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin = %plugin, "{message}"),
        }
        Ok(())
    }
}

impl http::Host for HostState {
    async fn send(
        &mut self,
        req: http::Request,
    ) -> wasmtime::Result<Result<http::Response, PluginError>> {
        self.scope.charge()?;
        let scope = &self.scope;
        if http_client::is_file_url(&req.url) {
            return Ok(read_file_url(scope, req).await);
        }
        let target = match http_client::target_of(&req.url) {
            Ok(t) => t,
            Err(e) => return Ok(Err(PluginError::Permanent(e.to_string()))),
        };
        let device_host = scope.device.as_ref().map(|d| d.hostname.as_str());
        if let Err(denial) = scope.access.http(&target.host, target.port, device_host) {
            let where_to = format!("{}:{}", target.host, target.port);
            return Ok(Err(deny(scope, "http", &where_to, denial)));
        }
        if req.body.len() > limits::MAX_HTTP_REQUEST_BODY {
            return Ok(Err(PluginError::Permanent(format!(
                "request body of {} bytes is over the limit of {}",
                req.body.len(),
                limits::MAX_HTTP_REQUEST_BODY
            ))));
        }
        let asked = req.timeout_ms.map_or(limits::DEFAULT_HTTP_TIMEOUT, |ms| {
            Duration::from_millis(ms.into())
        });
        let timeout = asked
            .min(limits::DEFAULT_HTTP_TIMEOUT)
            .min(scope.remaining());
        let method = match req.method {
            http::Method::Get => "GET",
            http::Method::Head => "HEAD",
            http::Method::Post => "POST",
            http::Method::Put => "PUT",
            http::Method::Patch => "PATCH",
            http::Method::Delete => "DELETE",
        };
        // The operator's credentials for the device the call is about, never seen by
        // the plugin, replace any it set itself.
        // So do the certificates its HTTPS is checked against.
        let mut headers = req.headers;
        let mut ca = None;
        if let Some(device) = &scope.device
            && device.hostname.eq_ignore_ascii_case(&target.host)
        {
            if let Some(value) = scope.services.auth.authorization(device) {
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
                headers.push(("authorization".into(), value));
            }
            ca = scope.services.auth.tls_roots(device);
        }
        let mut request = HttpRequest {
            method,
            url: req.url,
            headers,
            body: req.body,
            timeout,
            ca,
            revalidate_for: None,
        };
        if request.revalidatable() {
            request.revalidate_for = Some(scope.plugin.to_string());
        }
        let result = scope.http.send(request).await;
        Ok(match result {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
                truncated: r.truncated,
            }),
            Err(HttpFailure::Transient(m)) => Err(PluginError::Transient(m)),
            Err(HttpFailure::Permanent(m)) => Err(PluginError::Permanent(m)),
        })
    }
}

/// A `file:///PATH` request: allowed only when the URL is exactly an operator's
/// setting that both the manifest and the grant name as `{setting:KEY}` in `http`
/// ([`Access::file_url`](crate::grants::Access::file_url)), and only as a `GET` or
/// `HEAD`; answered by [`HttpClient::read_file`](http_client::HttpClient::read_file).
async fn read_file_url(
    scope: &CallScope,
    req: http::Request,
) -> Result<http::Response, PluginError> {
    let shown = http_client::shown_url(&req.url);
    if let Err(denial) = scope.access.file_url(&req.url) {
        return Err(deny(scope, "http", &shown, denial));
    }
    let head = match req.method {
        http::Method::Get => false,
        http::Method::Head => true,
        _ => {
            return Err(PluginError::Permanent(format!(
                "{shown}: a file:// URL is only read (GET or HEAD)"
            )));
        }
    };
    match scope.http.read_file(&scope.plugin, &req.url, head).await {
        Ok(r) => Ok(http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
            truncated: r.truncated,
        }),
        Err(HttpFailure::Transient(m)) => Err(PluginError::Transient(m)),
        Err(HttpFailure::Permanent(m)) => Err(PluginError::Permanent(m)),
    }
}

impl exec::Host for HostState {
    async fn run(
        &mut self,
        cmd: exec::Command,
    ) -> wasmtime::Result<Result<exec::Output, PluginError>> {
        self.scope.charge()?;
        let scope = &self.scope;
        let Some(device) = &scope.device else {
            let denial = Denial("exec needs a device, and this call is about none".into());
            return Ok(Err(deny(scope, "exec", &cmd.program, denial)));
        };
        if let Err(denial) = scope.access.exec(&cmd.program) {
            return Ok(Err(deny(scope, "exec", &cmd.program, denial)));
        }
        if cmd.stdin.len() > limits::MAX_EXEC_STDIN {
            return Ok(Err(PluginError::Permanent(format!(
                "stdin of {} bytes is over the limit of {}",
                cmd.stdin.len(),
                limits::MAX_EXEC_STDIN
            ))));
        }
        let asked = cmd.timeout_ms.map_or(limits::DEFAULT_EXEC_TIMEOUT, |ms| {
            Duration::from_millis(ms.into())
        });
        let request = ExecRequest {
            program: cmd.program,
            args: cmd.args,
            stdin: cmd.stdin,
            timeout: asked.min(scope.remaining()),
        };
        Ok(match scope.services.exec.run(device, request).await {
            Ok(out) => Ok(exec::Output {
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Err(ExecError::Transient(m)) => Err(PluginError::Transient(m)),
            Err(ExecError::Permanent(m)) => Err(PluginError::Permanent(m)),
        })
    }
}

fn kv_error(e: KvError) -> PluginError {
    match e {
        KvError::Limit(m) => PluginError::Permanent(m),
        KvError::Store(m) => PluginError::Transient(m),
    }
}

impl HostState {
    fn kv_allowed(&self, key: &str) -> Result<(), PluginError> {
        self.scope
            .access
            .kv()
            .map_err(|denial| deny(&self.scope, "kv", key, denial))
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, PluginError>> {
        self.scope.charge()?;
        if let Err(e) = self.kv_allowed(&key) {
            return Ok(Err(e));
        }
        let scope = &self.scope;
        Ok(scope.services.kv.get(&scope.plugin, &key).map_err(kv_error))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        self.scope.charge()?;
        if let Err(e) = self.kv_allowed(&key) {
            return Ok(Err(e));
        }
        let scope = &self.scope;
        Ok(scope
            .services
            .kv
            .set(&scope.plugin, &key, &value)
            .map_err(kv_error))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), PluginError>> {
        self.scope.charge()?;
        if let Err(e) = self.kv_allowed(&key) {
            return Ok(Err(e));
        }
        let scope = &self.scope;
        Ok(scope
            .services
            .kv
            .delete(&scope.plugin, &key)
            .map_err(kv_error))
    }
}

impl settings::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.scope.charge()?;
        Ok(self.scope.access.setting(&key).map(str::to_string))
    }
}

impl clock::Host for HostState {
    async fn now(&mut self) -> wasmtime::Result<clock::Timestamp> {
        self.scope.charge()?;
        Ok(self.scope.services.clock.now())
    }

    async fn sleep(&mut self, milliseconds: u32) -> wasmtime::Result<()> {
        self.scope.charge()?;
        let wanted = Duration::from_millis(milliseconds.into()).min(limits::MAX_SLEEP);
        let remaining = self.scope.remaining();
        if wanted > remaining {
            // Sleeping past the deadline can only end in a timeout: end it now.
            self.scope.fault = Some(Fault::Deadline);
            return Err(wasmtime::format_err!("sleep past the call's deadline"));
        }
        self.scope.services.clock.sleep(wanted).await;
        Ok(())
    }
}

mod forward;

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("ééé".into(), 3), "é [truncated]");
    }
}
