//! pid 1 of a sandbox: a fresh exec with an empty environment and only its
//! channel (descriptor 3) besides the command's standard streams.
//!
//! It makes itself non-dumpable first: its `/proc/1/{environ,fd,root,cwd,exe,mem}`
//! are then closed to every process of the sandbox (they lack `CAP_SYS_PTRACE`).
//! It starts its own session, sets up the sandbox ([`Setup`]), starts the
//! command, forwards the signals it gets to it, reaps every orphan, and reports
//! how the command ended. When it exits, the kernel kills whatever is left in
//! its pid namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::super::confine;
use super::super::mount::Overlay;
use super::super::rootfs;
use super::channel::Channel;
use super::protocol::{CommandSpec, FromHelper, RemoteError, Reply};
use super::CHANNEL_FD;
use crate::error::{Error, Result};

/// One sandbox tree: an overlay, where it is mounted, its private files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tree {
    /// The overlay.
    pub overlay: Overlay,
    /// Where it is mounted.
    pub merged: std::path::PathBuf,
    /// The sandbox's private files.
    pub private: std::path::PathBuf,
}

/// What init sets up before starting the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Setup {
    /// New mount, uts and ipc namespaces with the sandbox trees mounted (one,
    /// or one per host of a session): each overlay, and unless `rootfs` is
    /// false its `/proc`, `/dev`, private files and masks.
    Sandbox {
        /// The trees.
        trees: Vec<Tree>,
        /// The host name of the namespace.
        hostname: String,
        /// Whether `/proc`, `/dev`, the private files... are mounted in the trees
        /// (not for a program working on the image's files as they are).
        rootfs: bool,
    },
}

/// Signals passed on to the command.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// init's job: a setup and a command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitJob {
    /// What to set up.
    pub setup: Setup,
    /// Whether the command runs inside the image (root moved there, bounded
    /// capabilities); otherwise it is a host program beside the merged tree.
    pub in_image: bool,
    /// Which of the command's stdin, stdout and stderr are a pty of its own.
    pub tty: [bool; 3],
    /// The command.
    pub command: CommandSpec,
}

/// init's `main`: never returns.
pub(crate) fn main() -> ! {
    // First of all: nothing in the sandbox may read this process's memory,
    // descriptors or environment through /proc/1.
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: our parent gave us our end of the channel as descriptor 3; this
    // fresh process has no other owner of it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) };
    let mut chan = Channel::new(fd);
    let job = match chan.recv::<InitJob>() {
        Ok(Some(job)) => job,
        _ => std::process::exit(2),
    };
    let reply = run(&job, &chan).unwrap_or_else(|e| Reply::Failed(RemoteError::of(&e)));
    let _ = chan.send(&FromHelper::Done(reply), &[]);
    std::process::exit(0)
}

fn run(job: &InitJob, chan: &Channel) -> Result<Reply> {
    let _ = nix::unistd::setsid();
    confine::new_session_keyring()?;
    set_up(&job.setup, job.in_image)?;
    let tty = if job.tty.contains(&true) {
        let (master, slave) = open_pty()?;
        chan.send(&FromHelper::Pty, &[master.as_raw_fd()])
            .map_err(Error::channel)?;
        Some((slave, job.tty))
    } else {
        None
    };
    // Signals are taken through a signalfd; the command gets an empty mask back
    // (std clears it in the child).
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        mask.add(sig);
    }
    mask.thread_block()
        .map_err(|e| Error::sys("sigprocmask", e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::sys("signalfd", e))?;

    let child = match start(&job.command, job.in_image, tty) {
        Ok(child) => child,
        Err(StartError::Exec(errno)) => {
            return Ok(Reply::ExecFailed {
                program: job.command.argv.first().cloned().unwrap_or_default(),
                errno,
            })
        }
        Err(StartError::Other(e)) => return Err(e),
    };
    let _ = chan.send(&FromHelper::Started, &[]);
    let pid = Pid::from_raw(child as i32);
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("read signalfd", e)),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(pid, sig);
            continue;
        }
        // Reap everything that ended: the command, and orphans given to us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => {
                    return Ok(Reply::Exited((code & 0xff) << 8))
                }
                Ok(WaitStatus::Signaled(p, s, core)) if p == pid => {
                    return Ok(Reply::Exited(s as i32 | if core { 0x80 } else { 0 }))
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waitpid", e)),
            }
        }
    }
}

