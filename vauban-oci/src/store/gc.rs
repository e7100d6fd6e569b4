//! Garbage collection: removes the blobs no named image reaches (an image
//! a kept layer names as its source counts as reached), the cached
//! layer directories (and their tree records) whose chain ID no named image
//! has, the extraction locks, and leftovers in `tmp/`. Runs with `STORE/lock`
//! exclusive, so no other vauban process is mid-write (nor holds a lock).

use std::collections::HashSet;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::{Store, CONFIG_LIMIT, LAYER_LOCK_PREFIX, LAYER_RECORD_SUFFIX, MANIFEST_LIMIT};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{digest_of, ChainId, SOURCE_IMAGE_ANNOTATION};

/// What a gc removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed.
    pub blobs: Vec<Digest>,
    /// Their total size.
    pub bytes: u64,
    /// Layer directories removed (by chain ID hex or odd name).
    pub layer_dirs: Vec<String>,
    /// Entries removed from `tmp/`.
    pub tmp_entries: usize,
}

/// What the named images reach.
#[derive(Default)]
struct Reachable {
    blobs: HashSet<Digest>,
    /// The chain IDs (hex) of every layer of every image: the names of the
    /// layer dirs to keep.
    chains: HashSet<String>,
    /// The layer blobs (hex) of every image: the diff indexes to keep.
    layer_blobs: HashSet<String>,
}

