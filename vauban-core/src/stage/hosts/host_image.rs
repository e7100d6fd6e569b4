//! What a stage reads from and writes into each host's image around the run:
//! the Python check, the package lists before and after, `/imginfo` and
//! `/packages`, and files read from the image's layer dirs on the host.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::{Prepared, StageRun};
use crate::error::{Error, IoContext, Result};
use crate::sandbox::{Io, Program, RunIo, Sandbox};
use crate::stage::metadata::{self, ImgInfo, ImgInfoHead, MetadataWrite};

impl StageRun<'_> {
    pub(super) fn check_python(&self, sandbox: &Sandbox<'_>) -> Result<()> {
        let python = &self.spec.python_interpreter;
        let status = sandbox.run_offline(
            &Program::Image(vec![
                "/bin/sh".into(),
                "-c".into(),
                "[ -x \"$1\" ] && exec \"$1\" -I -B -c ''".into(),
                "vauban-check-python".into(),
                python.clone(),
            ]),
            RunIo::default(),
        )?;
        if !status.success() {
            return Err(Error::NoPython {
                image: sandbox.image().manifest_digest.to_string(),
                interpreter: python.clone(),
            });
        }
        Ok(())
    }

    /// `apt list --installed` in the image, its output written into `out`;
    /// `None` when the image has no apt.
    pub(super) fn dpkg_list(&self, sandbox: &Sandbox<'_>, out: &Path) -> Result<Option<String>> {
        let file = std::fs::File::create(out).at("create", out)?;
        let mut argv = vec!["/usr/bin/env".to_string(), "LC_ALL=C".into()];
        argv.extend(metadata::package_list_argv());
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(file),
            stderr: Io::Null,
        };
        let status = match sandbox.run_offline(&Program::Image(argv), io) {
            Err(Error::Exec { .. }) => None,
            other => Some(other?),
        };
        match status.and_then(|s| s.code()) {
            Some(0) => {
                // The image's output: bounded.
                let bytes = vauban_oci::beneath::read_regular_at(
                    rustix::fs::CWD,
                    out,
                    DPKG_LIST_LIMIT,
                    out,
                )?
                .unwrap_or_default();
                let text = String::from_utf8(bytes).map_err(|e| {
                    Error::io(
                        "read",
                        out,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })?;
                Ok(Some(text))
            }
            None | Some(127) => {
                tracing::debug!("no apt in the image: /packages lists no package change");
                Ok(None)
            }
            _ => Err(self.step(
                "dpkg-query",
                status.unwrap_or_else(|| ExitStatus::from_raw(127 << 8)),
            )),
        }
    }

    /// Appends to `/imginfo` and `/packages` (their heads first where the image
    /// has none), and puts `/etc/hostname` in the layer when the image's differs.
    pub(super) fn write_metadata(&self, p: &Prepared<'_>, diff: Option<&[String]>) -> Result<()> {
        let (sandbox, host) = (&p.sandbox, p.host.as_str());
        let now = chrono::Utc::now();
        let source_digest = sandbox.image().manifest_digest.to_string();
        let info = ImgInfo {
            date: now,
            playbook: self.stage.playbook.clone(),
            hostname: host.to_owned(),
            source: p.source.clone(),
            source_digest: source_digest.clone(),
            git_sha1: self.checkout.commit.clone(),
            git_branch: self.checkout.branch.clone(),
        };
        let hostname = format!("{host}\n");
        let write_hostname = image_file(self.store, sandbox.image(), "etc/hostname")?.as_deref()
            != Some(hostname.as_bytes());
        let write = MetadataWrite {
            imginfo_head: ImgInfoHead {
                debian_release: self.spec.release.clone(),
                date: now,
            }
            .to_yaml(),
            imginfo_entry: info.to_yaml(),
            packages_head: metadata::packages_head(
                p.source.as_deref().unwrap_or(&source_digest),
                host,
                p.before.as_deref(),
            ),
            packages_entry: metadata::packages_entry(&self.stage.playbook, host, diff),
            hostname: write_hostname.then_some(hostname),
        };
        let status = sandbox.run_offline(&Program::Image(write.argv()), RunIo::default())?;
        if !status.success() {
            return Err(self.step("writing /imginfo and /packages", status));
        }
        Ok(())
    }
}

