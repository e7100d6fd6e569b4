//! The rootless build sandbox: an image's cached layer dirs stacked as overlay
//! lower dirs under a fresh upper dir, a process run chrooted in the merged tree
//! inside new user (unless real root), mount, pid and uts namespaces, and the upper
//! dir committed as a new layer.
//!
//! Life of a sandbox: [`Sandbox::prepare`] extracts the missing layer dirs (inside
//! the user namespace, so owners map) and creates `STORE/tmp/sandbox-*/{upper,work,
//! merged,private}`; each [`Sandbox::run`] is a fresh set of namespaces over the same
//! upper dir; [`Sandbox::commit`] packs the upper dir into a layer and names the new
//! image; dropping the sandbox removes its directory (inside the user namespace, since
//! it holds files owned by subordinate ids). Mounts only ever exist in the sandbox's
//! mount namespace: when its processes die, they are gone.
//!
//! Architecture invariant: this is the only module of the workspace with `unsafe`
//! code (`userns.rs`: fork, `_exit`, `close_range`; `signals.rs`: sigaction;
//! `mount.rs`: `mount_setattr`), each block with its `SAFETY:`. The fork invariant
//! callers must hold (no other thread that may hold a lock: no tokio runtime alive)
//! is in [`userns`].

mod commit;
pub mod idmap;
mod layers;
pub mod mount;
pub mod rootfs;
mod run;
pub mod signals;
pub mod userns;

pub use commit::{CommitOptions, DEFAULT_EXCLUDES};
pub use layers::{ensure_layer_dirs, remove_dir_all};
pub use run::{Program, Sandbox, SandboxOptions};
pub use userns::{exit_code, in_user_namespace, NsConfig};
