//! What a child does between `fork` and `exec`, as data: the sandbox's one
//! `pre_exec`. A helper is given its descriptors at 3, 4... and dies with its
//! parent ([`super::exec`]); a command gets a session of its own, maybe a
//! controlling terminal, its seccomp filter and bounded capabilities
//! ([`super::init`]); every other descriptor is closed at exec.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::thread::CapabilitySet;

use super::super::confine;
use super::super::seccomp::Filter;

/// The most descriptors a child is given at fixed numbers.
pub(crate) const MAX_PLACED_FDS: usize = 4;

/// Descriptors to put at `first`, `first + 1`... in the child, whatever
/// numbers they have in the parent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedFds {
    /// The parent's descriptors, in order; the first `count` are used.
    pub(crate) sources: [RawFd; MAX_PLACED_FDS],
    /// How many of `sources` there are.
    pub(crate) count: usize,
    /// Where the first one goes.
    pub(crate) first: RawFd,
}

/// The steps a child takes before `exec`, in this order: the ones asked for,
/// then every descriptor from `keep_below` up marked close-on-exec.
pub(crate) struct BeforeExec {
    /// A session of its own (`setsid`).
    pub(crate) new_session: bool,
    /// The pty on one of its standard streams becomes the session's
    /// controlling terminal.
    pub(crate) controlling_tty: bool,
    /// Descriptors moved to fixed numbers.
    pub(crate) placed: Option<PlacedFds>,
    /// Killed when its parent dies (`PR_SET_PDEATHSIG`).
    pub(crate) die_with_parent: bool,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub(crate) no_new_privs: bool,
    /// A seccomp filter, installed before the capabilities go (without
    /// no_new_privs, installing one takes `CAP_SYS_ADMIN`).
    pub(crate) seccomp: Option<Filter>,
    /// The capabilities kept in the bounding set, and the kernel's last one.
    pub(crate) bound: Option<(CapabilitySet, u32)>,
    /// Descriptors from this number up are closed at exec (std's own error
    /// pipe already is).
    pub(crate) keep_below: RawFd,
}

impl BeforeExec {
    /// Nothing but every descriptor from `keep_below` up closed at exec.
    pub(crate) fn closing_from(keep_below: RawFd) -> Self {
        BeforeExec {
            new_session: false,
            controlling_tty: false,
            placed: None,
            die_with_parent: false,
            no_new_privs: false,
            seccomp: None,
            bound: None,
            keep_below,
        }
    }

    /// A session and process group of its own, killed when we die: for a
    /// tool that signals its whole process group (mmdebstrap HUPs its group
    /// when its tarball fails), so that signal never reaches vauban.
    pub(crate) fn own_group_dying_with_us() -> Self {
        BeforeExec {
            new_session: true,
            die_with_parent: true,
            ..BeforeExec::closing_from(3)
        }
    }

    /// A session of its own and `held` as descriptor 3, every other one
    /// from 4 up closed (see `sandbox::spawn_holding`).
    pub(crate) fn own_session_holding(held: std::os::fd::BorrowedFd<'_>) -> Self {
        use std::os::fd::AsRawFd;
        let mut sources = [-1; MAX_PLACED_FDS];
        sources[0] = held.as_raw_fd();
        BeforeExec {
            new_session: true,
            placed: Some(PlacedFds {
                sources,
                count: 1,
                first: 3,
            }),
            ..BeforeExec::closing_from(4)
        }
    }

    /// Makes `cmd` take these steps in its child.
    pub(crate) fn install(self, cmd: &mut Command) {
        let BeforeExec {
            new_session,
            controlling_tty,
            placed,
            die_with_parent,
            no_new_privs,
            seccomp,
            bound,
            keep_below,
        } = self;
        // SAFETY: the closure runs in the child between fork and exec, where
        // only async-signal-safe calls are allowed: `setsid`, `isatty`,
        // `ioctl`, `fcntl`, `dup2`, `prctl`, `capset` (in
        // `confine::bound_capabilities`) and `close_range` are plain system
        // calls that allocate nothing and take no lock; the descriptors are
        // in arrays on the stack and the seccomp program was built before
        // the fork.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                if new_session {
                    rustix::process::setsid()?;
                }
                if controlling_tty {
                    // From whichever standard stream holds the pty.
                    let held = [0, 1, 2].into_iter().find(|&fd| libc::isatty(fd) == 1);
                    if let Some(fd) = held {
                        if libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                if let Some(PlacedFds {
                    sources,
                    count,
                    first,
                }) = placed
                {
                    // First out of the way (above every target number), then
                    // each to its number: a source that sits on another's
                    // target is never overwritten before it is copied.
                    let mut high = [-1; MAX_PLACED_FDS];
                    for i in 0..count {
                        high[i] = libc::fcntl(sources[i], libc::F_DUPFD_CLOEXEC, 64);
                        if high[i] < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    for (i, &fd) in high.iter().enumerate().take(count) {
                        // dup2 onto another number leaves the copy without
                        // CLOEXEC; the high copies stay above `keep_below`.
                        if libc::dup2(fd, first + i as RawFd) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(filter) = &seccomp {
                    filter.install()?;
                }
                if let Some((allowed, last)) = bound {
                    confine::bound_capabilities(allowed, last)?;
                }
                let from = keep_below as libc::c_uint;
                if libc::close_range(from, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
