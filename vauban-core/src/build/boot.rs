//! The boot step of a master (`--stage initramfs`): the kernel and a dracut
//! initramfs made in the rootfs that has them (`initramfs_release:`, else the
//! master's own), the master's `rootfs.img`, and for each host whose conffs
//! is in `--out` (made by this build's conffs step, or still current: `out`)
//! its kernel command line and iPXE script; then `SHA256SUMS` over the tree.
//!
//! Both big files are cached in the store (`STORE/boot-cache/<key>/`) and
//! linked into `--out`, each keyed by everything it is made of: the
//! initramfs by the image dracut runs in (its manifest digest: every layer
//! and the config), the dracut.conf and vauban's version — dracut copies
//! curl, the shell, udev rules, libraries and firmware from the whole image,
//! so a security update in any layer must reach it; `rootfs.img` by the
//! image's digest and the squashfs options.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use vauban_oci::Image;

use super::builder::Builder;
use super::cache::get_or_build;
use super::inputs::{hex, private_dir};
use super::plan::Part;
use super::report::Outcome;
use crate::config::{DracutConf, Master, SquashfsCompression};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::export::{
    self, make_disk, update_disk, BootInfo, BootTree, DiskFiles, DiskOptions, HostBoot, HostInfo,
    InitramfsOptions, ResolvConf, SquashCompression, SquashfsOptions, BOOT_INFO_FILE,
};
use crate::sandbox::SandboxOptions;

/// The cache directory of the boot files.
const BOOT_CACHE: &str = "boot-cache";

/// The kernel a boot step put in `linux/`: its version and file names.
struct Kernel {
    kver: String,
    kernel_file: String,
    initramfs_file: String,
}

