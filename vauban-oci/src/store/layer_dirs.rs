//! The layer dirs' tree records (`STORE/layers/<chain>.tree`, see
//! [`crate::layer::tree`]) and their check: every layer dir is walked again
//! and compared with the record written when it was extracted; one that
//! differs (a planted file, a changed binary, a changed mode) or has no record
//! is removed, and is extracted again when next used.

use std::fmt;
use std::path::{Path, PathBuf};

use super::gc::remove_entry;
use super::{layout, Store, LAYER_RECORD_SUFFIX};
use crate::error::{IoContext, Result};
use crate::image::ChainId;
use crate::layer::tree::{TreeCheck, TreeRecord};

/// A layer dir to check against its record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDirToCheck {
    /// The dir.
    pub dir: PathBuf,
    /// Its record.
    pub record: PathBuf,
}

/// Why [`Store::fsck_layer_dirs`] removed a layer dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It is not what its record says: the first differences.
    Tampered(Vec<String>),
    /// It has no record (made by an older vauban, or not by vauban).
    Unrecorded,
    /// It is not a directory (a link put in its place).
    NotADirectory,
}

/// A layer dir [`Store::fsck_layer_dirs`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedLayerDir {
    /// Its name in `STORE/layers` (a chain ID's hex digits).
    pub name: String,
    /// Why.
    pub why: Removal,
}

impl fmt::Display for RemovedLayerDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        match &self.why {
            Removal::Tampered(d) => {
                write!(f, "layer dir {name} was tampered with ({})", d.join("; "))
            }
            Removal::Unrecorded => write!(
                f,
                "layer dir {name} has no tree record (made by an older vauban, or not by vauban)"
            ),
            Removal::NotADirectory => write!(f, "layer dir {name} is not a directory"),
        }?;
        f.write_str(": removed; it is extracted again when next used")
    }
}

/// What [`Store::fsck_layer_dirs`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerDirsReport {
    /// Layer dirs walked.
    pub checked: usize,
    /// Layer dirs removed, and why.
    pub removed: Vec<RemovedLayerDir>,
    /// Records whose dir is gone, removed.
    pub stale_records: usize,
}

impl LayerDirsReport {
    /// The removed layer dirs that were tampered with (not merely unrecorded).
    pub fn tampered(&self) -> impl Iterator<Item = &RemovedLayerDir> {
        self.removed
            .iter()
            .filter(|r| !matches!(r.why, Removal::Unrecorded))
    }
}

impl Store {
    /// Writes the record of the layer dir of `chain` (temp file, fsync,
    /// rename): before the dir is renamed into place, so a layer dir in place
    /// always has one.
    pub fn write_layer_record(&self, chain: &ChainId, record: &TreeRecord) -> Result<()> {
        layout::write_atomic(self, &self.layer_record(chain), record.as_bytes())
    }

    /// Checks every layer dir against its record and removes those that are
    /// not what was extracted, with `check` (which walks the dirs, e.g. inside
    /// the user namespace where their owners map as they did at extraction;
    /// one [`TreeCheck`] per dir, in order) and `remove_dir` (as for
    /// [`Store::gc_with`]). Records left without their dir are removed too.
    /// Holds `STORE/lock` exclusive ([`crate::Error::StoreBusy`] when another
    /// process uses the store): no dir is removed under a running sandbox,
    /// and none is being extracted meanwhile.
    pub fn fsck_layer_dirs(
        &self,
        check: &dyn Fn(&[LayerDirToCheck]) -> Result<Vec<TreeCheck>>,
        remove_dir: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<LayerDirsReport> {
        self.with_exclusive(|| {
            let dir = self.layers_dir();
            let mut report = LayerDirsReport::default();
            let mut names: Vec<(String, std::fs::FileType)> = std::fs::read_dir(&dir)
                .at("read directory", &dir)?
                .map(|e| {
                    let e = e?;
                    Ok((e.file_name().to_string_lossy().into_owned(), e.file_type()?))
                })
                .collect::<std::io::Result<_>>()
                .at("read directory", &dir)?;
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let mut todo: Vec<(String, LayerDirToCheck)> = Vec::new();
            for (name, kind) in &names {
                // `.removing-*`: a removal cut short, gc's to finish.
                if name.starts_with('.') {
                    continue;
                }
                let path = dir.join(name);
                if let Some(stem) = name.strip_suffix(LAYER_RECORD_SUFFIX) {
                    if kind.is_file() && !names.iter().any(|(n, k)| n == stem && k.is_dir()) {
                        std::fs::remove_file(&path).at("remove", &path)?;
                        report.stale_records += 1;
                    }
                    continue;
                }
                if !kind.is_dir() {
                    remove_entry(&path, remove_dir)?;
                    report.removed.push(RemovedLayerDir {
                        name: name.clone(),
                        why: Removal::NotADirectory,
                    });
                    continue;
                }
                let record = dir.join(format!("{name}{LAYER_RECORD_SUFFIX}"));
                todo.push((name.clone(), LayerDirToCheck { dir: path, record }));
            }
            let items: Vec<LayerDirToCheck> = todo.iter().map(|(_, t)| t.clone()).collect();
            let checks = check(&items)?;
            report.checked = items.len();
            for ((name, item), result) in todo.into_iter().zip(checks) {
                let why = match result {
                    TreeCheck::Intact => continue,
                    TreeCheck::Unrecorded => Removal::Unrecorded,
                    TreeCheck::Differs(d) => Removal::Tampered(d),
                };
                remove_entry(&item.dir, remove_dir)?;
                match std::fs::remove_file(&item.record) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(crate::Error::io("remove", &item.record, e))
                    }
                    _ => {}
                }
                let removed = RemovedLayerDir { name, why };
                tracing::warn!("{removed}");
                report.removed.push(removed);
            }
            Ok(report)
        })
    }
}
