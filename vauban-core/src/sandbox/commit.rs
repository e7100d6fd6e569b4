//! Committing a sandbox: in a helper (inside the user namespace), the upper dir
//! is made into a clean change set (what the build wrote into the private `/etc`
//! files copied in, mount-point placeholders taken out, `/toslash/*` moved onto
//! `/`) and packed into a layer blob of the store; then the new image (base +
//! layer, history entry) is written, unnamed: the caller names it.
//!
//! The upper dir is the build's: it may hold links to anywhere (`/etc` replaced
//! by a link to a host directory). Every change to it goes through a descriptor
//! of a directory opened below the upper dir with no link followed
//! ([`vauban_oci::beneath`]), and the last component is never followed, so commit
//! never reads, writes or deletes outside the upper dir.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use vauban_oci::layer::PackedLayer;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use vauban_oci::beneath::{list_dir, open_beneath, open_dir_at, remove_all_at, type_at};
use vauban_oci::image::{created_now, source_date_epoch, HistoryEntry};
use vauban_oci::layer::{Compression, LayerSource, PackOptions};
use vauban_oci::store::Store;
use vauban_oci::Image;

use super::helper::protocol::{CommitJob, Job, Reply};
use super::helper::spawn::{call, Call};
use super::rootfs::{PLACEHOLDER_DIRS, PLACEHOLDER_FILES, PLACEHOLDER_LINKS, PRIVATE_FILES};
use super::sandbox::Sandbox;
use crate::error::{Error, IoContext, Result};

/// The largest private file (`/etc/hosts`, ...) a build may leave.
const PRIVATE_FILE_LIMIT: u64 = 64 << 20;

/// Build leftovers never committed (relative to `/`; `dir/*` keeps the dir).
pub const DEFAULT_EXCLUDES: [&str; 4] = ["tmp/*", "var/tmp/*", "run/*", "root/.ansible"];

/// How to commit a sandbox.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// The history entry's `created_by` (the command).
    pub created_by: String,
    /// Compression of the new layer.
    pub compression: Compression,
    /// Paths left out of the layer; see [`DEFAULT_EXCLUDES`].
    pub exclude: Vec<PathBuf>,
    /// The history entry's `comment` (a build records its cache key there).
    pub comment: Option<String>,
}

impl CommitOptions {
    /// Options with the default compression and excludes.
    pub fn new(created_by: impl Into<String>) -> Self {
        CommitOptions {
            created_by: created_by.into(),
            compression: Compression::default(),
            exclude: DEFAULT_EXCLUDES.iter().map(PathBuf::from).collect(),
            comment: None,
        }
    }
}

impl Sandbox<'_> {
    /// Packs the upper dir into a layer and writes the new image (unnamed: see
    /// [`Store::tag`]); the sandbox dir is removed afterwards.
    pub fn commit(mut self, opts: &CommitOptions) -> Result<Image> {
        let job = CommitJob {
            store: self.store.root().to_path_buf(),
            upper: self.upper_dir(),
            private: self.private_dir(),
            initial: self.initial.clone(),
            lower: self.lower.clone(),
            pack: PackOptions {
                compression: opts.compression,
                source_date_epoch: source_date_epoch(),
                exclude: opts.exclude.clone(),
            },
        };
        // Not interrupted mid-way (that would leave a temp blob behind): a signal
        // received while packing is acted on right after, before the image is
        // written.
        let reply = call(
            &self.helper,
            &self.ns,
            Job::Commit(job),
            Call::quiet("commit", false),
            &mut |_, _| Ok(()),
        )?;
        let packed = match reply {
            Reply::Packed(p) => p,
            Reply::Failed(e) => {
                return Err(Error::InSandbox {
                    what: "commit".into(),
                    source: Box::new(e),
                })
            }
            other => {
                return Err(Error::ChildProtocol {
                    message: format!("unexpected reply to a commit: {other:?}"),
                })
            }
        };
        if let Some(signal) = super::signals::pending() {
            return Err(Error::Interrupted { signal });
        }
        let history = HistoryEntry {
            created_by: opts.created_by.clone(),
            created: created_now(),
            comment: opts.comment.clone(),
        };
        let image = vauban_oci::image::build(self.store, Some(&self.image), &[packed], &history)?;
        tracing::info!(digest = %image.manifest_digest, "committed");
        self.remove()?;
        Ok(image)
    }
}

