//! Publishing boot files atomically: each is made under a temp name in its
//! final directory (`.NAME.XXXXXX.tmp`), flushed to disk, given its mode and
//! renamed over the final name, then the directory is flushed. A reader (or a
//! crash) sees the old file or the new one, never half of one; a failed step
//! leaves at most a stray temp file, which is removed on drop when vauban
//! itself fails.
//!
//! The files published here hold no secret ([`PUBLISHED_MODE`]); the
//! directories made for them are private (0700), as the boot tree also holds
//! each host's conffs, so serving a tree takes a copy with explicit modes
//! (README, "Publishing a boot tree").

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Mode of every published file: the kernel, initramfs, `rootfs.img`,
/// command lines, iPXE scripts, `SHA256SUMS` (what any machine that boots
/// fetches in clear).
pub(crate) const PUBLISHED_MODE: u32 = 0o644;

/// A file being made under a temp name beside its destination.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: tempfile::TempPath,
    dest: PathBuf,
}

impl Staged {
    /// Creates an empty temp file beside `dest` (whose missing directories
    /// are created private).
    pub(crate) fn new(dest: &Path) -> Result<Self> {
        let dir = parent(dest);
        crate::private::create_dirs(dir).at("create the directory", dir)?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .at("create a temp file in", dir)?
            .into_temp_path();
        Ok(Staged {
            tmp,
            dest: dest.to_owned(),
        })
    }

    /// The temp file, for a program to write.
    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes the temp file, makes it mode [`PUBLISHED_MODE`] and renames it
    /// to its destination.
    pub(crate) fn publish(self) -> Result<PathBuf> {
        self.publish_with_mode(PUBLISHED_MODE)
    }

    /// [`Staged::publish`] with `mode` (0600 for a file holding a secret).
    pub(crate) fn publish_with_mode(self, mode: u32) -> Result<PathBuf> {
        let path: &Path = &self.tmp;
        let file = File::open(path).at("open", path)?;
        file.set_permissions(Permissions::from_mode(mode))
            .at("chmod", path)?;
        file.sync_all().at("fsync", path)?;
        drop(file);
        let dest = self.dest;
        self.tmp
            .persist(&dest)
            .map_err(|e| Error::io("rename a temp file onto", &dest, e.error))?;
        sync_dir(parent(&dest))?;
        Ok(dest)
    }
}

/// Writes `content` to `dest` atomically.
pub(crate) fn write_file(dest: &Path, content: &[u8]) -> Result<PathBuf> {
    let staged = Staged::new(dest)?;
    let path = staged.path();
    File::options()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .at("write", path)?;
    staged.publish()
}

/// Makes `dest` a symlink to `target` atomically (a temp link renamed over it).
pub(crate) fn symlink(target: &str, dest: &Path) -> Result<PathBuf> {
    let dir = parent(dest);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.link.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).at("symlink", &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("rename a temp link onto", dest, e));
    }
    sync_dir(dir)?;
    Ok(dest.to_owned())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("fsync", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_file_replaces_the_old_one_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/file");
        write_file(&dest, b"one").unwrap();
        write_file(&dest, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dest), PUBLISHED_MODE);
        assert_eq!(mode(&dir.path().join("sub")), crate::private::DIR_MODE);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
    }

    #[test]
    fn a_dropped_stage_leaves_nothing_and_links_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::new(&dir.path().join("big.img")).unwrap();
        assert!(staged.path().exists());
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let link = dir.path().join("default");
        symlink("a", &link).unwrap();
        symlink("b", &link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
