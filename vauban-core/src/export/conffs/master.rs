//! The third pass, only when needed: the master's layers read top first
//! (headers, and the content of hard link targets), to tell which whiteouts
//! of the host layers delete something of the master, and to copy the
//! content of hard links whose target no host layer has. Only the paths
//! asked about and their ancestors are tracked; reading stops once every
//! question has its answer.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use vauban_oci::store::Store;

use super::archive::{Archive, Kind};
use super::emit::{meta_of, write_with_links};
use super::names::{ancestors, classify, show, Named};
use super::source::{read_layer, Flow, LayerBlob};
use super::stack::{Hidden, LayerChanges};
use crate::error::Result;

/// Finds in the master (`layers` top first) which `deletions` it has (those
/// are returned) and writes the `links` whose target it has.
pub(super) fn resolve<W: Write>(
    store: &Store,
    layers: &[LayerBlob],
    deletions: &[Vec<u8>],
    links: &BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    archive: &mut Archive<W>,
    dest: &std::path::Path,
) -> Result<Vec<Vec<u8>>> {
    // An opaque directory `d/*` deletes something if the master has `d`.
    let asked_path = |d: &Vec<u8>| d.strip_suffix(b"/*").unwrap_or(d).to_vec();
    let mut open: HashSet<Vec<u8>> = deletions.iter().map(asked_path).collect();
    open.extend(links.keys().cloned());
    let tracked: HashSet<Vec<u8>> = open
        .iter()
        .flat_map(|p| std::iter::once(p.as_slice()).chain(ancestors(p)))
        .map(<[u8]>::to_vec)
        .collect();
    let mut found: HashSet<Vec<u8>> = HashSet::new();
    let mut hidden = Hidden::default();
    for layer in layers {
        if open.is_empty() {
            break;
        }
        let mut changes = LayerChanges::default();
        read_layer(store, layer, |entry, _| {
            let raw = entry.path_bytes().into_owned();
            let Some(named) = classify(&raw) else {
                return Ok(Flow::Continue);
            };
            match named {
                Named::Root => {}
                Named::Whiteout(p) if tracked.contains(&p) => changes.whiteouts.push(p),
                Named::Opaque(p) if tracked.contains(&p) => changes.opaque.push(p),
                Named::Entry(p) if tracked.contains(&p) => {
                    changes
                        .entries
                        .push((p.clone(), entry.header().entry_type().is_dir()));
                    if open.contains(&p) && !hidden.is_covered(&p) {
                        open.remove(&p);
                        if let Some(names) = links.get(&p) {
                            let meta = meta_of(entry, &format_args!("layer {}", layer.digest))?;
                            // A link to a link of the master: its content is
                            // elsewhere; left out (warned below) rather than
                            // written as a link to a path the archive lacks.
                            if matches!(meta.kind, Kind::HardLink(_)) {
                                return Ok(Flow::Continue);
                            }
                            write_with_links(archive, meta, entry, None, Some(names), dest)?;
                        }
                        found.insert(p.clone());
                    }
                }
                _ => {}
            }
            Ok(if open.is_empty() {
                Flow::Stop
            } else {
                Flow::Continue
            })
        })?;
        hidden.add(changes);
        open.retain(|p| !hidden.is_hidden(p));
    }
    for (target, names) in links {
        if !found.contains(target) {
            for name in names {
                tracing::warn!(
                    link = %show(name),
                    target = %show(target),
                    "hard link to a path neither the host layers nor the master have: left out"
                );
            }
        }
    }
    Ok(deletions
        .iter()
        .filter(|d| found.contains(&asked_path(d)))
        .cloned()
        .collect())
}
