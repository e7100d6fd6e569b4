//! pid 1 of a sandbox: a fresh exec with an empty environment and only its
//! channel (descriptor 3) besides the command's standard streams.
//!
//! It makes itself non-dumpable first: its `/proc/1/{environ,fd,root,cwd,exe,mem}`
//! are then closed to every process of the sandbox (they lack `CAP_SYS_PTRACE`).
//! It starts its own session, enters new mount, uts, ipc and cgroup namespaces
//! (and a network namespace of its own unless the build asked for the host's),
//! sets up the sandbox ([`Setup`]), starts the command, forwards the signals it
//! gets to it, reaps every orphan, and reports how the command ended. When it
//! exits, the kernel kills whatever is left in its pid namespace and the pid
//! namespaces below it.
//!
//! An Ansible run is a [`Setup::Session`]: each host's tree in a keeper of its
//! own (its own pid, mount, uts and ipc namespaces; see [`super::keeper`]), and
//! the command (the shell that runs `ansible-playbook`) in a nested init
//! ([`Setup::Controller`]), pid 1 of one more pid namespace, whose root is the
//! controller's (see [`crate::sandbox::controller`]). None of them sees
//! another's processes.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rustix::thread::CapabilitySet;
use serde::{Deserialize, Serialize};

use super::super::confine;
use super::super::controller::{self, ControllerRoot};
use super::super::mount::Overlay;
use super::super::network::{self, NetNs};
use super::super::rootfs;
use super::before_exec::BeforeExec;
use super::channel::{self, Channel};
use super::exec::{self, Spawn};
use super::keeper::KeeperJob;
use super::protocol::{CommandSpec, FromHelper, RemoteError, Reply};
use super::{CHANNEL_FD, INIT_ARG, KEEPER_ARG};
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
    /// One tree, mounted; unless `rootfs` is false its `/proc`, `/dev`,
    /// private files and masks; the command inside it (`in_image`: root moved
    /// there, bounded capabilities) or on the host beside it (an export that
    /// reads the bare tree: its capabilities kept).
    Tree {
        /// The tree.
        tree: Tree,
        /// The host name of the namespace.
        hostname: String,
        /// Whether `/proc`, `/dev`, the private files... are mounted in it.
        rootfs: bool,
        /// Whether the command runs inside the image.
        in_image: bool,
    },
    /// Each host's tree in a keeper, the command as the confined controller.
    Session {
        /// The hosts' keepers.
        hosts: Vec<KeeperJob>,
        /// The controller's root, built here.
        controller: ControllerRoot,
    },
    /// The controller itself (pid 1 of its own pid namespace, started by a
    /// session's init): `/proc` mounted in `root`, the root moved there, the
    /// command without any capability.
    Controller {
        /// The root the session's init built.
        root: PathBuf,
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
    /// The network namespace.
    pub net: NetNs,
    /// Which of the command's stdin, stdout and stderr are a pty of its own.
    pub tty: [bool; 3],
    /// The command.
    pub command: CommandSpec,
}

/// What the command may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caps {
    /// The image's bounded set ([`confine::ALLOWED_CAPABILITIES`]).
    Image,
    /// None at all, and `no_new_privs` (the Ansible controller).
    Nothing,
    /// init's own (a host program of vauban's, on the bare tree).
    Kept,
}

