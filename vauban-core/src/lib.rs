//! The builder of vauban: the rootless sandbox (user namespace, overlay of cached
//! layer directories, chroot), and the Ansible stages built on it.
//!
//! Architecture invariant: `sandbox` is the only module with `unsafe` code.

pub mod config;
pub mod env;
pub mod error;
pub mod events;
pub mod keys;
pub mod sandbox;
pub mod stage;

pub use env::Env;
pub use error::{Blame, Error, RemoteError, Result};
pub use events::{Event, EventSink, Events};
