//! The layer codec: OCI layers (tar + gzip/zstd) written from a directory tree or
//! an overlayfs upper dir, repacked from a rootfs tarball, and applied safely onto
//! a directory with OCI whiteout semantics.
//!
//! Writing is one streaming pass that computes the compressed digest and size and
//! the diff_id of the uncompressed tar. Applying resolves every path inside the
//! target as if it were `/` (containment) and never follows the last component.

mod apply;
mod compression;
mod create;
mod dirfix;
mod encoder;
mod entry;
mod lower;
pub mod merged;
mod pack;
mod path;
mod pipe;
mod repack;
mod resolve;
mod set_attrs;
pub mod tree;
mod verify;
mod whiteout;
mod writer;
mod xattr;

pub use xattr::is_opaque_dir;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use apply::apply;
pub use compression::{
    decompressor, open_tarball, sniff_decompressor, Compression, MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD,
};
pub use pack::pack;
pub use repack::repack_tar;
pub use verify::{apply_blob, BlobInfo};

use crate::Digest;

/// Prefix of an OCI whiteout entry's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name of the OCI opaque-directory marker.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What to pack into a layer.
#[derive(Debug, Clone, Copy)]
pub enum LayerSource<'a> {
    /// A whole tree: every file under the directory, the root itself as `./`.
    Tree(&'a Path),
    /// An overlayfs upper dir (a change set): char devices 0/0 become `.wh.NAME`,
    /// directories marked opaque (`trusted.overlay.opaque` or `user.overlay.opaque`
    /// = `y`) get a `.wh..wh..opq` entry. The root itself is not packed.
    Upper(&'a Path),
}

/// How to write a layer.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PackOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: when set, mtimes later than it are clamped to it.
    pub source_date_epoch: Option<i64>,
    /// Paths relative to the root left out: a directory excludes its subtree; a
    /// trailing `/*` keeps the directory but drops its content.
    pub exclude: Vec<PathBuf>,
}

/// A layer blob in the store: written by [`pack`] or [`repack_tar`], added to a
/// new image by [`crate::image::build`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackedLayer {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar stream (the config's `diff_ids` entry).
    pub diff_id: Digest,
    /// OCI media type of the blob.
    pub media_type: String,
    /// Number of tar entries written (PAX headers not counted).
    pub entries: u64,
}

/// What to do with whiteouts found in a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WhiteoutMode {
    /// Delete the whited-out paths in the target (unpacking a full image).
    #[default]
    Apply,
    /// Keep them in overlay form, for a single cached layer dir used as an overlay
    /// lower dir: `.wh.x` becomes a char device 0/0, an opaque marker becomes the
    /// xattr `user.overlay.opaque=y` on its directory.
    Overlay,
}

/// What to do with the owners recorded in a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Owners {
    /// chown to the recorded uid/gid; failure is an error.
    #[default]
    Preserve,
    /// chown when permitted; `EPERM`/`EINVAL` are counted, not fatal.
    BestEffort,
}

/// How to apply a layer.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Whiteout handling.
    pub whiteouts: WhiteoutMode,
    /// Owner handling.
    pub owners: Owners,
    /// The layer dirs below this one, for [`WhiteoutMode::Overlay`] (ignored
    /// otherwise): a hard link to a file found only there is written as a
    /// copy of it, and a parent directory the layer lacks takes their
    /// directory's mode and owner.
    pub lowers: LowerDirs,
}

/// Waits until the lower layer dirs are complete; an error if one never will be.
pub type LowersReady = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// The layer dirs below the one being applied in overlay form, as overlayfs
/// stacks them: whiteouts (char devices 0/0) and opaque directories in them
/// hide what is below. They are only read, never followed out of.
#[derive(Clone, Default)]
pub struct LowerDirs {
    /// The dirs, top-most first; one that does not exist is skipped.
    pub dirs: Vec<PathBuf>,
    /// Called once before they are first looked at (they may still be being
    /// extracted meanwhile); `None` when they are complete already.
    pub ready: Option<LowersReady>,
}

impl LowerDirs {
    /// No lower dirs (a base layer, or a plain apply).
    pub const fn none() -> LowerDirs {
        LowerDirs {
            dirs: Vec::new(),
            ready: None,
        }
    }
}

impl std::fmt::Debug for LowerDirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LowerDirs")
            .field("dirs", &self.dirs)
            .field("ready", &self.ready.as_ref().map(|_| "waits"))
            .finish()
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyReport {
    /// Tar entries applied (whiteouts included).
    pub entries: u64,
    /// Whiteout and opaque entries seen.
    pub whiteouts: u64,
    /// Device nodes that could not be created (not permitted) and were skipped.
    pub skipped_devices: u64,
    /// Entries whose owner could not be set (best effort only).
    pub skipped_owners: u64,
    /// Extended attributes that could not be set (not permitted or unsupported).
    pub skipped_xattrs: u64,
}