impl Store {
    /// Collects garbage, removing directories with `std::fs::remove_dir_all`.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with(&|p: &Path| std::fs::remove_dir_all(p).at("remove directory", p))
    }

    /// Collects garbage, removing directories (layer dirs, tmp dirs) with
    /// `remove_dir` — e.g. one that works inside a user namespace, since rootless
    /// layer directories are owned by subordinate ids.
    pub fn gc_with(&self, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<GcReport> {
        self.with_exclusive(|| {
            let _guard = self.index_lock()?;
            let reach = self.reachable()?;
            let mut report = GcReport::default();
            self.gc_blobs(&reach, &mut report)?;
            self.gc_layer_dirs(&reach, remove_dir, &mut report)?;
            self.gc_layer_locks()?;
            self.gc_diff_indexes(&reach)?;
            report.tmp_entries = self.gc_tmp(remove_dir)?;
            tracing::info!(
                blobs = report.blobs.len(),
                bytes = report.bytes,
                layer_dirs = report.layer_dirs.len(),
                tmp = report.tmp_entries,
                "gc done"
            );
            Ok(report)
        })
    }

    /// Empties `tmp/` alone (what interrupted writers left), removing
    /// directories with `remove_dir`; how many entries went.
    pub fn clean_tmp_with(&self, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<usize> {
        self.with_exclusive(|| self.gc_tmp(remove_dir))
    }

    /// Marks everything reachable from `index.json`. A missing or unreadable
    /// manifest or config stops the gc: we could not know what it protects.
    fn reachable(&self) -> Result<Reachable> {
        let mut reach = Reachable::default();
        let index = self.read_index()?;
        let mut todo: Vec<_> = index.manifests().to_vec();
        while let Some(desc) = todo.pop() {
            let digest = digest_of(&desc)?;
            if !reach.blobs.insert(digest.clone()) {
                continue;
            }
            if *desc.media_type() == MediaType::ImageIndex {
                let idx: ImageIndex = self.read_json_blob(&digest, MANIFEST_LIMIT)?;
                todo.extend(idx.manifests().iter().cloned());
                continue;
            }
            let manifest: ImageManifest = self.read_json_blob(&digest, MANIFEST_LIMIT)?;
            let config_digest = digest_of(manifest.config())?;
            reach.blobs.insert(config_digest.clone());
            for l in manifest.layers() {
                let digest = digest_of(l)?;
                reach.layer_blobs.insert(digest.hex().to_string());
                reach.blobs.insert(digest);
                if let Some(source) = self.source_image(l) {
                    todo.push(source);
                }
            }
            let config: ImageConfiguration = self.read_json_blob(&config_digest, CONFIG_LIMIT)?;
            let diff_ids: Vec<Digest> = config
                .rootfs()
                .diff_ids()
                .iter()
                .map(|d| Digest::parse(d))
                .collect::<Result<_>>()?;
            for chain in ChainId::of_stack(&diff_ids) {
                reach.chains.insert(chain.hex().to_string());
            }
        }
        Ok(reach)
    }

    /// The image a layer names as its source ([`SOURCE_IMAGE_ANNOTATION`]),
    /// when the store has its manifest (an artifact pulled from a registry
    /// names images this store may never have held).
    fn source_image(&self, layer: &Descriptor) -> Option<Descriptor> {
        let digest = layer
            .annotations()
            .as_ref()?
            .get(SOURCE_IMAGE_ANNOTATION)
            .and_then(|d| Digest::parse(d).ok())?;
        let size = std::fs::metadata(self.blob_path(&digest)).ok()?.len();
        // A manifest, or nothing: a layer naming any other blob (a pulled
        // manifest is anyone's) must not stop the gc.
        if let Err(e) = self.read_json_blob::<ImageManifest>(&digest, MANIFEST_LIMIT) {
            tracing::warn!(%digest, "a layer names as its source image a blob that is none: {e}");
            return None;
        }
        Some(Descriptor::new(
            MediaType::ImageManifest,
            size,
            crate::image::oci_digest(&digest),
        ))
    }

    fn gc_blobs(&self, reach: &Reachable, report: &mut GcReport) -> Result<()> {
        let dir = self.blobs_dir();
        for entry in std::fs::read_dir(&dir).at("read directory", &dir)? {
            let entry = entry.at("read directory", &dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = Digest::parse(&format!("sha256:{name}"))
                .map(|d| reach.blobs.contains(&d))
                .unwrap_or(false);
            if keep {
                continue;
            }
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).at("remove blob", &path)?;
            tracing::debug!(blob = %name, size, "removed");
            report.bytes += size;
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                report.blobs.push(d);
            }
        }
        Ok(())
    }

    fn gc_layer_dirs(
        &self,
        reach: &Reachable,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
        report: &mut GcReport,
    ) -> Result<()> {
        let dir = self.layers_dir();
        for entry in std::fs::read_dir(&dir).at("read directory", &dir)? {
            let entry = entry.at("read directory", &dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(chain) = name.strip_suffix(LAYER_RECORD_SUFFIX) {
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if !is_file || !reach.chains.contains(chain) {
                    remove_entry(&path, remove_dir)?;
                }
                continue;
            }
            if reach.chains.contains(&name) {
                continue;
            }
            remove_entry(&path, remove_dir)?;
            tracing::debug!(layer = %name, "removed layer directory");
            report.layer_dirs.push(name);
        }
        Ok(())
    }

    /// Removes the extraction locks (`STORE/locks/layer-*.lock`): with
    /// `STORE/lock` exclusive, nobody holds or waits for one.
    fn gc_layer_locks(&self) -> Result<()> {
        let dir = self.root.join(super::lock::WORK_LOCKS);
        remove_files_where(&dir, |name| {
            name.starts_with(LAYER_LOCK_PREFIX) && name.ends_with(".lock")
        })
    }

    /// Removes the diff indexes of layers no image has any more.
    fn gc_diff_indexes(&self, reach: &Reachable) -> Result<()> {
        let dir = self.root.join(super::layout::DIFF_INDEXES);
        remove_files_where(&dir, |name| !reach.layer_blobs.contains(name))
    }

    /// Empties `tmp/`: with `STORE/lock` exclusive nobody else is writing there.
    fn gc_tmp(&self, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<usize> {
        let dir = self.tmp_dir();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).at("read directory", &dir)? {
            let entry = entry.at("read directory", &dir)?;
            remove_entry(&entry.path(), remove_dir)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Removes the entries of `dir` whose names `remove` picks (files: nobody
/// else writes there with `STORE/lock` held); a missing `dir` has none.
fn remove_files_where(dir: &Path, remove: impl Fn(&str) -> bool) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.at("read directory", dir)?;
        if remove(&entry.file_name().to_string_lossy()) {
            let path = entry.path();
            std::fs::remove_file(&path).at("remove", &path)?;
        }
    }
    Ok(())
}

/// Removes a file, or a directory with `remove_dir` (an error when it is
/// still there afterwards).
pub(super) fn remove_entry(path: &Path, remove_dir: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).at("stat", path)?;
    if meta.is_dir() {
        remove_dir(path)?;
        if path.exists() {
            return Err(Error::NotRemoved {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    } else {
        std::fs::remove_file(path).at("remove", path)
    }
}
