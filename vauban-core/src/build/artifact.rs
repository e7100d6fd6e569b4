//! The boot files of a master as one OCI artifact, pushed beside its images
//! with `--registry`: `NAMESPACE/<master>/boot:<kver>` (and `latest`, the date
//! tag), `artifactType` [`BOOT_ARTIFACT_TYPE`], one layer per file (kernel,
//! initramfs, `rootfs.img`, each host's conffs, command line and iPXE script,
//! `SHA256SUMS`) titled by its path in the tree, the kernel version as the
//! annotation [`KERNEL_ANNOTATION`]. A boot server fetches exactly what was
//! built (`oras pull`, `skopeo copy` to a layout).
//!
//! The `rootfs.img` layer names the master's image it was made from
//! ([`SOURCE_IMAGE_ANNOTATION`]).
//!
//! The config is a minimal image config (`os`, `architecture`, the files'
//! digests as `diff_ids`, since they are stored uncompressed), so every tool
//! that reads images reads it; `artifactType` tells what it is (OCI image
//! spec 1.1, "artifacts").

use std::path::Path;

use vauban_oci::image::SOURCE_IMAGE_ANNOTATION;
use vauban_oci::store::Store;
use vauban_oci::{Digest, Image};

use crate::error::{Error, Result};

/// The `artifactType` of a master's boot files.
pub(crate) const BOOT_ARTIFACT_TYPE: &str = "application/vnd.vauban.boot.v1";
/// The annotation holding the kernel version.
pub(crate) const KERNEL_ANNOTATION: &str = "dev.vauban.kernel.version";
/// The annotation holding the master.
pub(crate) const MASTER_ANNOTATION: &str = "dev.vauban.master";

/// The media type of a file of the boot tree, by its name.
pub(crate) fn media_type(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.starts_with("vmlinuz") {
        "application/vnd.vauban.boot.kernel"
    } else if name.starts_with("initramfs") {
        "application/vnd.vauban.boot.initramfs"
    } else if name == "rootfs.img" {
        "application/vnd.vauban.boot.rootfs.squashfs"
    } else if name.starts_with("conffs-") {
        "application/vnd.vauban.boot.conffs.tar+gzip"
    } else if name == "boot.json" {
        "application/vnd.vauban.boot.info.v1+json"
    } else if name.ends_with(".ipxe") {
        "application/vnd.vauban.boot.ipxe"
    } else {
        "text/plain"
    }
}

/// Writes the artifact of the files `files` (paths relative to `tree`) into
/// the store, unnamed (see [`Store::tag`]); returns it. `rootfs_image`, the
/// manifest digest of the image `rootfs.img` was made from, is written on
/// its layer ([`SOURCE_IMAGE_ANNOTATION`]): what a host booted can be
/// compared file by file (`vauban diff --drift`), and `vauban gc` keeps
/// that image as long as the artifact.
pub fn write_boot_artifact(
    store: &Store,
    tree: &Path,
    files: &[String],
    master: &str,
    kver: &str,
    rootfs_image: Option<&Digest>,
) -> Result<Image> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for rel in files {
        let path = tree.join(rel);
        // The big files are hard-linked, not copied (see `Store::link_blob`).
        let (digest, size): (Digest, u64) = store.link_blob(&path)?;
        diff_ids.push(digest.to_string());
        let mut annotations = serde_json::json!({ "org.opencontainers.image.title": rel });
        if let Some(image) = rootfs_image.filter(|_| rel.ends_with("/rootfs.img")) {
            annotations[SOURCE_IMAGE_ANNOTATION] = image.to_string().into();
        }
        layers.push(serde_json::json!({
            "mediaType": media_type(rel),
            "digest": digest.to_string(),
            "size": size,
            "annotations": annotations,
        }));
    }
    let config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let (config_digest, config_size) = store.write_json_blob(&config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BOOT_ARTIFACT_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_size,
        },
        "layers": layers,
        "annotations": {
            KERNEL_ANNOTATION: kver,
            MASTER_ANNOTATION: master,
            "org.opencontainers.image.created":
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    });
    let (digest, size) = store.write_json_blob(&manifest)?;
    let desc = vauban_oci::oci_spec::image::Descriptor::new(
        vauban_oci::oci_spec::image::MediaType::ImageManifest,
        size,
        vauban_oci::image::oci_digest(&digest),
    );
    Image::from_descriptor(store, &desc).map_err(Error::from)
}
