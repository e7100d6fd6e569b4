//! `vauban diff A B [-- PATH...]`: what differs between two images, two
//! hosts' conffs (`MASTER/HOST`), a tree on disk or an archive; a line per
//! path and the unified diffs of text files, or `--stat`, `--name-only`,
//! `--name-status`, `--json`; `--packages` compares the installed packages.
//! `--exit-code` exits 1 when they differ (and 2 on an error), for scripts.

use std::io::Write;

use anyhow::Result;
use vauban_core::diff::{self, Change, DiffOptions, PackageReport, Report, Side, Status};

use crate::cli::Globals;

/// Arguments of `vauban diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Side A: an image (NAME[:TAG], NAME@DIGEST, MASTER/HOST for a host's
    /// conffs image), a directory, or a tar archive (a conffs-HOST.tgz).
    pub a: String,
    /// Side B, as A.
    pub b: String,
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
    let store = globals.open_store()?;
    let a = Side::open(&store, &args.a)?;
    let b = Side::open(&store, &args.b)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.packages {
        let report = diff::packages(&store, &a, &b)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else {
            print_packages(&mut out, &report)?;
        }
        out.flush()?;
        return Ok(!report.changes.is_empty());
    }
    let opts = DiffOptions {
        paths: args.paths,
        exclude: args.exclude,
        text: !(args.name_only || args.name_status),
        ..DiffOptions::default()
    };
    let report = diff::diff(&store, &a, &b, &opts)?;
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if args.name_only {
        for c in &report.changes {
            writeln!(out, "{}", c.path)?;
        }
    } else if args.name_status {
        for c in &report.changes {
            writeln!(out, "{}\t{}", c.status.letter(), c.path)?;
        }
    } else if args.stat {
        print_stat(&mut out, &report)?;
    } else {
        print_full(&mut out, &report)?;
    }
    out.flush()?;
    Ok(report.differs())
}

/// What changed in a [`Change`], in words.
fn what_changed(c: &Change) -> String {
    let node = |n: &Option<vauban_core::diff::Node>| n.as_ref().map(|n| n.describe());
    match c.status {
        Status::Added => format!("added: {}", node(&c.b).unwrap_or_default()),
        Status::Removed => format!("removed: {}", node(&c.a).unwrap_or_default()),
        Status::Changed => {
            let (a, b) = (c.a.as_ref(), c.b.as_ref());
            let words: Vec<String> = c
                .fields
                .iter()
                .map(|f| match (*f, a, b) {
                    ("mode", Some(a), Some(b)) => format!("mode {:04o} -> {:04o}", a.mode, b.mode),
                    ("owner", Some(a), Some(b)) => {
                        format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid)
                    }
                    ("type", Some(a), Some(b)) => {
                        format!("type {} -> {}", a.kind.word(), b.kind.word())
                    }
                    ("content", Some(a), Some(b)) if c.text.is_none() => format!(
                        "content ({}{} -> {} B, sha256 {} -> {})",
                        c.no_text
                            .as_deref()
                            .map(|w| format!("{w}, "))
                            .unwrap_or_default(),
                        a.size.unwrap_or(0),
                        b.size.unwrap_or(0),
                        short(a.sha256.as_deref()),
                        short(b.sha256.as_deref())
                    ),
                    ("target", Some(a), Some(b)) => format!(
                        "target {} -> {}",
                        link_text(a.target.as_deref(), ""),
                        link_text(b.target.as_deref(), "")
                    ),
                    ("hardlink", Some(a), Some(b)) => format!(
                        "hard link {} -> {}",
                        link_text(a.hardlink.as_deref(), "/"),
                        link_text(b.hardlink.as_deref(), "/")
                    ),
                    ("xattrs", Some(a), Some(b)) => xattr_changes(a, b),
                    (f, _, _) => f.to_string(),
                })
                .collect();
            format!("changed: {}", words.join(", "))
        }
    }
}

/// A link target or hard link as printed (`none` when there is none).
fn link_text(t: Option<&[u8]>, prefix: &str) -> String {
    t.map_or_else(
        || "none".into(),
        |t| format!("{prefix}{}", vauban_core::diff::quote_name(t)),
    )
}

/// Which extended attributes differ: `xattr user.a added, user.b changed`.
fn xattr_changes(a: &vauban_core::diff::Node, b: &vauban_core::diff::Node) -> String {
    let mut words = Vec::new();
    for (name, value) in &a.xattrs {
        match b.xattrs.get(name) {
            None => words.push(format!(
                "{} removed",
                vauban_core::diff::quote_name(name.as_bytes())
            )),
            Some(v) if v != value => words.push(format!(
                "{} changed",
                vauban_core::diff::quote_name(name.as_bytes())
            )),
            Some(_) => {}
        }
    }
    for name in b.xattrs.keys().filter(|n| !a.xattrs.contains_key(*n)) {
        words.push(format!(
            "{} added",
            vauban_core::diff::quote_name(name.as_bytes())
        ));
    }
    format!("xattr {}", words.join(", "))
}

fn short(sha: Option<&str>) -> &str {
    sha.map_or("?", |s| &s[..s.len().min(12)])
}

fn print_full(out: &mut impl Write, report: &Report) -> Result<()> {
    for c in &report.changes {
        writeln!(out, "{} {}  {}", c.status.letter(), c.path, what_changed(c))?;
        if let Some(t) = &c.text {
            write!(out, "{}", t.unified)?;
        }
    }
    Ok(())
}

fn print_stat(out: &mut impl Write, report: &Report) -> Result<()> {
    let width = report
        .changes
        .iter()
        .map(|c| c.path.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let (mut plus, mut minus) = (0, 0);
    for c in &report.changes {
        let detail = match &c.text {
            Some(t) => {
                plus += t.added;
                minus += t.removed;
                format!("+{} -{}", t.added, t.removed)
            }
            None => match c.status {
                Status::Changed => c.fields.join(", "),
                Status::Added => "added".into(),
                Status::Removed => "removed".into(),
            },
        };
        writeln!(out, " {} {:width$} | {detail}", c.status.letter(), c.path)?;
    }
    let count = |s: Status| report.changes.iter().filter(|c| c.status == s).count();
    writeln!(
        out,
        " {} path(s) differ: {} added, {} removed, {} changed; text lines +{plus} -{minus}",
        report.changes.len(),
        count(Status::Added),
        count(Status::Removed),
        count(Status::Changed),
    )?;
    Ok(())
}

fn print_packages(out: &mut impl Write, report: &PackageReport) -> Result<()> {
    for c in &report.changes {
        let versions = match (&c.a, &c.b) {
            (Some(a), Some(b)) => format!("{a} -> {b}"),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => String::new(),
        };
        writeln!(out, "{:<10} {}:{} {versions}", c.change, c.name, c.arch)?;
    }
    writeln!(
        out,
        "{} package(s) differ ({} installed on A, {} on B)",
        report.changes.len(),
        report.a_installed,
        report.b_installed
    )?;
    Ok(())
}
