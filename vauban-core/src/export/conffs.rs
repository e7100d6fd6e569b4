//! TEMPORARY compile stub; replaced by the real module at merge.
#![allow(missing_docs, dead_code)]
use std::path::{Path, PathBuf};
pub struct ConffsOptions {
    pub size_limit: u64,
    pub hostname: String,
}
pub struct ConffsReport {
    pub path: PathBuf,
    pub size: u64,
    pub entries: u64,
    pub deletions: Vec<String>,
}
#[derive(Debug, thiserror::Error)]
pub enum ConffsError {
    #[error("x")]
    X,
}
impl ConffsError {
    pub fn blame(&self) -> crate::error::Blame {
        crate::error::Blame::Internal
    }
}
pub fn export_conffs(
    _s: &vauban_oci::store::Store,
    _m: &vauban_oci::Image,
    _h: &vauban_oci::Image,
    _k: &crate::keys::HostKeys,
    _o: &ConffsOptions,
    _d: &Path,
) -> Result<ConffsReport, ConffsError> {
    Err(ConffsError::X)
}