/// In the helper: the upper dir made a change set and packed into a blob.
pub(crate) fn pack_upper(job: &CommitJob) -> Result<PackedLayer> {
    finish_upper(&job.upper, &job.private, &job.initial, &job.lower)?;
    let store = Store::open(&job.store)?;
    Ok(store.pack_layer(LayerSource::Upper(&job.upper), &job.pack)?)
}

/// Opens the upper dir itself (the sandbox's own path, so it may be followed).
fn open_upper(upper: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .at("open", upper)
}

/// Makes the upper dir the change set of the build.
pub(crate) fn finish_upper(
    upper: &Path,
    private: &Path,
    initial: &[(String, Vec<u8>)],
    lower: &[PathBuf],
) -> Result<()> {
    let root = open_upper(upper)?;
    remove_placeholders(&root, upper, lower)?;
    for (name, rel) in PRIVATE_FILES {
        let path = private.join(name);
        // What the build wrote (through the bind mount): read up to a bound.
        let now = vauban_oci::beneath::read_regular_at(
            rustix::fs::CWD,
            &path,
            PRIVATE_FILE_LIMIT,
            &path,
        )?
        .ok_or_else(|| Error::io("read", &path, std::io::Error::other("not a regular file")))?;
        let before = initial
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_slice());
        // Made with an mtime of 0 (see `Sandbox::prepare`): any write moves it, so
        // a file rewritten with the same content (the host name it already had) is
        // kept too.
        let touched = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t != std::time::UNIX_EPOCH);
        if touched || before != Some(now.as_slice()) {
            write_in_upper(&root, upper, rel, &now)?;
        }
    }
    if is_dir_at(&root, b"toslash")? {
        let toslash = open_dir_at(&root, b"toslash").at("open", upper.join("toslash"))?;
        move_onto(&toslash, &root, upper)?;
        drop(toslash);
        remove_all_at(&root, b"toslash", false).at("remove", upper.join("toslash"))?;
    }
    Ok(())
}

fn is_dir_at(dir: impl AsFd, name: &[u8]) -> Result<bool> {
    Ok(type_at(dir, name)
        .map_err(|e| Error::io("stat", String::from_utf8_lossy(name).into_owned(), e))?
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory))
}

/// The directory holding `rel` (opened below `root`, no link followed) and the
/// last component; `None` when a parent is missing or is not a directory (the
/// build replaced it: a link, a file).
fn parent_of<'r>(root: &OwnedFd, rel: &'r str) -> Option<(OwnedFd, &'r str)> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => (".", rel),
    };
    open_beneath(root, dir.as_bytes()).ok().map(|fd| (fd, name))
}

/// [`Sandbox::put_file`]: `content` at `upper/rel` with `mode`.
pub(crate) fn put_in_upper(upper: &Path, rel: &str, content: &[u8], mode: u32) -> Result<()> {
    let root = open_upper(upper)?;
    let rel = rel.trim_start_matches('/');
    write_in_upper(&root, upper, rel, content)?;
    let Some((parent, name)) = parent_of(&root, rel) else {
        return Ok(());
    };
    rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
        .map_err(std::io::Error::from)
        .at("chmod", upper.join(rel))
}

/// Writes `content` at `upper/rel` without following any symlink: the build may
/// have left links in the upper dir (`/etc` moved away and replaced by a link to
/// `/`). A parent that is not a directory means the build replaced it: nothing
/// written.
fn write_in_upper(root: &OwnedFd, upper: &Path, rel: &str, content: &[u8]) -> Result<()> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut prefix = String::new();
    for part in &parts[..parts.len() - 1] {
        let dir = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.clone()
        };
        let Ok(parent) = open_beneath(root, dir.as_bytes()) else {
            tracing::warn!("/{rel}: /{dir} is not a directory in the build's result; not kept");
            return Ok(());
        };
        match type_at(&parent, part.as_bytes()).at("stat", upper.join(&prefix).join(part))? {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Some(_) => {
                tracing::warn!(
                    "/{rel}: /{prefix}{}{part} is not a directory in the build's result; \
                     the build's /{rel} is not kept",
                    if prefix.is_empty() { "" } else { "/" }
                );
                return Ok(());
            }
            None => rustix::fs::mkdirat(&parent, *part, Mode::from_raw_mode(0o755))
                .map_err(std::io::Error::from)
                .at("mkdir", upper.join(&prefix).join(part))?,
        }
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
    }
    let Some((parent, name)) = parent_of(root, rel) else {
        return Ok(());
    };
    let target = upper.join(rel);
    match type_at(&parent, name.as_bytes()).at("stat", &target)? {
        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            tracing::warn!("/{rel} is a directory in the build's result: not replaced");
            return Ok(());
        }
        Some(_) => rustix::fs::unlinkat(&parent, name, AtFlags::empty())
            .map_err(std::io::Error::from)
            .at("remove", &target)?,
        None => {}
    }
    let fd = rustix::fs::openat(
        &parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(std::io::Error::from)
    .at("create", &target)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content).at("write", &target)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .at("chmod", &target)
}

