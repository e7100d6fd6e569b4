//! Files and directories only their owner may read, whatever the umask: the
//! logs (every host's `--diff`, so its `host_vars` values), the boot tree
//! (each host's conffs holds its sshd private keys) and the key store's
//! directories. Modes are set with `chmod`/`fchmod` after creation, since the
//! umask can only take bits away at creation (and may take the owner's too),
//! and an existing file or directory that is written again is tightened.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{ErrorKind, Result, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of a private directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of a private file.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates the missing directories of `dir`, each [`DIR_MODE`]; the ones that
/// exist are left as they are (`dir` may be the user's own, e.g. the
/// directory of a `--keystore` file).
pub(crate) fn create_dirs(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| std::fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => std::fs::set_permissions(d, Permissions::from_mode(DIR_MODE))?,
            // Made by someone else meanwhile.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes `dir` a private directory of vauban's: created as by
/// [`create_dirs`] when missing, made [`DIR_MODE`] when it exists with other
/// bits (a directory of an older build, or one the user opened).
pub(crate) fn dir(dir: &Path) -> Result<()> {
    create_dirs(dir)?;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(ErrorKind::NotADirectory.into());
    }
    if meta.permissions().mode() & 0o7777 != DIR_MODE {
        std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Creates or truncates `path` for writing, mode [`FILE_MODE`] (an existing
/// file's mode is changed too); its missing directories are made by
/// [`create_dirs`].
pub(crate) fn create_file(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        create_dirs(parent)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes `content` to `path` as [`create_file`] makes it.
pub(crate) fn write_file(path: &Path, content: &[u8]) -> Result<()> {
    create_file(path)?.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::Mode;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn dirs_and_files_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        for umask in [0o000, 0o277] {
            let root = tmp.path().join(format!("u{umask:o}"));
            let file = root.join("a/b/log");
            // The umask is the process's: other tests may briefly create files with it.
            let old = rustix::process::umask(Mode::from_raw_mode(umask));
            let made = dir(&root.join("a")).and_then(|()| write_file(&file, b"x"));
            rustix::process::umask(old);
            made.unwrap();
            for d in [&root, &root.join("a"), &root.join("a/b")] {
                assert_eq!(mode(d), DIR_MODE, "{} with umask {umask:03o}", d.display());
            }
            assert_eq!(mode(&file), FILE_MODE, "umask {umask:03o}");
            assert_eq!(std::fs::read(&file).unwrap(), b"x");
        }
    }

    #[test]
    fn what_is_written_again_is_tightened_and_parents_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("users");
        let out = parent.join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::set_permissions(&parent, Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&out, Permissions::from_mode(0o755)).unwrap();
        let file = out.join("conffs-web01.tgz");
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();

        dir(&out).unwrap();
        write_file(&file, b"new").unwrap();
        assert_eq!((mode(&out), mode(&file)), (DIR_MODE, FILE_MODE));
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert_eq!(mode(&parent), 0o755, "an existing parent is not ours");
        assert!(dir(&file).is_err(), "a file is no directory");
        assert_eq!(mode(&file), FILE_MODE);

        create_dirs(&parent.join("x/y")).unwrap();
        assert_eq!(mode(&parent), 0o755);
        assert_eq!(mode(&parent.join("x")), DIR_MODE);
        std::fs::set_permissions(parent.join("x"), Permissions::from_mode(0o750)).unwrap();
        create_dirs(&parent.join("x")).unwrap();
        assert_eq!(mode(&parent.join("x")), 0o750, "create_dirs only creates");
    }
}
