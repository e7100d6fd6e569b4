//! OCI side of vauban: a content-addressed image store in OCI image-layout form,
//! the layer codec (tar + gzip/zstd, OCI whiteouts, safe application), image
//! references and the registry client.
//!
//! Architecture invariant: this crate never spawns a process except through
//! `containers-image-proxy` (skopeo transports), and contains no `unsafe`.

// Items are public only where an embedder can reach them.
#![warn(unreachable_pub)]

pub mod beneath;
pub mod digest;
pub mod dirs;
pub mod error;
pub mod image;
pub mod layer;
pub mod program_path;
pub mod reference;
pub mod registry;
pub mod store;
pub mod tar_writer;

pub use digest::Digest;
pub use error::{Blame, Error, Result, Unreachable};
pub use image::{ChainId, Image};
/// The OCI types this crate speaks in (`Descriptor`, `ImageManifest`, ...).
pub use oci_spec;
pub use reference::Reference;
