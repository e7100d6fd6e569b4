//! Running a closure in new namespaces: a forked child enters a new user namespace
//! (unless we are real root), the parent maps the full subuid/subgid ranges into it
//! with `newuidmap`/`newgidmap`, then the child enters new mount (and pid, uts)
//! namespaces and runs the closure as root of the user namespace. Its result comes
//! back to the parent over a pipe as JSON.
//!
//! Process tree: parent (the caller) -> child C (namespaces) -> with a pid namespace,
//! grandchild G (pid 1 of it) runs the closure. Every child has `PR_SET_PDEATHSIG`
//! = SIGKILL, so nothing outlives the caller; when G dies the kernel kills the whole
//! pid namespace; the mounts live in the mount namespace and vanish with it.
//!
//! # The fork invariant (callers must hold it)
//!
//! The child is forked, not exec'd: it runs Rust code (allocation, JSON, the
//! codec, `tracing`) in a copy of the caller's memory holding only the calling
//! thread. glibc makes `malloc` usable after `fork`, but any other lock held by
//! another thread at that instant stays held forever in the child. So while a
//! sandbox function runs, the calling process must have no other thread that may
//! hold a lock the child takes: no async runtime (tokio) alive, no thread logging
//! or writing to stdout/stderr, none changing the environment (`set_var`). The
//! `vauban` CLI is single-threaded when it calls the sandbox, but for the Ansible
//! log follower of a stage; test harness threads run whole sandbox calls, each on
//! its own. To keep such threads harmless, the child never logs (a no-op `tracing`
//! dispatcher is set right after the fork: the subscriber's writer and stderr
//! locks are the ones a logging thread holds) and never prints. A child stuck on a
//! lock anyway is still killed by Ctrl-C (the parent polls for signals) and by the
//! parent's death.
//!
//! Signals: children of interruptible work die of SIGINT/SIGTERM/SIGHUP (the
//! parent then kills the tree and cleans up); children doing work that must not be
//! cut in half (commit, removal) block them: Ctrl-C reaches the whole process
//! group, and the parent acts on it once the work is done.
//!
//! File descriptors: every pipe is `O_CLOEXEC`, and before a program is started in
//! the sandbox every inherited descriptor above 2 is marked close-on-exec, so a
//! descriptor the caller left inheritable (a directory of the host would be a way
//! out of the chroot) never reaches it.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getppid, pipe2, ForkResult, Gid, Pid, Uid};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::idmap::{userns_hint, IdMapping};
use super::signals;
use crate::error::{Error, Result};

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

/// What to create around the closure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spawn<'a> {
    /// What the child does, for error messages.
    pub what: &'a str,
    /// A new pid namespace, the closure running as its pid 1.
    pub pid_ns: bool,
    /// A new UTS namespace with this host name.
    pub hostname: Option<&'a str>,
    /// Whether SIGINT/SIGTERM received by the caller abort the child.
    pub interruptible: bool,
}

#[derive(Serialize, Deserialize)]
enum Reply<T> {
    Ok(T),
    Err(String),
    UserNs(i32),
}

/// Runs `f` as root of a new user namespace (with a private mount namespace), for
/// work on files owned by subordinate ids: extraction, packing, removal.
pub fn in_user_namespace<T, F>(what: &str, f: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    let ns = NsConfig::detect()?;
    let spawn = Spawn {
        what,
        interruptible: true,
        ..Spawn::default()
    };
    in_namespaces(&ns, &spawn, f)
}

