//! `vauban diff`: what differs between two trees — two images, two hosts'
//! conffs, an image and a tree on disk, two archives — path by path: added,
//! removed, changed (type, mode, owner, content, link targets, hard links,
//! devices, xattrs), with unified diffs of text files; and, from both sides'
//! dpkg status, which packages were added, removed, upgraded.
//!
//! It streams: each side is a stack of layers, read as indexes (`index`:
//! path, metadata and content digest, made once per layer and kept in the
//! store); the layers both sides share at the bottom are not read at all
//! unless one side has a path the other lacks, or deletes one (then their
//! kept indexes answer). Contents are read only for the text files shown,
//! each from the one layer that holds it. Memory grows with the number of
//! paths the two sides' own layers hold, never with their bytes.

mod index;
pub mod node;
mod packages;
pub mod render;
pub mod side;
mod view;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vauban_oci::store::Store;

pub use node::{quote_name, Kind, Node};
pub use packages::{packages, PackageChange, PackageReport};
pub use render::{write_packages, write_report, Format};
pub use side::{check_archive, ArchiveLimits, Side, SideKind};
use view::{needs_shared, Layer, View};

use crate::error::{Error, Result};

/// The time one text diff may take (then it is a coarser diff).
const TEXT_DIFF_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// The bytes of file contents held at once for text diffs; the files past
/// it get no text diff (a diff of many big text files stays bounded).
const TEXT_BUDGET: u64 = 64 << 20;

/// The version of the `--json` schema.
pub const SCHEMA: &str = "vauban.diff/1";

/// What to compare and show.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Only these paths and what is under them (none: everything).
    pub paths: Vec<String>,
    /// Globs of paths left out: one without `/` matches a name anywhere,
    /// one with `/` the whole path (from the root, no leading `/`).
    pub exclude: Vec<String>,
    /// Read the text files that differ and make their unified diffs.
    pub text: bool,
    /// The largest file whose text diff is made.
    pub text_limit: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            paths: Vec::new(),
            exclude: Vec::new(),
            text: true,
            text_limit: 1 << 20,
        }
    }
}

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Only B has it.
    Added,
    /// Only A has it.
    Removed,
    /// Both have it, not the same.
    Changed,
}

impl Status {
    /// `A`, `D` or `M`, as `git diff --name-status` says.
    pub fn letter(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Removed => 'D',
            Status::Changed => 'M',
        }
    }
}

/// A text file's changes.
#[derive(Debug, Clone, Serialize)]
pub struct TextChange {
    /// The unified diff (3 lines of context; control characters escaped).
    pub unified: String,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
}

/// One path that differs.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The path, from the root (`/etc/motd`), control characters escaped.
    pub path: String,
    /// How it differs.
    pub status: Status,
    /// What A has there.
    pub a: Option<Node>,
    /// What B has there.
    pub b: Option<Node>,
    /// The fields that differ ([`node::FIELDS`]; empty unless changed).
    pub fields: Vec<&'static str>,
    /// The text diff, for a text file whose content differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextChange>,
    /// Why a file whose content differs has no text diff (`binary`, or
    /// `larger than 1048576 bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_text: Option<String>,
}

/// A side as the report names it.
#[derive(Debug, Clone, Serialize)]
pub struct SideInfo {
    /// As it was named.
    pub name: String,
    /// What it is.
    #[serde(flatten)]
    pub what: SideKind,
}

/// What a diff found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Side A.
    pub a: SideInfo,
    /// Side B.
    pub b: SideInfo,
    /// Layers both sides share (bottom ones, by diff_id).
    pub shared_layers: usize,
    /// Whether the shared layers had to be consulted.
    pub shared_read: bool,
    /// Every path that differs, sorted by path.
    pub changes: Vec<Change>,
}

impl Report {
    /// Whether the sides differ.
    pub fn differs(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Which side a value comes from, for reading contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    A(usize),
    B(usize),
    Shared(usize),
}

/// Where a file's bytes are: the layer and the path in it.
type Place = (Origin, Vec<u8>);

/// The path filter of `opts`.
struct Filter {
    paths: Vec<Vec<u8>>,
    names: Vec<glob::Pattern>,
    full: Vec<glob::Pattern>,
}

impl Filter {
    fn new(opts: &DiffOptions) -> Result<Filter> {
        let mut f = Filter {
            paths: opts.paths.iter().map(|p| normal(p).into_bytes()).collect(),
            names: Vec::new(),
            full: Vec::new(),
        };
        for g in &opts.exclude {
            let g = normal(g);
            if g.is_empty() {
                return Err(Error::InvalidArgument {
                    argument: "--exclude".into(),
                    reason: "an empty pattern (it would match nothing)".into(),
                });
            }
            let g = g.as_str();
            let pattern = glob::Pattern::new(g).map_err(|e| Error::InvalidArgument {
                argument: format!("--exclude {g}"),
                reason: e.to_string(),
            })?;
            if g.contains('/') {
                f.full.push(pattern);
            } else {
                f.names.push(pattern);
            }
        }
        Ok(f)
    }