/// init's `main`: never returns.
pub(crate) fn main() -> ! {
    // First of all: nothing in the sandbox may read this process's memory,
    // descriptors or environment through /proc/1.
    let _ = nix::sys::prctl::set_dumpable(false);
    // Ansible reads the service manager from /proc/1/comm: "init" sends it to
    // the image's own files (a systemd image is then systemd, offline).
    let _ = nix::sys::prctl::set_name(c"init");
    // SAFETY: our parent gave us our end of the channel as descriptor 3; this
    // fresh process has no other owner of it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) };
    let mut chan = Channel::new(fd);
    // Every command of the sandbox is forked from us (or from a keeper we
    // start): our executable must be one nothing in the sandbox can change
    // through /proc/PID/exe. Returns only once it is (after a re-exec).
    if let Err(e) = confine::run_from_read_only_exe(&[INIT_ARG]) {
        let _ = chan.send(&FromHelper::Done(Reply::Failed(RemoteError::of(&e))), &[]);
        std::process::exit(0);
    }
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
    if let Setup::Controller { root } = &job.setup {
        return run_controller(job, root);
    }
    use nix::sched::CloneFlags as F;
    let mut flags = F::CLONE_NEWNS | F::CLONE_NEWUTS | F::CLONE_NEWIPC | F::CLONE_NEWCGROUP;
    if job.net != NetNs::Keep {
        flags |= F::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| Error::sys("unshare", e))?;
    confine::make_mounts_private()?;
    if let Some(fds) = network::set_up(job.net)? {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        chan.send(&FromHelper::Net, &raw).map_err(Error::channel)?;
    }
    match &job.setup {
        Setup::Tree {
            tree,
            hostname,
            rootfs,
            in_image,
        } => {
            nix::unistd::sethostname(hostname).map_err(|e| Error::sys("sethostname", e))?;
            tree.overlay.mount(&tree.merged)?;
            if *rootfs {
                rootfs::setup(&tree.merged, &tree.private)?;
                confine::mask_proc(&tree.merged)?;
            }
            let caps = if *in_image {
                confine::pivot_into(&tree.merged)?;
                Caps::Image
            } else {
                Caps::Kept
            };
            run_command(job, chan, caps)
        }
        Setup::Session { hosts, controller } => {
            nix::unistd::sethostname("vauban").map_err(|e| Error::sys("sethostname", e))?;
            run_session(job, chan, hosts, controller)
        }
        Setup::Controller { .. } => unreachable_setup(),
    }
}

fn unreachable_setup() -> Result<Reply> {
    Err(Error::ChildProtocol {
        message: "a controller setup reached the session's init".into(),
    })
}

/// The command started under `caps` (a pty of its own when asked), followed
/// until it ends.
fn run_command(job: &InitJob, chan: &Channel, caps: Caps) -> Result<Reply> {
    let tty = if job.tty.contains(&true) {
        let (master, slave) = open_pty()?;
        chan.send(&FromHelper::Pty, &[master.as_raw_fd()])
            .map_err(Error::channel)?;
        Some((slave, job.tty))
    } else {
        None
    };
    start_and_follow(&job.command, caps, tty, Some(chan))
}

/// Starts `command` (see [`start`]) and follows it to its end: its wait
/// status, or why it did not start. `chan` hears that it started.
fn start_and_follow(
    command: &CommandSpec,
    caps: Caps,
    tty: Option<(OwnedFd, [bool; 3])>,
    chan: Option<&Channel>,
) -> Result<Reply> {
    let sfd = block_signals()?;
    let child = match start(command, caps, tty, None) {
        Ok(child) => child,
        Err(StartError::Exec(errno)) => {
            return Ok(Reply::ExecFailed {
                program: command.argv.first().cloned().unwrap_or_default(),
                errno,
            })
        }
        Err(StartError::Other(e)) => return Err(e),
    };
    if let Some(chan) = chan {
        let _ = chan.send(&FromHelper::Started, &[]);
    }
    follow(&sfd, Pid::from_raw(child as i32)).map(Reply::Exited)
}

/// The controller's init: its `/proc`, its root, the command without
/// capabilities.
fn run_controller(job: &InitJob, root: &std::path::Path) -> Result<Reply> {
    use nix::sched::CloneFlags as F;
    nix::sched::unshare(F::CLONE_NEWNS).map_err(|e| Error::sys("unshare", e))?;
    confine::make_mounts_private()?;
    controller::enter_root(root)?;
    // No channel message but the reply: the session's init relays it.
    start_and_follow(&job.command, Caps::Nothing, None, None)
}

