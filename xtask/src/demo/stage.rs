//! What the demo user needs, where it can reach it, from a clone anywhere:
//! `vauban` and the demo's config and Ansible repository copied into a
//! world-traversable temp dir (removed at the end), as `cargo xtask test`
//! stages its binaries ([`crate::rootless::stage`]); the store, boot tree and
//! HOME in `target/` when the demo user can traverse it, else in
//! `TMPDIR/vauban-demo` (made world-traversable, owned by root, kept between
//! runs so a second demo is served by the cache).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::rootless::stage::{check_traversable, Runner};
use crate::util;

/// The name of the work dir under the system's temp dir.
pub const WORK_DIR: &str = "vauban-demo";

/// What the demo user runs and reads: staged copies (removed on drop), or
/// the originals when the demo runs as ourselves.
#[derive(Debug)]
pub struct Staged {
    /// The staging dir, if anything was staged.
    root: Option<PathBuf>,
    vauban: PathBuf,
    config: PathBuf,
}

impl Staged {
    /// Copies `vauban` and the demo's config (with the Ansible repository
    /// beside it) into a new world-traversable dir under the system's temp
    /// dir; as ourselves (not root), nothing is copied.
    pub fn create(runner: &Runner, vauban: &Path, config: &Path) -> Result<Staged> {
        if runner.switch_to.is_none() {
            return Ok(Staged {
                root: None,
                vauban: vauban.to_path_buf(),
                config: config.to_path_buf(),
            });
        }
        let demo = config
            .parent()
            .context("the demo config has no directory")?;
        let name = config.file_name().context("the demo config has no name")?;
        let base = std::env::temp_dir();
        check_traversable(&base)?;
        let root = tempfile::Builder::new()
            .prefix("vauban-demo-stage.")
            .tempdir_in(&base)
            .with_context(|| format!("create a staging dir in {}", base.display()))?
            .keep();
        let staged = Staged {
            vauban: root.join("bin/vauban"),
            config: root.join("demo").join(name),
            root: Some(root.clone()),
        };
        util::chmod(&root, 0o755)?;
        std::fs::create_dir(root.join("bin"))
            .with_context(|| format!("mkdir {}", root.join("bin").display()))?;
        util::chmod(&root.join("bin"), 0o755)?;
        util::copy_readable(vauban, &staged.vauban)?;
        util::copy_tree_readable(demo, &root.join("demo"))?;
        Ok(staged)
    }

    /// The `vauban` the demo user runs.
    pub fn vauban(&self) -> PathBuf {
        self.vauban.clone()
    }

    /// The `config.yml` it reads (its `ansible: ansible` beside it).
    pub fn config(&self) -> PathBuf {
        self.config.clone()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(root) = &self.root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// Where the demo user's store, boot tree and HOME go: `target` when the
/// demo user can traverse it (always when it is us), else
/// `TMPDIR/vauban-demo`, made (or checked to be) a root-owned
/// world-traversable directory: a link or another user's directory there is
/// refused, never followed.
pub fn work_dir(runner: &Runner, target: &Path) -> Result<PathBuf> {
    if runner.switch_to.is_none() || check_traversable(target).is_ok() {
        return Ok(target.to_path_buf());
    }
    let base = std::env::temp_dir();
    check_traversable(&base)?;
    let dir = base.join(WORK_DIR);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() && meta.uid() == 0 => {}
        Ok(meta) => bail!(
            "{} exists and is not a directory of root's (uid {}, {}): remove it",
            dir.display(),
            meta.uid(),
            if meta.is_symlink() {
                "a link"
            } else {
                "not a link"
            }
        ),
        Err(_) => std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?,
    }
    util::chmod(&dir, 0o755)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run as ourselves, nothing is staged and `target` is the work dir.
    #[test]
    fn as_ourselves_the_originals_are_used() {
        let runner = Runner { switch_to: None };
        let s = Staged::create(
            &runner,
            Path::new("/b/vauban"),
            Path::new("/t/demo/config.yml"),
        )
        .unwrap();
        assert_eq!(s.vauban(), Path::new("/b/vauban"));
        assert_eq!(s.config(), Path::new("/t/demo/config.yml"));
        assert_eq!(
            work_dir(&runner, Path::new("/root/vauban/target")).unwrap(),
            Path::new("/root/vauban/target")
        );
    }

    /// For another user, the binary and the demo's files are copied where
    /// every user can read them, and removed afterwards.
    #[test]
    fn for_another_user_copies_are_staged_readable() {
        let src = tempfile::tempdir().unwrap();
        let demo = src.path().join("demo");
        std::fs::create_dir_all(demo.join("ansible")).unwrap();
        std::fs::write(demo.join("config.yml"), "configuration: {}\n").unwrap();
        std::fs::write(demo.join("ansible/base.yml"), "- hosts: all\n").unwrap();
        let bin = src.path().join("vauban");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        util::chmod(&bin, 0o700).unwrap();
        let runner = Runner {
            switch_to: Some(("vauban-test".into(), 1001, 1001)),
        };
        let s = Staged::create(&runner, &bin, &demo.join("config.yml")).unwrap();
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&s.vauban()), 0o755);
        assert_eq!(mode(&s.config()), 0o644);
        assert!(s.config().with_file_name("ansible/base.yml").is_file());
        check_traversable(s.config().parent().unwrap()).unwrap();
        let root = s.root.clone().unwrap();
        drop(s);
        assert!(!root.exists(), "the staging dir is removed");
    }
}