/// Runs `f` in a child in the namespaces described by `ns` and `spawn`.
pub(crate) fn in_namespaces<T, F>(ns: &NsConfig, spawn: &Spawn<'_>, f: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    let cloexec = OFlag::O_CLOEXEC;
    let (result_r, result_w) = pipe2(cloexec).map_err(|e| Error::sys("pipe", e))?;
    let (sync_r, sync_w) = pipe2(cloexec).map_err(|e| Error::sys("pipe", e))?;
    let (go_r, go_w) = pipe2(cloexec).map_err(|e| Error::sys("pipe", e))?;
    let parent = nix::unistd::getpid();
    if tracing::enabled!(tracing::Level::DEBUG) {
        let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        tracing::debug!(threads, what = spawn.what, "forking a sandbox child");
    }
    // SAFETY: the child never returns into the caller's stack: `child_main` ends
    // with `_exit`, so no destructor of the parent's state runs twice. The child
    // holds only this thread; it takes no lock another thread may hold, given the
    // invariant of the module docs (no runtime or logging thread alive; glibc's
    // fork handlers reset malloc's locks). The fds it needs are owned values moved
    // into it; the others are CLOEXEC.
    match unsafe { fork() }.map_err(|e| Error::sys("fork", e))? {
        ForkResult::Child => {
            drop((result_r, sync_r, go_w));
            child_main(ns, spawn, parent, sync_w, go_r, result_w, f)
        }
        ForkResult::Parent { child } => {
            drop((result_w, sync_w, go_r));
            parent_main(ns, spawn, child, sync_r, go_w, result_r)
        }
    }
}

fn parent_main<T: DeserializeOwned>(
    ns: &NsConfig,
    spawn: &Spawn<'_>,
    child: Pid,
    sync_r: OwnedFd,
    go_w: OwnedFd,
    result_r: OwnedFd,
) -> Result<T> {
    let kill_child = |err: Error| {
        let _ = kill(child, Signal::SIGKILL);
        // Reaped for sure (EINTR retried): no zombie left behind.
        let _ = wait_blocking(child);
        err
    };
    if let Some(mapping) = &ns.mapping {
        // The child says it has unshared its user namespace (EOF: it failed first,
        // its reply says why).
        let mut byte = [0u8; 1];
        let mut sync = std::fs::File::from(sync_r);
        let unshared = loop {
            match sync.read(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                res => break res.unwrap_or(0) == 1,
            }
        };
        if unshared {
            if let Err(e) = write_maps(mapping, child.as_raw()) {
                return Err(kill_child(e));
            }
            let _ = std::fs::File::from(go_w).write_all(b"g");
        } else {
            drop(go_w);
        }
    } else {
        drop((sync_r, go_w));
    }
    let (bytes, status) = match read_reply(&result_r, child, spawn.interruptible) {
        Ok(r) => r,
        Err(e) => return Err(kill_child(e)),
    };
    match serde_json::from_slice::<Reply<T>>(&bytes) {
        Ok(Reply::Ok(v)) => Ok(v),
        Ok(Reply::Err(message)) => Err(Error::InSandbox {
            what: spawn.what.to_string(),
            message,
        }),
        Ok(Reply::UserNs(errno)) => Err(Error::UserNamespacesDisabled {
            hint: userns_hint(),
            source: std::io::Error::from_raw_os_error(errno),
        }),
        Err(_) => Err(Error::ChildDied {
            what: spawn.what.to_string(),
            status: format!("{status:?}"),
        }),
    }
}

/// Reads the child's reply (a length-prefixed JSON document) and reaps the child.
///
/// EOF cannot be relied on: a process forked concurrently by another thread may hold
/// a copy of the pipe's write end. So the reply is framed, and the child's exit is
/// polled: once it is gone, what the pipe holds is all there will be.
fn read_reply(fd: &OwnedFd, child: Pid, interruptible: bool) -> Result<(Vec<u8>, WaitStatus)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut exited = None;
    loop {
        if interruptible && exited.is_none() {
            if let Some(signal) = signals::pending() {
                return Err(Error::Interrupted { signal });
            }
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let timeout = if exited.is_some() { 0u8 } else { 100u8 };
        let ready = match poll(&mut fds, PollTimeout::from(timeout)) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        };
        let eof = if ready {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    false
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("read", e)),
            }
        } else {
            false
        };
        if let Some(body) = framed(&out) {
            let body = body.to_vec();
            let status = match exited {
                Some(s) => s,
                None => wait_blocking(child)?,
            };
            return Ok((body, status));
        }
        if let Some(status) = exited {
            if eof || !ready {
                return Ok((Vec::new(), status));
            }
            continue;
        }
        if eof {
            return Ok((Vec::new(), wait_blocking(child)?));
        }
        match waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(s) => exited = Some(s),
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

