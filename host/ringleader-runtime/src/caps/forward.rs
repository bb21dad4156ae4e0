//! The host imports of every WIT version after 0.1.1 (`ringleader:plugin@0.2.0`,
//! `@0.3.0`): the interfaces are 0.1.1's, word for word, but `bindgen!` gives each
//! version its own Rust types, so each function here converts its arguments and calls
//! the 0.1.1 implementation (one implementation of every capability, whichever version
//! a plugin was built against). One macro writes the forwarding for each version.

use crate::bindings::{PluginError, host, host2, host3};
use crate::state::HostState;

/// The host traits of the bindings module `$v` (`host2`, `host3`), forwarded to
/// 0.1.1's implementations.
macro_rules! forward {
    ($v:ident) => {
        impl From<$v::types::PluginError> for PluginError {
            fn from(e: $v::types::PluginError) -> Self {
                match e {
                    $v::types::PluginError::Transient(m) => PluginError::Transient(m),
                    $v::types::PluginError::Permanent(m) => PluginError::Permanent(m),
                    $v::types::PluginError::Denied(m) => PluginError::Denied(m),
                }
            }
        }

        impl From<PluginError> for $v::types::PluginError {
            fn from(e: PluginError) -> Self {
                match e {
                    PluginError::Transient(m) => $v::types::PluginError::Transient(m),
                    PluginError::Permanent(m) => $v::types::PluginError::Permanent(m),
                    PluginError::Denied(m) => $v::types::PluginError::Denied(m),
                }
            }
        }

        impl $v::types::Host for HostState {}

        impl $v::log::Host for HostState {
            async fn log(
                &mut self,
                level: $v::log::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                use host::log::Level as L;
                use $v::log::Level as L2;
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

        impl $v::http::Host for HostState {
            async fn send(
                &mut self,
                req: $v::http::Request,
            ) -> wasmtime::Result<Result<$v::http::Response, $v::types::PluginError>> {
                use host::http::Method as M;
                use $v::http::Method as M2;
                let $v::http::Request {
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
                        $v::http::Response {
                            status,
                            headers,
                            body,
                            truncated,
                        }
                    })
                    .map_err(Into::into))
            }
        }

        impl $v::exec::Host for HostState {
            async fn run(
                &mut self,
                cmd: $v::exec::Command,
            ) -> wasmtime::Result<Result<$v::exec::Output, $v::types::PluginError>> {
                let $v::exec::Command {
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
                        $v::exec::Output {
                            exit_code,
                            stdout,
                            stderr,
                        }
                    })
                    .map_err(Into::into))
            }
        }

        impl $v::kv::Host for HostState {
            async fn get(
                &mut self,
                key: String,
            ) -> wasmtime::Result<Result<Option<Vec<u8>>, $v::types::PluginError>> {
                Ok(host::kv::Host::get(self, key).await?.map_err(Into::into))
            }

            async fn set(
                &mut self,
                key: String,
                value: Vec<u8>,
            ) -> wasmtime::Result<Result<(), $v::types::PluginError>> {
                Ok(host::kv::Host::set(self, key, value)
                    .await?
                    .map_err(Into::into))
            }

            async fn delete(
                &mut self,
                key: String,
            ) -> wasmtime::Result<Result<(), $v::types::PluginError>> {
                Ok(host::kv::Host::delete(self, key).await?.map_err(Into::into))
            }
        }

        impl $v::settings::Host for HostState {
            async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                host::settings::Host::get(self, key).await
            }
        }

        impl $v::clock::Host for HostState {
            async fn now(&mut self) -> wasmtime::Result<$v::clock::Timestamp> {
                host::clock::Host::now(self).await
            }

            async fn sleep(&mut self, milliseconds: u32) -> wasmtime::Result<()> {
                host::clock::Host::sleep(self, milliseconds).await
            }
        }
    };
}

forward!(host2);
forward!(host3);
