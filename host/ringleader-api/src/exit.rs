//! The CLI's exit codes, one place for all of them (the table in docs/cli.md, "Exit
//! status", is this enum).

/// How a `ringleader` command ended. Each command's `--help` says which of these it
/// uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitStatus {
    /// 0: success; for `plugin check`, every plugin given is valid; for `demo` and
    /// `status --wait`, the rollout completed.
    Success = 0,
    /// 1: the command ran and failed (a plugin is not valid, a file could not be read or
    /// written, the daemon refused the request); stderr says what and how to fix it.
    Failure = 1,
    /// 2: the command line is wrong (clap prints usage); `plugin run`: also any input it
    /// cannot use (manifest, inventory, device, patch file, config).
    Usage = 2,
    /// 3: `demo`, `status --wait`: the rollout halted.
    Halted = 3,
    /// 4: `status --wait`: the rollout was aborted.
    Aborted = 4,
    /// 5: a client command could not reach the daemon, or its answer was cut off.
    Unreachable = 5,
    /// 6: a client command named a rollout the daemon does not have (or it has none).
    NotFound = 6,
    /// 7: a client command needs the API token and had none, or a wrong one.
    Unauthorized = 7,
    /// 8: `plan`: planned, but some input was refused (documents a patch source refused,
    /// patches the catalog refused); the plan covers the rest.
    RefusedInput = 8,
}

impl ExitStatus {
    /// Every exit status, by code.
    pub const ALL: [ExitStatus; 9] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Halted,
        ExitStatus::Aborted,
        ExitStatus::Unreachable,
        ExitStatus::NotFound,
        ExitStatus::Unauthorized,
        ExitStatus::RefusedInput,
    ];

    /// The process exit code.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> std::process::ExitCode {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_their_place_in_the_table() {
        for (i, status) in ExitStatus::ALL.iter().enumerate() {
            assert_eq!(usize::from(status.code()), i, "{status:?}");
        }
    }
}
