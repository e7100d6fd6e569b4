//! Images of the store: an [`Image`] is a manifest and its config (oci-spec
//! types), loaded and verified from the store; [`commit`] builds a new image
//! from an optional base, new layers and a history entry, stores its config
//! and manifest and names it.

use chrono::{DateTime, SecondsFormat, Utc};
use oci_spec::image::{
    Arch, Descriptor, HistoryBuilder, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType, Os, RootFs,
};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::PackedLayer;
use crate::reference::Reference;
use crate::store::{Store, CONFIG_LIMIT, MANIFEST_LIMIT};

mod chain;
mod import;
mod unpack;

pub use chain::ChainId;

/// The annotation of a layer descriptor naming, by manifest digest, the
/// image the layer was made from (the `rootfs.img` of a boot artifact names
/// its master's image). `Store::gc` keeps that image while the manifest
/// holding the layer is kept, when the store has it.
pub const SOURCE_IMAGE_ANNOTATION: &str = "dev.vauban.source.image";
pub use import::{import, ImportOptions};

/// An image of the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// Digest of the manifest blob.
    pub manifest_digest: Digest,
    /// Size of the manifest blob.
    pub manifest_size: u64,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfiguration,
}

/// Our digest of a descriptor (validated: safe to join to a path).
pub fn digest_of(desc: &Descriptor) -> Result<Digest> {
    Digest::parse(desc.digest().as_ref())
}

/// The oci-spec form of a digest.
pub fn oci_digest(d: &Digest) -> oci_spec::image::Digest {
    d.to_string()
        .parse()
        .expect("a validated sha256 digest is a valid OCI digest")
}

impl Image {
    /// Loads the image `reference` from `store`.
    pub fn load(store: &Store, reference: &Reference) -> Result<Self> {
        let desc = store.resolve(reference)?;
        Self::from_descriptor(store, &desc)
    }

