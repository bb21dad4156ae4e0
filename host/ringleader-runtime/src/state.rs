//! Per-call store data: the sandbox a plugin call runs in.
//!
//! A fresh [`HostState`] (and a fresh `Store`) is made for every call: nothing a plugin
//! does in one call survives into the next but what it wrote through `kv`.

use crate::grants::Access;
use crate::http_client::HttpClient;
use crate::limits;
use crate::services::Services;
use bytes::Bytes;
use ringleader_types::Device;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The store data of one plugin call.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) scope: CallScope,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
}

/// What the capabilities of one call may reach, and what the call has used.
pub(crate) struct CallScope {
    pub(crate) plugin: Arc<str>,
    pub(crate) access: Arc<Access>,
    /// The device the call is about; `None` for patch sources.
    pub(crate) device: Option<Device>,
    pub(crate) services: Services,
    pub(crate) http: HttpClient,
    pub(crate) deadline: Instant,
    /// The plugin's `limits.timeout`, for messages.
    pub(crate) timeout: std::time::Duration,
    pub(crate) hostcall_limit: u64,
    pub(crate) hostcalls: u64,
    /// Set when a host call stopped the guest, so the trap can be named.
    pub(crate) fault: Option<Fault>,
    /// The plugin's count of lines logged at `warn` or `error` ([`crate::Plugin::warnings_logged`]).
    pub(crate) warnings: Arc<std::sync::atomic::AtomicU64>,
}

/// Why the host stopped a guest from inside a host call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    HostcallBudget,
    /// A host call (a sleep) would have run past the call's deadline.
    Deadline,
}

impl CallScope {
    /// Spends one host call; stops the guest when the budget is gone.
    pub(crate) fn charge(&mut self) -> wasmtime::Result<()> {
        self.hostcalls += 1;
        if self.hostcalls > self.hostcall_limit {
            self.fault = Some(Fault::HostcallBudget);
            return Err(wasmtime::format_err!("host-call budget exhausted"));
        }
        Ok(())
    }

    /// Time left before the call's deadline.
    pub(crate) fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl HostState {
    pub(crate) fn new(scope: CallScope, memory_limit: u64) -> HostState {
        let stdout = Capture::default();
        let stderr = Capture::default();
        let clock = ClockForWasi(scope.services.clock.clone());
        // WASI with nothing in it: no environment, no arguments, no preopened
        // directories, no network (the default socket check denies every address),
        // output captured and bounded, and the host's (maybe virtual) wall clock.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .wall_clock(clock)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits::MAX_RESOURCES);
        HostState {
            wasi,
            table,
            limiter: Limiter {
                memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
                denied_memory: None,
            },
            scope,
            stdout,
            stderr,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The host clock, as WASI's wall clock: plugins see one time, real or virtual.
struct ClockForWasi(Arc<dyn crate::services::HostClock>);

impl wasmtime_wasi::HostWallClock for ClockForWasi {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        self.0.now_duration()
    }
}

/// Memory and table caps of one instance. Refuses growth past the cap (the guest sees
/// an allocation failure it may handle) and remembers it, so a resulting trap can be
/// reported as the memory limit rather than as a bare `unreachable`.
pub(crate) struct Limiter {
    memory_limit: usize,
    pub(crate) denied_memory: Option<usize>,
}

impl Limiter {
    pub(crate) fn memory_limit(&self) -> usize {
        self.memory_limit
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.denied_memory = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= limits::MAX_TABLE_ELEMENTS)
    }
}

/// A bounded sink for a plugin's stdout or stderr: keeps the first
/// [`limits::MAX_CAPTURED_OUTPUT`] bytes and counts the rest. Writing never fails, so
/// a chatty guest is never stopped by its own `println!`.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Captured>>);

#[derive(Default)]
pub(crate) struct Captured {
    pub(crate) bytes: Vec<u8>,
    pub(crate) dropped: usize,
}

impl Capture {
    fn push(&self, data: &[u8]) {
        if let Ok(mut c) = self.0.lock() {
            let room = limits::MAX_CAPTURED_OUTPUT.saturating_sub(c.bytes.len());
            let keep = data.len().min(room);
            c.bytes.extend_from_slice(&data[..keep]);
            c.dropped += data.len() - keep;
        }
    }

    /// Takes what was captured.
    pub(crate) fn take(&self) -> Captured {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
