//! The first pass over the host layers, top first, reading headers only:
//! which entry wins each path (the newest, unless a whiteout, an opaque
//! marker or a non-directory above hides it), where it lands (`toslash/X`
//! as `X`, winning over a plain `X`; generated files over plain ones; left-out
//! subtrees nowhere), which hard links can stay links, and which whiteouts
//! may delete something of the master. Memory is the set of paths of the
//! host layers; contents are read in the second pass ([`super::emit`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use vauban_oci::store::Store;

use super::names::{
    ancestors, classify, final_name, is_at_or_under, left_out, sandbox_dir, show, Named, TOSLASH,
};
use super::source::{read_layer, Flow, LayerBlob};
use super::stack::{Hidden, LayerChanges};
use crate::error::{Error, Result};

/// An entry of a host layer: the layer (0 = top) and its number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct EntryId {
    /// Host layer, 0 for the top one.
    pub(super) layer: usize,
    /// Entry number in the layer's tar stream.
    pub(super) index: u64,
}

/// Where the content of hard links comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// An entry of a host layer.
    Host(EntryId),
    /// A path of the master (not in any host layer).
    Master(Vec<u8>),
}

/// An entry of one layer as the first pass saw it.
#[derive(Debug, Clone)]
struct Seen {
    index: u64,
    dir: bool,
    /// The normalised target of a hard link.
    link: Option<Vec<u8>>,
}

/// What the second and third passes do.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Host entries written at their place, under their final name.
    pub(super) emit: HashMap<EntryId, Vec<u8>>,
    /// Hard links written right after the host entry holding their content
    /// (final names, sorted).
    pub(super) links: HashMap<EntryId, Vec<Vec<u8>>>,
    /// Hard links to paths found in no host layer: master path → final names.
    pub(super) master_links: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    /// The generated files (hostname, keys) not replaced by a `toslash` entry.
    pub(super) generated: HashSet<Vec<u8>>,
    /// Paths whited out by the host layers and not shipped: deleted from the
    /// master if the master has them. An opaque directory is its path with
    /// `/*` appended.
    pub(super) deletions: Vec<Vec<u8>>,
}

/// A winning entry of a host layer.
#[derive(Debug)]
struct Winner {
    id: EntryId,
    path: Vec<u8>,
    dir: bool,
    link: Option<Vec<u8>>,
}

/// Reads the headers of `layers` (top first) and plans the archive;
/// `generated` are the names of the files vauban writes itself.
pub(super) fn plan(store: &Store, layers: &[LayerBlob], generated: &[Vec<u8>]) -> Result<Plan> {
    let mut hidden = Hidden::default();
    let mut seen: Vec<HashMap<Vec<u8>, Seen>> = Vec::with_capacity(layers.len());
    let mut winners = Vec::new();
    let mut whiteouts = Vec::new();
    for (n, layer) in layers.iter().enumerate() {
        let mut here: HashMap<Vec<u8>, Seen> = HashMap::new();
        let mut changes = LayerChanges::default();
        read_layer(store, layer, |entry, index| {
            let raw = entry.path_bytes().into_owned();
            match classify(&raw).ok_or_else(|| unsafe_entry(&raw, "`..` or NUL in the name"))? {
                Named::Root => {}
                Named::Whiteout(p) => changes.whiteouts.push(p),
                Named::Opaque(p) => changes.opaque.push(p),
                Named::Entry(p) => {
                    let dir = entry.header().entry_type().is_dir();
                    let link = match entry.header().entry_type() {
                        tar::EntryType::Link => {
                            let target = entry.link_name_bytes().unwrap_or_default();
                            match classify(&target) {
                                Some(Named::Entry(t)) => Some(t),
                                _ => return Err(unsafe_entry(&raw, "bad hard link target")),
                            }
                        }
                        _ => None,
                    };
                    here.insert(p, Seen { index, dir, link });
                }
            }
            Ok(Flow::Continue)
        })?;
        for (path, s) in &here {
            if !hidden.is_covered(path) {
                winners.push(Winner {
                    id: EntryId {
                        layer: n,
                        index: s.index,
                    },
                    path: path.clone(),
                    dir: s.dir,
                    link: s.link.clone(),
                });
            }
        }
        changes.entries = here.iter().map(|(p, s)| (p.clone(), s.dir)).collect();
        for w in &changes.whiteouts {
            if !hidden.is_covered(w) && !here.contains_key(w) {
                whiteouts.push(w.clone());
            }
        }
        for d in &changes.opaque {
            if !hidden.is_hidden(d) {
                let mut p = d.clone();
                p.extend_from_slice(b"/*");
                whiteouts.push(p);
            }
        }
        hidden.add(changes);
        seen.push(here);
    }
    Ok(assemble(winners, &seen, whiteouts, generated))
}

