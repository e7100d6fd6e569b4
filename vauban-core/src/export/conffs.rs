//! A host's conffs: the layers its build added on top of its master's image,
//! as one `conffs-HOST.tgz` that dracut's `live.updates=URL` unpacks over the
//! live root at boot (`gzip -dc | tar -xf -` into `/updates`, recognised by
//! the `ustar\0` magic of its first header; then every directory is
//! `mkdir -p`ed and every other file `cp -a`ed onto the root, so the modes
//! of directories the master lacks are not kept, and hard links become copies).
//!
//! What the archive holds: the newest version of each path of the host's own
//! layers (whiteouts and opaque directories hide what is below them), with
//! owners, modes, mtimes, symlinks, hard links and xattrs (PAX
//! `SCHILY.xattr.*`); `toslash/X` written as `X` (winning over a plain `X`);
//! `etc/hostname` and the host's sshd keys under `etc/ssh` (root-owned,
//! 0600/0644) unless `toslash` has them; never `var/log`, `var/cache`,
//! `root/ansible`, `root/.ansible`, `var/lib/apt/lists` nor `toslash`. A tar
//! cannot delete: paths the host layers delete from the master are reported
//! in [`ConffsReport::deletions`].
//!
//! Three streaming passes, memory bounded by the number of paths of the host
//! layers: the headers of the host layers, top first (`plan`); their
//! content, written where it is (`emit`); and, only when a whiteout or a
//! hard link points below the host layers, the master's layers (`master`).
//! The archive is made under a temp name beside its destination, flushed,
//! made private to its owner (0600: it holds the host's sshd private keys
//! and whatever secrets its stages wrote) and renamed; an archive of
//! `size_limit` bytes or more is refused and never written past the limit.

mod archive;
pub(crate) mod emit;
mod master;
pub(crate) mod names;
mod plan;
pub(crate) mod source;
mod stack;
#[cfg(test)]
pub(crate) mod tests;

use std::fs::{File, Permissions};
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vauban_oci::store::Store;
use vauban_oci::Image;

use self::archive::{Archive, Entry, Kind};
use self::names::show;
use crate::config::configuration::DEFAULT_CONFFS_SIZE_LIMIT;
use crate::error::{Error, Result};
use crate::keys::{HostKeys, SSH_DIR};

/// Mode of the archive: its host's secrets (serve it to that host only).
const ARCHIVE_MODE: u32 = crate::private::FILE_MODE;
/// Mode of `etc/hostname`.
const HOSTNAME_MODE: u32 = 0o644;

/// How to write a conffs.
#[derive(Debug, Clone)]
pub struct ConffsOptions {
    /// The compressed archive must be smaller than this many bytes.
    pub size_limit: u64,
    /// The host: its `etc/hostname`, and whose keys `keys` must be.
    pub hostname: String,
}

impl ConffsOptions {
    /// Options for `hostname` with the default size limit.
    pub fn new(hostname: impl Into<String>) -> Self {
        ConffsOptions {
            size_limit: DEFAULT_CONFFS_SIZE_LIMIT,
            hostname: hostname.into(),
        }
    }
}

/// What [`export_conffs`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConffsReport {
    /// The archive.
    pub path: PathBuf,
    /// Its size in bytes (compressed).
    pub size: u64,
    /// Its tar entries.
    pub entries: u64,
    /// Paths of the master that the host layers delete (relative, an opaque
    /// directory as `DIR/*`): a tgz cannot carry them, so they stay at boot.
    /// Escaped ([`crate::printable`]): they are for messages.
    pub deletions: Vec<String>,
}

