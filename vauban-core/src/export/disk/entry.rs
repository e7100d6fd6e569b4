//! The boot entries of a disk: one Boot Loader Specification entry per
//! generation in the EFI system partition (`loader/entries/vauban-G.conf`),
//! read by systemd-boot, and the `loader.conf` that makes the newest the
//! default.
//!
//! Every entry carries `sort-key vauban` and `version G`: systemd-boot
//! sorts entries with the same sort key by version, newest first, and
//! `default vauban-*` picks the first match, so the entry with the highest
//! generation boots unless someone chooses another in the menu. Adding an
//! entry is therefore the whole switch; the one below it is the fallback.

use std::fmt::Write as _;

/// The sort key of every vauban entry.
const SORT_KEY: &str = "vauban";

/// Where the entries live in the EFI system partition.
pub(crate) const ENTRIES_DIR: &str = "loader/entries";

/// Where a build's files live, in both partitions: `vauban/BUILD/`.
pub(crate) const BUILDS_DIR: &str = "vauban";

/// The kernel's and the initramfs's names in a build's directory of the
/// EFI system partition; the rootfs's in the data partition's.
pub(crate) const KERNEL: &str = "vmlinuz";
/// See [`KERNEL`].
pub(crate) const INITRAMFS: &str = "initramfs.img";
/// See [`KERNEL`].
pub(crate) const ROOTFS: &str = "rootfs.img";

/// The name of `host`'s conffs in a build's directory of the data partition.
pub(crate) fn conffs_name(host: &str) -> String {
    format!("conffs-{host}.tgz")
}

/// `loader/loader.conf`: the newest vauban entry by default, the menu shown
/// for `timeout` seconds (0: hidden, a key held at start shows it), no
/// command line editing at the menu.
pub(crate) fn loader_conf(timeout: u32) -> String {
    format!(
        "# vauban: the newest vauban entry boots unless another is chosen here\n\
         default vauban-*\n\
         timeout {timeout}\n\
         editor no\n"
    )
}

/// One boot entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Its generation: higher is newer, the newest is the default.
    pub generation: u64,
    /// The build it boots (the directory name under `vauban/`).
    pub build: String,
    /// The master.
    pub master: String,
    /// The host.
    pub host: String,
    /// The kernel command line.
    pub options: String,
}

impl Entry {
    /// Its file name in `loader/entries/`.
    pub fn file_name(&self) -> String {
        file_name(self.generation)
    }

    /// The entry file's text.
    pub(crate) fn render(&self) -> String {
        let Entry {
            generation,
            build,
            master,
            host,
            options,
        } = self;
        let mut text = String::new();
        let _ = writeln!(text, "# vauban: {master}/{host}, build {build}");
        let _ = writeln!(
            text,
            "title vauban {master}/{host} (build {build}, generation {generation})"
        );
        let _ = writeln!(text, "sort-key {SORT_KEY}");
        let _ = writeln!(text, "version {generation}");
        let _ = writeln!(text, "linux /{BUILDS_DIR}/{build}/{KERNEL}");
        let _ = writeln!(text, "initrd /{BUILDS_DIR}/{build}/{INITRAMFS}");
        let _ = writeln!(text, "options {options}");
        text
    }

    /// The entry written in `text` as file `name`, if it is vauban's.
    pub(crate) fn parse(name: &str, text: &str) -> Option<Entry> {
        let generation = parse_file_name(name)?;
        let mut entry = Entry {
            generation,
            build: String::new(),
            master: String::new(),
            host: String::new(),
            options: String::new(),
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# vauban: ") {
                let (who, _) = rest.split_once(',')?;
                let (master, host) = who.split_once('/')?;
                entry.master = master.to_owned();
                entry.host = host.to_owned();
            } else if let Some(path) = line.strip_prefix("linux ") {
                let build = path
                    .trim()
                    .strip_prefix(&format!("/{BUILDS_DIR}/"))?
                    .strip_suffix(&format!("/{KERNEL}"))?;
                entry.build = build.to_owned();
            } else if let Some(options) = line.strip_prefix("options ") {
                entry.options = options.trim().to_owned();
            }
        }
        let plain = crate::export::is_plain_name;
        let ours = is_build_id(&entry.build) && plain(&entry.master) && plain(&entry.host);
        // Exactly what vauban writes, or not vauban's: an entry changed by
        // hand (another `version`, a second `linux`) would boot otherwise
        // than vauban reads it.
        (ours && entry.render() == text).then_some(entry)
    }
}

/// `vauban-G.conf`.
pub(crate) fn file_name(generation: u64) -> String {
    format!("vauban-{generation}.conf")
}

/// The highest generation vauban reads or writes: an entry file beyond it
/// is not vauban's (and `G + 1` never overflows).
pub(crate) const MAX_GENERATION: u64 = 1_000_000_000;

