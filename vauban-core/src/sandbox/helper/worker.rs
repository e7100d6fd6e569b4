//! The helper process (H): a fresh exec of the helper executable with its
//! channel as descriptor 3. It reads one job, enters a new user namespace when
//! not root (vauban writes its id maps), does the job and sends the reply.
//!
//! File work (extraction, packing, removal) is done here, as root of the user
//! namespace so the layers' owners map to the subordinate ids. A run unshares a
//! pid namespace and starts the sandbox's [`init`](super::init) as its pid 1;
//! what init reports is passed on, the pty descriptor of an interactive run
//! included.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use vauban_oci::Blame;

use super::super::proxy::ToProxy;
use super::channel::Channel;
use super::init::{spawn_helper, InitJob};
use super::protocol::{FromHelper, Job, RemoteError, Reply, ToHelper};
use super::{CHANNEL_FD, INIT_ARG, PROXY_ARG};
use crate::error::Error;

/// H's `main`: never returns.
pub(crate) fn main() -> ! {
    // SAFETY: vauban started us with our end of the channel as descriptor 3
    // (see `spawn`); nothing else in this fresh process owns it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) };
    if !is_socket(&fd) {
        eprintln!("vauban: this is the sandbox helper; it is started by vauban itself");
        std::process::exit(2);
    }
    let mut chan = Channel::new(fd);
    let job = match chan.recv::<ToHelper>() {
        Ok(Some(ToHelper::Job(job))) => *job,
        _ => std::process::exit(2),
    };
    let reply = match enter_user_namespace(&mut chan) {
        Ok(()) => run_job(job, &mut chan),
        Err(reply) => reply,
    };
    let _ = chan.send(&FromHelper::Done(reply), &[]);
    std::process::exit(0)
}

fn is_socket(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
    })
}

/// Not root: a new user namespace, mapped by vauban, and root in it.
fn enter_user_namespace(chan: &mut Channel) -> Result<(), Reply> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| Reply::UserNamespace(e as i32))?;
    let failed = |e: Error| Reply::Failed(RemoteError::of(&e));
    chan.send(&FromHelper::Unshared, &[])
        .map_err(|e| failed(Error::channel(e)))?;
    match chan.recv::<ToHelper>() {
        Ok(Some(ToHelper::Mapped)) => {}
        // vauban could not write the maps (it reports why) or died.
        _ => std::process::exit(1),
    }
    let _ = nix::unistd::setgroups(&[]);
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(|e| failed(Error::sys("setresgid", e)))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(|e| failed(Error::sys("setresuid", e)))?;
    Ok(())
}

fn run_job(job: Job, chan: &mut Channel) -> Reply {
    let result = match job {
        Job::Extract {
            store,
            layers,
            owners,
        } => super::super::layers::extract_all(&store, &layers, owners, &mut |index, report| {
            let _ = chan.send(&FromHelper::Extracted { index, report }, &[]);
        })
        .map(|()| Reply::Done),
        Job::Commit(commit) => super::super::commit::pack_upper(&commit).map(Reply::Packed),
        Job::Remove { paths } => super::super::layers::remove_trees(&paths).map(|()| Reply::Done),
        Job::CheckLayers { dirs } => Ok(Reply::Checked(super::super::layer_check::check_trees(
            &dirs,
        ))),
        Job::Unpack {
            store,
            image,
            target,
        } => unpack(&store, &image, &target).map(Reply::Unpacked),
        Job::Run { init, proxy } => return start_init(*init, proxy, chan),
    };
    result.unwrap_or_else(|e| Reply::Failed(RemoteError::of(&e)))
}

/// In the user namespace: every layer of `image` applied onto `target`, owners
/// kept (they map to the subordinate ids).
fn unpack(
    store: &std::path::Path,
    image: &vauban_oci::Digest,
    target: &std::path::Path,
) -> Result<vauban_oci::layer::ApplyReport, Error> {
    let store = vauban_oci::store::Store::open(store)?;
    let desc = vauban_oci::oci_spec::image::Descriptor::new(
        vauban_oci::oci_spec::image::MediaType::ImageManifest,
        0,
        vauban_oci::image::oci_digest(image),
    );
    let image = vauban_oci::Image::from_descriptor(&store, &desc)?;
    Ok(image.unpack_into(&store, target, vauban_oci::layer::Owners::Preserve, &|_| {})?)
}

/// The egress proxy when asked for (in the host's network namespace, before
/// the pid namespace), then a new pid namespace with init as its pid 1;
/// relays init's messages (the sandbox's listeners to the proxy).
fn start_init(run: InitJob, proxy: Option<Vec<String>>, chan: &mut Channel) -> Reply {
    let failed = |e: Error| Reply::Failed(RemoteError::of(&e));
    let mut proxy = match proxy.map(start_proxy).transpose() {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWPID) {
        return failed(Error::sys("unshare a pid namespace", e));
    }
    let (mut child, mut init) = match spawn_helper(
        INIT_ARG,
        "vauban-init",
        &[],
        [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()],
    ) {
        Ok(pair) => pair,
        Err(e) => return failed(e),
    };
    if let Err(e) = init.send(&run, &[]) {
        return failed(Error::channel(e));
    }
    let reply = relay(&mut init, chan, proxy.as_mut().map(|(_, c)| c));
    let status = loop {
        match child.wait() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    if let Some((mut proxy, chan)) = proxy {
        drop(chan);
        let _ = proxy.kill();
        let _ = proxy.wait();
    }
    reply.unwrap_or_else(|| {
        Reply::Failed(RemoteError::new(
            Blame::Internal,
            format!(
                "the sandbox's init ended without a report ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
        ))
    })
}

/// The egress proxy (a fresh exec; its standard error is the command's, so
/// that a refused connection shows in the build's output).
fn start_proxy(allow: Vec<String>) -> Result<(std::process::Child, Channel), Error> {
    let (child, chan) = spawn_helper(
        PROXY_ARG,
        "vauban-proxy",
        &[],
        [Stdio::null(), Stdio::null(), Stdio::inherit()],
    )?;
    chan.send(&ToProxy::Job { allow }, &[])
        .map_err(Error::channel)?;
    Ok((child, chan))
}

/// Passes init's messages on (the pty descriptor with its message, the
/// network listeners to the proxy) until its reply or its end.
pub(crate) fn relay(
    from: &mut Channel,
    to: &mut Channel,
    mut proxy: Option<&mut Channel>,
) -> Option<Reply> {
    loop {
        match from.recv::<FromHelper>() {
            Ok(Some(FromHelper::Done(reply))) => return Some(reply),
            Ok(Some(FromHelper::Pty)) => {
                let Some(fd) = from.take_fd() else {
                    return Some(Reply::Failed(RemoteError::new(
                        Blame::Internal,
                        "init announced a pty without sending it",
                    )));
                };
                let _ = to.send(&FromHelper::Pty, &[fd.as_raw_fd()]);
            }
            Ok(Some(FromHelper::Net)) => {
                let fds: Vec<OwnedFd> = std::iter::from_fn(|| from.take_fd()).collect();
                let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
                match proxy.as_mut() {
                    Some(p) if raw.len() == 3 => {
                        let _ = p.send(&ToProxy::Listeners, &raw);
                    }
                    // No proxy was asked for: nothing listens behind them.
                    _ => {}
                }
            }
            Ok(Some(other)) => {
                let _ = to.send(&other, &[]);
            }
            Ok(None) | Err(_) => return None,
        }
    }
}
