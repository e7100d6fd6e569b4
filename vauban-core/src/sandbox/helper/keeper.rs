//! A host's keeper: pid 1 of the host's own pid namespace while Ansible works
//! on it. A fresh exec, non-dumpable, called `init` (Ansible's service
//! manager fact reads `/proc/1/comm`). It enters mount, uts and ipc
//! namespaces of its own, mounts its host's tree (overlay, `/proc` of its pid
//! namespace, `/dev`, private files, masks), takes the host's name, moves its
//! root there with the old one detached, and tells the session's init it is
//! ready. Then it serves the controller's `vauban-chroot` requests on the
//! listening socket it was given (descriptor 4): each request brings a
//! command line and the client's three standard streams; the command is
//! started in its own session with the image's bounded capabilities, and its
//! wait status goes back to the client. A client that goes away takes its
//! command's session with it (SIGKILL).
//!
//! What a host's tasks start lives in this pid namespace only: they see their
//! host's processes and no other's (not the controller's, not another host's),
//! and everything left when the stage ends dies with the keeper. Each host
//! has a network namespace of its own too (its own loopback, the egress
//! proxy's listeners on it), unless the build runs on the host's network.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::super::confine;
use super::super::network::{self, NetNs};
use super::super::rootfs;
use super::channel::Channel;
use super::init::{raw_status, start, Caps, StartError, Tree};
use super::protocol::{CommandSpec, FromHelper, RemoteError, Reply};
use super::CHANNEL_FD;
use crate::error::{Error, Result};

/// The keeper's listening socket.
const LISTENER_FD: i32 = CHANNEL_FD + 1;

/// The largest command line a client may send (Ansible's are a few KiB).
const MAX_ARGV: usize = 4 << 20;

/// Clients served at once (Ansible runs one command per task and host; a
/// controller that opens more waits).
const MAX_CLIENTS: usize = 256;

/// What a keeper keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeeperJob {
    /// The host's tree.
    pub tree: Tree,
    /// The host's name (its UTS namespace's).
    pub hostname: String,
    /// The environment of the commands run (`TERM` comes from the client).
    pub env: Vec<(String, String)>,
    /// The host's network: a namespace of its own unless the build runs on
    /// the host's.
    pub net: NetNs,
}

/// `vauban-chroot` → keeper: what to run. The client's standard input,
/// output and error come with it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChrootRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The client's `TERM`.
    pub term: Option<String>,
}

/// keeper → `vauban-chroot`: how the command ended.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ChrootReply {
    /// The raw wait status.
    Exited(i32),
    /// `execve` failed with this errno.
    ExecFailed(i32),
    /// Something else failed.
    Failed(String),
}

/// The keeper's `main`: never returns.
pub(crate) fn main() -> ! {
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_name(c"init");
    // SAFETY: the session's init gave us our channel as descriptor 3 and our
    // listening socket as 4; this fresh process has no other owner of them.
    #[allow(unsafe_code)]
    let (chan, listener) = unsafe {
        (
            OwnedFd::from_raw_fd(CHANNEL_FD),
            OwnedFd::from_raw_fd(LISTENER_FD),
        )
    };
    let mut chan = Channel::new(chan);
    let job = match chan.recv::<KeeperJob>() {
        Ok(Some(job)) => job,
        _ => std::process::exit(2),
    };
    if let Err(e) = set_up(&job, &chan) {
        let _ = chan.send(&FromHelper::Done(Reply::Failed(RemoteError::of(&e))), &[]);
        std::process::exit(1);
    }
    if chan.send(&FromHelper::Done(Reply::Done), &[]).is_err() {
        std::process::exit(1);
    }
    match serve(&chan, &listener, &job.env) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("vauban keeper of {}: {e}", job.hostname);
            std::process::exit(1)
        }
    }
}

/// The host's namespaces and tree; the root moved into it. The listeners of
/// its network namespace go to the session's init (for the egress proxy).
fn set_up(job: &KeeperJob, init: &Channel) -> Result<()> {
    use nix::sched::CloneFlags as F;
    let _ = nix::unistd::setsid();
    confine::new_session_keyring()?;
    let mut flags = F::CLONE_NEWNS | F::CLONE_NEWUTS | F::CLONE_NEWIPC;
    if job.net != NetNs::Keep {
        flags |= F::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| Error::sys("unshare", e))?;
    if let Some(fds) = network::set_up(job.net)? {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        init.send(&FromHelper::Net, &raw).map_err(Error::channel)?;
    }
    confine::make_mounts_private()?;
    nix::unistd::sethostname(&job.hostname).map_err(|e| Error::sys("sethostname", e))?;
    let tree = &job.tree;
    tree.overlay.mount(&tree.merged)?;
    rootfs::setup(&tree.merged, &tree.private)?;
    confine::mask_proc(&tree.merged)?;
    confine::pivot_into(&tree.merged)
}