/// The largest package list read (a Debian with 3000 packages: 250 KB).
const DPKG_LIST_LIMIT: u64 = 64 << 20;

/// The largest image file read on the host ([`image_file`]).
const IMAGE_FILE_LIMIT: u64 = 64 << 10;

/// The content of the regular file `rel` in `image` as its extracted layer dirs
/// hold it, merged as overlayfs merges them (`None`: absent, deleted, reached
/// through a link, or not a regular file). The tree is the image's: each
/// component is opened beneath its layer dir with no link followed, a FIFO or a
/// device is never opened, and more than [`IMAGE_FILE_LIMIT`] bytes is an error.
fn image_file(store: &Store, image: &Image, rel: &str) -> Result<Option<Vec<u8>>> {
    let dirs: Vec<PathBuf> = image
        .chain_ids()?
        .iter()
        .rev()
        .map(|c| store.layer_dir(c))
        .collect();
    Ok(vauban_oci::layer::merged::read_file(
        &dirs,
        rel,
        IMAGE_FILE_LIMIT,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image's `/etc/hostname` is read beneath its layer dirs: a link out
    /// of the tree, to `/dev/zero`, a FIFO or a huge file is never read
    /// through, nor does it block.
    #[test]
    fn image_file_reads_beneath_the_layer_dirs() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let layer = |content: &[u8]| {
            let (digest, size) = store.write_blob(content).unwrap();
            vauban_oci::layer::PackedLayer {
                entries: 0,
                digest,
                size,
                diff_id: vauban_oci::Digest::of_bytes(content),
                media_type: vauban_oci::layer::MEDIA_TYPE_TAR.into(),
            }
        };
        let history = vauban_oci::image::HistoryEntry {
            created_by: "test".into(),
            created: chrono::Utc::now(),
            comment: None,
        };
        let image =
            vauban_oci::image::build(&store, None, &[layer(b"base"), layer(b"top")], &history)
                .unwrap();
        let chains = image.chain_ids().unwrap();
        let (base, top) = (store.layer_dir(&chains[0]), store.layer_dir(&chains[1]));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/hostname"), "base\n").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("hostname"), "host secret\n").unwrap();

        let read = |make: &dyn Fn(&Path)| {
            let _ = std::fs::remove_dir_all(&top);
            std::fs::create_dir_all(&top).unwrap();
            make(&top);
            let started = Instant::now();
            let r = image_file(&store, &image, "etc/hostname");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the read blocked"
            );
            r
        };
        let etc = |t: &Path| std::fs::create_dir(t.join("etc")).unwrap();
        assert_eq!(read(&|_| {}).unwrap().as_deref(), Some(&b"base\n"[..]));
        let out = outside.join("hostname");
        let absolute_link_out = read(&|t| {
            etc(t);
            std::os::unix::fs::symlink(&out, t.join("etc/hostname")).unwrap();
        });
        assert_eq!(absolute_link_out.unwrap(), None);
        let link_to_dev_zero = read(&|t| {
            etc(t);
            std::os::unix::fs::symlink("/dev/zero", t.join("etc/hostname")).unwrap();
        });
        assert_eq!(link_to_dev_zero.unwrap(), None);
        let etc_a_link_out = read(&|t| {
            std::os::unix::fs::symlink(&outside, t.join("etc")).unwrap();
        });
        assert_eq!(etc_a_link_out.unwrap(), None);
        let fifo = read(&|t| {
            etc(t);
            nix::unistd::mkfifo(&t.join("etc/hostname"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        });
        assert_eq!(fifo.unwrap(), None);
        let big = read(&|t| {
            etc(t);
            let f = std::fs::File::create(t.join("etc/hostname")).unwrap();
            f.set_len(IMAGE_FILE_LIMIT + 1).unwrap();
        });
        assert!(big.is_err(), "{big:?}");
    }
}