/// A session: the controller's root, a keeper per host (each pid 1 of a pid
/// namespace of its own), then the controller (pid 1 of another), followed
/// until it ends; the keepers are killed then, and with them every process of
/// their hosts.
fn run_session(
    job: &InitJob,
    chan: &Channel,
    hosts: &[KeeperJob],
    root: &ControllerRoot,
) -> Result<Reply> {
    let sockets = controller::build_root(root)?;
    let sfd = block_signals()?;
    let own_pid_ns = std::fs::File::open("/proc/self/ns/pid")
        .map_err(|e| Error::io("open", "/proc/self/ns/pid", e))?;
    // Each keeper's channel stays open while it serves: it is gone with us.
    let mut keepers: Vec<(Pid, Channel)> = Vec::with_capacity(hosts.len());
    let result = (|| {
        for (host, socket) in hosts.iter().zip(&sockets) {
            keepers.push(start_keeper(host, socket, &own_pid_ns, chan)?);
        }
        drop(sockets);
        let (controller, mut chan) = in_new_pid_ns(&own_pid_ns, || {
            spawn_helper(INIT_ARG, "vauban-controller", &[], stdio_inherited())
        })?;
        chan.send(
            &InitJob {
                setup: Setup::Controller {
                    root: root.dir.clone(),
                },
                net: NetNs::Keep,
                tty: [false; 3],
                command: job.command.clone(),
            },
            &[],
        )
        .map_err(Error::channel)?;
        let pid = Pid::from_raw(controller.id() as i32);
        // Its channel is read once it ended: its reply waits in the socket.
        follow(&sfd, pid)?;
        match chan.recv::<FromHelper>() {
            Ok(Some(FromHelper::Done(reply))) => Ok(reply),
            _ => Err(Error::ChildProtocol {
                message: "the controller's init ended without a report".into(),
            }),
        }
    })();
    for (keeper, _) in &keepers {
        let _ = nix::sys::signal::kill(*keeper, Signal::SIGKILL);
    }
    for (keeper, _) in &keepers {
        let _ = waitpid(*keeper, None);
    }
    result
}

/// A keeper for `host`, given its listening socket, pid 1 of a new pid
/// namespace; returns once its host's tree is ready. The listeners of its
/// network namespace are passed on to `up` (for the egress proxy).
fn start_keeper(
    host: &KeeperJob,
    socket: &OwnedFd,
    own_pid_ns: &std::fs::File,
    up: &Channel,
) -> Result<(Pid, Channel)> {
    let (child, mut chan) = in_new_pid_ns(own_pid_ns, || {
        spawn_helper(
            KEEPER_ARG,
            "vauban-keeper",
            &[socket.as_fd()],
            [Stdio::null(), Stdio::null(), Stdio::null()],
        )
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    chan.send(host, &[]).map_err(Error::channel)?;
    let mut answer = chan.recv::<FromHelper>();
    while let Ok(Some(FromHelper::Net)) = answer {
        let fds: Vec<OwnedFd> = std::iter::from_fn(|| chan.take_fd()).collect();
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        up.send(&FromHelper::Net, &raw).map_err(Error::channel)?;
        answer = chan.recv::<FromHelper>();
    }
    match answer {
        Ok(Some(FromHelper::Done(Reply::Done))) => Ok((pid, chan)),
        Ok(Some(FromHelper::Done(Reply::Failed(e)))) => {
            let _ = waitpid(pid, None);
            Err(Error::InSandbox {
                what: format!("set up the tree of {}", host.hostname),
                source: Box::new(e),
            })
        }
        _ => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(Error::ChildProtocol {
                message: format!("the keeper of {} ended without a report", host.hostname),
            })
        }
    }
}

/// Runs `spawn` with the children it starts in a new pid namespace (the
/// first one its pid 1), then puts this process's next children back in
/// `own` (its own pid namespace).
fn in_new_pid_ns<T>(own: &std::fs::File, spawn: impl FnOnce() -> Result<T>) -> Result<T> {
    use nix::sched::CloneFlags as F;
    nix::sched::unshare(F::CLONE_NEWPID).map_err(|e| Error::sys("unshare a pid namespace", e))?;
    let result = spawn();
    nix::sched::setns(own.as_fd(), F::CLONE_NEWPID)
        .map_err(|e| Error::sys("go back to the sandbox's pid namespace", e))?;
    result
}

fn stdio_inherited() -> [Stdio; 3] {
    [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()]
}

/// A sandbox process (a fresh exec of this executable in `role`) with a new
/// channel.
pub(crate) fn spawn_helper(
    role: &str,
    argv0: &str,
    extra: &[std::os::fd::BorrowedFd<'_>],
    stdio: [Stdio; 3],
) -> Result<(std::process::Child, Channel)> {
    let (ours, theirs) = channel::pair().map_err(|e| Error::sys("socketpair", e))?;
    let child = exec::spawn(
        Spawn {
            exe: std::path::Path::new("/proc/self/exe"),
            argv0: std::ffi::OsStr::new(argv0),
            role,
            stdio,
            extra,
            process_group: false,
        },
        theirs,
    )
    .map_err(|e| Error::sys("start a sandbox process", e))?;
    Ok((child, ours))
}

/// Blocks the forwarded signals and SIGCHLD; they are read from the returned
/// signalfd (the command gets an empty mask back: std clears it in the child).
fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        mask.add(sig);
    }
    mask.thread_block()
        .map_err(|e| Error::sys("sigprocmask", e))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(|e| Error::sys("signalfd", e))
}