impl Builder<'_> {
    /// Makes (or links from the cache) the boot files of `master` from its
    /// rootfs `image`, the initramfs from `kernel_image`.
    pub(super) fn boot(
        &mut self,
        master: &Master,
        image: &Image,
        kernel_image: &Image,
    ) -> Result<()> {
        let tree = BootTree::new(self.out().to_path_buf());
        tree.private_dir("linux")?;
        tree.private_dir(&master.name)?;
        let kernel = self.boot_initramfs(&tree, master, kernel_image)?;
        self.interrupted()?;
        self.boot_rootfs_img(&tree, master, image)?;
        let hosts = self.boot_host_files(&tree, master, image, &kernel)?;
        self.write_sums()?;
        // The files as one artifact in the store (what a boot server
        // deploys), pushed beside the images with --registry.
        self.boot_artifact(&tree, master, &kernel, image)?;
        if self.opts.part == Part::Disk {
            self.boot_disks(&tree, master, &hosts)?;
        }
        Ok(())
    }

    /// `--stage disk`: each host's disk image of this build,
    /// `OUT/disks/MASTER/HOST.raw`, made, or updated when it exists (the
    /// build it booted kept as its fallback entry). Outside the tree's
    /// `SHA256SUMS`: a disk is the host's own, like its conffs (0600).
    fn boot_disks(&mut self, tree: &BootTree, master: &Master, hosts: &[String]) -> Result<()> {
        if hosts.is_empty() {
            self.warn(format!(
                "--stage disk: {} has no host with a conffs in this build, so no disk",
                master.name
            ));
            return Ok(());
        }
        tree.private_dir(export::DISKS_DIR)?;
        let dir = tree.private_dir(&format!("{}/{}", export::DISKS_DIR, master.name))?;
        for host in hosts {
            self.interrupted()?;
            let started = std::time::Instant::now();
            let files = DiskFiles::from_tree(tree.root(), &master.name, host)?;
            let disk = dir.join(format!("{host}.raw"));
            let report = if disk.exists() {
                update_disk(&files, &disk)?
            } else {
                make_disk(&files, &DiskOptions::default(), &disk)?
            };
            let outcome = if report.changed {
                Outcome::Built
            } else {
                Outcome::Cached
            };
            let step = format!("disk {}/{host}", master.name);
            self.record(step, outcome, None, report.size, started);
        }
        Ok(())
    }

    /// The kernel and initramfs (dracut in `kernel_image`) in `linux/`.
    fn boot_initramfs(
        &mut self,
        tree: &BootTree,
        master: &Master,
        kernel_image: &Image,
    ) -> Result<Kernel> {
        let kernel_master = match &self.config.configuration.initramfs_release {
            Some(name) => name.value.clone(),
            None => master.name.clone(),
        };
        let logs = self.runner.log_dir().to_path_buf();
        let started = std::time::Instant::now();
        let extra_conf = self.dracut_conf()?;
        let key = initramfs_key(kernel_image, &extra_conf);
        let (dir, outcome) = self.boot_cached(&key, |store, dir| {
            let opts = InitramfsOptions {
                extra_conf: extra_conf.clone(),
                log: logs.join(format!("dracut-{}.log", master.name)),
                sandbox: sandbox_options(),
            };
            export::make_initramfs(store, kernel_image, &kernel_master, &opts, dir)?;
            Ok(())
        })?;
        let kver = linked_kernel(&dir, &tree.linux_dir())?;
        let (kernel_file, initramfs_file) = export::dracut::file_names(&kver);
        self.exported(&tree.linux_dir().join(&kernel_file));
        self.exported(&tree.linux_dir().join(&initramfs_file));
        self.record(
            format!("initramfs {kver} ({kernel_master})"),
            outcome,
            None,
            size_of(&tree.linux_dir().join(&initramfs_file)),
            started,
        );
        Ok(Kernel {
            kver,
            kernel_file,
            initramfs_file,
        })
    }

    /// `rootfs.img` of `image` (mksquashfs) in the master's directory.
    fn boot_rootfs_img(&mut self, tree: &BootTree, master: &Master, image: &Image) -> Result<()> {
        let logs = self.runner.log_dir().to_path_buf();
        let started = std::time::Instant::now();
        let squash = self.squashfs_options(logs.join(format!("mksquashfs-{}.log", master.name)));
        let key = rootfs_key(image, &squash);
        let (dir, outcome) = self.boot_cached(&key, |store, dir| {
            export::make_rootfs(store, image, &master.name, &squash, &dir.join("rootfs.img"))?;
            Ok(())
        })?;
        let dest = tree.rootfs(&master.name);
        link(&dir.join("rootfs.img"), &dest)?;
        self.exported(&dest);
        self.record(
            format!("rootfs.img {}", master.name),
            outcome,
            Some(image),
            size_of(&dest),
            started,
        );
        Ok(())
    }

    /// Each host's command line and iPXE script, and the master's
    /// `boot.json`: the hosts whose conffs this build made, or whose archive
    /// in `--out` is still current.
    fn boot_host_files(
        &mut self,
        tree: &BootTree,
        master: &Master,
        image: &Image,
        kernel: &Kernel,
    ) -> Result<Vec<String>> {
        let kver = kernel.kver.as_str();
        let made = self
            .conffs_made
            .get(&master.name)
            .cloned()
            .unwrap_or_default();
        let hosts = self.tidy_out(master, image, &made, &[])?;
        self.write_boot_info(tree, master, kernel, &hosts)?;
        let Some(base) = self.opts.boot_url.clone().or_else(|| {
            self.config
                .configuration
                .boot_url
                .as_ref()
                .map(|b| b.value.clone())
        }) else {
            self.warn(format!(
                "no boot URL (--boot-url or `boot_url:`): no command line nor iPXE script for \
                 the hosts of {}",
                master.name
            ));
            return Ok(hosts);
        };
        let args: Vec<String> = self
            .config
            .configuration
            .kernel_args
            .iter()
            .map(|a| a.value.clone())
            .collect();
        for host in &hosts {
            tree.write_host_files(&HostBoot {
                base: &base,
                master: &master.name,
                host,
                kver,
                extra_args: &args,
            })?;
        }
        Ok(hosts)
    }

    /// `OUT/<master>/boot.json`: the files and each host's boot facts from
    /// its inventory variables (`export::BootInfo`).
    fn write_boot_info(
        &mut self,
        tree: &BootTree,
        master: &Master,
        kernel: &Kernel,
        hosts: &[String],
    ) -> Result<()> {
        let c = &self.config.configuration;
        let mut info = BootInfo {
            master: master.name.clone(),
            kver: kernel.kver.clone(),
            kernel: format!("linux/{}", kernel.kernel_file),
            initramfs: format!("linux/{}", kernel.initramfs_file),
            rootfs: format!("{}/rootfs.img", master.name),
            kernel_args: c
                .kernel_args
                .iter()
                .chain(&master.kernel_args)
                .map(|a| a.value.clone())
                .collect(),
            hosts: Default::default(),
        };
        let stages = self.conffs_stages(master);
        let analysed = match stages.first() {
            Some(first) if !hosts.is_empty() => {
                let spec = self.spec(master, true);
                Some(self.analyse(first, &spec)?)
            }
            _ => None,
        };
        for host in hosts {
            let vars = analysed
                .as_ref()
                .map(|a| a.inventory.host_inputs(host).0["vars"].clone())
                .unwrap_or_default();
            let conffs = format!("{}/conffs-{host}.tgz", master.name);
            let (host_info, warnings) = HostInfo::from_vars(conffs, &vars);
            for w in warnings {
                self.warn(format!("host {host}: {w}"));
            }
            info.hosts.insert(host.clone(), host_info);
        }
        let path = tree.master_dir(&master.name).join(BOOT_INFO_FILE);
        let mut json =
            serde_json::to_vec_pretty(&info).map_err(|e| Error::internal(e.to_string()))?;
        json.push(b'\n');
        export::atomic::write_file(&path, &json)?;
        self.exported(&path);
        Ok(())
    }

    /// The master's boot files as an OCI artifact named `<master>/boot`
    /// (pushed unless the master is of `never_upload`), its `rootfs.img`
    /// naming `image`, the one it was made from.
    fn boot_artifact(
        &mut self,
        tree: &BootTree,
        master: &Master,
        kernel: &Kernel,
        image: &Image,
    ) -> Result<()> {
        let mut files = vec![
            format!("linux/{}", kernel.kernel_file),
            format!("linux/{}", kernel.initramfs_file),
        ];
        let dir = tree.master_dir(&master.name);
        let mut own: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read", &dir, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("{}/{n}", master.name))
            .collect();
        own.sort();
        files.extend(own);
        files.push("SHA256SUMS".into());
        let image = super::artifact::write_boot_artifact(
            self.store,
            tree.root(),
            &files,
            &master.name,
            &kernel.kver,
            Some(&image.manifest_digest),
        )?;
        let publish = super::publish::uploads_boot_files(&self.config, master);
        self.name(&format!("{}/boot", master.name), &image, true, publish)?;
        self.env.events.emit(Event::BootArtifact {
            master: master.name.clone(),
            artifact: image.manifest_digest.clone(),
            kver: kernel.kver.clone(),
        });
        Ok(())
    }

    /// The extra dracut.conf of the config (`dracut_conf:`).
    pub(super) fn dracut_conf(&self) -> Result<String> {
        Ok(match &self.config.configuration.dracut_conf {
            None => String::new(),
            Some(c) => match &c.value {
                DracutConf::Text(t) => t.clone(),
                DracutConf::File(f) => std::fs::read_to_string(f)
                    .map_err(|e| Error::io("read the dracut.conf", f, e))?,
            },
        })
    }

    /// How `rootfs.img` is made, its mksquashfs output going to `log`.
    pub(super) fn squashfs_options(&self, log: PathBuf) -> SquashfsOptions {
        let c = &self.config.configuration;
        SquashfsOptions {
            compression: match c.squashfs_compression {
                SquashfsCompression::Zstd => SquashCompression::Zstd,
                SquashfsCompression::Xz => SquashCompression::Xz,
            },
            resolv_conf: ResolvConf::Link(c.resolv_conf.to_string_lossy().into_owned()),
            processors: None,
            log,
            sandbox: sandbox_options(),
        }
    }

    /// Whether the boot cache has the files of `key`.
    pub(super) fn boot_is_cached(&self, key: &str) -> bool {
        self.store.root().join(BOOT_CACHE).join(key).is_dir()
    }

    /// The cache dir of `key`, made by `make` into a temp dir renamed into
    /// place when missing; whether it was made now.
    fn boot_cached(
        &self,
        key: &str,
        make: impl FnOnce(&vauban_oci::store::Store, &Path) -> Result<()>,
    ) -> Result<(PathBuf, Outcome)> {
        let root = self.store.root().join(BOOT_CACHE);
        private_dir(&root)?;
        let dir = root.join(key);
        let no_cache = self.opts.no_cache;
        let got = get_or_build(
            vec![(key.to_owned(), ())],
            |_| Ok::<_, Error>((dir.is_dir() && !no_cache).then(|| dir.clone())),
            |k| Ok(self.store.work_lock(&format!("boot-{k}"))?),
            |_| {
                let temp = tempfile::Builder::new()
                    .prefix(".partial-")
                    .tempdir_in(&root)
                    .map_err(|e| Error::io("create a temp dir in", &root, e))?;
                make(self.store, temp.path())?;
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
                }
                let temp = temp.keep();
                std::fs::rename(&temp, &dir).map_err(|e| Error::io("rename", &temp, e))?;
                Ok(vec![((), Ok::<_, Infallible>(dir.clone()))])
            },
        )?;
        let Some(((), Ok(made))) = got.into_iter().next() else {
            unreachable!("get_or_build gives one result per key, and this one cannot fail")
        };
        Ok(made)
    }
}