    fn keeps(&self, path: &[u8]) -> bool {
        use crate::export::conffs::names::is_at_or_under;
        if !self.paths.is_empty()
            && !self
                .paths
                .iter()
                .any(|p| p.is_empty() || is_at_or_under(path, p))
        {
            return false;
        }
        let text = String::from_utf8_lossy(path);
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        // A path is left out when it or one of its ancestors matches.
        let mut prefix = String::new();
        for comp in text.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            if self.names.iter().any(|g| g.matches_with(comp, opts))
                || self.full.iter().any(|g| g.matches_with(&prefix, opts))
            {
                return false;
            }
        }
        true
    }
}

/// A path or pattern as the filter compares it: no leading `/` or `./`, no
/// trailing `/`.
fn normal(p: &str) -> String {
    let mut p = p.trim_end_matches('/');
    loop {
        let q = p.trim_start_matches('/');
        let q = q.strip_prefix("./").unwrap_or(q);
        if q == p {
            break;
        }
        p = q;
    }
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// Compares `a` and `b` (see the module doc).
pub fn diff(store: &Store, a: &Side, b: &Side, opts: &DiffOptions) -> Result<Report> {
    let filter = Filter::new(opts)?;
    let shared = a.shared_with(b);
    let a_own = &a.sources[..a.sources.len() - shared];
    let b_own = &b.sources[..b.sources.len() - shared];
    let base = &a.sources[a.sources.len() - shared..];
    let indexes = |sources: &[side::Source]| -> Result<Vec<index::LayerIndex>> {
        sources.iter().map(|s| s.index(store)).collect()
    };
    let (ia, ib) = (indexes(a_own)?, indexes(b_own)?);
    let (va, vb) = (View::compose(&ia), View::compose(&ib));
    drop((ia, ib));
    let shared_read = !base.is_empty() && needs_shared(&va, &vb);
    let vbase = if shared_read {
        Some(View::compose(&indexes(base)?))
    } else {
        None
    };

    let mut paths: BTreeSet<&[u8]> = va
        .nodes
        .keys()
        .chain(vb.nodes.keys())
        .map(Vec::as_slice)
        .collect();
    if let Some(vbase) = &vbase {
        paths.extend(
            vbase
                .nodes
                .keys()
                .filter(|p| va.hidden(p) || vb.hidden(p))
                .map(Vec::as_slice),
        );
    }
    let from = |side: char, layer: Layer| match (side, layer) {
        ('a', Layer::Own(p)) => Origin::A(p),
        (_, Layer::Own(p)) => Origin::B(p),
        (_, Layer::Shared(p)) => Origin::Shared(p),
    };
    let (ga, gb) = (va.link_groups(), vb.link_groups());
    let gbase = vbase.as_ref().map(View::link_groups).unwrap_or_default();
    // A value with its hard link named by its group's first path.
    let settle = |v: &Option<(&Node, Layer)>, own: &BTreeMap<Vec<u8>, Vec<u8>>, path: &[u8]| {
        v.as_ref().map(|(n, l)| {
            let groups = match l {
                Layer::Own(_) => own,
                Layer::Shared(_) => &gbase,
            };
            let mut n = (*n).clone();
            n.hardlink = match groups.get(path) {
                Some(first) => (first.as_slice() != path).then(|| first.clone()),
                None => n.hardlink,
            };
            n
        })
    };
    let mut changes = Vec::new();
    // For the text diffs: the change, where A's and B's contents are.
    let mut texts: Vec<(usize, Option<Place>, Option<Place>)> = Vec::new();
    let mut budget = TEXT_BUDGET;
    // For each source read for contents, the last entry to read to.
    let lasts = std::cell::RefCell::new(BTreeMap::<Origin, Option<u64>>::new());
    for path in paths {
        if !filter.keeps(path) {
            continue;
        }
        let x = va.value(vbase.as_ref(), path);
        let y = vb.value(vbase.as_ref(), path);
        let (sx, sy) = (settle(&x, &ga, path), settle(&y, &gb, path));
        let (status, fields) = match (&sx, &sy) {
            (None, None) => continue,
            (Some(n), Some(m)) => {
                let fields = n.differences(m);
                if fields.is_empty() {
                    continue;
                }
                (Status::Changed, fields)
            }
            (None, Some(_)) => (Status::Added, Vec::new()),
            (Some(_), None) => (Status::Removed, Vec::new()),
        };
        let readable = |v: &Option<(&Node, Layer)>, side: char| {
            v.as_ref().and_then(|(n, l)| {
                (n.kind == Kind::File && n.size.is_some_and(|s| s <= opts.text_limit)).then(|| {
                    let origin = from(side, *l);
                    // A hard link's content is at its target's entry,
                    // whose number the link does not say: read on.
                    let at = if n.hardlink.is_some() { None } else { n.entry };
                    let mut lasts = lasts.borrow_mut();
                    let reach = lasts.entry(origin).or_insert(Some(0));
                    *reach = match (*reach, at) {
                        (Some(r), Some(e)) => Some(r.max(e)),
                        _ => None,
                    };
                    (origin, n.hardlink.clone().unwrap_or_else(|| path.to_vec()))
                })
            })
        };
        let wants_text = opts.text && (status != Status::Changed || fields.contains(&"content"));
        let mut no_text = None;
        if wants_text {
            let (ra, rb) = (readable(&x, 'a'), readable(&y, 'b'));
            let both_files = x.as_ref().is_none_or(|(n, _)| n.kind == Kind::File)
                && y.as_ref().is_none_or(|(n, _)| n.kind == Kind::File);
            let size =
                |v: &Option<(&Node, Layer)>| v.as_ref().and_then(|(n, _)| n.size).unwrap_or(0);
            let wanted = size(&x) + size(&y);
            if both_files && (ra.is_some() || x.is_none()) && (rb.is_some() || y.is_none()) {
                if budget >= wanted {
                    budget -= wanted;
                    texts.push((changes.len(), ra, rb));
                } else {
                    no_text = Some(format!("past the {TEXT_BUDGET}-byte budget of text diffs"));
                }
            } else if both_files {
                let in_no_layer = [&x, &y]
                    .iter()
                    .any(|v| v.as_ref().is_some_and(|(n, _)| n.size.is_none()));
                no_text = Some(if in_no_layer {
                    "a hard link whose content is in another layer".into()
                } else {
                    format!("larger than {} bytes", opts.text_limit)
                });
            }
        }
        changes.push(Change {
            path: format!("/{}", node::quote_name(path)),
            status,
            a: sx,
            b: sy,
            fields,
            text: None,
            no_text,
        });
    }

    // Contents, each source read once for all the files it holds.
    let mut wanted: BTreeMap<Origin, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (_, ra, rb) in &texts {
        for (f, p) in ra.iter().chain(rb.iter()) {
            wanted.entry(*f).or_default().insert(p.clone());
        }
    }
    let mut got: BTreeMap<Place, Vec<u8>> = BTreeMap::new();
    for (f, paths) in &wanted {
        let source = match f {
            Origin::A(p) => &a_own[*p],
            Origin::B(p) => &b_own[*p],
            Origin::Shared(p) => &base[*p],
        };
        let last = lasts.borrow().get(f).copied().flatten();
        for (path, bytes) in source.contents(store, paths, opts.text_limit, last)? {
            got.insert((*f, path), bytes);
        }
    }
    for (i, ra, rb) in texts {
        let content = |r: &Option<Place>| -> Option<Option<&[u8]>> {
            match r {
                None => Some(None),
                Some(key) => got.get(key).map(|b| Some(b.as_slice())),
            }
        };
        let (Some(ta), Some(tb)) = (content(&ra), content(&rb)) else {
            continue;
        };
        changes[i].text = text_change(&changes[i].path, ta, tb);
        if changes[i].text.is_none() {
            changes[i].no_text = Some("binary".into());
        }
    }
    Ok(Report {
        schema: SCHEMA,
        a: SideInfo {
            name: a.name.clone(),
            what: a.what.clone(),
        },
        b: SideInfo {
            name: b.name.clone(),
            what: b.what.clone(),
        },
        shared_layers: shared,
        shared_read,
        changes,
    })
}

/// `text` with the bidirectional-text controls (which reorder what a
/// terminal shows: "Trojan Source") written `\u{N}`.
fn without_bidi(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                format!("\\u{{{:x}}}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

/// Whether `bytes` read as text: UTF-8 with no NUL.
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The unified diff of a text file (`None` on either side: absent), `None`
/// when either is not text.
fn text_change(path: &str, a: Option<&[u8]>, b: Option<&[u8]>) -> Option<TextChange> {
    let ta = match a {
        Some(bytes) => as_text(bytes)?,
        None => "",
    };
    let tb = match b {
        Some(bytes) => as_text(bytes)?,
        None => "",
    };
    // A pair of files made to be slow to compare stops being compared.
    let diff = similar::TextDiff::configure()
        .timeout(TEXT_DIFF_TIME)
        .diff_lines(ta, tb);
    let (mut added, mut removed) = (0, 0);
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            match change.tag() {
                similar::ChangeTag::Insert => added += 1,
                similar::ChangeTag::Delete => removed += 1,
                similar::ChangeTag::Equal => {}
            }
        }
    }
    let old = if a.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".into()
    };
    let new = if b.is_some() {
        format!("b{path}")
    } else {
        "/dev/null".into()
    };
    let unified = diff
        .unified_diff()
        .context_radius(3)
        .header(&old, &new)
        .to_string();
    Some(TextChange {
        unified: without_bidi(&crate::printable::escape(&unified)),
        added,
        removed,
    })
}

#[cfg(test)]
mod tests;