/// Forwards signals to `pid` and reaps every child until `pid` ends; its raw
/// wait status.
fn follow(sfd: &SignalFd, pid: Pid) -> Result<i32> {
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
                Ok(ws) if ws.pid() == Some(pid) => {
                    if let Some(raw) = raw_status(ws) {
                        return Ok(raw);
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waitpid", e)),
            }
        }
    }
}

/// The raw wait status (as `waitpid(2)` gives it) of an ended process.
pub(crate) fn raw_status(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, code) => Some((code & 0xff) << 8),
        WaitStatus::Signaled(_, s, core) => Some(s as i32 | if core { 0x80 } else { 0 }),
        _ => None,
    }
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

/// Why a command did not start.
pub(crate) enum StartError {
    /// `execve` failed with this errno (not found, not executable...).
    Exec(i32),
    /// Anything else.
    Other(Error),
}

/// Starts the command in its own session (the pty its controlling terminal),
/// every descriptor above 2 closed, its capabilities as `caps` says. `stdio`
/// replaces the inherited standard streams (a keeper's client's).
pub(crate) fn start(
    command: &CommandSpec,
    caps: Caps,
    tty: Option<(OwnedFd, [bool; 3])>,
    stdio: Option<[OwnedFd; 3]>,
) -> std::result::Result<u32, StartError> {
    let Some((program, args)) = command.argv.split_first() else {
        return Err(StartError::Other(Error::EmptyCommand));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&command.cwd);
    if let Some([stdin, stdout, stderr]) = stdio {
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    }
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
    let bound = match caps {
        Caps::Image => Some(confine::ALLOWED_CAPABILITIES),
        Caps::Nothing => Some(CapabilitySet::empty()),
        Caps::Kept => None,
    };
    BeforeExec {
        new_session: true,
        controlling_tty: has_tty,
        no_new_privs: matches!(caps, Caps::Nothing),
        seccomp: (!matches!(caps, Caps::Kept)).then(super::super::seccomp::Filter::new),
        bound: bound.map(|allowed| (allowed, confine::last_capability())),
        // Every descriptor above 2, this process's channel among them.
        ..BeforeExec::closing_from(3)
    }
    .install(&mut cmd);
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
