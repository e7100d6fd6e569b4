//! What a build did, as typed values: one [`StepReport`] per step (built or
//! cached, image, size, time), the exported files and the warnings.

use std::path::PathBuf;

use serde::Serialize;
use vauban_oci::Digest;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It ran.
    Built,
    /// The cache served it.
    Cached,
    /// It failed.
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Built => "built",
            Outcome::Cached => "cached",
            Outcome::Failed => "failed",
        })
    }
}

/// One line of the recap: a stage for a host, a release, an export.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// What (`rootfs master-web: web.yml`, `conffs master-web/web01: web.yml`).
    pub step: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The image it gave.
    pub image: Option<Digest>,
    /// The size of its new layer or file, in bytes.
    pub size: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A file of the output tree.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
}

/// A branch of the Ansible repository as the build saw it, from start to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnsibleCheckout {
    /// The repository (a directory or a git URL).
    pub source: String,
    /// The branch, when known.
    pub branch: Option<String>,
    /// The commit, when it is a git checkout.
    pub commit: Option<String>,
}

impl std::fmt::Display for AnsibleCheckout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(b) = &self.branch {
            write!(f, " branch {b}")?;
        }
        match &self.commit {
            Some(c) => write!(f, " at {c}"),
            None => f.write_str(" (not a git checkout)"),
        }
    }
}

/// Everything a build did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Each branch of the Ansible repository the build ran from, at the
    /// commit it had when the build first read it.
    pub ansible: Vec<AnsibleCheckout>,
    /// The steps, in order.
    pub steps: Vec<StepReport>,
    /// The files written under `--out`.
    pub exported: Vec<Exported>,
    /// The names given in the store (`NAME:TAG`).
    pub names: Vec<String>,
    /// The references pushed.
    pub pushed: Vec<String>,
    /// What is worth telling (deletions a conffs cannot carry, ...).
    pub warnings: Vec<String>,
}

impl BuildReport {
    /// How many steps ran (were not served by the cache).
    pub fn built(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.outcome == Outcome::Built)
            .count()
    }
}
