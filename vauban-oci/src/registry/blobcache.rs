//! Where blobs were last seen: `digest -> ["HOST[:PORT]/REPO", ...]`, recorded
//! after each push and pull, read by push to find a repository of the same
//! registry to mount a blob from. A hint only: a wrong entry costs one failed
//! mount request, then the blob is uploaded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

/// Most locations remembered per blob.
const MAX_LOCATIONS: usize = 8;

/// The cache file, loaded in memory.
#[derive(Debug, Default)]
pub struct BlobLocations {
    path: Option<PathBuf>,
    map: BTreeMap<String, Vec<String>>,
}

impl BlobLocations {
    /// Loads the cache at `path` (missing or unreadable: empty); `None` keeps
    /// nothing on disk.
    pub fn load(path: Option<&Path>) -> Self {
        let map = path
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        BlobLocations {
            path: path.map(Path::to_path_buf),
            map,
        }
    }

    /// The default file: `$XDG_CACHE_HOME/vauban/blob-locations.json`, else
    /// `~/.cache/vauban/blob-locations.json`.
    pub fn default_path() -> Option<PathBuf> {
        crate::dirs::UserDir::Cache
            .vauban()
            .map(|d| d.join("blob-locations.json"))
    }

    /// Repositories of `registry` other than `except` where `digest` was seen.
    pub fn mount_candidates(&self, digest: &Digest, registry: &str, except: &str) -> Vec<String> {
        let prefix = format!("{registry}/");
        self.map
            .get(&digest.to_string())
            .into_iter()
            .flatten()
            .filter_map(|loc| loc.strip_prefix(&prefix))
            .filter(|repo| *repo != except)
            .map(str::to_string)
            .collect()
    }

    /// Records that `digest` is in `registry/repository` (most recent first).
    pub fn record(&mut self, digest: &Digest, registry: &str, repository: &str) {
        let loc = format!("{registry}/{repository}");
        let v = self.map.entry(digest.to_string()).or_default();
        v.retain(|l| *l != loc);
        v.insert(0, loc);
        v.truncate(MAX_LOCATIONS);
    }

    /// Writes the cache back (temp file + rename); a no-op without a path.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at("create directory", dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).at("create temp file in", dir)?;
        let bytes = serde_json::to_vec(&self.map).map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })?;
        tmp.write_all(&bytes)
            .at("write", tmp.path().to_path_buf())?;
        tmp.persist(path)
            .map_err(|e| Error::io("rename blob cache to", path, e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_same_registry_other_repo() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        let d = Digest::of_bytes(b"x");
        let mut c = BlobLocations::load(Some(&f));
        c.record(&d, "127.0.0.1:5000", "a/base");
        c.record(&d, "127.0.0.1:5001", "a/base");
        c.record(&d, "127.0.0.1:5000", "b/app");
        c.save().unwrap();
        let c = BlobLocations::load(Some(&f));
        assert_eq!(
            c.mount_candidates(&d, "127.0.0.1:5000", "b/app"),
            vec!["a/base"]
        );
        assert_eq!(
            c.mount_candidates(&d, "127.0.0.1:5000", "c"),
            vec!["b/app", "a/base"]
        );
        assert!(c
            .mount_candidates(&Digest::of_bytes(b"y"), "127.0.0.1:5000", "c")
            .is_empty());
    }
}
