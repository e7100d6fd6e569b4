//! `fsck`: re-verifies the whole store — every blob hashes to its name, every
//! name in `index.json` is valid and reaches a manifest whose config and layers
//! are present with the announced sizes, and every config has one diff_id per
//! layer. Problems are collected, each naming the blob or reference at fault.

use std::collections::HashSet;
use std::fmt;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::index::ref_name;
use super::{Store, CONFIG_LIMIT, MANIFEST_LIMIT};
use crate::digest::{Digest, HashingReader};
use crate::error::{IoContext, Result};
use crate::image::digest_of;
use crate::reference::Reference;

/// One thing wrong in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckProblem {
    /// What is at fault: `blob sha256:…`, `image NAME:TAG`, a file name.
    pub subject: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FsckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The outcome of a [`Store::fsck`].
#[derive(Debug, Default, Clone)]
pub struct FsckReport {
    /// Blobs verified.
    pub blobs: usize,
    /// Index entries checked.
    pub images: usize,
    /// Everything found wrong; empty when the store is sound.
    pub problems: Vec<FsckProblem>,
    /// What is not wrong but unsafe (a store other users can enter).
    pub warnings: Vec<String>,
}

impl FsckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        let p = FsckProblem {
            subject: subject.into(),
            message: message.into(),
        };
        tracing::debug!("{p}");
        self.problems.push(p);
    }
}

impl Store {
    /// Re-verifies every blob and reference. Errors only when the store cannot
    /// be read at all; what is wrong inside it is in the report.
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        if let Some(mode) = super::layout::open_to_others(&self.root) {
            report.warnings.push(format!(
                "store {} is open to other users (mode {mode:04o}): its layer dirs hold \
                 images' setuid files, which they could run or rewrite; `chmod 700 {}`",
                self.root.display(),
                self.root.display()
            ));
        }
        let good = self.fsck_blobs(&mut report)?;
        let index = self.read_index()?;
        for desc in index.manifests() {
            report.images += 1;
            let subject = match ref_name(desc) {
                Some(name) => {
                    if let Err(e) = Reference::parse(name) {
                        report.problem(format!("image {name}"), e.to_string());
                    }
                    format!("image {name}")
                }
                None => format!("unnamed index entry {}", desc.digest()),
            };
            self.fsck_manifest(&subject, desc, &good, &mut report);
        }
        Ok(report)
    }

    /// Hashes every blob; returns the digests of the sound ones.
    fn fsck_blobs(&self, report: &mut FsckReport) -> Result<HashSet<Digest>> {
        let dir = self.blobs_dir();
        let mut good = HashSet::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .at("read directory", &dir)?
            .collect::<std::io::Result<_>>()
            .at("read directory", &dir)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                report.problem(format!("blobs/sha256/{name}"), "not a sha256 digest name");
                continue;
            };
            report.blobs += 1;
            let found = self.open_blob(&digest).and_then(|f| {
                HashingReader::new(f)
                    .drain_and_finish()
                    .at("read", entry.path())
            });
            match found {
                Ok((found, _)) if found == digest => {
                    good.insert(digest);
                }
                Ok((found, _)) => report.problem(
                    format!("blob {digest}"),
                    format!("corrupt: its content hashes to {found}"),
                ),
                Err(e) => report.problem(format!("blob {digest}"), e.to_string()),
            }
        }
        Ok(good)
    }

    /// Checks that `desc` is present and sound; problems are named after `subject`.
    fn check_desc(
        &self,
        subject: &str,
        what: &str,
        desc: &Descriptor,
        good: &HashSet<Digest>,
        report: &mut FsckReport,
    ) -> Option<Digest> {
        let digest = match digest_of(desc) {
            Ok(d) => d,
            Err(e) => {
                report.problem(subject, format!("{what}: {e}"));
                return None;
            }
        };
        let path = self.blob_path(&digest);
        match std::fs::metadata(&path) {
            Err(_) => {
                report.problem(subject, format!("{what} blob {digest} is missing"));
                return None;
            }
            Ok(m) if m.len() != desc.size() => {
                report.problem(
                    subject,
                    format!(
                        "{what} blob {digest} is {} bytes, the descriptor says {}",
                        m.len(),
                        desc.size()
                    ),
                );
                return None;
            }
            Ok(_) => {}
        }
        if !good.contains(&digest) {
            report.problem(subject, format!("{what} blob {digest} is corrupt"));
            return None;
        }
        Some(digest)
    }

    fn fsck_manifest(
        &self,
        subject: &str,
        desc: &Descriptor,
        good: &HashSet<Digest>,
        report: &mut FsckReport,
    ) {
        let Some(digest) = self.check_desc(subject, "manifest", desc, good, report) else {
            return;
        };
        if *desc.media_type() == MediaType::ImageIndex {
            match self.read_json_blob::<ImageIndex>(&digest, MANIFEST_LIMIT) {
                Ok(idx) => {
                    for d in idx.manifests() {
                        self.fsck_manifest(subject, d, good, report);
                    }
                }
                Err(e) => report.problem(subject, e.to_string()),
            }
            return;
        }
        let manifest: ImageManifest = match self.read_json_blob(&digest, MANIFEST_LIMIT) {
            Ok(m) => m,
            Err(e) => return report.problem(subject, e.to_string()),
        };
        for (i, layer) in manifest.layers().iter().enumerate() {
            self.check_desc(subject, &format!("layer {i}"), layer, good, report);
        }
        let Some(config_digest) =
            self.check_desc(subject, "config", manifest.config(), good, report)
        else {
            return;
        };
        let config: ImageConfiguration = match self.read_json_blob(&config_digest, CONFIG_LIMIT) {
            Ok(c) => c,
            Err(e) => return report.problem(subject, e.to_string()),
        };
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            report.problem(
                subject,
                format!(
                    "config {config_digest} has {} diff_ids for {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            );
        }
        for d in diff_ids {
            if let Err(e) = Digest::parse(d) {
                report.problem(subject, format!("config {config_digest}: {e}"));
            }
        }
    }
}
