//! A diff's report as people read it, the same from `vauban diff` and from
//! `vauban serve` (which computes a diff of its builds or of a host's drift
//! and answers in the form asked for): a line per path with what changed
//! and the text diffs, `--stat`, `--name-only`, `--name-status`, JSON.

use std::io::{self, Write};

use super::{Change, Node, PackageReport, Report, Status};
use crate::diff::quote_name;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A line per path with what changed, then its text diff.
    #[default]
    Full,
    /// A line per path with its line counts, and a summary.
    Stat,
    /// The paths alone.
    NameOnly,
    /// The paths after `A`, `D` or `M`.
    NameStatus,
    /// The report as JSON (schema [`super::SCHEMA`]).
    Json,
}

impl Format {
    /// Whether the text diffs are shown (else not worth computing).
    pub fn shows_text(self) -> bool {
        !matches!(self, Format::NameOnly | Format::NameStatus)
    }
}

/// Writes `report` as `format`.
pub fn write_report(out: &mut dyn Write, report: &Report, format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::NameOnly => report
            .changes
            .iter()
            .try_for_each(|c| writeln!(out, "{}", c.path)),
        Format::NameStatus => report
            .changes
            .iter()
            .try_for_each(|c| writeln!(out, "{}\t{}", c.status.letter(), c.path)),
        Format::Stat => write_stat(out, report),
        Format::Full => report.changes.iter().try_for_each(|c| {
            writeln!(out, "{} {}  {}", c.status.letter(), c.path, what_changed(c))?;
            match &c.text {
                Some(t) => write!(out, "{}", t.unified),
                None => Ok(()),
            }
        }),
    }
}

/// What changed in a [`Change`], in words: `changed: mode 0644 -> 0600, …`.
pub fn what_changed(c: &Change) -> String {
    let node = |n: &Option<Node>| n.as_ref().map(Node::describe);
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
    t.map_or_else(|| "none".into(), |t| format!("{prefix}{}", quote_name(t)))
}

/// Which extended attributes differ: `xattr user.a added, user.b changed`.
fn xattr_changes(a: &Node, b: &Node) -> String {
    let mut words = Vec::new();
    for (name, value) in &a.xattrs {
        match b.xattrs.get(name) {
            None => words.push(format!("{} removed", quote_name(name.as_bytes()))),
            Some(v) if v != value => words.push(format!("{} changed", quote_name(name.as_bytes()))),
            Some(_) => {}
        }
    }
    for name in b.xattrs.keys().filter(|n| !a.xattrs.contains_key(*n)) {
        words.push(format!("{} added", quote_name(name.as_bytes())));
    }
    format!("xattr {}", words.join(", "))
}

fn short(sha: Option<&str>) -> &str {
    sha.map_or("?", |s| &s[..s.len().min(12)])
}

/// The `--stat` lines of a change: its line counts, or what changed.
pub fn stat_detail(c: &Change) -> String {
    match &c.text {
        Some(t) => format!("+{} -{}", t.added, t.removed),
        None => match c.status {
            Status::Changed => c.fields.join(", "),
            Status::Added => "added".into(),
            Status::Removed => "removed".into(),
        },
    }
}

/// The summary line of `--stat`.
pub fn summary(report: &Report) -> String {
    let (plus, minus) = report
        .changes
        .iter()
        .filter_map(|c| c.text.as_ref())
        .fold((0, 0), |(p, m), t| (p + t.added, m + t.removed));
    let count = |s: Status| report.changes.iter().filter(|c| c.status == s).count();
    format!(
        "{} path(s) differ: {} added, {} removed, {} changed; text lines +{plus} -{minus}",
        report.changes.len(),
        count(Status::Added),
        count(Status::Removed),
        count(Status::Changed),
    )
}

fn write_stat(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let width = report
        .changes
        .iter()
        .map(|c| c.path.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for c in &report.changes {
        writeln!(
            out,
            " {} {:width$} | {}",
            c.status.letter(),
            c.path,
            stat_detail(c)
        )?;
    }
    writeln!(out, " {}", summary(report))
}

/// Writes a `--packages` report, as text or JSON.
pub fn write_packages(out: &mut dyn Write, report: &PackageReport, json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        return writeln!(out);
    }
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
    )
}
