//! How every sandbox process is started: a fresh exec of the helper
//! executable with an empty environment, its channel as descriptor 3 and a
//! few more descriptors after it (a keeper's listening socket), killed with
//! its parent (`PR_SET_PDEATHSIG`), nothing else inherited.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::channel::Channel;
use super::CHANNEL_FD;

/// The most descriptors a helper process is given after its channel.
pub(crate) const MAX_EXTRA_FDS: usize = 3;

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
    let mut sources = [-1; 1 + MAX_EXTRA_FDS];
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
    // SAFETY: runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: `fcntl`, `dup2`, `prctl` and
    // `close_range` are plain system calls that allocate nothing and take no
    // lock; the descriptors are in an array on this stack.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (above every target number), then each to
            // its number: a source that sits on another's target is never
            // overwritten before it is copied.
            let mut high = [-1; 1 + MAX_EXTRA_FDS];
            for i in 0..count {
                high[i] = libc::fcntl(sources[i], libc::F_DUPFD_CLOEXEC, 64);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high.iter().enumerate().take(count) {
                // dup2 onto another number leaves the copy without CLOEXEC.
                if libc::dup2(fd, CHANNEL_FD + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Whatever else the caller left inheritable (the high copies
            // among them) stays behind.
            let above = (CHANNEL_FD + count as i32) as libc::c_uint;
            if libc::close_range(above, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(channel);
    child
}
