//! `vauban diff A B [-- PATH...]`: what differs between two images, two
//! hosts' conffs (`MASTER/HOST`), a tree on disk or an archive; a line per
//! path and the unified diffs of text files, or `--stat`, `--name-only`,
//! `--name-status`, `--json`; `--packages` compares the installed packages.
//! `--exit-code` exits 1 when they differ (and 2 on an error), for scripts.
//! With `--server`, `vauban serve` computes it: `--drift HOST` (what a live
//! host changed since it booted, against that build), or two builds of its
//! history (`build:ID[/IMAGE]`).

use std::io::Write;

use anyhow::{bail, Context, Result};
use vauban_core::diff::{self, DiffOptions, Format, Side};

use crate::cli::Globals;

/// Arguments of `vauban diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Side A: an image (NAME[:TAG], NAME@DIGEST, MASTER/HOST for a host's
    /// conffs image), a directory, a tar archive (a conffs-HOST.tgz), A+ARCHIVE
    /// (an archive stacked on A), or build:ID[/IMAGE], a build of --server.
    #[arg(required_unless_present = "drift")]
    pub a: Option<String>,
    /// Side B, as A.
    #[arg(required_unless_present = "drift")]
    pub b: Option<String>,
    /// What HOST changed since it booted (the last drift it sent to
    /// --server) against the exact build it booted.
    #[arg(long, value_name = "HOST", conflicts_with_all = ["a", "b", "packages"])]
    pub drift: Option<String>,
    /// With --drift, this drift (an id of `GET /hosts/HOST/drifts`)
    /// instead of the last.
    #[arg(long, value_name = "ID", requires = "drift")]
    pub drift_id: Option<String>,
    #[command(flatten)]
    pub server: super::remote::ServerArgs,
    /// Only these paths and what is under them (paths from the root, not
    /// globs).
    #[arg(last = true)]
    pub paths: Vec<String>,
    /// Leave out paths matching GLOB (a name anywhere, or a path from the
    /// root when it holds a `/`); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// A line per path with its line counts, and a summary.
    #[arg(long, conflicts_with_all = ["name_only", "name_status", "json"])]
    pub stat: bool,
    /// Only the paths that differ.
    #[arg(long, conflicts_with_all = ["name_status", "json"])]
    pub name_only: bool,
    /// The paths that differ, each after A (added), D (removed) or M (changed).
    #[arg(long, conflicts_with = "json")]
    pub name_status: bool,
    /// The report as JSON (schema `vauban.diff/1`, in ARCHITECTURE.md).
    #[arg(long)]
    pub json: bool,
    /// Compare the installed packages (dpkg status) instead of the files.
    #[arg(long, conflicts_with_all = ["stat", "name_only", "name_status", "exclude", "paths"])]
    pub packages: bool,
    /// Exit 1 when the sides differ, 0 when not (2 on an error).
    #[arg(long)]
    pub exit_code: bool,
}

/// Compares and prints.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let exit_code = args.exit_code;
    let result = compare(globals, args).inspect_err(|e| {
        // A reader that stopped reading (`| head`) is not an error.
        let closed = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed {
            std::process::exit(if exit_code { 1 } else { 0 });
        }
    });
    match result {
        Ok(differs) => {
            std::io::stdout().flush()?;
            if exit_code && differs {
                std::process::exit(1);
            }
            Ok(())
        }
        Err(e) if exit_code => {
            eprintln!("vauban: error: {}", crate::exit::message(&e));
            std::process::exit(2);
        }
        Err(e) => Err(e),
    }
}

/// Compares and prints; whether they differ.
fn compare(globals: &Globals, args: Args) -> Result<bool> {
    if args.drift_id.is_some() && args.drift.is_none() {
        bail!("--drift-id ID names a drift of the host --drift HOST: give --drift too");
    }
    if args.drift.is_some() || args.a.as_deref().is_some_and(|a| a.starts_with(BUILD)) {
        return compare_at_server(args);
    }
    let store = globals.open_store()?;
    let (a, b) = (args.a.as_deref(), args.b.as_deref());
    let a = Side::open(&store, a.context("side A")?)?;
    let b = Side::open(&store, b.context("side B")?)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.packages {
        let report = diff::packages(&store, &a, &b)?;
        diff::write_packages(&mut out, &report, args.json)?;
        out.flush()?;
        return Ok(!report.changes.is_empty());
    }
    let format = args.format();
    let opts = DiffOptions {
        paths: args.paths,
        exclude: args.exclude,
        text: format.shows_text(),
        ..DiffOptions::default()
    };
    let report = diff::diff(&store, &a, &b, &opts)?;
    diff::write_report(&mut out, &report, format)?;
    out.flush()?;
    Ok(report.differs())
}

/// How a side names a build of the server.
const BUILD: &str = "build:";

/// A diff `vauban serve` computes (a host's drift, two builds), printed.
fn compare_at_server(args: Args) -> Result<bool> {
    if args.packages {
        bail!("--packages compares sides of this machine's store, not a server's builds");
    }
    let format = match args.format() {
        Format::Full => "full",
        Format::Stat => "stat",
        Format::NameOnly => "name-only",
        Format::NameStatus => "name-status",
        Format::Json => "json",
    };
    let mut query: Vec<(&str, String)> = vec![("format", format.into())];
    query.extend(args.exclude.iter().map(|e| ("exclude", e.clone())));
    query.extend(args.paths.iter().map(|p| ("path", p.clone())));
    if let Some(id) = &args.drift_id {
        query.push(("drift", id.clone()));
    }
    if args.drift.is_none() {
        let build = |side: &Option<String>| -> Result<(String, Option<String>)> {
            let side = side.as_deref().unwrap_or_default();
            let Some(rest) = side.strip_prefix(BUILD) else {
                bail!("{side}: a build of the server is compared with another (build:ID[/IMAGE] on both sides)");
            };
            let (id, image) = match rest.split_once('/') {
                Some((id, image)) => (id, Some(image.to_owned())),
                None => (rest, None),
            };
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("{side}: build:ID[/IMAGE], ID a build id of the server (vauban remote list)");
            }
            Ok((id.to_owned(), image))
        };
        let ((a, ia), (b, ib)) = (build(&args.a)?, build(&args.b)?);
        if ia.is_some() && ib.is_some() && ia != ib {
            bail!("both sides name an image, and not the same ({} and {}): one image of two builds is compared", ia.unwrap_or_default(), ib.unwrap_or_default());
        }
        query.push(("a", a));
        query.push(("b", b));
        if let Some(image) = ia.or(ib) {
            query.push(("image", image));
        }
    }
    let client = args.server.client()?;
    let what = match &args.drift {
        Some(h) => format!("the drift of {h}"),
        None => "the diff of the builds".into(),
    };
    let (body, differs) = super::push::runtime()?
        .block_on(client.diff(args.drift.as_deref(), &query))
        .with_context(|| what)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    Ok(differs)
}

impl Args {
    /// The output form asked for.
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.name_only {
            Format::NameOnly
        } else if self.name_status {
            Format::NameStatus
        } else if self.stat {
            Format::Stat
        } else {
            Format::Full
        }
    }
}
