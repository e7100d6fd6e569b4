//! How every sandbox process is started: a fresh exec of the helper
//! executable with an empty environment, its channel as descriptor 3 and a
//! few more descriptors after it (a keeper's listening socket), killed with
//! its parent (`PR_SET_PDEATHSIG`), nothing else inherited.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::before_exec::{BeforeExec, PlacedFds, MAX_PLACED_FDS};
use super::channel::Channel;
use super::CHANNEL_FD;

/// The most descriptors a helper process is given after its channel.
pub(crate) const MAX_EXTRA_FDS: usize = MAX_PLACED_FDS - 1;

/// A helper process to start.
pub(crate) struct Spawn<'a> {
    /// The executable (`/proc/self/exe` from inside a helper).
    pub exe: &'a Path,
    /// `argv[0]`, as `ps` shows it.
    pub argv0: &'a OsStr,
    /// `argv[1]`: which helper it is.
    pub role: &'a str,
    /// Its standard input, output and error.
    pub stdio: [Stdio; 3],
    /// Descriptors it finds at 4, 5... (at most [`MAX_EXTRA_FDS`]).
    pub extra: &'a [BorrowedFd<'a>],
    /// Whether it leads a process group of its own (vauban's helpers, so a
    /// terminal's Ctrl-C reaches vauban alone).
    pub process_group: bool,
}

/// Starts `spawn` with `channel` (one end of a [`super::channel::pair`]) as
/// its descriptor 3.
pub(crate) fn spawn(spawn: Spawn<'_>, channel: Channel) -> std::io::Result<Child> {
    if spawn.extra.len() > MAX_EXTRA_FDS {
        return Err(std::io::Error::other("too many descriptors for a helper"));
    }
    let channel: OwnedFd = channel.into_fd();
    let mut sources = [-1; MAX_PLACED_FDS];
    sources[0] = channel.as_raw_fd();
    for (i, fd) in spawn.extra.iter().enumerate() {
        sources[i + 1] = fd.as_raw_fd();
    }
    let count = 1 + spawn.extra.len();
    let [stdin, stdout, stderr] = spawn.stdio;
    let mut cmd = Command::new(spawn.exe);
    cmd.arg0(spawn.argv0)
        .arg(OsStr::new(spawn.role))
        .env_clear()
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    if spawn.process_group {
        cmd.process_group(0);
    }
    BeforeExec {
        placed: Some(PlacedFds {
            sources,
            count,
            first: CHANNEL_FD,
        }),
        die_with_parent: true,
        ..BeforeExec::closing_from(CHANNEL_FD + count as RawFd)
    }
    .install(&mut cmd);
    let child = cmd.spawn();
    drop(channel);
    child
}
