//! Committing a sandbox: inside the user namespace, the upper dir is made into a
//! clean change set (what the build wrote into the private `/etc` files copied in,
//! mount-point placeholders taken out, `/toslash/*` moved onto `/`), packed into a
//! layer blob of the store; then the new image (base + layer, history entry) is
//! stored under its name.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vauban_oci::image::{created_now, source_date_epoch, HistoryEntry, NewLayer};
use vauban_oci::layer::{pack, Compression, LayerSource, PackOptions};
use vauban_oci::{Digest, Image, Reference};

use super::rootfs::{PLACEHOLDER_DIRS, PLACEHOLDER_FILES, PLACEHOLDER_LINKS, PRIVATE_FILES};
use super::run::Sandbox;
use super::userns::{in_namespaces, Spawn};
use crate::error::{IoContext, Result};

/// Build leftovers never committed (relative to `/`; `dir/*` keeps the dir).
pub const DEFAULT_EXCLUDES: [&str; 4] = ["tmp/*", "var/tmp/*", "run/*", "root/.ansible"];

/// How to commit a sandbox.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// The name of the new image.
    pub name: Reference,
    /// The history entry's `created_by` (the command).
    pub created_by: String,
    /// Compression of the new layer.
    pub compression: Compression,
    /// Paths left out of the layer; see [`DEFAULT_EXCLUDES`].
    pub exclude: Vec<PathBuf>,
}

impl CommitOptions {
    /// Options with the default compression and excludes.
    pub fn new(name: Reference, created_by: impl Into<String>) -> Self {
        CommitOptions {
            name,
            created_by: created_by.into(),
            compression: Compression::default(),
            exclude: DEFAULT_EXCLUDES.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The packed layer as sent back from the user namespace.
#[derive(serde::Serialize, serde::Deserialize)]
struct Packed {
    digest: String,
    size: u64,
    diff_id: String,
    media_type: String,
}

impl Sandbox<'_> {
    /// Packs the upper dir into a layer and stores the new image under
    /// `opts.name`; the sandbox dir is removed afterwards.
    pub fn commit(mut self, opts: &CommitOptions) -> Result<Image> {
        let upper = self.upper_dir();
        let private = self.private_dir();
        let initial = self.initial.clone();
        let lower = self.lower.clone();
        let store = self.store;
        let pack_opts = PackOptions {
            compression: opts.compression,
            source_date_epoch: source_date_epoch(),
            exclude: opts.exclude.clone(),
        };
        // Not interrupted mid-way (that would leave a temp blob behind): a signal
        // received while packing is acted on right after, before the image is named.
        let spawn = Spawn {
            what: "commit",
            ..Spawn::default()
        };
        let packed: Packed = in_namespaces(&self.ns, &spawn, || {
            finish_upper(&upper, &private, &initial, &lower)?;
            let mut w = store.blob_writer()?;
            let layer = pack(LayerSource::Upper(&upper), &pack_opts, &mut w)?;
            w.commit(Some(&layer.digest))?;
            Ok(Packed {
                digest: layer.digest.to_string(),
                size: layer.size,
                diff_id: layer.diff_id.to_string(),
                media_type: layer.media_type,
            })
        })?;
        if let Some(signal) = super::signals::pending() {
            return Err(crate::Error::Interrupted { signal });
        }
        let layer = NewLayer {
            digest: Digest::parse(&packed.digest)?,
            size: packed.size,
            diff_id: Digest::parse(&packed.diff_id)?,
            media_type: packed.media_type,
        };
        let history = HistoryEntry {
            created_by: opts.created_by.clone(),
            created: created_now(),
            comment: None,
        };
        let image =
            vauban_oci::image::commit(store, Some(&self.image), &[layer], &history, &opts.name)?;
        tracing::info!(name = %opts.name, digest = %image.manifest_digest, "committed");
        self.remove()?;
        Ok(image)
    }
}

/// Makes the upper dir the change set of the build (runs in the user namespace).
fn finish_upper(
    upper: &Path,
    private: &Path,
    initial: &[(String, Vec<u8>)],
    lower: &[PathBuf],
) -> Result<()> {
    remove_placeholders(upper, lower)?;
    for (name, rel) in PRIVATE_FILES {
        let path = private.join(name);
        let now = std::fs::read(&path).at("read", &path)?;
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
            write_in_upper(upper, rel, &now)?;
        }
    }
    let toslash = upper.join("toslash");
    if toslash.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        move_onto(&toslash, upper)?;
        std::fs::remove_dir_all(&toslash).at("remove", &toslash)?;
    }
    Ok(())
}