/// Takes out what the sandbox created as mount points (see [`super::rootfs`]).
fn remove_placeholders(root: &OwnedFd, upper: &Path, lower: &[PathBuf]) -> Result<()> {
    for rel in PLACEHOLDER_FILES {
        let Some((parent, name)) = parent_of(root, rel) else {
            continue;
        };
        // An empty regular file at a mount point is ours (the build wrote into what
        // was mounted over it, never into it).
        let ours = type_at(&parent, name.as_bytes())
            .at("stat", upper.join(rel))?
            .is_some_and(|st| {
                FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_size == 0
            });
        if ours {
            rustix::fs::unlinkat(&parent, name, AtFlags::empty())
                .map_err(std::io::Error::from)
                .at("remove", upper.join(rel))?;
        }
    }
    for (rel, target) in PLACEHOLDER_LINKS {
        let Some((parent, name)) = parent_of(root, rel) else {
            continue;
        };
        let link = rustix::fs::readlinkat(&parent, name, Vec::new());
        let ours = link.is_ok_and(|t| t.as_bytes() == target.as_bytes())
            && !vauban_oci::layer::merged::exists(lower, rel)?;
        if ours {
            rustix::fs::unlinkat(&parent, name, AtFlags::empty())
                .map_err(std::io::Error::from)
                .at("remove", upper.join(rel))?;
        }
    }
    for rel in PLACEHOLDER_DIRS {
        let Some((parent, name)) = parent_of(root, rel) else {
            continue;
        };
        if !is_dir_at(&parent, name.as_bytes())? {
            continue;
        }
        let Ok(dir) = open_dir_at(&parent, name.as_bytes()) else {
            continue;
        };
        let empty = list_dir(&dir).is_ok_and(|names| names.is_empty());
        if empty && !vauban_oci::layer::is_opaque_dir(&dir) {
            rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)
                .map_err(std::io::Error::from)
                .at("rmdir", upper.join(rel))?;
        }
    }
    Ok(())
}

/// Moves the content of `from` onto `to` (merging directories, replacing files);
/// whiteouts in `from` are dropped. Both are directories opened below the upper
/// dir; nothing is followed.
fn move_onto(from: &OwnedFd, to: &OwnedFd, upper: &Path) -> Result<()> {
    // (source dir, target dir) pairs still to merge: no recursion, any depth.
    let mut todo: Vec<(OwnedFd, OwnedFd, PathBuf)> = vec![(
        from.try_clone().map_err(|e| Error::sys("dup", e))?,
        to.try_clone().map_err(|e| Error::sys("dup", e))?,
        upper.to_path_buf(),
    )];
    while let Some((src, dst, at)) = todo.pop() {
        for name in list_dir(&src).at("read dir", upper.join("toslash"))? {
            let Some(st) = type_at(&src, &name).at("stat", at.join(os(&name)))? else {
                continue;
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                continue;
            }
            let target = at.join(os(&name));
            match type_at(&dst, &name).at("stat", &target)? {
                Some(d)
                    if FileType::from_raw_mode(d.st_mode) == FileType::Directory
                        && kind == FileType::Directory =>
                {
                    let s = open_dir_at(&src, &name).at("open", &target)?;
                    let d = open_dir_at(&dst, &name).at("open", &target)?;
                    todo.push((s, d, target));
                    continue;
                }
                Some(_) => remove_all_at(&dst, &name, false).at("remove", &target)?,
                None => {}
            }
            rustix::fs::renameat(&src, name.as_slice(), &dst, name.as_slice())
                .map_err(std::io::Error::from)
                .at("rename", &target)?;
        }
    }
    Ok(())
}

fn os(name: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name)
}

#[cfg(test)]
mod tests;