/// The generation of an entry file named `vauban-G.conf` (G written as
/// vauban writes it: no leading zero, at most [`MAX_GENERATION`]).
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("vauban-")?.strip_suffix(".conf")?;
    let generation: u64 = digits.parse().ok()?;
    (generation.to_string() == digits && generation <= MAX_GENERATION).then_some(generation)
}

/// Whether `id` is a build id: 16 lower-case hex digits.
pub(crate) fn is_build_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The kernel command line of a disk boot: the live root is the squashfs
/// `vauban/BUILD/rootfs.img` of the data partition `data_partuuid`, copied
/// to RAM (the partition is then released), under a tmpfs overlay; the
/// host's conffs comes from the same directory (the `vauban-local` dracut
/// module); then `extra_args`.
pub(crate) fn cmdline(
    data_partuuid: &str,
    build: &str,
    host: &str,
    extra_args: &[String],
) -> String {
    let dir = format!("/{BUILDS_DIR}/{build}");
    let mut args = vec![
        format!("root=live:PARTUUID={data_partuuid}"),
        format!("rd.live.dir={dir}"),
        format!("rd.live.squashimg={ROOTFS}"),
        "rd.live.ram=1".to_owned(),
        "rd.live.image".to_owned(),
        "rd.live.overlay.overlayfs=1".to_owned(),
        format!("vauban.conffs={dir}/{}", conffs_name(host)),
    ];
    args.extend(extra_args.iter().cloned());
    args.join(" ")
}

/// Entries newest first.
pub(crate) fn newest_first(entries: &mut [Entry]) {
    entries.sort_by_key(|e| std::cmp::Reverse(e.generation));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            generation: 7,
            build: "0123456789abcdef".into(),
            master: "master-web".into(),
            host: "web01".into(),
            options: cmdline(
                "6f1c5a8e-1111-4222-8333-000000000002",
                "0123456789abcdef",
                "web01",
                &["console=ttyS0,115200".into()],
            ),
        }
    }

    #[test]
    fn an_entry_boots_its_builds_files_live_from_the_data_partition() {
        let text = entry().render();
        assert_eq!(
            text,
            "# vauban: master-web/web01, build 0123456789abcdef\n\
             title vauban master-web/web01 (build 0123456789abcdef, generation 7)\n\
             sort-key vauban\n\
             version 7\n\
             linux /vauban/0123456789abcdef/vmlinuz\n\
             initrd /vauban/0123456789abcdef/initramfs.img\n\
             options root=live:PARTUUID=6f1c5a8e-1111-4222-8333-000000000002 \
             rd.live.dir=/vauban/0123456789abcdef rd.live.squashimg=rootfs.img rd.live.ram=1 \
             rd.live.image rd.live.overlay.overlayfs=1 \
             vauban.conffs=/vauban/0123456789abcdef/conffs-web01.tgz console=ttyS0,115200\n"
        );
        assert_eq!(Entry::parse("vauban-7.conf", &text), Some(entry()));
        assert_eq!(entry().file_name(), "vauban-7.conf");
    }

    #[test]
    fn only_vaubans_entries_are_read() {
        let text = entry().render();
        assert_eq!(Entry::parse("debian-7.conf", &text), None);
        assert_eq!(Entry::parse("vauban-x.conf", &text), None);
        assert_eq!(Entry::parse("vauban-7.conf.tmp", &text), None);
        assert_eq!(Entry::parse("vauban-07.conf", &text), None);
        assert_eq!(parse_file_name("vauban-18446744073709551615.conf"), None);
        // Changed by hand: not vauban's any more.
        let newer = text.replace("version 7", "version 5000");
        assert_eq!(Entry::parse("vauban-7.conf", &newer), None);
        let second_linux = format!("{text}linux /EFI/evil/vmlinuz\n");
        assert_eq!(Entry::parse("vauban-7.conf", &second_linux), None);
        let other_linux = text.replace("/vauban/0123456789abcdef/vmlinuz", "/EFI/debian/vmlinuz");
        assert_eq!(Entry::parse("vauban-7.conf", &other_linux), None);
        let bad_host = text.replace("master-web/web01,", "master-web/../x,");
        assert_eq!(Entry::parse("vauban-7.conf", &bad_host), None);
    }

    #[test]
    fn the_newest_generation_comes_first_and_is_the_default() {
        let mut entries: Vec<Entry> = [3, 10, 9]
            .map(|generation| Entry {
                generation,
                ..entry()
            })
            .to_vec();
        newest_first(&mut entries);
        let order: Vec<u64> = entries.iter().map(|e| e.generation).collect();
        assert_eq!(order, [10, 9, 3]);
        assert!(loader_conf(5).contains("\ndefault vauban-*\ntimeout 5\n"));
    }
}
