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

    /// The host whose conffs the disk applies.
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

    /// The disk's size (`8G`, `4096M`) [default: room for two builds and a
    /// quarter more].
    #[arg(long, value_name = "SIZE", value_parser = super::drift::parse_size)]
    pub size: Option<u64>,

    /// systemd-boot's EFI binary.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    )]
    pub bootloader: PathBuf,

    /// Seconds the boot menu waits for a choice (0: shown only while a key
    /// is held).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub menu_timeout: u32,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vauban disk`.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let files = || -> Result<DiskFiles> {
        let (Some(master), Some(host)) = (&args.master, &args.host) else {
            bail!("name the master and the host: vauban disk MASTER HOST ...");
        };
        DiskFiles::from_tree(&args.out, master, host).with_context(|| {
            format!(
                "the boot files of {master}/{host} in {}",
                args.out.display()
            )
        })
    };
    let only_disk = |what: &str| -> Result<()> {
        if args.master.is_some() {
            bail!("--{what} takes the disk alone: vauban disk --{what} DISK");
        }
        Ok(())
    };
    let report = if let Some(dest) = &args.output {
        if dest.exists() {
            bail!(
                "{} exists: update it with --update, or remove it first",
                dest.display()
            );
        }
        let opts = DiskOptions {
            size: args.size,
            bootloader: args.bootloader.clone(),
            menu_timeout: args.menu_timeout,
        };
        make_disk(&files()?, &opts, dest).with_context(|| format!("making {}", dest.display()))?
    } else if let Some(disk) = &args.update {
        update_disk(&files()?, disk).with_context(|| format!("updating {}", disk.display()))?
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
        "holds"
    };
    out!(
        "{}: {what} ({} MiB, {} MiB on disk, {:.1} s)",
        r.disk.display(),
        r.size >> 20,
        r.allocated >> 20,
        r.seconds
    );
    for name in &r.foreign {
        out!(
            "  warning: loader/entries/{} is not an entry vauban wrote: --update or --rollback removes it",
            vauban_core::printable::escape(name)
        );
    }
    for (i, e) in r.entries.iter().enumerate() {
        let role = match i {
            0 => "default ",
            1 => "fallback",
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
