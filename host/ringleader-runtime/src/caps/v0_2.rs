//! The host imports of `ringleader:plugin@0.2.0`: the interfaces are 0.1.1's, word for
//! word, but `bindgen!` gives each version its own Rust types, so each function here
//! converts its arguments and calls the 0.1.1 implementation (one implementation of
//! every capability, whichever version a plugin was built against).

use crate::bindings::{PluginError, host, host2};
use crate::state::HostState;

impl From<host2::types::PluginError> for PluginError {
    fn from(e: host2::types::PluginError) -> Self {
        match e {
            host2::types::PluginError::Transient(m) => PluginError::Transient(m),
            host2::types::PluginError::Permanent(m) => PluginError::Permanent(m),
            host2::types::PluginError::Denied(m) => PluginError::Denied(m),
        }
    }
}

impl From<PluginError> for host2::types::PluginError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Transient(m) => host2::types::PluginError::Transient(m),
            PluginError::Permanent(m) => host2::types::PluginError::Permanent(m),
            PluginError::Denied(m) => host2::types::PluginError::Denied(m),
        }
    }
}

impl host2::types::Host for HostState {}

impl host2::log::Host for HostState {
    async fn log(&mut self, level: host2::log::Level, message: String) -> wasmtime::Result<()> {
        use host::log::Level as L;
        use host2::log::Level as L2;
        let level = match level {
            L2::Trace => L::Trace,
            L2::Debug => L::Debug,
            L2::Info => L::Info,
            L2::Warn => L::Warn,
            L2::Error => L::Error,
        };
        host::log::Host::log(self, level, message).await
    }
}

impl host2::http::Host for HostState {
    async fn send(
        &mut self,
        req: host2::http::Request,
    ) -> wasmtime::Result<Result<host2::http::Response, host2::types::PluginError>> {
        use host::http::Method as M;
        use host2::http::Method as M2;
        let host2::http::Request {
            method,
            url,
            headers,
            body,
            timeout_ms,
        } = req;
        let method = match method {
            M2::Get => M::Get,
            M2::Head => M::Head,
            M2::Post => M::Post,
            M2::Put => M::Put,
            M2::Patch => M::Patch,
            M2::Delete => M::Delete,
        };
        let req = host::http::Request {
            method,
            url,
            headers,
            body,
            timeout_ms,
        };
        Ok(host::http::Host::send(self, req)
            .await?
            .map(|r| {
                let host::http::Response {
                    status,
                    headers,
                    body,
                    truncated,
                } = r;
                host2::http::Response {
                    status,
                    headers,
                    body,
                    truncated,
                }
            })
            .map_err(Into::into))
    }
}

impl host2::exec::Host for HostState {
    async fn run(
        &mut self,
        cmd: host2::exec::Command,
    ) -> wasmtime::Result<Result<host2::exec::Output, host2::types::PluginError>> {
        let host2::exec::Command {
            program,
            args,
            stdin,
            timeout_ms,
        } = cmd;
        let cmd = host::exec::Command {
            program,
            args,
            stdin,
            timeout_ms,
        };
        Ok(host::exec::Host::run(self, cmd)
            .await?
            .map(|o| {
                let host::exec::Output {
                    exit_code,
                    stdout,
                    stderr,
                } = o;
                host2::exec::Output {
                    exit_code,
                    stdout,
                    stderr,
                }
            })
            .map_err(Into::into))
    }
}

impl host2::kv::Host for HostState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, host2::types::PluginError>> {
        Ok(host::kv::Host::get(self, key).await?.map_err(Into::into))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), host2::types::PluginError>> {
        Ok(host::kv::Host::set(self, key, value)
            .await?
            .map_err(Into::into))
    }

    async fn delete(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<(), host2::types::PluginError>> {
        Ok(host::kv::Host::delete(self, key).await?.map_err(Into::into))
    }
}

impl host2::settings::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host::settings::Host::get(self, key).await
    }
}

impl host2::clock::Host for HostState {
    async fn now(&mut self) -> wasmtime::Result<host2::clock::Timestamp> {
        host::clock::Host::now(self).await
    }

    async fn sleep(&mut self, milliseconds: u32) -> wasmtime::Result<()> {
        host::clock::Host::sleep(self, milliseconds).await
    }
}
