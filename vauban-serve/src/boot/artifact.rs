//! A master's boot files as the store holds them: the OCI artifact a build
//! writes (`<master>/boot`, see vauban-core's `build::artifact`), one layer
//! per file of the boot tree titled by its path, and the master's
//! `boot.json` among them. Read once per digest (an artifact never
//! changes) and kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vauban_core::export::{BootInfo, BOOT_INFO_FILE};
use vauban_core::vauban_oci::image::SOURCE_IMAGE_ANNOTATION;
use vauban_core::vauban_oci::store::Store;
use vauban_core::vauban_oci::Digest;

use crate::error::{Result, ServeError};

/// The `artifactType` of a master's boot files.
pub const BOOT_ARTIFACT_TYPE: &str = "application/vnd.vauban.boot.v1";
/// The largest manifest or `boot.json` read.
const JSON_LIMIT: u64 = 4 << 20;

/// One file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Its path in the boot tree (`linux/vmlinuz-6.1.0-28-amd64`).
    pub title: String,
    /// Its blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

impl BootFile {
    /// Its file name (the last component of its path).
    pub fn name(&self) -> &str {
        self.title.rsplit('/').next().unwrap_or(&self.title)
    }
}

/// What a file of an artifact is to a booting host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The kernel.
    Kernel,
    /// The initramfs.
    Initramfs,
    /// The squashfs root.
    Rootfs,
    /// A host's conffs (its secrets: only for that host's boot).
    Conffs,
    /// Anything else (scripts, sums, `boot.json`).
    Other,
}

impl FileKind {
    /// Its name in the boot records.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Kernel => "kernel",
            FileKind::Initramfs => "initramfs",
            FileKind::Rootfs => "rootfs",
            FileKind::Conffs => "conffs",
            FileKind::Other => "other",
        }
    }
}

/// A master's boot artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its manifest digest.
    pub digest: Digest,
    /// When it was made (its `org.opencontainers.image.created`).
    pub created: Option<String>,
    /// Its files.
    pub files: Vec<BootFile>,
    /// Its `boot.json`.
    pub info: BootInfo,
    /// The image its `rootfs.img` was made from (the layer's
    /// `dev.vauban.source.image`), when the build wrote it.
    pub rootfs_image: Option<Digest>,
}

impl Artifact {
    /// The file at `title`.
    pub fn file(&self, title: &str) -> Option<&BootFile> {
        self.files.iter().find(|f| f.title == title)
    }

    /// The file whose blob is `digest`, and what it is (a file may be
    /// listed twice: the first one's kind wins, conffs first, so a host's
    /// secrets are never taken for a public file).
    pub fn by_digest(&self, digest: &Digest) -> Option<(&BootFile, FileKind, Option<&str>)> {
        let mut found: Vec<(&BootFile, FileKind, Option<&str>)> = self
            .files
            .iter()
            .filter(|f| &f.digest == digest)
            .map(|f| {
                let (kind, host) = self.kind_of(&f.title);
                (f, kind, host)
            })
            .collect();
        found.sort_by_key(|(_, k, _)| *k != FileKind::Conffs);
        found.into_iter().next()
    }

    /// What the file at `title` is, and whose it is for a conffs.
    fn kind_of(&self, title: &str) -> (FileKind, Option<&str>) {
        let i = &self.info;
        if let Some((host, _)) = i.hosts.iter().find(|(_, h)| h.conffs == title) {
            return (FileKind::Conffs, Some(host.as_str()));
        }
        if title
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("conffs-"))
        {
            // A conffs not in boot.json is a secret all the same.
            return (FileKind::Conffs, None);
        }
        let kind = if title == i.kernel {
            FileKind::Kernel
        } else if title == i.initramfs {
            FileKind::Initramfs
        } else if title == i.rootfs {
            FileKind::Rootfs
        } else {
            FileKind::Other
        };
        (kind, None)
    }

    /// The kernel, initramfs and rootfs, and `host`'s conffs.
    pub fn boot_files(&self, host: &str) -> Result<[&BootFile; 4]> {
        let get = |title: &str| {
            self.file(title).ok_or_else(|| {
                ServeError::Missing(format!(
                    "the boot artifact {} has no file {title}",
                    self.digest
                ))
            })
        };
        let conffs = self.info.hosts.get(host).ok_or_else(|| {
            ServeError::Missing(format!("{host} has no conffs in {}", self.digest))
        })?;
        Ok([
            get(&self.info.kernel)?,
            get(&self.info.initramfs)?,
            get(&self.info.rootfs)?,
            get(&conffs.conffs)?,
        ])
    }
}

/// The artifacts read so far, by digest.
#[derive(Default)]
pub struct Artifacts {
    read: Mutex<HashMap<String, Arc<Artifact>>>,
}

impl Artifacts {
    /// The artifact `digest` of `store`, checked to be a boot artifact (of
    /// `master`, when given).
    pub fn load(
        &self,
        store: &Store,
        digest: &Digest,
        master: Option<&str>,
    ) -> Result<Arc<Artifact>> {
        let cached = self
            .read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest.to_string())
            .cloned();
        let artifact = match cached {
            Some(a) => a,
            None => {
                let a = Arc::new(read(store, digest)?);
                self.read
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(digest.to_string(), a.clone());
                a
            }
        };
        if let Some(m) = master.filter(|m| *m != artifact.info.master) {
            return Err(ServeError::Conflict(format!(
                "{digest} holds the boot files of {}, not of {m}",
                artifact.info.master
            )));
        }
        Ok(artifact)
    }
}

/// Reads the artifact `digest` from `store`.
fn read(store: &Store, digest: &Digest) -> Result<Artifact> {
    let bytes = store.read_blob(digest, JSON_LIMIT)?;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ServeError::Conflict(format!("{digest} is not a manifest: {e}")))?;
    if manifest["artifactType"].as_str() != Some(BOOT_ARTIFACT_TYPE) {
        return Err(ServeError::Conflict(format!(
            "{digest} is not a boot artifact of vauban (artifactType {BOOT_ARTIFACT_TYPE})"
        )));
    }
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let title = layer["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap_or_default();
        let Some(d) = layer["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
            continue;
        };
        if title.is_empty()
            || title
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            continue;
        }
        if let Some(source) = layer["annotations"][SOURCE_IMAGE_ANNOTATION]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
        {
            sources.push((title.to_owned(), source));
        }
        files.push(BootFile {
            title: title.to_owned(),
            digest: d,
            size: layer["size"].as_u64().unwrap_or(0),
        });
    }
    let master = manifest["annotations"]["dev.vauban.master"]
        .as_str()
        .unwrap_or_default();
    let info_title = format!("{master}/{BOOT_INFO_FILE}");
    let info_file = files
        .iter()
        .find(|f| f.title == info_title)
        .ok_or_else(|| {
            ServeError::Conflict(format!(
                "the boot artifact {digest} has no {info_title}: it was made by a vauban before \
             the boot service; build the master's boot files again"
            ))
        })?;
    let info: BootInfo =
        serde_json::from_slice(&store.read_blob(&info_file.digest, JSON_LIMIT)?)
            .map_err(|e| ServeError::Conflict(format!("{info_title} of {digest}: {e}")))?;
    let rootfs_image = sources
        .into_iter()
        .find(|(title, _)| *title == info.rootfs)
        .map(|(_, d)| d);
    Ok(Artifact {
        rootfs_image,
        digest: digest.clone(),
        created: manifest["annotations"]["org.opencontainers.image.created"]
            .as_str()
            .map(str::to_owned),
        files,
        info,
    })
}
