//! `vauban-chroot MERGED PROGRAM [ARGS...]`: what the host's Ansible runs as
//! `chroot_exe` (the `community.general.chroot` connection calls
//! `[chroot_exe, MERGED, /bin/sh, -c, CMD]` for every command of a task).
//!
//! Where `chroot(8)` would leave the command as root with every capability and
//! the host's tree a second `chroot` away, this gives it a pid namespace of
//! its own with a fresh `/proc` (other hosts' builds and Ansible's processes
//! out of sight), the image as its root by `pivot_root` with the old root
//! detached, the bounded capabilities, a clean environment and no descriptor
//! but its standard streams. The sandbox's [`init`](super::init) does it; this
//! process waits for it and exits with the command's status.

use std::ffi::OsString;
use std::path::PathBuf;

use nix::sched::CloneFlags;

use super::super::program::image_env;
use super::init::{InitJob, Setup};
use super::protocol::{CommandSpec, FromHelper, Reply};
use super::worker::spawn_init;

/// E's `main`: never returns. `args` are the arguments after `argv[0]`.
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
    let merged = PathBuf::from(
        args.next()
            .ok_or("usage: vauban-chroot DIR PROGRAM [ARGS...]")?,
    );
    let argv: Vec<String> = args
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err("usage: vauban-chroot DIR PROGRAM [ARGS...]".into());
    }
    let term = std::env::var("TERM").ok();
    let job = InitJob {
        setup: Setup::Enter { merged },
        in_image: true,
        tty: [false; 3],
        command: CommandSpec {
            argv,
            env: image_env(term.as_deref(), &[]),
            cwd: "/".into(),
        },
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare a pid namespace: {e}"))?;
    let (mut child, mut chan) = spawn_init(&job).map_err(|e| e.to_string())?;
    let mut reply = None;
    while let Ok(Some(msg)) = chan.recv::<FromHelper>() {
        if let FromHelper::Done(r) = msg {
            reply = Some(r);
        }
    }
    let _ = child.wait();
    match reply {
        Some(Reply::Exited(raw)) => Ok(shell_code(raw)),
        Some(Reply::ExecFailed { program, errno }) => {
            let err = std::io::Error::from_raw_os_error(errno);
            eprintln!("vauban-chroot: cannot run {program}: {err}");
            Ok(if errno == libc::ENOENT { 127 } else { 126 })
        }
        Some(Reply::Failed(e)) => Err(render(&e)),
        Some(other) => Err(format!("unexpected reply {other:?}")),
        None => Err("the sandbox's init ended without a report".into()),
    }
}

/// The shell's exit code for a raw wait status: the code, or 128 + the signal.
fn shell_code(raw: i32) -> i32 {
    if raw & 0x7f == 0 {
        (raw >> 8) & 0xff
    } else {
        128 + (raw & 0x7f)
    }
}

fn render(e: &super::protocol::RemoteError) -> String {
    let mut out = e.message.clone();
    let mut cur = e.source.as_deref();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.message);
        cur = s.source.as_deref();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(shell_code(7 << 8), 7);
        assert_eq!(shell_code(9), 137);
        assert_eq!(shell_code(0), 0);
    }
}
