//! The store's cached layer dirs: each layer of an image is extracted once into
//! `STORE/layers/<chain ID hex>` (overlay format: whiteouts as char devices 0/0,
//! opaque dirs marked `user.overlay.opaque=y`) and shared by every image with
//! the same layers up to it.
//!
//! A layer dir is made over the dirs of the layers below it (its overlay lower
//! dirs): a hard link to a lower file becomes a copy, a parent directory the
//! layer lacks takes the lower one's mode and owner. So it is named by its
//! chain ID (its diff_id and those of every layer below), never by its diff_id
//! alone: one layer over two bases is two dirs, and one image never runs what
//! another image's base put in a shared dir.
//!
//! Extraction runs inside the user namespace, so the layer's owners map to the
//! subordinate ids; one process at a time extracts a given chain (under
//! `STORE/locks/layer-<chain>.lock`), into a temp dir under `STORE/tmp`; the
//! finished tree is walked into its record (`STORE/layers/<chain>.tree`,
//! [`vauban_oci::layer::tree`]), which lands before the dir is renamed into
//! place, so a half-extracted layer is never seen and a layer dir in place
//! always has its record. `vauban fsck` walks the dirs against their records
//! ([`super::layer_check`]). A dir without a record (an older vauban's) is
//! extracted again.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use vauban_oci::layer::{
    apply_blob, ApplyOptions, ApplyReport, BlobInfo, LowerDirs, Owners, WhiteoutMode,
};
use vauban_oci::store::{Store, LAYER_LOCK_PREFIX};
use vauban_oci::{ChainId, Image};

use super::helper::protocol::{FromHelper, Job, LayerJob, Reply};
use super::helper::spawn::{call, Call};
use super::helper::Helper;
use super::ns::NsConfig;
use crate::error::{Error, IoContext, Result};

/// Makes sure every layer dir of `image` exists; returns them base first.
pub fn ensure_layer_dirs(
    store: &Store,
    ns: &NsConfig,
    helper: &Helper,
    image: &Image,
    events: &crate::events::Events,
) -> Result<Vec<PathBuf>> {
    let layers = image.layers_with_diff_ids()?;
    let chains = image.chain_ids()?;
    let present = |c: &ChainId| store.layer_dir(c).exists() && store.layer_record(c).exists();
    let mut seen = std::collections::HashSet::new();
    let missing: Vec<LayerJob> = layers
        .iter()
        .zip(&chains)
        .enumerate()
        .filter(|(_, (_, chain))| !present(chain) && seen.insert((*chain).clone()))
        .map(|(i, ((desc, diff_id), chain))| {
            Ok(LayerJob {
                lowers: chains[..i].iter().rev().cloned().collect(),
                media_type: desc.media_type().to_string(),
                digest: vauban_oci::image::digest_of(desc)?,
                size: desc.size(),
                diff_id: diff_id.clone(),
                chain: chain.clone(),
                tmp: temp_dir_for(store, chain),
            })
        })
        .collect::<Result<_>>()?;
    if !missing.is_empty() {
        tracing::info!(count = missing.len(), "extracting layers");
        let owners = if ns.rootless() {
            // Ids beyond the mapped range cannot be represented: counted, not fatal.
            Owners::BestEffort
        } else {
            Owners::Preserve
        };
        let job = Job::Extract {
            store: store.root().to_path_buf(),
            layers: missing.clone(),
            owners,
        };
        let result = call(
            helper,
            ns,
            job,
            Call::quiet("extract layers", true),
            &mut |msg, _| {
                if let FromHelper::Extracted { index, report } = msg {
                    if let Some(layer) = missing.get(index) {
                        tracing::debug!(diff_id = %layer.diff_id, ?report, "layer extracted");
                        events.emit(crate::events::Event::LayerExtracted {
                            diff_id: layer.diff_id.clone(),
                            entries: report.entries,
                            skipped_devices: report.skipped_devices,
                            skipped_owners: report.skipped_owners,
                        });
                    }
                }
                Ok(())
            },
        )
        .and_then(|reply| done(reply, "extract layers"));
        if result.is_err() {
            // Killed mid-way (interrupted): its temp dirs have known names.
            let leftovers: Vec<PathBuf> = missing
                .iter()
                .map(|l| l.tmp.clone())
                .filter(|p| p.exists())
                .collect();
            if !leftovers.is_empty() {
                let _ = remove_in_namespace(helper, ns, leftovers, "remove partial layer dirs");
            }
        }
        result?;
    }
    Ok(chains.iter().map(|c| store.layer_dir(c)).collect())
}