/// Writes the conffs of `host_image` (built on `master`) to `dest`, with the
/// host's sshd `keys`; see the module doc for what it holds.
pub fn export_conffs(
    store: &Store,
    master: &Image,
    host_image: &Image,
    keys: &HostKeys,
    opts: &ConffsOptions,
    dest: &Path,
) -> Result<ConffsReport> {
    let host = &opts.hostname;
    if host.is_empty() || host.contains(['\n', '\0', '/']) {
        return Err(Error::BadHostname { host: host.clone() });
    }
    if keys.host() != host {
        return Err(Error::WrongKeys {
            host: host.clone(),
            keys_host: keys.host().to_owned(),
        });
    }
    let layers = source::host_layers(master, host_image)?;
    let generated = generated_files(host, keys, created_of(host_image));
    let names: Vec<Vec<u8>> = generated.iter().map(|(m, _)| m.name.clone()).collect();
    let plan = plan::plan(store, &layers, &names)?;

    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::private::create_dirs(dir).map_err(|e| Error::io("create the directory", dir, e))?;
    let file_name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temp file in", dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io("open", tmp.path(), e))?;
    let mut archive = Archive::new(BufWriter::new(file), opts.size_limit);

    emit::emit(store, &layers, &plan, &mut archive, tmp.path())?;
    for (meta, contents) in &generated {
        if plan.generated.contains(&meta.name) {
            archive
                .append(meta, Some(&mut &contents[..]))
                .map_err(|e| Error::io("write", tmp.path(), e))?;
        }
    }
    let deletions = if plan.deletions.is_empty() && plan.master_links.is_empty() {
        Vec::new()
    } else {
        let mut below = source::layers_of(master)?;
        below.reverse();
        master::resolve(
            store,
            &below,
            &plan.deletions,
            &plan.master_links,
            &mut archive,
            tmp.path(),
        )?
    };
    let written = archive
        .finish()
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    if written.size >= opts.size_limit {
        return Err(Error::TooBig {
            host: host.clone(),
            size: written.size,
            limit: opts.size_limit,
            biggest: written.biggest,
        });
    }
    let file = written
        .out
        .into_inner()
        .map_err(|e| Error::io("write", tmp.path(), e.into_error()))?;
    publish(tmp, file, dest)?;

    let deletions: Vec<String> = deletions.iter().map(|d| show(d)).collect();
    tracing::info!(
        host = %host,
        size = written.size,
        entries = written.entries,
        path = %dest.display(),
        "conffs written"
    );
    for d in &deletions {
        tracing::warn!(
            host = %host,
            path = %format!("/{d}"),
            "the host's layers delete this path of the master; a conffs cannot, it stays at boot"
        );
    }
    Ok(ConffsReport {
        path: dest.to_owned(),
        size: written.size,
        entries: written.entries,
        deletions,
    })
}

/// When `image` was made (its config's `created`), in seconds: the mtime of
/// the files the export makes, so the same image gives the same archive.
fn created_of(image: &Image) -> u64 {
    image
        .config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp().max(0) as u64)
        .unwrap_or(0)
}

/// `etc/hostname` and the sshd keys, root-owned, with their contents, dated
/// `mtime`.
fn generated_files(host: &str, keys: &HostKeys, mtime: u64) -> Vec<(Entry, Vec<u8>)> {
    let file = |name: Vec<u8>, mode: u32, contents: Vec<u8>| {
        let meta = Entry {
            name,
            kind: Kind::File(contents.len() as u64),
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Vec::new(),
        };
        (meta, contents)
    };
    let mut files = vec![file(
        b"etc/hostname".to_vec(),
        HOSTNAME_MODE,
        format!("{host}\n").into_bytes(),
    )];
    for key in keys.files() {
        let name = format!("{SSH_DIR}/{}", key.path).into_bytes();
        files.push(file(name, key.mode, key.contents.to_vec()));
    }
    files
}

/// Flushes the temp file, makes it [`ARCHIVE_MODE`] and renames it to `dest`.
fn publish(tmp: tempfile::NamedTempFile, file: File, dest: &Path) -> Result<()> {
    let path = tmp.path().to_owned();
    file.set_permissions(Permissions::from_mode(ARCHIVE_MODE))
        .map_err(|e| Error::io("chmod", &path, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
    drop(file);
    tmp.persist(dest)
        .map_err(|e| Error::io("rename a temp file onto", dest, e.error))?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}