/// The JSON body of a complete frame (8-byte little-endian length, then the body).
fn framed(buf: &[u8]) -> Option<&[u8]> {
    let len = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?) as usize;
    buf.get(8..8 + len)
}

fn wait_blocking(child: Pid) -> Result<WaitStatus> {
    loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
            Ok(s) => return Ok(s),
        }
    }
}

fn write_maps(mapping: &IdMapping, pid: i32) -> Result<()> {
    run_tool(&mapping.newuidmap, &mapping.uid_args(pid))?;
    run_tool(&mapping.newgidmap, &mapping.gid_args(pid))
}

fn run_tool(tool: &std::path::Path, args: &[String]) -> Result<()> {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| Error::io("run", tool, e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(Error::Command {
        command: format!("{} {}", tool.display(), args.join(" ")),
        status: out.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

enum ChildError {
    UserNs(i32),
    Other(Error),
}

impl From<Error> for ChildError {
    fn from(e: Error) -> Self {
        ChildError::Other(e)
    }
}

fn child_main<T, F>(
    ns: &NsConfig,
    spawn: &Spawn<'_>,
    parent: Pid,
    sync_w: OwnedFd,
    go_r: OwnedFd,
    result_w: OwnedFd,
    f: F,
) -> !
where
    T: Serialize,
    F: FnOnce() -> Result<T>,
{
    // Events go through the parent's subscriber, whose locks (its writer, stderr)
    // another thread may have held at the fork: the child logs nothing. The guard
    // lives until `_exit`.
    let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
    if spawn.interruptible {
        signals::reset_in_child();
    } else {
        signals::block_in_child();
    }
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // The parent may have died before the prctl: then no signal will ever come.
    if getppid() != parent {
        exit_now(1);
    }
    let reply = match enter(ns, spawn, sync_w, go_r) {
        Err(ChildError::UserNs(errno)) => Reply::UserNs(errno),
        Err(ChildError::Other(e)) => Reply::Err(render(&e)),
        Ok(()) if spawn.pid_ns => fork_init(result_w, f),
        Ok(()) => run_closure(f),
    };
    send(result_w, &reply);
    exit_now(0)
}

/// Enters the namespaces: user (and waits for the maps), then mount, pid, uts.
fn enter(
    ns: &NsConfig,
    spawn: &Spawn<'_>,
    sync_w: OwnedFd,
    go_r: OwnedFd,
) -> Result<(), ChildError> {
    if ns.rootless() {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| ChildError::UserNs(e as i32))?;
        let _ = std::fs::File::from(sync_w).write_all(b"u");
        let mut byte = [0u8; 1];
        let mut go = std::fs::File::from(go_r);
        let mapped = loop {
            match go.read(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                res => break res.unwrap_or(0) == 1,
            }
        };
        if !mapped {
            exit_now(1);
        }
        let _ = nix::unistd::setgroups(&[]);
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| Error::sys("setresgid", e))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| Error::sys("setresuid", e))?;
    } else {
        drop((sync_w, go_r));
    }
    let mut flags = CloneFlags::CLONE_NEWNS;
    if spawn.pid_ns {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if spawn.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    nix::sched::unshare(flags).map_err(|e| Error::sys("unshare", e))?;
    // Nothing we mount may propagate back to the host.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::sys("make / private", e))?;
    if let Some(h) = spawn.hostname {
        nix::unistd::sethostname(h).map_err(|e| Error::sys("sethostname", e))?;
    }
    Ok(())
}

/// In C after `unshare(CLONE_NEWPID)`: G becomes pid 1 of the new namespace, runs
/// the closure and sends the reply itself; C only waits for it and leaves with its
/// status (P sees no reply if G died without one).
fn fork_init<T: Serialize, F: FnOnce() -> Result<T>>(result_w: OwnedFd, f: F) -> ! {
    // G cannot check `getppid()` after its prctl (its parent is outside its pid
    // namespace: always 0), so C holds the write end of this pipe until it dies.
    let (alive_r, alive_w) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            send(result_w, &Reply::<T>::Err(render(&Error::sys("pipe", e))));
            exit_now(1)
        }
    };
    // SAFETY: C is single-threaded (it was forked); G runs the closure and leaves
    // with `_exit`.
    match unsafe { fork() } {
        Err(e) => {
            send(result_w, &Reply::<T>::Err(render(&Error::sys("fork", e))));
            exit_now(1)
        }
        Ok(ForkResult::Child) => {
            drop(alive_w);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if parent_gone(&alive_r) {
                exit_now(1);
            }
            drop(alive_r);
            cloexec_inherited_fds();
            let reply = run_closure(f);
            send(result_w, &reply);
            exit_now(0)
        }
        Ok(ForkResult::Parent { child }) => {
            drop((result_w, alive_r));
            let code = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break 1,
                    Ok(status) => break wait_code(status),
                }
            };
            drop(alive_w);
            exit_now(code)
        }
    }
}