/// Writes `content` at `upper/rel` without following any symlink: the build may
/// have left links in the upper dir (`/etc` moved away and replaced by a link to
/// `/`), and this code runs on the host's file system, as root when vauban is.
/// A parent that is not a directory means the build replaced it: nothing written.
fn write_in_upper(upper: &Path, rel: &str, content: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut path = upper.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        path.push(part);
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                tracing::warn!(
                    "/{rel}: {} is not a directory in the build's result; the build's \
                     /{rel} is not kept",
                    path.display()
                );
                return Ok(());
            }
            Err(_) => std::fs::create_dir(&path).at("mkdir", &path)?,
        }
    }
    let target = upper.join(rel);
    match target.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            tracing::warn!("/{rel} is a directory in the build's result: not replaced");
            return Ok(());
        }
        Ok(_) => std::fs::remove_file(&target).at("remove", &target)?,
        Err(_) => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&target)
        .at("create", &target)?;
    f.write_all(content).at("write", &target)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).at("chmod", &target)
}

/// Takes out what the sandbox created as mount points (see [`super::rootfs`]).
fn remove_placeholders(upper: &Path, lower: &[PathBuf]) -> Result<()> {
    for rel in PLACEHOLDER_FILES {
        let p = upper.join(rel);
        // An empty regular file at a mount point is ours (the build wrote into what
        // was mounted over it, never into it).
        if p.symlink_metadata()
            .is_ok_and(|m| m.is_file() && m.len() == 0)
        {
            std::fs::remove_file(&p).at("remove", &p)?;
        }
    }
    for (rel, target) in PLACEHOLDER_LINKS {
        let p = upper.join(rel);
        if std::fs::read_link(&p).is_ok_and(|t| t == Path::new(target)) && !in_lower(lower, rel) {
            std::fs::remove_file(&p).at("remove", &p)?;
        }
    }
    for rel in PLACEHOLDER_DIRS {
        let p = upper.join(rel);
        let empty = std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
        if empty && !is_opaque(&p) {
            std::fs::remove_dir(&p).at("rmdir", &p)?;
        }
    }
    Ok(())
}

fn in_lower(lower: &[PathBuf], rel: &str) -> bool {
    lower.iter().any(|l| l.join(rel).symlink_metadata().is_ok())
}

fn is_opaque(dir: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            rustix::fs::lgetxattr(dir, *name, &mut buf).is_ok_and(|n| n == 1 && buf[0] == b'y')
        })
}

