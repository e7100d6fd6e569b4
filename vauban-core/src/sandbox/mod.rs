//! The rootless build sandbox: an image's cached layer dirs stacked as overlay
//! lower dirs under a fresh upper dir, a program run in the merged tree inside
//! new user (unless real root), pid, mount, uts and ipc namespaces, and the upper
//! dir committed as a new layer.
//!
//! Life of a sandbox: [`Sandbox::prepare`] extracts the missing layer dirs (in a
//! helper inside the user namespace, so owners map) and creates
//! `STORE/tmp/sandbox-*/{upper,work,merged,private}`; each [`Sandbox::run`] is a
//! fresh set of namespaces over the same upper dir; [`Sandbox::commit`] packs the
//! upper dir into a layer and writes the new image; dropping the sandbox removes
//! its directory. Mounts only ever exist in the sandbox's mount namespaces: when
//! its processes die, they are gone.
//!
//! What runs in a sandbox is hostile until proven otherwise: see [`helper`] for
//! the process tree (nothing of vauban's is inherited: every sandbox process is
//! a fresh exec), `confine` for what holds the image's processes in the image
//! (pivot_root, masked `/proc`, bounded capabilities), [`controller`] for
//! the confined Ansible controller, [`network`] and `proxy` for the
//! sandbox's own network, and `ARCHITECTURE.md` for what a build can still
//! reach.
//!
//! Architecture invariant: this is the only module of the workspace with `unsafe`
//! code (descriptors given to helpers between fork and exec, `mount_setattr`,
//! signal handlers, descriptors received over the channel), each block with its
//! `SAFETY:`.

mod commit;
pub(crate) mod confine;
pub mod controller;
pub mod helper;
mod idmap;
pub(crate) mod layer_check;
mod layers;
pub(crate) mod mount;
pub mod network;
mod ns;
mod program;
mod proxy;
mod pty;
pub(crate) mod rootfs;
#[allow(clippy::module_inception)]
mod sandbox;
mod seccomp;
mod signals;

pub use commit::{CommitOptions, DEFAULT_EXCLUDES};
pub use confine::{ALLOWED_CAPABILITIES, MASKED_DIRS, MASKED_FILES, READ_ONLY};
pub use controller::Controller;
pub use helper::{run_helper_if_asked, Helper, HELPER_ENV};
pub use idmap::{parse_subid, IdMapping, SubIdRange};
pub use layers::{ensure_layer_dirs, remove_dir_all};
pub use network::Network;
pub use ns::{exit_code, NsConfig};
pub(crate) use program::host_env;

/// Runs `cmd` in a session and process group of its own that is killed
/// when vauban dies (see `BeforeExec::own_group_dying_with_us`).
pub(crate) fn own_group_dying_with_us(cmd: &mut std::process::Command) {
    helper::before_exec::BeforeExec::own_group_dying_with_us().install(cmd);
}

/// Spawns `cmd` in a session of its own (no controlling terminal, so no
/// Ctrl-C meant for vauban, and a program that asks on `/dev/tty` fails
/// instead) with `held` as its descriptor 3 and no descriptor beyond its
/// standard streams and that one. `held` stays close-on-exec in vauban:
/// a lock it is stays with this program only, never with what another
/// thread spawns meanwhile, and is held while the program runs, even past
/// a killed vauban. The borrow spans the spawn, so the descriptor placed
/// is the one given.
pub(crate) fn spawn_holding(
    cmd: &mut std::process::Command,
    held: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<std::process::Child> {
    helper::before_exec::BeforeExec::own_session_holding(held).install(cmd);
    cmd.spawn()
}
pub use program::{Io, Program, RunIo, DEFAULT_ENV, HOST_ENV_KEPT};
pub use sandbox::{run_controller_alone, Sandbox, SandboxOptions};
pub use signals::{pending as pending_signal, SignalGuard};
