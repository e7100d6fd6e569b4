//! The local image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that skopeo and umoci read as it is, plus `tmp/` (where
//! every write starts) and `layers/` (extracted layer directories keyed by
//! chain ID, used as overlay lower dirs, each with the record of its tree
//! beside it: `layers/<chain>.tree`, see [`crate::layer::tree`]).
//!
//! Architecture invariants:
//! - a blob file under `blobs/sha256/` always holds content hashing to its name
//!   (written to `tmp/`, verified, fsynced, renamed);
//! - `index.json` is only ever replaced whole, by rename, under the index lock;
//! - every open [`Store`] holds a shared lock on `STORE/lock`; [`Store::gc`]
//!   needs it exclusive, so it never removes a blob another process is about
//!   to reference.

mod blobs;
mod fsck;
mod gc;
mod index;
mod layer_dirs;
mod layout;
mod lock;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use blobs::BlobWriter;
pub use fsck::{FsckProblem, FsckReport};
pub use gc::GcReport;
pub use index::ANNOTATION_INTERMEDIATE;
pub use layer_dirs::{LayerDirToCheck, LayerDirsReport, Removal, RemovedLayerDir};
pub use layout::PRIVATE_DIR_MODE;
pub use lock::StoreLock;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::ChainId;

/// The suffix of a layer dir's tree record in `STORE/layers`.
pub const LAYER_RECORD_SUFFIX: &str = ".tree";
/// The prefix of the [`Store::work_lock`] name under which a layer dir is
/// extracted (`layer-<chain hex>`): one process at a time makes it.
pub const LAYER_LOCK_PREFIX: &str = "layer-";

/// Largest `index.json` we read.
pub const INDEX_LIMIT: u64 = 64 << 20;
/// Largest manifest (or image index) blob we read.
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Largest image config blob we read.
pub const CONFIG_LIMIT: u64 = 16 << 20;

/// An open image store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// `STORE/lock`, held shared while this handle lives (exclusive during gc).
    in_use: File,
}

impl Store {
    /// Opens the store at `root`, creating the layout if it does not exist yet.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("get the current directory for", root, e))?
                .join(root)
        };
        layout::create_dirs(&root)?;
        let in_use = lock::hold_shared(&root)?;
        let store = Store { root, in_use };
        {
            let _guard = store.index_lock()?;
            layout::init_files(&store)?;
        }
        if let Some(mode) = layout::open_to_others(&store.root) {
            tracing::debug!(mode, "the store is open to other users (see fsck)");
        }
        tracing::debug!(root = %store.root.display(), "store opened");
        Ok(store)
    }

    /// The default store location: `$VAUBAN_STORE`, else `$XDG_DATA_HOME/vauban`,
    /// else `~/.local/share/vauban`.
    pub fn default_root() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("VAUBAN_STORE").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        crate::dirs::UserDir::Data.vauban().ok_or(Error::NoStoreDir)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `STORE/tmp`: scratch space on the store's filesystem (renames from it are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(layout::TMP)
    }

    /// `STORE/layers/<hex>`: the extracted (overlay-format) directory of the
    /// layer whose chain ID is `chain` (the layer over the very layers below
    /// it: its content depends on them). It may not exist yet.
    pub fn layer_dir(&self, chain: &ChainId) -> PathBuf {
        self.root.join(layout::LAYERS).join(chain.hex())
    }

    /// `STORE/layers/<hex>.tree`: the record of what the layer dir of `chain`
    /// held when it was extracted ([`crate::layer::tree`]), written before the
    /// dir is renamed into place; `vauban fsck` walks the dir again against it.
    pub fn layer_record(&self, chain: &ChainId) -> PathBuf {
        self.root
            .join(layout::LAYERS)
            .join(format!("{}{}", chain.hex(), LAYER_RECORD_SUFFIX))
    }

    /// `STORE/indexes/<blob hex>`: the index `vauban diff` made of a
    /// layer blob it read and checked (made again when missing).
    pub fn diff_index_path(&self, blob: &Digest) -> PathBuf {
        self.root.join(layout::DIFF_INDEXES).join(blob.hex())
    }

    /// Keeps `bytes` as the diff index of the layer blob `blob` (atomically).
    pub fn write_diff_index(&self, blob: &Digest, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join(layout::DIFF_INDEXES);
        layout::make_private_dir(&dir)?;
        layout::write_atomic(self, &self.diff_index_path(blob), bytes)
    }

    /// `STORE/layers`.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join(layout::LAYERS)
    }

    /// `STORE/blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(layout::BLOBS).join(digest.hex())
    }

    /// `STORE/blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join(layout::BLOBS)
    }
}
