//! The sandbox's processes. vauban never forks itself into the sandbox: every
//! piece of work that needs the namespaces runs in a fresh `exec` of the helper
//! executable (the `vauban` binary itself, or any program that calls
//! [`run_helper_if_asked`] first thing in `main`), with an empty environment and
//! no descriptor but its channel, so nothing of the caller (its environment with
//! the CI's secrets, its open files, its other threads) is there to be reached.
//!
//! ```text
//! vauban (P) ──exec──► helper (H) ──exec──► init (pid 1) ──fork+exec──► command
//!   maps ids            user ns, new        mount/uts/ipc/net ns,          bounded
//!   relays pty          pid ns, extract,    overlay, pivot_root, masks,    capabilities,
//!                       pack, remove;       its own session; reaps,        own session
//!                       starts the proxy    forwards signals, reports
//!
//! An Ansible session, under init:
//!   keeper (pid 1 of a pid ns per host) ── one fork+exec per vauban-chroot request
//!   init of the controller (pid 1 of its own pid ns) ── the shell and ansible-playbook,
//!        no capability, root of its own: system and checkout read-only
//! ```
//!
//! - `worker` (H) reads one `protocol::Job`, enters a new user namespace
//!   when not root (P writes the id maps), and either does the file work itself
//!   (layer extraction, packing an upper dir, removals) or unshares a pid
//!   namespace and starts `init` (and, for an isolated network, the egress
//!   proxy beside it, in the host's network namespace: `sandbox::proxy`).
//! - `init` is pid 1 of the sandbox, itself a fresh exec: non-dumpable (so
//!   `/proc/1/*` is closed to the command), it sets up the mounts, moves the root
//!   with `pivot_root` and detaches the old one, starts the command and reports
//!   how it ended; for an Ansible session it starts the keepers and the
//!   controller instead.
//! - `keeper` is a host's pid 1 during an Ansible session: its tree, its
//!   namespaces, the commands `vauban-chroot` asks for.
//! - `enter` is Ansible's `chroot_exe` (`vauban-chroot`) in the controller: a
//!   client that hands the command and its standard streams to the host's
//!   keeper.
//! - `exec` starts every one of them; `spawn` is P's side; `channel` and
//!   `protocol` what they say; `before_exec` what a child does between fork
//!   and exec (the one `pre_exec`).

pub(crate) mod before_exec;
pub(crate) mod channel;
pub(crate) mod enter;
pub(crate) mod exec;
pub(crate) mod init;
pub(crate) mod keeper;
pub(crate) mod protocol;
pub(crate) mod spawn;
pub(crate) mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// `argv[1]` of a helper process.
pub(crate) const HELPER_ARG: &str = "__vauban-sandbox-helper";
/// `argv[1]` of the sandbox's init.
pub(crate) const INIT_ARG: &str = "__vauban-sandbox-init";
/// `argv[1]` of a host's keeper.
pub(crate) const KEEPER_ARG: &str = "__vauban-sandbox-keeper";
/// `argv[1]` of the egress proxy.
pub(crate) const PROXY_ARG: &str = "__vauban-sandbox-proxy";
/// The name Ansible's chroot connection runs the helper by (`argv[0]`).
pub(crate) const CHROOT_NAME: &str = "vauban-chroot";
/// The environment variable naming a helper executable.
pub const HELPER_ENV: &str = "VAUBAN_HELPER";
/// The descriptor number a helper finds its channel at.
pub(crate) const CHANNEL_FD: i32 = 3;

static HOOKED: AtomicBool = AtomicBool::new(false);

/// Runs the sandbox helper and exits when this process was started as one;
/// returns at once otherwise. Call it first thing in `main` of any program that
/// uses the sandbox: the program then serves as its own helper
/// ([`Helper::current_exe`]). Programs that cannot call it point
/// [`HELPER_ENV`] (or [`Helper::at`]) at a `vauban` binary.
///
/// ```no_run
/// // First thing in `main`:
/// vauban_core::sandbox::run_helper_if_asked();
/// // ... the program, which may now use `Sandbox`.
/// ```
pub fn run_helper_if_asked() {
    let mut args = std::env::args_os();
    let argv0 = args.next();
    let argv1 = args.next();
    match argv1.as_ref().and_then(|a| a.to_str()) {
        Some(HELPER_ARG) => worker::main(),
        Some(INIT_ARG) => init::main(),
        Some(KEEPER_ARG) => keeper::main(),
        Some(PROXY_ARG) => super::proxy::main(),
        _ => {}
    }
    let called_as_chroot = argv0
        .as_deref()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == CHROOT_NAME);
    if called_as_chroot {
        enter::main(std::env::args_os().skip(1).collect());
    }
    HOOKED.store(true, Ordering::SeqCst);
}

/// The executable started as the sandbox's helper processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    exe: PathBuf,
}

impl Helper {
    /// A helper at `path` (a `vauban` binary, or any program calling
    /// [`run_helper_if_asked`]).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Helper { exe: path.into() }
    }

    /// This program, which must have called [`run_helper_if_asked`].
    pub fn current_exe() -> Result<Self> {
        if !HOOKED.load(Ordering::SeqCst) {
            return Err(Error::NoHelper);
        }
        let exe = std::env::current_exe().map_err(|e| Error::io("find", "/proc/self/exe", e))?;
        Ok(Helper { exe })
    }

    /// `$VAUBAN_HELPER` when set, else this program when it called
    /// [`run_helper_if_asked`].
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(HELPER_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Ok(Helper::at(PathBuf::from(path))),
            None => Self::current_exe(),
        }
    }

    /// The executable.
    pub fn path(&self) -> &Path {
        &self.exe
    }
}
