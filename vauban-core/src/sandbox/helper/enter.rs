//! `vauban-chroot ROOT PROGRAM [ARGS...]`: what the confined Ansible
//! controller runs as `chroot_exe` (the `community.general.chroot`
//! connection calls `[chroot_exe, ROOT, /bin/sh, -c, CMD]` for every command
//! of a task, and `dd` through it to put and fetch files).
//!
//! `ROOT` is a host's directory in the controller's root
//! ([`crate::sandbox::controller::host_root`]): it holds the socket of the
//! host's keeper and nothing of the host's tree. This client hands the keeper
//! the command line and its own standard input, output and error, waits, and
//! ends as the command ended (its exit code, or killed by the same signal).
//! The command runs in the host's namespaces, never in the controller's: the
//! controller has no capability with which to enter them itself.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::super::controller::SOCKET_NAME;
use super::channel::Channel;
use super::keeper::{ChrootReply, ChrootRequest};

/// The client's `main`: never returns. `args` are the arguments after `argv[0]`.
pub(crate) fn main(args: Vec<OsString>) -> ! {
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(message) => {
            eprintln!("vauban-chroot: {message}");
            std::process::exit(125)
        }
    }
}

fn run(args: Vec<OsString>) -> Result<i32, String> {
    let mut args = args.into_iter();
    let root = PathBuf::from(args.next().ok_or(USAGE)?);
    let argv = args
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("a non-UTF-8 argument: {}", a.to_string_lossy()))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let Some(program) = argv.first().cloned() else {
        return Err(USAGE.into());
    };
    // A relative path keeps the address short whatever the host's name.
    std::env::set_current_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let stream = UnixStream::connect(SOCKET_NAME).map_err(|e| {
        format!(
            "{} has no running host sandbox ({e}): this runs only under vauban",
            root.display()
        )
    })?;
    let mut chan = Channel::new(OwnedFd::from(stream));
    let request = ChrootRequest {
        argv,
        term: std::env::var("TERM").ok(),
    };
    chan.send(&request, &[0, 1, 2])
        .map_err(|e| format!("cannot reach the host sandbox: {e}"))?;
    match chan.recv::<ChrootReply>() {
        Ok(Some(ChrootReply::Exited(raw))) => Ok(end_as(raw)),
        Ok(Some(ChrootReply::ExecFailed(errno))) => {
            let err = std::io::Error::from_raw_os_error(errno);
            eprintln!("vauban-chroot: cannot run {program}: {err}");
            Ok(if errno == libc::ENOENT { 127 } else { 126 })
        }
        Ok(Some(ChrootReply::Failed(message))) => Err(message),
        Ok(None) | Err(_) => Err("the host sandbox ended before the command".into()),
    }
}

/// The exit code for a raw wait status; a command killed by a signal kills
/// this process with the same signal, as the command itself would have
/// ended under `chroot(8)`.
fn end_as(raw: i32) -> i32 {
    if libc::WIFEXITED(raw) {
        return libc::WEXITSTATUS(raw);
    }
    let sig = libc::WTERMSIG(raw);
    if let Ok(signal) = nix::sys::signal::Signal::try_from(sig) {
        // SAFETY: only this process's disposition of `signal` is reset to
        // the default before raising it; no handler of ours is involved.
        #[allow(unsafe_code)]
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
        let _ = nix::sys::signal::raise(signal);
    }
    128 + sig
}

const USAGE: &str = "usage: vauban-chroot DIR PROGRAM [ARGS...]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through() {
        assert_eq!(end_as(3 << 8), 3);
        assert_eq!(end_as(0), 0);
    }
}