/// A helper's reply to a job that gives nothing back.
pub(super) fn done(reply: Reply, what: &str) -> Result<()> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Failed(e) => Err(Error::InSandbox {
            what: what.to_string(),
            source: Box::new(e),
        }),
        other => Err(Error::ChildProtocol {
            message: format!("unexpected reply to {what}: {other:?}"),
        }),
    }
}

/// In the helper: extracts the layers on a few threads, reporting each one
/// done. They are taken base first; a layer that needs its lower layer dirs
/// (a hard link to a lower file, a parent directory it lacks) waits until
/// those being extracted meanwhile are whole.
pub(crate) fn extract_all(
    store: &Path,
    layers: &[LayerJob],
    owners: Owners,
    on_done: &mut (dyn FnMut(usize, ApplyReport) + Send),
) -> Result<()> {
    let store = Store::open(store)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(layers.len())
        .clamp(1, 4);
    let on_done = std::sync::Mutex::new(on_done);
    let gate = Arc::new(Gate::new(layers));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match layers.get(i) {
                        Some(layer) => {
                            let mut done = gate.on_drop(&layer.chain);
                            let report = extract_one(&store, layer, owners, &gate)?;
                            done.ok();
                            let mut f = on_done.lock().unwrap_or_else(|e| e.into_inner());
                            (*f)(i, report);
                        }
                        None => return Ok(()),
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or(Err(Error::Panicked("an extraction thread")))
            })
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
}

/// `STORE/tmp/layer-<chain>-<pid>`: where the calling process extracts a layer.
fn temp_dir_for(store: &Store, chain: &ChainId) -> PathBuf {
    store
        .tmp_dir()
        .join(format!("layer-{}-{}", chain.hex(), std::process::id()))
}

/// A temp dir removed on drop unless kept.
struct TempDir(PathBuf);

impl TempDir {
    fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Which layers of one extraction job are whole: a layer's wait for its lower
/// dirs ends when each of those in the job is extracted (or has failed).
struct Gate {
    /// `None` while being extracted, then whether it succeeded.
    state: Mutex<HashMap<ChainId, Option<bool>>>,
    changed: Condvar,
}

impl Gate {
    fn new(layers: &[LayerJob]) -> Gate {
        Gate {
            state: Mutex::new(layers.iter().map(|l| (l.chain.clone(), None)).collect()),
            changed: Condvar::new(),
        }
    }

    /// Marks `chain` failed when the guard drops, unless [`GateGuard::ok`].
    fn on_drop<'a>(&'a self, chain: &'a ChainId) -> GateGuard<'a> {
        GateGuard {
            gate: self,
            chain,
            ok: false,
        }
    }

    fn set(&self, chain: &ChainId, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.insert(chain.clone(), Some(ok));
        self.changed.notify_all();
    }

    /// Waits until every one of `lowers` in the job is done; an error when
    /// one failed. Layers are taken base first, so the lowest one being
    /// extracted never waits: no cycle.
    fn wait(&self, lowers: &[ChainId]) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for d in lowers {
            loop {
                match state.get(d) {
                    Some(None) => {
                        state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    Some(Some(false)) => {
                        return Err(std::io::Error::other(format!(
                            "lower layer {d} could not be extracted"
                        )))
                    }
                    Some(Some(true)) | None => break,
                }
            }
        }
        Ok(())
    }
}

/// Marks a layer done in its [`Gate`] on drop (failed unless told it is ok),
/// so that a panic or an error never leaves an upper layer waiting.
struct GateGuard<'a> {
    gate: &'a Gate,
    chain: &'a ChainId,
    ok: bool,
}

impl GateGuard<'_> {
    fn ok(&mut self) {
        self.ok = true;
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.gate.set(self.chain, self.ok);
    }
}