/// The initramfs key of `image` (the one dracut runs in) with the extra
/// dracut.conf `extra_conf`: vauban's version, the image's manifest digest
/// (every layer and the config: dracut copies files from the whole image) and
/// the whole dracut.conf.
pub(super) fn initramfs_key(image: &Image, extra_conf: &str) -> String {
    let local_module: String = export::dracut::LOCAL_MODULE
        .iter()
        .map(|(name, text)| format!("{name}\n{text}"))
        .collect();
    digest_of(&format!(
        "initramfs {} {} {} {local_module}",
        env!("CARGO_PKG_VERSION"),
        image.manifest_digest,
        export::dracut::dracut_conf(extra_conf)
    ))
}

/// The key of the `rootfs.img` of `image` made with `squash`: vauban's
/// version, the image's manifest digest, the compression and `resolv.conf`.
pub(super) fn rootfs_key(image: &Image, squash: &SquashfsOptions) -> String {
    digest_of(&format!(
        "rootfs.img {} {} {:?} {:?}",
        env!("CARGO_PKG_VERSION"),
        image.manifest_digest,
        squash.compression,
        squash.resolv_conf
    ))
}

fn sandbox_options() -> SandboxOptions {
    SandboxOptions::default()
}

fn digest_of(text: &str) -> String {
    hex(Sha256::digest(text.as_bytes()).as_slice())
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Links the kernel and initramfs of the cache dir `cached` into `linux`
/// (and their `-default` names); the kernel version.
fn linked_kernel(cached: &Path, linux: &Path) -> Result<String> {
    let entries = std::fs::read_dir(cached).map_err(|e| Error::io("read", cached, e))?;
    let kver = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .filter(|v| *v != "default")
                .map(str::to_owned)
        })
        .next()
        .ok_or_else(|| Error::internal("a cached initramfs dir without its kernel"))?;
    let (kernel, initramfs) = export::dracut::file_names(&kver);
    link(&cached.join(&kernel), &linux.join(&kernel))?;
    link(&cached.join(&initramfs), &linux.join(&initramfs))?;
    export::atomic::symlink(&kernel, &linux.join(export::dracut::DEFAULT_NAMES.0))?;
    export::atomic::symlink(&initramfs, &linux.join(export::dracut::DEFAULT_NAMES.1))?;
    Ok(kver)
}