/// A connected client and the command it asked for.
struct Client {
    chan: Channel,
    /// Its command, once started (its session id too).
    pid: Option<Pid>,
}

/// Serves requests until the session's init goes away (its channel ends).
fn serve(init: &Channel, listener: &OwnedFd, env: &[(String, String)]) -> Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| Error::sys("sigprocmask", e))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::sys("signalfd", e))?;
    let mut clients: HashMap<i32, Client> = HashMap::new();
    loop {
        let keys: Vec<i32> = clients.keys().copied().collect();
        // A full table (or no descriptor left to accept with) leaves new
        // clients waiting in the listen queue rather than spinning.
        let accepting = if clients.len() < MAX_CLIENTS {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let mut fds = vec![
            PollFd::new(init.fd().as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), accepting),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        for k in &keys {
            // Once its command runs, a client is only watched for its end:
            // what it sends after its request is never read.
            let events = match clients[k].pid {
                None => PollFlags::POLLIN,
                Some(_) => PollFlags::from_bits_retain(libc::POLLRDHUP),
            };
            fds.push(PollFd::new(clients[k].chan.fd().as_fd(), events));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            // The session's init sends nothing more: readable means gone.
            return Ok(());
        }
        if ready[2] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(&mut clients);
        }
        if ready[1] {
            match rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC) {
                Ok(conn) => {
                    let chan = Channel::new(conn);
                    clients.insert(chan.fd().as_raw_fd(), Client { chan, pid: None });
                }
                // Out of descriptors: wait for a client to end.
                Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(_) => {}
            }
        }
        for (i, key) in keys.iter().enumerate() {
            if ready[3 + i] {
                read_client(&mut clients, *key, env);
            }
        }
    }
}

/// Reaps every ended process; a client's command that ended gets its reply.
fn reap(clients: &mut HashMap<i32, Client>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(ws) => {
                let (Some(pid), Some(raw)) = (ws.pid(), raw_status(ws)) else {
                    continue;
                };
                let owner = clients
                    .iter()
                    .find(|(_, c)| c.pid == Some(pid))
                    .map(|(k, _)| *k);
                if let Some(key) = owner {
                    if let Some(client) = clients.remove(&key) {
                        let _ = client.chan.send(&ChrootReply::Exited(raw), &[]);
                    }
                }
            }
        }
    }
}

/// Reads what a client sent: its request (then its command starts), or its
/// end (then its command's session is killed).
fn read_client(clients: &mut HashMap<i32, Client>, key: i32, env: &[(String, String)]) {
    let Some(client) = clients.get_mut(&key) else {
        return;
    };
    if let Some(pid) = client.pid {
        // Its end (POLLRDHUP): Ansible killed it, so its command goes too.
        clients.remove(&key);
        let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
        return;
    }
    let open = client.chan.fill().unwrap_or(false);
    let reply = match client.chan.try_recv::<ChrootRequest>() {
        Ok(Some(request)) => {
            let fds = [
                client.chan.take_fd(),
                client.chan.take_fd(),
                client.chan.take_fd(),
            ];
            // Anything more sent along is not kept.
            while client.chan.take_fd().is_some() {}
            match fds {
                [Some(i), Some(o), Some(e)] => match start_request(&request, env, [i, o, e]) {
                    Ok(pid) => {
                        client.pid = Some(pid);
                        return;
                    }
                    Err(reply) => Some(reply),
                },
                _ => Some(ChrootReply::Failed(
                    "a request without its three standard streams".into(),
                )),
            }
        }
        // Not whole yet: wait for more, unless it is gone.
        Ok(None) if open => None,
        Ok(None) => {
            clients.remove(&key);
            return;
        }
        Err(e) => Some(ChrootReply::Failed(e.to_string())),
    };
    if let Some(reply) = reply {
        let _ = client.chan.send(&reply, &[]);
        clients.remove(&key);
    }
}

/// Starts a client's command in the image with its standard streams.
fn start_request(
    request: &ChrootRequest,
    env: &[(String, String)],
    stdio: [OwnedFd; 3],
) -> std::result::Result<Pid, ChrootReply> {
    let size: usize = request.argv.iter().map(String::len).sum();
    if request.argv.is_empty() || size > MAX_ARGV {
        return Err(ChrootReply::Failed("an empty or oversized command".into()));
    }
    let mut env = env.to_vec();
    if let Some(term) = &request.term {
        env.retain(|(k, _)| k != "TERM");
        env.push(("TERM".into(), term.clone()));
    }
    let command = CommandSpec {
        argv: request.argv.clone(),
        env,
        cwd: "/".into(),
    };
    match start(&command, Caps::Image, None, Some(stdio)) {
        Ok(pid) => Ok(Pid::from_raw(pid as i32)),
        Err(StartError::Exec(errno)) => Err(ChrootReply::ExecFailed(errno)),
        Err(StartError::Other(e)) => Err(ChrootReply::Failed(e.to_string())),
    }
}