/// Moves the content of `from` onto `to` (merging directories, replacing files);
/// whiteouts in `from` are dropped.
fn move_onto(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).at("read dir", from)? {
        let entry = entry.at("read dir", from)?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let md = src.symlink_metadata().at("stat", &src)?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            continue;
        }
        let dst_md = dst.symlink_metadata().ok();
        match dst_md {
            Some(d) if d.is_dir() && md.is_dir() => move_onto(&src, &dst)?,
            Some(d) => {
                if d.is_dir() {
                    std::fs::remove_dir_all(&dst).at("remove", &dst)?;
                } else {
                    std::fs::remove_file(&dst).at("remove", &dst)?;
                }
                std::fs::rename(&src, &dst).at("rename", &src)?;
            }
            None => std::fs::rename(&src, &dst).at("rename", &src)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn upper_becomes_the_change_set() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, private, lower) = (
            dir.path().join("up"),
            dir.path().join("priv"),
            dir.path().join("low"),
        );
        // Placeholders the sandbox made, and the build's own files.
        for rel in [
            "dev/null",
            "dev/tty",
            "etc/hosts",
            "etc/resolv.conf",
            "usr/sbin/policy-rc.d",
        ] {
            write(&upper, rel, "");
        }
        std::os::unix::fs::symlink("/proc/self/fd", upper.join("dev/fd")).unwrap();
        for d in ["proc", "sys", "tmp", "dev/pts"] {
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        write(&upper, "dev/made-by-build", "x");
        write(&upper, "toslash/etc/motd", "moved\n");
        write(&upper, "etc/motd", "old\n");
        write(&upper, "srv/keep", "k");
        std::fs::create_dir_all(&lower).unwrap();
        // Private files: hostname changed by the build, hosts unchanged.
        write(&private, "hosts", "h\n");
        write(&private, "resolv.conf", "r\n");
        write(&private, "hostname", "built\n");
        for name in ["hosts", "resolv.conf"] {
            let f = std::fs::File::options()
                .write(true)
                .open(private.join(name))
                .unwrap();
            f.set_modified(std::time::UNIX_EPOCH).unwrap();
        }
        let initial = vec![
            ("hosts".to_string(), b"h\n".to_vec()),
            ("resolv.conf".to_string(), b"r\n".to_vec()),
            ("hostname".to_string(), b"web01\n".to_vec()),
        ];

        finish_upper(&upper, &private, &initial, &[lower]).unwrap();

        let exists = |rel: &str| upper.join(rel).symlink_metadata().is_ok();
        for gone in [
            "dev/null",
            "dev/tty",
            "dev/fd",
            "dev/pts",
            "proc",
            "sys",
            "tmp",
            "etc/hosts",
            "etc/resolv.conf",
            "usr/sbin/policy-rc.d",
            "toslash",
        ] {
            assert!(!exists(gone), "{gone} left in the upper dir");
        }
        assert!(exists("dev/made-by-build"));
        assert!(exists("srv/keep"));
        assert_eq!(
            std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
            "built\n"
        );
        assert_eq!(
            std::fs::read_to_string(upper.join("etc/motd")).unwrap(),
            "moved\n"
        );
    }

    fn private_dir(root: &Path, hostname: &str) -> (PathBuf, Vec<(String, Vec<u8>)>) {
        let private = root.join("priv");
        let mut initial = Vec::new();
        for (name, content) in [
            ("hosts", "h\n".to_string()),
            ("resolv.conf", "r\n".into()),
            ("hostname", format!("{hostname}\n")),
        ] {
            write(&private, name, &content);
            let f = std::fs::File::options()
                .write(true)
                .open(private.join(name))
                .unwrap();
            f.set_modified(std::time::UNIX_EPOCH).unwrap();
            initial.push((name.to_string(), content.into_bytes()));
        }
        (private, initial)
    }

    #[test]
    fn rewritten_with_the_same_content_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("up");
        std::fs::create_dir(&upper).unwrap();
        let (private, initial) = private_dir(dir.path(), "web01");
        // The build (e.g. Ansible's hostname module) writes the name it already had.
        std::fs::write(private.join("hostname"), "web01\n").unwrap();
        finish_upper(&upper, &private, &initial, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
            "web01\n"
        );
        assert!(!upper.join("etc/hosts").exists(), "an untouched file kept");
    }

    #[test]
    fn links_left_by_the_build_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("hostname"), "host's\n").unwrap();
        let (private, initial) = private_dir(dir.path(), "web01");
        std::fs::write(private.join("hostname"), "built\n").unwrap();
        std::fs::write(private.join("hosts"), "changed\n").unwrap();

        // `/etc` replaced by a link out of the tree.
        let upper = dir.path().join("up");
        std::fs::create_dir(&upper).unwrap();
        std::os::unix::fs::symlink(&outside, upper.join("etc")).unwrap();
        finish_upper(&upper, &private, &initial, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("hostname")).unwrap(),
            "host's\n"
        );
        assert!(!outside.join("hosts").exists());

        // `/etc/hostname` itself a link out of the tree: replaced by the file.
        let upper = dir.path().join("up2");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.join("hostname"), upper.join("etc/hostname")).unwrap();
        finish_upper(&upper, &private, &initial, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("hostname")).unwrap(),
            "host's\n"
        );
        let kept = upper.join("etc/hostname");
        assert!(!kept.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "built\n");
    }
}