/// Puts `src` at `dest` atomically: a hard link when they share a file
/// system, else a copy.
fn link(src: &Path, dest: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // Already this very file (a rename onto another link of one inode does
    // nothing and would leave the temp name behind).
    if let (Ok(a), Ok(b)) = (std::fs::metadata(src), std::fs::symlink_metadata(dest)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Ok(());
        }
    }
    let staged = export::atomic::Staged::new(dest)?;
    let _ = std::fs::remove_file(staged.path());
    if std::fs::hard_link(src, staged.path()).is_err() {
        std::fs::copy(src, staged.path()).map_err(|e| Error::io("copy", src, e))?;
    }
    staged.publish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use vauban_oci::image::{self, HistoryEntry};
    use vauban_oci::layer::{LayerSource, PackOptions, PackedLayer};
    use vauban_oci::store::Store;

    use super::*;

    /// A layer holding `files` (path, content), packed into the store.
    fn layer(store: &Store, files: &[(&str, &str)]) -> PackedLayer {
        let tree = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = tree.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        store
            .pack_layer(LayerSource::Tree(tree.path()), &PackOptions::default())
            .unwrap()
    }

    fn image_of(store: &Store, base: Option<&Image>, layer: PackedLayer) -> Image {
        let history = HistoryEntry {
            created_by: "test".into(),
            created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            comment: None,
        };
        image::build(store, base, &[layer], &history).unwrap()
    }

    /// A child master's replaced `/usr/bin/curl` (a layer far from `/boot`)
    /// makes another initramfs: dracut copies it in.
    #[test]
    fn the_initramfs_key_covers_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kernel = layer(
            &store,
            &[
                ("boot/vmlinuz-6.1.0-9-amd64", "kernel"),
                ("lib/modules/6.1.0-9-amd64/modules.dep", ""),
                ("usr/bin/dracut", "#!/bin/sh"),
            ],
        );
        let base = image_of(&store, None, kernel);
        let curl = |version: &str| {
            let l = layer(&store, &[("usr/bin/curl", version)]);
            image_of(&store, Some(&base), l)
        };
        let (old, new) = (curl("curl 7.88.1"), curl("curl 7.88.1+deb12u1"));
        let key = |img: &Image, conf: &str| initramfs_key(img, conf);
        assert_ne!(key(&old, ""), key(&new, ""), "a security update of curl");
        assert_ne!(key(&base, ""), key(&old, ""));
        assert_eq!(key(&old, ""), key(&curl("curl 7.88.1"), ""));
        assert_ne!(key(&old, ""), key(&old, "compress=\"zstd\""));
    }
}