/// Turns the winners into the plan: final names, priorities, hard links.
fn assemble(
    mut winners: Vec<Winner>,
    seen: &[HashMap<Vec<u8>, Seen>],
    whiteouts: Vec<Vec<u8>>,
    generated: &[Vec<u8>],
) -> Plan {
    winners.sort_by_key(|w| w.id);
    // Final name → (from toslash, winner). toslash beats plain.
    let mut by_name: HashMap<Vec<u8>, (bool, usize)> = HashMap::new();
    for (i, w) in winners.iter().enumerate() {
        let Some((name, toslash)) = final_name(&w.path) else {
            continue;
        };
        if name.is_empty() || left_out(name) {
            continue;
        }
        match by_name.get(name) {
            Some((true, _)) if !toslash => {}
            _ => {
                by_name.insert(name.to_vec(), (toslash, i));
            }
        }
    }
    let mut plan = Plan::default();
    for g in generated {
        match by_name.get(g) {
            Some((true, _)) => {}
            _ => {
                by_name.remove(g);
                plan.generated.insert(g.clone());
            }
        }
    }
    // A non-directory from toslash over a plain directory hides its content.
    let non_dirs: HashSet<Vec<u8>> = by_name
        .iter()
        .filter(|(_, (_, i))| !winners[*i].dir)
        .map(|(n, _)| n.clone())
        .collect();
    by_name.retain(|name, _| !ancestors(name).any(|a| non_dirs.contains(a)));
    // A directory only the sandbox put there, with nothing shipped under it.
    let removable = |name: &[u8], i: usize| winners[i].dir && sandbox_dir(name);
    let shipped_under: HashSet<Vec<u8>> = by_name
        .iter()
        .filter(|(name, (_, i))| !removable(name, *i))
        .map(|(name, _)| name)
        .chain(plan.generated.iter())
        .flat_map(|name| ancestors(name).map(<[u8]>::to_vec))
        .collect();
    by_name.retain(|name, (_, i)| !removable(name, *i) || shipped_under.contains(name));

    let mut links: BTreeMap<Source, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, (_, i)) in &by_name {
        let w = &winners[*i];
        match &w.link {
            None => {
                plan.emit.insert(w.id, name.clone());
            }
            Some(target) => {
                links
                    .entry(resolve(seen, w.id.layer, target))
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    for (source, mut names) in links {
        names.sort();
        match source {
            Source::Host(id) => {
                plan.links.insert(id, names);
            }
            Source::Master(path) => {
                plan.master_links.insert(path, names);
            }
        }
    }
    plan.deletions = whiteouts
        .into_iter()
        .filter(|p| {
            let name = p.strip_suffix(b"/*").unwrap_or(p);
            !is_at_or_under(name, TOSLASH)
                && !left_out(name)
                && !by_name.contains_key(p.as_slice())
                && !plan.generated.contains(p.as_slice())
        })
        .collect();
    plan.deletions.sort();
    plan
}

/// The entry holding the content of a hard link of layer `layer` to
/// `target`: the target in that layer or the nearest one below, following
/// links to links; the master's when no host layer has it.
fn resolve(seen: &[HashMap<Vec<u8>, Seen>], layer: usize, target: &[u8]) -> Source {
    let mut target = target.to_vec();
    let mut from = layer;
    // A chain longer than this is a loop.
    for _ in 0..64 {
        let found = (from..seen.len()).find_map(|l| seen[l].get(&target).map(|s| (l, s)));
        match found {
            None => return Source::Master(target),
            Some((l, s)) => match &s.link {
                Some(next) if *next != target => {
                    target = next.clone();
                    from = l;
                }
                _ => {
                    return Source::Host(EntryId {
                        layer: l,
                        index: s.index,
                    })
                }
            },
        }
    }
    tracing::warn!(target = %show(&target), "hard link loop in a host layer");
    Source::Master(target)
}

fn unsafe_entry(raw: &[u8], reason: &str) -> Error {
    Error::Oci(vauban_oci::Error::UnsafeEntry {
        entry: show(raw),
        reason: reason.into(),
    })
}
