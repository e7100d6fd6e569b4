//! `vauban disk`: a host's disk image that boots live with no network.
//!
//! - `vauban disk MASTER HOST -o host.raw [--size SIZE]` makes one from the
//!   boot tree (`--out`, the build's output);
//! - `vauban disk MASTER HOST --update DISK` writes a newer build beside the
//!   one it boots and makes it the default, the older one kept as the
//!   fallback entry;
//! - `vauban disk --rollback DISK` boots the fallback's build by default
//!   again; `vauban disk --list DISK` shows the entries.
//!
//! DISK is a disk image or a block device (`/dev/sdb`) the user may write.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vauban_core::export::{disk_entries, make_disk, rollback_disk, update_disk};
use vauban_core::export::{DiskFiles, DiskOptions, DiskReport};

use crate::cli::Globals;

/// Arguments of `vauban disk`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").args(["output", "update", "rollback", "list"]).required(true)))]
pub struct Args {
    /// The master whose build the disk boots.
    pub master: Option<String>,

    /// The host whose conffs the disk applies (with --update, both default
    /// to those the disk boots).
    pub host: Option<String>,

    /// Make a new disk image here (mode 0600: it holds the host's conffs).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Update this disk to the build in the boot tree; the build it boots
    /// stays as the fallback entry.
    #[arg(long, value_name = "DISK")]
    pub update: Option<PathBuf>,

    /// Make the fallback entry's build the default again.
    #[arg(long, value_name = "DISK")]
    pub rollback: Option<PathBuf>,

    /// Show the disk's boot entries, the default first.
    #[arg(long, value_name = "DISK")]
    pub list: Option<PathBuf>,

    /// The boot tree the files come from (`vauban build --out`).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,

    /// The disk's size, with -o (`8G`, `4096M`: K, M, G are KiB, MiB, GiB;
    /// the target drive's size or less) [default: room for two builds and a
    /// quarter more].
    #[arg(long, value_name = "SIZE", value_parser = super::drift::parse_size)]
    pub size: Option<u64>,

    /// systemd-boot's EFI binary, with -o [default:
    /// /usr/lib/systemd/boot/efi/systemd-bootx64.efi].
    #[arg(long, value_name = "FILE")]
    pub bootloader: Option<PathBuf>,

    /// Seconds the boot menu waits for a choice, with -o (0: shown only
    /// while a key is held) [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub menu_timeout: Option<u32>,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vauban disk`.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let files = |disk: Option<&PathBuf>| -> Result<DiskFiles> {
        let (master, host) = match (&args.master, &args.host, disk) {
            (Some(m), Some(h), _) => (m.clone(), h.clone()),
            (None, None, Some(disk)) => {
                // The disk says whose it is.
                let listed =
                    disk_entries(disk).with_context(|| format!("reading {}", disk.display()))?;
                let Some(e) = listed.entries.first() else {
                    bail!(
                        "{} has no vauban entry to take its master and host from: name them",
                        disk.display()
                    );
                };
                (e.master.clone(), e.host.clone())
            }
            _ => bail!("name the master and the host: vauban disk MASTER HOST ..."),
        };
        DiskFiles::from_tree(&args.out, &master, &host).with_context(|| {
            format!(
                "the boot files of {master}/{host} in {}",
                args.out.display()
            )
        })
    };
    let made_only = args.size.is_some() || args.bootloader.is_some() || args.menu_timeout.is_some();
    if made_only && args.output.is_none() {
        bail!("--size, --bootloader and --menu-timeout make a new disk: they go with -o FILE");
    }
    let only_disk = |what: &str| -> Result<()> {
        if args.master.is_some() {
            bail!("--{what} takes the disk alone: vauban disk --{what} DISK");
        }
        Ok(())
    };
    let report = if let Some(dest) = &args.output {
        if dest.is_dir() {
            bail!(
                "{} is a directory: -o takes the disk image's file name",
                dest.display()
            );
        }
        if dest.exists() {
            bail!(
                "{} exists: update it with --update, or remove it first \
                 (a drive is written with dd from an image)",
                dest.display()
            );
        }
        let defaults = DiskOptions::default();
        let opts = DiskOptions {
            size: args.size,
            bootloader: args.bootloader.clone().unwrap_or(defaults.bootloader),
            menu_timeout: args.menu_timeout.unwrap_or(defaults.menu_timeout),
        };
        make_disk(&files(None)?, &opts, dest)
            .with_context(|| format!("making {}", dest.display()))?
    } else if let Some(disk) = &args.update {
        update_disk(&files(Some(disk))?, disk)
            .with_context(|| format!("updating {}", disk.display()))?
    } else if let Some(disk) = &args.rollback {
        only_disk("rollback")?;
        rollback_disk(disk).with_context(|| format!("rolling {} back", disk.display()))?
    } else if let Some(disk) = &args.list {
        only_disk("list")?;
        disk_entries(disk).with_context(|| format!("reading {}", disk.display()))?
    } else {
        unreachable!("clap requires one action");
    };
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, &args);
    }
    Ok(())
}

/// The entries, the default first, and what changed.
fn print_report(r: &DiskReport, args: &Args) {
    let what = if args.output.is_some() {
        "made"
    } else if !r.changed && args.update.is_some() {
        "already boots this build; nothing written"
    } else if r.changed {
        "updated"
    } else {
        "entries"
    };
    out!(
        "{}: {what} ({} MiB, {} MiB on disk, {:.1} s)",
        r.disk.display(),
        r.size >> 20,
        r.allocated >> 20,
        r.seconds
    );
    for w in &r.warnings {
        out!("  warning: {w}");
    }
    for name in &r.foreign {
        out!(
            "  warning: loader/entries/{} is not an entry vauban wrote: systemd-boot may boot it \
             first; --update or --rollback removes it",
            vauban_core::printable::escape(name)
        );
    }
    let sure = r.foreign.is_empty();
    for (i, e) in r.entries.iter().enumerate() {
        let role = match i {
            0 if sure => "default ",
            1 if sure => "fallback",
            _ => "        ",
        };
        out!(
            "  {role}  {}  {}/{}  build {}",
            e.file_name(),
            e.master,
            e.host,
            e.build
        );
    }
}
