//! `vauban fsck` of the layer dirs: each is walked again against the record
//! written when it was extracted ([`vauban_oci::layer::tree`]), inside the
//! user namespace when rootless (where the owners map as they did at
//! extraction, and files of subordinate ids can be read), directly as root.
//! The store decides what to remove ([`Store::fsck_layer_dirs`]).

use vauban_oci::layer::tree::{self, TreeCheck};
use vauban_oci::store::{LayerDirToCheck, LayerDirsReport, Store};

use super::helper::protocol::{Job, Reply};
use super::helper::spawn::{call, Call};
use super::helper::Helper;
use super::layers::remove_dir_all;
use super::ns::NsConfig;
use crate::error::{Error, Result};

/// In the helper (or as root): checks each dir against its record.
pub(crate) fn check_trees(dirs: &[LayerDirToCheck]) -> Vec<TreeCheck> {
    dirs.iter()
        .map(|d| tree::check(&d.dir, &d.record))
        .collect()
}

/// Checks `dirs` against their records where their owners map.
fn check_in_namespace(
    helper: &Helper,
    ns: &NsConfig,
    dirs: &[LayerDirToCheck],
) -> Result<Vec<TreeCheck>> {
    if !ns.rootless() || dirs.is_empty() {
        return Ok(check_trees(dirs));
    }
    let what = "check the layer dirs";
    let job = Job::CheckLayers {
        dirs: dirs.to_vec(),
    };
    match call(helper, ns, job, Call::quiet(what, true), &mut |_, _| Ok(()))? {
        Reply::Checked(checks) if checks.len() == dirs.len() => Ok(checks),
        Reply::Failed(e) => Err(Error::InSandbox {
            what: what.into(),
            source: Box::new(e),
        }),
        other => Err(Error::ChildProtocol {
            message: format!("unexpected reply to {what}: {other:?}"),
        }),
    }
}

/// Walks every layer dir of `store` against its record and removes (inside
/// the user namespace when rootless) those that were tampered with or have no
/// record: they are extracted again when next used. Needs the store to
/// itself (no other vauban process using it).
pub(crate) fn fsck_layer_dirs(store: &Store, helper: &Helper) -> Result<LayerDirsReport> {
    let ns = NsConfig::detect()?;
    let check = |dirs: &[LayerDirToCheck]| {
        check_in_namespace(helper, &ns, dirs).map_err(|e| match e {
            Error::Oci(e) => e,
            other => vauban_oci::Error::io(
                "check the layer dirs in",
                store.layers_dir(),
                std::io::Error::other(other),
            ),
        })
    };
    Ok(store.fsck_layer_dirs(&check, &|p| remove_dir_all(p, helper))?)
}