    /// Loads the image a manifest descriptor points to. An image index is
    /// resolved to its manifest for this machine's os and architecture.
    pub fn from_descriptor(store: &Store, desc: &Descriptor) -> Result<Self> {
        let mut desc = desc.clone();
        if *desc.media_type() == MediaType::ImageIndex {
            let digest = digest_of(&desc)?;
            let index: ImageIndex = store.read_json_blob(&digest, MANIFEST_LIMIT)?;
            let host = crate::registry::Platform::host();
            desc = index
                .manifests()
                .iter()
                .find(|d| {
                    d.platform().as_ref().is_none_or(|p| {
                        host.matches(
                            &p.os().to_string(),
                            &p.architecture().to_string(),
                            p.variant().as_deref(),
                        )
                    })
                })
                .cloned()
                .ok_or_else(|| {
                    Error::UnsupportedMediaType(format!(
                        "image index {digest} has no manifest for {host}"
                    ))
                })?;
        }
        let manifest_digest = digest_of(&desc)?;
        let bytes = store.read_blob(&manifest_digest, MANIFEST_LIMIT)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            what: format!("manifest {manifest_digest}"),
            source: e,
        })?;
        let config_digest = digest_of(manifest.config())?;
        let config: ImageConfiguration = store.read_json_blob(&config_digest, CONFIG_LIMIT)?;
        Ok(Image {
            manifest_digest,
            manifest_size: bytes.len() as u64,
            manifest,
            config,
        })
    }

    /// A descriptor of the manifest (for `Store::tag`).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::ImageManifest,
            self.manifest_size,
            oci_digest(&self.manifest_digest),
        )
    }

    /// The layer descriptors, base first.
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }

    /// The config's diff_ids, base first, validated.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect()
    }

    /// Each layer descriptor with its diff_id; errors when the counts differ.
    pub fn layers_with_diff_ids(&self) -> Result<Vec<(Descriptor, Digest)>> {
        let diff_ids = self.diff_ids()?;
        if diff_ids.len() != self.layers().len() {
            return Err(Error::BadImage {
                manifest: self.manifest_digest.clone(),
                reason: format!(
                    "{} layers but {} diff_ids in the config",
                    self.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(self.layers().iter().cloned().zip(diff_ids).collect())
    }

    /// Bytes of the image in the store: manifest, config and layer blobs.
    pub fn size(&self) -> u64 {
        self.manifest_size
            + self.manifest.config().size()
            + self.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

/// What the history entry of a new image says.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The command that made the layers (`vauban import debian.tar`, a playbook).
    pub created_by: String,
    /// When; see [`created_now`].
    pub created: DateTime<Utc>,
    /// An optional comment.
    pub comment: Option<String>,
}

/// `SOURCE_DATE_EPOCH` when set and valid (for reproducible images), else now.
pub fn created_now() -> DateTime<Utc> {
    source_date_epoch()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now)
}

/// `SOURCE_DATE_EPOCH` as seconds, when set and valid.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
}

/// Builds a new image and names it `reference`: [`build`], then
/// [`Store::tag`].
pub fn commit(
    store: &Store,
    base: Option<&Image>,
    layers: &[PackedLayer],
    history: &HistoryEntry,
    reference: &Reference,
) -> Result<Image> {
    let image = build(store, base, layers, history)?;
    store.tag(reference, &image.descriptor())?;
    Ok(image)
}

/// Builds a new image: the base's config (or a fresh one for this machine's
/// os/architecture) with `layers` appended to its rootfs and one history entry
/// per layer (one `empty_layer` entry when there is none); stores config and
/// manifest, unnamed (an open [`Store`] keeps gc away from it until it is
/// named). Layer blobs must be in the store.
pub fn build(
    store: &Store,
    base: Option<&Image>,
    layers: &[PackedLayer],
    history: &HistoryEntry,
) -> Result<Image> {
    for l in layers {
        if !store.has_blob(&l.digest) {
            return Err(Error::BlobNotFound(l.digest.clone()));
        }
    }
    let created = history.created.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut config = match base {
        Some(b) => b.config.clone(),
        None => {
            let mut c = ImageConfiguration::default();
            c.set_os(Os::default());
            c.set_architecture(Arch::default());
            c.set_rootfs(RootFs::default());
            c
        }
    };
    config.set_created(Some(created.clone()));
    config
        .rootfs_mut()
        .diff_ids_mut()
        .extend(layers.iter().map(|l| l.diff_id.to_string()));
    let entry = |empty: bool| {
        let mut b = HistoryBuilder::default()
            .created(created.clone())
            .created_by(history.created_by.clone());
        if let Some(c) = &history.comment {
            b = b.comment(c.clone());
        }
        if empty {
            b = b.empty_layer(true);
        }
        b.build().expect("a history entry has no required field")
    };
    let hist = config.history_mut().get_or_insert_with(Vec::new);
    if layers.is_empty() {
        hist.push(entry(true));
    } else {
        hist.extend(layers.iter().map(|_| entry(false)));
    }

    let (config_digest, config_size) = store.write_json_blob(&config)?;
    let mut layer_descs: Vec<Descriptor> = base.map(|b| b.layers().to_vec()).unwrap_or_default();
    layer_descs.extend(layers.iter().map(|l| {
        Descriptor::new(
            MediaType::from(l.media_type.as_str()),
            l.size,
            oci_digest(&l.digest),
        )
    }));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            oci_digest(&config_digest),
        ))
        .layers(layer_descs)
        .build()
        .map_err(|e| Error::BadStore {
            path: store.root().to_path_buf(),
            reason: format!("cannot build a manifest: {e}"),
        })?;
    let (manifest_digest, manifest_size) = store.write_json_blob(&manifest)?;
    Ok(Image {
        manifest_digest,
        manifest_size,
        manifest,
        config,
    })
}

impl Store {
    /// The image named `reference`.
    pub fn image(&self, reference: &Reference) -> Result<Image> {
        Image::load(self, reference)
    }
}
