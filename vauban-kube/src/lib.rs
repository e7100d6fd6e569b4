//! vauban's Kubernetes executor: each batch of tasks of a build (a
//! [`JobSpec`](vauban_core::executor::JobSpec)) becomes an Indexed Job
//! ([`manifests::job`]), driven by [`KubeBackend`] through the API server
//! (create, follow its pods and their logs, delete), or printed for
//! `kubectl` ([`manifests::dry_run`]).
//!
//! Architecture invariant: this crate only speaks to the API server; what a
//! task runs is the `vauban` command line it is given.

pub mod backend;
pub mod error;
pub mod manifests;
pub mod options;
pub mod state;

pub use backend::KubeBackend;
pub use error::KubeError;
pub use manifests::{dry_run, job};
pub use options::KubeOptions;
