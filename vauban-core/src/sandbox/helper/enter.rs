//! `vauban-chroot MERGED PROGRAM [ARGS...]`: what the host's Ansible runs as
//! `chroot_exe` (the `community.general.chroot` connection calls
//! `[chroot_exe, MERGED, /bin/sh, -c, CMD]` for every command of a task).
//!
//! Where `chroot(8)` would leave the command as root with every capability and
//! the host's tree a second `chroot` away, this process takes a mount namespace
//! of its own, makes the image its root by `pivot_root` with the old root
//! detached, takes the host name the tree's `/etc/hostname` says (a UTS
//! namespace of its own, so several hosts built in one session each see theirs),
//! bounds its capabilities, cleans its environment and descriptors, and execs
//! the command: nothing of the host's tree is left to climb to. The processes of
//! the sandbox it can see (Ansible's) hold every capability it lacks, so their
//! `/proc` entries are closed to it.

use std::ffi::OsString;
use std::path::PathBuf;

use nix::sched::CloneFlags;

use super::super::confine;
use super::super::program::image_env;

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
    use std::os::unix::process::CommandExt;
    let mut args = args.into_iter();
    let merged = PathBuf::from(args.next().ok_or(USAGE)?);
    let argv: Vec<OsString> = args.collect();
    let Some((program, rest)) = argv.split_first() else {
        return Err(USAGE.into());
    };
    let hostname = std::fs::read_to_string(merged.join("etc/hostname"))
        .ok()
        .and_then(|h| h.lines().next().map(str::to_owned))
        .filter(|h| crate::stage::inventory::check_host(h).is_ok());
    let mut flags = CloneFlags::CLONE_NEWNS;
    if hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    confine::make_mounts_private().map_err(|e| e.to_string())?;
    if let Some(h) = &hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    confine::pivot_into(&merged).map_err(|e| e.to_string())?;
    let _ = nix::unistd::setsid();
    confine::new_session_keyring().map_err(|e| e.to_string())?;
    confine::bound_capabilities(confine::ALLOWED_CAPABILITIES, confine::last_capability())
        .map_err(|e| format!("bound the capabilities: {e}"))?;
    cloexec_above_stderr()?;
    let term = std::env::var("TERM").ok();
    let err = std::process::Command::new(program)
        .args(rest)
        .env_clear()
        .envs(image_env(term.as_deref(), &[]))
        .current_dir("/")
        .exec();
    eprintln!(
        "vauban-chroot: cannot run {}: {err}",
        program.to_string_lossy()
    );
    Ok(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

const USAGE: &str = "usage: vauban-chroot DIR PROGRAM [ARGS...]";

/// Every descriptor above 2 is closed at exec: the command gets its standard
/// streams only, whatever Ansible left open.
#[allow(unsafe_code)]
fn cloexec_above_stderr() -> Result<(), String> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on this
    // process's descriptors; it touches no memory.
    let rc = unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if rc != 0 {
        return Err(format!("close_range: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