/// Sets up what `setup` says.
fn set_up(setup: &Setup, in_image: bool) -> Result<()> {
    use nix::sched::CloneFlags as F;
    let Setup::Sandbox {
        trees,
        hostname,
        rootfs,
    } = setup;
    nix::sched::unshare(F::CLONE_NEWNS | F::CLONE_NEWUTS | F::CLONE_NEWIPC | F::CLONE_NEWCGROUP)
        .map_err(|e| Error::sys("unshare", e))?;
    confine::make_mounts_private()?;
    nix::unistd::sethostname(hostname).map_err(|e| Error::sys("sethostname", e))?;
    for tree in trees {
        tree.overlay.mount(&tree.merged)?;
        if *rootfs {
            rootfs::setup(&tree.merged, &tree.private)?;
            confine::mask_proc(&tree.merged)?;
        }
    }
    if in_image {
        let [tree] = trees.as_slice() else {
            return Err(Error::ChildProtocol {
                message: format!("a program in the image needs one tree, not {}", trees.len()),
            });
        };
        confine::pivot_into(&tree.merged)?;
    }
    Ok(())
}

/// A pty of the sandbox's own devpts: (master, slave).
fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Error::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| Error::sys("unlockpt", e))?;
    let name = ptsname(&master, Vec::new()).map_err(|e| Error::sys("ptsname", e))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::sys("open the pty", e))?;
    Ok((master, slave))
}

enum StartError {
    Exec(i32),
    Other(Error),
}

/// Starts the command in its own session (the pty its controlling terminal),
/// every descriptor above 2 closed, bounded capabilities when in the image.
/// Its working directory is inside the image when the root was moved there.
fn start(
    command: &CommandSpec,
    in_image: bool,
    tty: Option<(OwnedFd, [bool; 3])>,
) -> std::result::Result<u32, StartError> {
    let Some((program, args)) = command.argv.split_first() else {
        return Err(StartError::Other(Error::EmptyCommand));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&command.cwd);
    let has_tty = tty.is_some();
    if let Some((slave, streams)) = tty {
        let dup = || {
            slave
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| StartError::Other(Error::sys("dup", e)))
        };
        if streams[0] {
            cmd.stdin(dup()?);
        }
        if streams[1] {
            cmd.stdout(dup()?);
        }
        if streams[2] {
            cmd.stderr(dup()?);
        }
    }
    let allowed = confine::ALLOWED_CAPABILITIES;
    let last = confine::last_capability();
    // SAFETY: runs between fork and exec in this single-threaded init: every
    // call is a plain system call (setsid, ioctl, prctl, capset, close_range)
    // that allocates nothing and takes no lock.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            if has_tty {
                // The pty becomes the session's controlling terminal, from
                // whichever standard stream holds it.
                let held = [0, 1, 2].into_iter().find(|&fd| libc::isatty(fd) == 1);
                if let Some(fd) = held {
                    if libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            if in_image {
                confine::bound_capabilities(allowed, last)?;
            }
            // Every descriptor above 2 (this init's channel among them) is
            // closed at exec; std's own error pipe is already close-on-exec.
            if libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id()),
        Err(e) => match e.raw_os_error() {
            Some(errno) if is_exec_errno(errno) => Err(StartError::Exec(errno)),
            _ => Err(StartError::Other(Error::sys("start the command", e))),
        },
    }
}

/// The `execve` failures that mean "no such program" or "not runnable".
fn is_exec_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT
            | libc::EACCES
            | libc::ENOEXEC
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::ETXTBSY
            | libc::EISDIR
            | libc::E2BIG
    )
}
