//! `--out` as a build leaves it: what is there is this build's, or still what
//! the master's current rootfs and inputs give. After a conffs or boot step
//! of a master, a `conffs-HOST.tgz` of `OUT/<master>` that this build did not
//! make is kept only when HOST is still a host of the master and every stage
//! of its conffs is cached on the master's rootfs (the archive is what a
//! rebuild would write); otherwise it is removed with its command line and
//! iPXE script, and a warning says why (its host failed in this build, left
//! the inventory, or was built on an older master). `SHA256SUMS` is then
//! written over what is there, after every step that writes into `--out`.

use std::path::Path;

use vauban_oci::Image;

use super::builder::Builder;
use super::report::Exported;
use super::walk::Asking;
use crate::config::Master;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::export::BootTree;

impl Builder<'_> {
    /// Removes from `OUT/<master>` what is not current (see the module doc);
    /// `made`: the hosts whose archive this build wrote, `failed` those it
    /// could not. The hosts whose archive is there after, sorted.
    pub(super) fn tidy_out(
        &mut self,
        master: &Master,
        base: &Image,
        made: &[String],
        failed: &[String],
    ) -> Result<Vec<String>> {
        let tree = BootTree::new(self.out().to_path_buf());
        let dir = tree.master_dir(&master.name);
        let present = files_of(&dir, "conffs-", ".tgz");
        let mut known: Option<Vec<String>> = None;
        let mut kept = Vec::new();
        for host in present {
            if made.contains(&host) {
                kept.push(host);
                continue;
            }
            if known.is_none() {
                known = Some(self.known_hosts(master)?);
            }
            let why = if failed.contains(&host) {
                format!("{host} failed in this build; the archive was an earlier build's")
            } else if !known.as_ref().is_some_and(|k| k.contains(&host)) {
                format!("{host} is no longer a host of {}", master.name)
            } else if let Some(why) = self.conffs_runs(master, base, &host)? {
                format!(
                    "it is not what {}'s current rootfs and inputs give ({why}): \
                     `--stage conffs` rebuilds it",
                    master.name
                )
            } else {
                kept.push(host);
                continue;
            };
            let archive = tree.conffs(&master.name, &host);
            remove(&archive)?;
            self.warn(format!("removed {}: {why}", archive.display()));
        }
        for (prefix, suffix) in [("cmdline-", ""), ("boot-", ".ipxe")] {
            for host in files_of(&dir, prefix, suffix) {
                if !kept.contains(&host) {
                    let path = dir.join(format!("{prefix}{host}{suffix}"));
                    remove(&path)?;
                    tracing::info!(path = %path.display(), "removed: no conffs beside it");
                }
            }
        }
        kept.sort();
        Ok(kept)
    }

    /// The hosts `master` has: of its `conffs:` and, for the master built,
    /// of `--conffs`.
    fn known_hosts(&mut self, master: &Master) -> Result<Vec<String>> {
        let mut patterns: Vec<String> = master.conffs.iter().map(|c| c.value.clone()).collect();
        patterns.extend(self.pattern(master));
        patterns.dedup();
        let mut hosts = Vec::new();
        for p in patterns {
            hosts.extend(self.hosts_of(master, &p)?);
        }
        Ok(hosts)
    }

    /// `None` when every stage of `host`'s conffs is cached on `base`; else
    /// the first that would run, and why.
    fn conffs_runs(&mut self, master: &Master, base: &Image, host: &str) -> Result<Option<String>> {
        let walked = self.walk_conffs(master, host, Some(base), Asking::Cached)?;
        Ok(walked
            .first_run()
            .map(|(stage, why)| format!("{stage}: {why}")))
    }

    /// Writes `OUT/SHA256SUMS` over what the tree holds.
    pub(super) fn write_sums(&mut self) -> Result<()> {
        let sums = BootTree::new(self.out().to_path_buf()).write_sums()?;
        self.exported(&sums);
        Ok(())
    }

    /// Tells that `path` was written to `--out`.
    pub(super) fn exported(&mut self, path: &Path) {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        self.env.events.emit(Event::Exported {
            path: path.display().to_string(),
            size,
        });
        self.report.exported.retain(|e| e.path != path);
        self.report.exported.push(Exported {
            path: path.to_owned(),
            size,
        });
    }
}

/// The `X` of the files `<prefix>X<suffix>` of `dir` (none when it is missing).
fn files_of(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let x = name.strip_prefix(prefix)?.strip_suffix(suffix)?.to_owned();
            (!x.is_empty()).then_some(x)
        })
        .collect();
    found.sort();
    found
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "conffs-web01.tgz",
            "conffs-web02.tgz",
            "conffs-.tgz",
            ".conffs-web03.tgz.x.tmp",
            "cmdline-web01",
            "boot-web01.ipxe",
            "rootfs.img",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("conffs-dir.tgz")).unwrap();
        assert_eq!(files_of(dir.path(), "conffs-", ".tgz"), ["web01", "web02"]);
        assert_eq!(files_of(dir.path(), "cmdline-", ""), ["web01"]);
        assert_eq!(files_of(dir.path(), "boot-", ".ipxe"), ["web01"]);
        assert!(files_of(&dir.path().join("missing"), "conffs-", ".tgz").is_empty());
    }
}
