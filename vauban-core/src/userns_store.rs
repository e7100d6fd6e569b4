//! Store use-cases that need the sandbox's user namespace: files of a rootless
//! store are owned by subordinate ids, so removing them ([`gc`]), checking the
//! layer dirs against their records ([`fsck_layer_dirs`]) or unpacking an image
//! with its owners kept ([`unpack_in_namespace`]) happens in a helper inside
//! it. As root they are done in place.

use std::path::Path;

use vauban_oci::layer::{ApplyReport, Owners};
use vauban_oci::store::{GcReport, LayerDirsReport, Store};
use vauban_oci::Image;

use crate::error::{Error, Result};
use crate::sandbox::helper::protocol::{Job, Reply};
use crate::sandbox::helper::spawn::{call, Call};
use crate::sandbox::{remove_dir_all, Helper, NsConfig};

/// Removes blobs and layer dirs no named image reaches; rootless layer dirs
/// are removed inside the user namespace.
pub fn gc(store: &Store, helper: &Helper) -> Result<GcReport> {
    Ok(store.gc_with(&|p| remove_dir_all(p, helper))?)
}

/// Empties the store's `tmp/` alone (what interrupted builds left: trees
/// owned by subordinate ids are removed inside a user namespace); how many
/// entries went.
pub fn clean_tmp(store: &Store, helper: &Helper) -> Result<usize> {
    Ok(store.clean_tmp_with(&|p| remove_dir_all(p, helper))?)
}

/// `vauban fsck` of the layer dirs: each is walked again against the record
/// of its tree written when it was extracted; one that differs (a planted
/// file, a changed binary, a changed mode) or has no record is removed, and
/// extracted again when next used. Needs the store to itself
/// ([`vauban_oci::Error::StoreBusy`] otherwise): nothing is removed under a
/// running sandbox.
pub fn fsck_layer_dirs(store: &Store, helper: &Helper) -> Result<LayerDirsReport> {
    crate::sandbox::layer_check::fsck_layer_dirs(store, helper)
}

/// Who owns what `vauban unpack` writes outside the user namespace: as root,
/// the image's owners; otherwise the unpacking user, the image's owners,
/// device nodes and trusted xattrs skipped where they cannot be set (counted
/// in the [`ApplyReport`]: [`unpack_in_namespace`] keeps them).
pub fn unpack_owners() -> Owners {
    if rustix::process::geteuid().is_root() {
        Owners::Preserve
    } else {
        Owners::BestEffort
    }
}

/// Unpacks `image` into `dir` (new or empty) with its owners: as root
/// directly; rootless inside the user namespace, where they map to the
/// subordinate ids (the files then belong to those ids on the host).
pub fn unpack_in_namespace(
    store: &Store,
    image: &Image,
    dir: &Path,
    helper: &Helper,
) -> Result<ApplyReport> {
    let ns = NsConfig::detect()?;
    if !ns.rootless() {
        return Ok(image.unpack_into(store, dir, Owners::Preserve, &|_| {})?);
    }
    let dir = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
    let job = Job::Unpack {
        store: store.root().to_path_buf(),
        image: image.manifest_digest.clone(),
        target: dir,
    };
    match call(
        helper,
        &ns,
        job,
        Call::quiet("unpack", true),
        &mut |_, _| Ok(()),
    )? {
        Reply::Unpacked(report) => Ok(report),
        Reply::Failed(e) => Err(Error::InSandbox {
            what: "unpack".into(),
            source: Box::new(e),
        }),
        other => Err(Error::ChildProtocol {
            message: format!("unexpected reply to an unpack: {other:?}"),
        }),
    }
}
