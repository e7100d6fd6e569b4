//! The builder of vauban: the rootless sandbox (user namespace, overlay of cached
//! layer directories, chroot), and the Ansible stages built on it.
//!
//! Architecture invariant: `sandbox` is the only module with `unsafe` code.

// Items are public only where an embedder can reach them, and an embedder can
// name every public type it is handed.
#![warn(unreachable_pub)]
#![warn(unnameable_types)]

pub mod build;
pub mod config;
pub mod diff;
pub mod error;
pub mod events;
pub mod executor;
pub mod export;
pub mod history;
pub mod keys;
pub mod machine;
pub mod printable;
mod private;
pub mod runtime;
pub mod sandbox;
pub mod stage;
pub mod userns_store;

/// The OCI layer (store, images, layers, registry), for embedders that need one dependency.
pub use vauban_oci;
pub use vauban_oci::oci_spec;

pub use error::{Blame, Error, RemoteError, Result};
pub use events::{Event, EventSink, Events};
pub use machine::Env;
pub use runtime::runtime;
