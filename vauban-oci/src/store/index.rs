//! `index.json`: the named images. Read with a size cap; replaced whole and
//! atomically under the index lock. Names live in the
//! `org.opencontainers.image.ref.name` annotation, exactly `NAME:TAG`.

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, ANNOTATION_REF_NAME};

/// Annotation of an index entry naming an intermediate image (a stage's own).
pub const ANNOTATION_INTERMEDIATE: &str = "dev.vauban.intermediate";

use super::layout::{write_atomic, INDEX};
use super::{Store, INDEX_LIMIT};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;

/// An index with no image.
pub(super) fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("an index with every required field set")
}

/// Writes `index` as `STORE/index.json`, atomically. The caller holds the lock.
pub(super) fn write_index(store: &Store, index: &ImageIndex) -> Result<()> {
    let path = store.root.join(INDEX);
    let bytes = serde_json::to_vec(index).map_err(|e| Error::Json {
        what: path.display().to_string(),
        source: e,
    })?;
    write_atomic(store, &path, &bytes)
}

/// The reference named by a descriptor's annotation, if any.
pub(super) fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

impl Store {
    /// Reads `index.json` (at most [`INDEX_LIMIT`] bytes).
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join(INDEX);
        let size = std::fs::metadata(&path).at("stat", &path)?.len();
        if size > INDEX_LIMIT {
            return Err(Error::TooLarge {
                what: path.display().to_string(),
                size,
                limit: INDEX_LIMIT,
            });
        }
        let bytes = std::fs::read(&path).at("read", &path)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            what: path.display().to_string(),
            source: e,
        })
    }

    /// Every named image, sorted by reference. Entries without a valid
    /// `ref.name` annotation are skipped (they still protect their blobs from gc).
    pub fn list(&self) -> Result<Vec<(Reference, Descriptor)>> {
        let index = self.read_index()?;
        let mut out: Vec<(Reference, Descriptor)> = index
            .manifests()
            .iter()
            .filter_map(|d| {
                let r = Reference::parse(ref_name(d)?).ok()?;
                Some((r, d.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|later, earlier| later.0 == earlier.0);
        Ok(out)
    }

    /// The names matching `pattern`, a glob (`*`, `?`, `[...]`) of `NAME[:TAG]`:
    /// without a `:` it is matched against names (any tag), with one against
    /// whole references. A plain reference matches itself.
    pub fn names_matching(&self, pattern: &str) -> Result<Vec<Reference>> {
        let bad = |reason: String| Error::InvalidReference {
            reference: pattern.to_string(),
            reason,
        };
        let glob = glob::Pattern::new(pattern).map_err(|e| bad(e.to_string()))?;
        let whole = pattern.contains(':');
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        Ok(self
            .list()?
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| {
                let text = if whole {
                    r.to_string()
                } else {
                    r.name().to_string()
                };
                glob.matches_with(&text, opts)
            })
            .collect())
    }

    /// Whether the index entry `desc` names an intermediate image (each
    /// stage's own image; listed only when asked).
    pub fn is_intermediate(desc: &Descriptor) -> bool {
        desc.annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_INTERMEDIATE))
            .is_some_and(|v| v == "true")
    }

    /// The manifest descriptor named `reference`.
    pub fn resolve(&self, reference: &Reference) -> Result<Descriptor> {
        let wanted = reference.to_string();
        let index = self.read_index()?;
        index
            .manifests()
            .iter()
            .rev()
            .find(|d| ref_name(d) == Some(wanted.as_str()))
            .cloned()
            .ok_or(Error::ImageNotFound(wanted))
    }

    /// Names the manifest `descriptor` `reference`, replacing any previous
    /// image of that name. The manifest blob must be in the store.
    pub fn tag(&self, reference: &Reference, descriptor: &Descriptor) -> Result<()> {
        self.tag_all(&[(reference.clone(), descriptor.clone())])
    }

    /// Gives every name of `names` to its manifest in one replacement of
    /// `index.json`: a reader sees all of them or none. Manifest blobs must be
    /// in the store.
    pub fn tag_all(&self, names: &[(Reference, Descriptor)]) -> Result<()> {
        let mut named = Vec::with_capacity(names.len());
        for (reference, descriptor) in names {
            let digest = crate::image::digest_of(descriptor)?;
            if !self.has_blob(&digest) {
                return Err(Error::BlobNotFound(digest.clone()));
            }
            let name = reference.to_string();
            let mut desc = descriptor.clone();
            let mut annotations = desc.annotations().clone().unwrap_or_default();
            annotations.insert(ANNOTATION_REF_NAME.to_string(), name.clone());
            desc.set_annotations(Some(annotations));
            named.push((name, digest, desc));
        }
        let _guard = self.index_lock()?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        for (name, _, desc) in &named {
            manifests.retain(|d| ref_name(d) != Some(name.as_str()));
            manifests.push(desc.clone());
        }
        index.set_manifests(manifests);
        write_index(self, &index)?;
        for (name, digest, _) in &named {
            tracing::info!(reference = %name, %digest, "tagged");
        }
        Ok(())
    }

    /// Removes the name `reference`; its blobs stay until the next gc.
    pub fn untag(&self, reference: &Reference) -> Result<()> {
        let name = reference.to_string();
        let _guard = self.index_lock()?;
        let mut index = self.read_index()?;
        let before = index.manifests().len();
        let mut manifests = index.manifests().clone();
        manifests.retain(|d| ref_name(d) != Some(name.as_str()));
        if manifests.len() == before {
            return Err(Error::ImageNotFound(name));
        }
        index.set_manifests(manifests);
        write_index(self, &index)?;
        tracing::info!(reference = %name, "untagged");
        Ok(())
    }
}
