//! vauban's side of a helper: start it (a fresh exec in its own process group,
//! empty environment, its channel as descriptor 3), write its id maps when it
//! asks, hand it the job, follow what it says and wait for it.
//!
//! SIGINT/SIGTERM/SIGHUP recorded meanwhile (see [`signals`](super::super::signals))
//! kill an interruptible job's helper, and with it (`PR_SET_PDEATHSIG`, then the
//! end of its pid namespace) everything it started; other jobs (commit, removal)
//! are let finish and the caller acts on the signal after.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::super::idmap::{userns_hint, IdMapping};
use super::super::ns::NsConfig;
use super::super::signals;
use super::channel::{self, Channel};
use super::exec::{self, Spawn};
use super::protocol::{FromHelper, Job, Reply, ToHelper};
use super::{Helper, HELPER_ARG};
use crate::error::{Error, Result};

/// How a helper is run.
pub(crate) struct Call<'a> {
    /// What it does, for messages.
    pub what: &'a str,
    /// Whether a signal to vauban kills it.
    pub interruptible: bool,
    /// Its standard input, output and error (the command's, for a run).
    pub stdio: [Stdio; 3],
}

impl<'a> Call<'a> {
    /// A helper with no standard input or output; its standard error is kept
    /// for the message when it dies.
    pub(crate) fn quiet(what: &'a str, interruptible: bool) -> Self {
        Call {
            what,
            interruptible,
            stdio: [Stdio::null(), Stdio::null(), Stdio::piped()],
        }
    }
}

/// Runs `job` in a helper; `on_message` sees every message but the reply, with
/// the channel (to take a descriptor sent along).
pub(crate) fn call(
    helper: &Helper,
    ns: &NsConfig,
    job: Job,
    call: Call<'_>,
    on_message: &mut dyn FnMut(FromHelper, &mut Channel) -> Result<()>,
) -> Result<Reply> {
    let (mut ours, theirs) = channel::pair().map_err(|e| Error::sys("socketpair", e))?;
    let mut child = start(helper, theirs, call.stdio, call.what)?;
    let result = follow(
        &mut child,
        &mut ours,
        ns,
        job,
        call.interruptible,
        on_message,
    );
    match result {
        Ok(Some(reply)) => {
            drop(child.stderr.take());
            wait(&mut child)?;
            Ok(reply)
        }
        Ok(None) => {
            // It is gone (its end of the channel closed): its standard error
            // ends too.
            let stderr = child.stderr.take().map(read_tail).unwrap_or_default();
            let status = wait(&mut child)?;
            Err(Error::ChildDied {
                what: call.what.to_string(),
                status: status.to_string(),
                stderr,
            })
        }
        Err(e) => {
            let _ = child.kill();
            let _ = wait(&mut child);
            Err(e)
        }
    }
}

fn start(helper: &Helper, theirs: Channel, stdio: [Stdio; 3], what: &str) -> Result<Child> {
    tracing::debug!(what, helper = %helper.path().display(), "starting a sandbox helper");
    exec::spawn(
        Spawn {
            exe: helper.path(),
            argv0: helper.path().as_os_str(),
            role: HELPER_ARG,
            stdio,
            extra: &[],
            process_group: true,
        },
        theirs,
    )
    .map_err(|e| Error::HelperFailed {
        helper: helper.path().to_path_buf(),
        source: e,
    })
}

/// Hands over the job and follows the helper until its reply (`None`: it ended
/// without one).
fn follow(
    child: &mut Child,
    chan: &mut Channel,
    ns: &NsConfig,
    job: Job,
    interruptible: bool,
    on_message: &mut dyn FnMut(FromHelper, &mut Channel) -> Result<()>,
) -> Result<Option<Reply>> {
    chan.send(&ToHelper::Job(Box::new(job)), &[])
        .map_err(Error::channel)?;
    let mut reply = None;
    loop {
        while let Some(msg) = chan.try_recv::<FromHelper>().map_err(Error::channel)? {
            match msg {
                FromHelper::Unshared => {
                    let mapping = ns.mapping.as_ref().ok_or_else(|| Error::ChildProtocol {
                        message: "a helper asked for id maps while vauban runs as root".into(),
                    })?;
                    write_maps(mapping, child.id() as i32)?;
                    chan.send(&ToHelper::Mapped, &[]).map_err(Error::channel)?;
                }
                FromHelper::Done(r) => reply = Some(r),
                other => on_message(other, chan)?,
            }
        }
        if interruptible {
            if let Some(signal) = signals::pending() {
                return Err(Error::Interrupted { signal });
            }
        }
        let mut fds = [PollFd::new(chan.fd().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        if !chan.fill().map_err(Error::channel)? {
            // EOF: what was sent is all there is.
            while let Some(msg) = chan.try_recv::<FromHelper>().map_err(Error::channel)? {
                if let FromHelper::Done(r) = msg {
                    reply = Some(r);
                }
            }
            return reply.map(translate_userns).transpose();
        }
    }
}

/// A refused user namespace becomes the error that says which sysctl to change.
fn translate_userns(reply: Reply) -> Result<Reply> {
    match reply {
        Reply::UserNamespace(errno) => Err(Error::UserNamespacesDisabled {
            hint: userns_hint(),
            source: std::io::Error::from_raw_os_error(errno),
        }),
        other => Ok(other),
    }
}

fn wait(child: &mut Child) -> Result<ExitStatus> {
    loop {
        match child.wait() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
            Ok(s) => return Ok(s),
        }
    }
}

/// The last lines a dead helper wrote on its standard error (a panic message).
fn read_tail(mut stderr: std::process::ChildStderr) -> String {
    let mut out = Vec::new();
    let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn write_maps(mapping: &IdMapping, pid: i32) -> Result<()> {
    run_tool(&mapping.newuidmap, &mapping.uid_args(pid))?;
    run_tool(&mapping.newgidmap, &mapping.gid_args(pid))
}

fn run_tool(tool: &std::path::Path, args: &[String]) -> Result<()> {
    tracing::debug!("running {} {}", tool.display(), args.join(" "));
    let out = Command::new(tool)
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
