//! The on-disk layout: directories, the `oci-layout` marker and an empty
//! `index.json`, created on first open; helpers for atomic file replacement.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Store;
use crate::error::{Error, IoContext, Result};

/// `blobs/sha256`, relative to the root.
pub(super) const BLOBS: &str = "blobs/sha256";
/// `tmp`, relative to the root.
pub(super) const TMP: &str = "tmp";
/// `layers`, relative to the root.
pub(super) const LAYERS: &str = "layers";
/// `indexes`, relative to the root (made on first use).
pub(super) const DIFF_INDEXES: &str = "indexes";
/// The layout marker file.
pub(super) const OCI_LAYOUT: &str = "oci-layout";
/// The index of named images.
pub(super) const INDEX: &str = "index.json";

const LAYOUT_VERSION: &str = "1.0.0";

/// The mode of every directory the store creates, whatever the umask: the
/// cached layer dirs hold images' setuid and file-capability binaries, which
/// no other user may reach (run, or rewrite to poison later builds).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates the store's directories if missing, private to their owner.
pub(super) fn create_dirs(root: &Path) -> Result<()> {
    let mut missing: Vec<&Path> = root.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for dir in missing {
        make_private_dir(dir)?;
    }
    for dir in ["blobs", BLOBS, TMP, LAYERS] {
        let p = root.join(dir);
        if !p.exists() {
            make_private_dir(&p)?;
        }
    }
    Ok(())
}

pub(super) fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    // The umask may have taken bits away; never adds any.
    fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE)).at("chmod", dir)
}

/// The store root's permission bits when other users may enter it.
pub(super) fn open_to_others(root: &Path) -> Option<u32> {
    let mode = fs::metadata(root).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Writes `oci-layout` and an empty `index.json` when missing; checks the
/// layout version otherwise. Called with the index lock held.
pub(super) fn init_files(store: &Store) -> Result<()> {
    let marker = store.root.join(OCI_LAYOUT);
    match fs::read(&marker) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
                what: marker.display().to_string(),
                source: e,
            })?;
            let version = v.get("imageLayoutVersion").and_then(|v| v.as_str());
            if version != Some(LAYOUT_VERSION) {
                return Err(Error::BadStore {
                    path: store.root.clone(),
                    reason: format!(
                        "oci-layout has version {version:?}, expected {LAYOUT_VERSION}"
                    ),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let body = format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}");
            write_atomic(store, &marker, body.as_bytes())?;
        }
        Err(e) => return Err(Error::io("read", marker, e)),
    }
    let index = store.root.join(INDEX);
    if !index.exists() {
        super::index::write_index(store, &super::index::empty_index())?;
    }
    Ok(())
}

/// Replaces `target` by `bytes` atomically: temp file in `STORE/tmp`, fsync,
/// mode 0644, rename, fsync of the parent directory.
pub(super) fn write_atomic(store: &Store, target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp_dir = store.tmp_dir();
    let mut tmp = tempfile::Builder::new()
        .prefix(".write-")
        .tempfile_in(&tmp_dir)
        .at("create a temporary file in", &tmp_dir)?;
    tmp.write_all(bytes).at("write", tmp.path().to_path_buf())?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .at("chmod", tmp.path().to_path_buf())?;
    tmp.as_file()
        .sync_all()
        .at("fsync", tmp.path().to_path_buf())?;
    tmp.persist(target)
        .map_err(|e| Error::io("rename into place", target, e.error))?;
    sync_parent(target)
}

/// Fsyncs the directory holding `path`, so a rename into it is durable.
pub(super) fn sync_parent(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}
