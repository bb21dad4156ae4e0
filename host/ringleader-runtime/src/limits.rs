//! Every limit the host puts on a plugin, in one place.
//!
//! A plugin is untrusted code: every size or count it controls has a cap here, with the
//! reason for its value. Per-plugin limits ([`Limits`]) may be set in the manifest's
//! `[limits]` table, within the `MAX_*` bounds; the rest are fixed.

use std::time::Duration;

/// Wall-clock deadline of one plugin call when the manifest sets none. Generous for an
/// OS package install; firmware plugins that wait on a BMC raise it in their manifest.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest deadline a manifest may ask for: a BMC can take most of an hour to flash
/// and reboot into new firmware; anything longer is a hang, not an install.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

/// How often the epoch ticks. Deadlines are counted in ticks, so this is the precision
/// of a deadline. Ticking is one atomic increment: 100 per second costs nothing.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Slack of the outer `tokio` timeout beyond the epoch deadline. The epoch stops a guest
/// that computes; the outer timeout stops one blocked in a host call, which epochs
/// cannot interrupt. The slack lets the epoch (clearer error) fire first when it can.
pub const TIMEOUT_GRACE: Duration = Duration::from_millis(500);

/// Linear memory of one plugin instance when the manifest sets none. Parsing a vendor
/// catalog of tens of thousands of entries fits easily.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// Most memory a manifest may ask for. Also the size of each slot in the pooling
/// allocator, which only reserves address space (nothing is committed until used).
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// Host calls (log, http, exec, kv, clock) one plugin call may make when the manifest
/// sets none. A firmware install polling its task every few seconds makes hundreds;
/// a guest calling the host in a tight loop is stopped long before it hurts.
pub const DEFAULT_HOSTCALLS: u64 = 10_000;

/// Most host calls a manifest may ask for per plugin call.
pub const MAX_HOSTCALLS: u64 = 1_000_000;

/// Entries in the host's resource table per instance (WASI streams and the like).
/// A plugin holds a handful; the cap stops one from making the host allocate without end.
pub const MAX_RESOURCES: usize = 1_000;

/// Elements in a plugin's wasm tables (function pointers). Rust and Python guests use
/// a few thousand at most.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Native stack for wasm frames. Wasmtime's own default, named so that a stack overflow
/// error can say what the limit was.
pub const MAX_WASM_STACK_BYTES: usize = 512 << 10;

/// Entries in any list a plugin returns (patches from `discover`, health checks).
/// A vendor catalog has thousands of entries; ten times the biggest we know of.
pub const MAX_RESULT_LIST: usize = 100_000;

/// Bytes in any one string a plugin returns. Ids, versions and messages are short;
/// a megabyte is already absurd, and stops a plugin from handing the host huge blobs.
pub const MAX_RESULT_STRING: usize = 1 << 20;

/// Bytes in all strings of one result together: bounds what one call can make the host
/// keep, however the result is shaped.
pub const MAX_RESULT_BYTES: usize = 64 << 20;

/// Bytes of one log message kept; the rest is cut, with a marker.
pub const MAX_LOG_MESSAGE: usize = 8 << 10;

/// Bytes of a plugin's stdout and of its stderr kept per call (forwarded to `tracing`);
/// more is counted and dropped, never an error to the guest.
pub const MAX_CAPTURED_OUTPUT: usize = 64 << 10;

/// Bytes of an HTTP response body given to a plugin; more is cut (`truncated` is set).
/// Firmware images are fetched by the device, not through the plugin.
pub const MAX_HTTP_BODY: usize = 16 << 20;

/// Bytes of an HTTP request body a plugin may send.
pub const MAX_HTTP_REQUEST_BODY: usize = 16 << 20;

/// Default and longest time of one HTTP request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of a program's stdout and of its stderr given back from `exec`.
pub const MAX_EXEC_OUTPUT: usize = 1 << 20;

/// Bytes a plugin may feed to a program's stdin.
pub const MAX_EXEC_STDIN: usize = 16 << 20;

/// Default time a program run through `exec` may take.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest key of the plugin's key/value store.
pub const MAX_KV_KEY: usize = 256;

/// Largest value of the plugin's key/value store.
pub const MAX_KV_VALUE: usize = 64 << 10;

/// All keys and values of one plugin together: the store is for small state (a
/// cursor, an ETag), not for data.
pub const MAX_KV_TOTAL: usize = 1 << 20;

/// Longest a plugin may sleep in one `clock.sleep` call (also bounded by its deadline).
pub const MAX_SLEEP: Duration = Duration::from_secs(10 * 60);

/// Instances alive at once across all plugins (pooling allocator slots). Bounds the
/// host's memory reservation; callers queue beyond it.
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Bytes of each pooling slot's memory, table and stack kept committed between
/// calls and cleared with memset rather than returned to the kernel. A typical call
/// touches less than this; the cost is at most this much resident per slot in use.
pub const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Limits of one plugin, from its manifest's `[limits]` table or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of one call.
    pub timeout: Duration,
    /// Linear memory cap of one instance, in bytes.
    pub memory_bytes: u64,
    /// Host calls allowed in one call.
    pub hostcalls: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_CALL_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            hostcalls: DEFAULT_HOSTCALLS,
        }
    }
}

/// Parses a size such as `64MiB`, `512KiB`, `1GiB` or a plain byte count `1048576`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Formats a byte count the way [`parse_size`] reads it, for messages.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_back() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(
            parse_size("64MB"),
            None,
            "decimal units are ambiguous: refused"
        );
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn defaults_are_within_bounds() {
        let d = Limits::default();
        assert!(d.timeout <= MAX_CALL_TIMEOUT);
        assert!(d.memory_bytes <= MAX_MEMORY_BYTES);
        assert!(d.hostcalls <= MAX_HOSTCALLS);
    }
}