/// True when every write end of `alive` is closed: the process holding it died.
fn parent_gone(alive: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Marks every descriptor above 2 close-on-exec: the program started in the
/// sandbox gets stdin, stdout and stderr only, whatever the caller left open.
fn cloexec_inherited_fds() {
    // SAFETY: `close_range` with CLOSE_RANGE_CLOEXEC closes nothing and touches no
    // memory; it only sets a flag on descriptors of this (single-threaded) process.
    let rc = unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if rc != 0 {
        // Kernels before 5.11: set the flag one by one.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: F_SETFD on a descriptor number has no memory effect; a
                // number already closed (the read_dir's own) fails with EBADF.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

fn run_closure<T: Serialize, F: FnOnce() -> Result<T>>(f: F) -> Reply<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Reply::Ok(v),
        Ok(Err(e)) => Reply::Err(render(&e)),
        Err(_) => Reply::Err("panicked".into()),
    }
}

fn send<T: Serialize>(result_w: OwnedFd, reply: &Reply<T>) {
    let bytes = serde_json::to_vec(reply).unwrap_or_else(|e| {
        serde_json::to_vec(&Reply::<()>::Err(format!("cannot encode the result: {e}")))
            .unwrap_or_default()
    });
    let mut frame = (bytes.len() as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(&bytes);
    let _ = std::fs::File::from(result_w).write_all(&frame);
}

/// Leaves a forked child at once: no atexit handlers, no flush of stdio buffers
/// copied from the parent.
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// An error and its sources on one line.
pub(crate) fn render(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let text = src.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = src.source();
    }
    s
}

/// The shell-style exit code of a wait status: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn wait_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_framed() {
        let body = br#"{"Ok":3}"#;
        let mut frame = (body.len() as u64).to_le_bytes().to_vec();
        frame.extend_from_slice(body);
        assert_eq!(framed(&frame), Some(&body[..]));
        assert_eq!(framed(&frame[..frame.len() - 1]), None);
        assert_eq!(framed(&frame[..3]), None);
    }

    /// Ctrl-C reaches the whole process group: a child doing work that must not
    /// be cut in half (commit, removal) finishes it and reports.
    #[test]
    fn uninterruptible_children_survive_sigint_and_sigterm() {
        let ns = NsConfig::detect().expect("namespaces for this test");
        let spawn = Spawn {
            what: "signal test",
            ..Spawn::default()
        };
        let done: i32 = in_namespaces(&ns, &spawn, || {
            nix::sys::signal::raise(Signal::SIGINT).map_err(|e| Error::sys("raise", e))?;
            nix::sys::signal::raise(Signal::SIGTERM).map_err(|e| Error::sys("raise", e))?;
            Ok(42)
        })
        .unwrap();
        assert_eq!(done, 42);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(15)), 128 + 15);
    }
}
