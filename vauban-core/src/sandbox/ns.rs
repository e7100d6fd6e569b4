//! The two modes of the sandbox: rootless (a user namespace with the user's
//! full subordinate id mapping) or real root (no user namespace), and the
//! shell's reading of an exit status.

use std::os::unix::process::ExitStatusExt;

use super::idmap::IdMapping;
use crate::error::Result;

/// How namespaces are made for this process: with an id mapping (unprivileged user)
/// or without a user namespace at all (real root).
#[derive(Debug, Clone)]
pub struct NsConfig {
    /// The id mapping; `None` when running as real root.
    pub mapping: Option<IdMapping>,
}

impl NsConfig {
    /// Detects the mode: real root gets no user namespace, anyone else the full
    /// subordinate id mapping (checked here, with a clear error when missing).
    pub fn detect() -> Result<Self> {
        if nix::unistd::geteuid().is_root() {
            return Ok(NsConfig { mapping: None });
        }
        Ok(NsConfig {
            mapping: Some(IdMapping::for_current_user()?),
        })
    }

    /// True when a user namespace is used (not running as real root).
    pub fn rootless(&self) -> bool {
        self.mapping.is_some()
    }
}

/// The shell-style exit code of a wait status: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(15)), 128 + 15);
    }
}