fn extract_one(
    store: &Store,
    layer: &LayerJob,
    owners: Owners,
    gate: &Arc<Gate>,
) -> Result<ApplyReport> {
    let chain = &layer.chain;
    let target = store.layer_dir(chain);
    let record = store.layer_record(chain);
    let present = || target.exists() && record.exists();
    if present() {
        return Ok(ApplyReport::default());
    }
    // Another process extracting it meanwhile has it whole once we hold this.
    let _lock = store.work_lock(&format!("{LAYER_LOCK_PREFIX}{}", chain.hex()))?;
    if present() {
        return Ok(ApplyReport::default());
    }
    if target.exists() {
        // No record: an older vauban's dir, never in use by this one's
        // sandboxes (they take only recorded dirs). Made again.
        let aside =
            store
                .tmp_dir()
                .join(format!("unrecorded-{}-{}", chain.hex(), std::process::id()));
        std::fs::rename(&target, &aside).at("rename aside", &target)?;
        remove_trees(&[aside])?;
    }
    let tmp = TempDir(layer.tmp.clone());
    if tmp.0.exists() {
        std::fs::remove_dir_all(&tmp.0).at("remove", &tmp.0)?;
    }
    std::fs::create_dir(&tmp.0).at("mkdir", &tmp.0)?;
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).at("chmod", &tmp.0)?;
    let blob = store.open_blob(&layer.digest)?;
    let info = BlobInfo {
        media_type: &layer.media_type,
        digest: &layer.digest,
        size: layer.size,
        diff_id: &layer.diff_id,
    };
    let waiting = (Arc::clone(gate), layer.lowers.clone());
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        owners,
        lowers: LowerDirs {
            dirs: layer.lowers.iter().map(|c| store.layer_dir(c)).collect(),
            ready: Some(Arc::new(move || waiting.0.wait(&waiting.1))),
        },
    };
    let report = apply_blob(std::io::BufReader::new(blob), &info, &tmp.0, &opts)?;
    // What `vauban fsck` compares the dir with later.
    let tree = vauban_oci::layer::tree::walk(&tmp.0)?;
    // The tree must be on disk before its name says it is whole: a crash after
    // the rename must never leave a half-written layer dir that the next build
    // takes as complete. One syncfs flushes the whole tree.
    let dir = std::fs::File::open(&tmp.0).at("open", &tmp.0)?;
    rustix::fs::syncfs(&dir)
        .map_err(std::io::Error::from)
        .at("syncfs", &tmp.0)?;
    drop(dir);
    // The record lands first: a crash between the two renames leaves a
    // record without its dir (removed by gc or fsck), never a dir without one.
    store.write_layer_record(chain, &tree)?;
    let tmp = tmp.keep();
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).at("mkdir", parent)?;
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !present() {
            return Err(crate::Error::io("rename into place", &target, e));
        }
    }
    Ok(report)
}

/// Removes directory trees that may hold files owned by subordinate ids, in a
/// helper that finishes its work whatever signal vauban gets meanwhile.
pub(crate) fn remove_in_namespace(
    helper: &Helper,
    ns: &NsConfig,
    paths: Vec<PathBuf>,
    what: &str,
) -> Result<()> {
    if !ns.rootless() {
        return remove_trees(&paths);
    }
    let reply = call(
        helper,
        ns,
        Job::Remove { paths },
        Call::quiet(what, false),
        &mut |_, _| Ok(()),
    )?;
    done(reply, what)
}

/// In the helper (or as root): removes each tree. After an interrupted run the
/// sandbox's processes are being killed by the kernel (their pid namespace
/// lost its init) and may still write for a few milliseconds: each removal is
/// tried again before giving up.
pub(crate) fn remove_trees(paths: &[PathBuf]) -> Result<()> {
    for dir in paths {
        let mut tries = 0;
        loop {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                res => {
                    res.at("remove", dir)?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Removes a directory tree that may hold files owned by subordinate ids (a layer
/// dir, a sandbox dir, a whole store): inside the user namespace when rootless,
/// directly as root. Meant for [`Store::gc_with`]:
/// `store.gc_with(&|p| vauban_core::sandbox::remove_dir_all(p, &helper))`.
///
/// Never leaves a half-removed tree under its name (a half-removed layer dir would
/// be taken as a whole one by the next build): the tree is first renamed to a
/// hidden sibling (`.removing-NAME-PID`, which the next gc removes as an unknown
/// entry if this one is cut short), then removed by a helper that finishes
/// whatever signal vauban gets.
pub fn remove_dir_all(path: &Path, helper: &Helper) -> vauban_oci::Result<()> {
    let aside = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !name.to_string_lossy().starts_with(".removing-") => {
            let aside = parent.join(format!(
                ".removing-{}-{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            match std::fs::rename(path, &aside) {
                Ok(()) => aside,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                // Not renamable (a mount point, a read-only parent): removed in place.
                Err(_) => path.to_path_buf(),
            }
        }
        _ => path.to_path_buf(),
    };
    let result = NsConfig::detect()
        .and_then(|ns| remove_in_namespace(helper, &ns, vec![aside.clone()], "remove a directory"));
    result.map_err(|e| match e {
        Error::Oci(e) => e,
        other => vauban_oci::Error::io("remove", &aside, std::io::Error::other(other)),
    })
}
