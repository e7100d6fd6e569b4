//! A stack of layer indexes seen from the top, as overlayfs shows it: the
//! newest entry of each path wins, unless a layer above deletes it (a
//! whiteout of it or of an ancestor), empties its directory (an opaque
//! marker on an ancestor) or puts a non-directory at an ancestor. A layer's
//! own entries are never hidden by its own whiteouts and markers.

use std::collections::{BTreeMap, BTreeSet};

use super::index::LayerIndex;
use super::node::{Kind, Node};
use crate::export::conffs::names::ancestors;

/// What a stack of layers shows, and what it hides of the layers below it.
#[derive(Debug, Default)]
pub(super) struct View {
    /// Each visible path: its entry and the position (0 = top) of the layer
    /// it comes from.
    pub(super) nodes: BTreeMap<Vec<u8>, (Node, usize)>,
    /// Paths deleted from the layers below, with their subtrees.
    pub(super) removed: BTreeSet<Vec<u8>>,
    /// Directories whose content below is hidden.
    pub(super) opaque: BTreeSet<Vec<u8>>,
}

impl View {
    /// The view of `layers`, top first.
    pub(super) fn compose<'a>(layers: impl IntoIterator<Item = &'a LayerIndex>) -> View {
        let mut view = View::default();
        for (pos, layer) in layers.into_iter().enumerate() {
            let mut here = Vec::new();
            for (path, node) in &layer.nodes {
                if !view.covers(path) {
                    here.push((path.clone(), node.clone()));
                }
            }
            let whiteouts: Vec<Vec<u8>> = layer
                .whiteouts
                .iter()
                .filter(|w| !view.covers(w) && !layer.nodes.contains_key(*w))
                .cloned()
                .collect();
            let opaque: Vec<Vec<u8>> = layer
                .opaque
                .iter()
                .filter(|d| !view.hidden(d))
                .cloned()
                .collect();
            for (path, node) in here {
                view.nodes.insert(path, (node, pos));
            }
            view.removed.extend(whiteouts);
            view.opaque.extend(opaque);
        }
        view
    }

    /// Whether a lower layer's entry at `path` is hidden by this view (not
    /// counting an entry of the view at `path` itself).
    pub(super) fn hidden(&self, path: &[u8]) -> bool {
        // An opaque marker at the layer's root (`./.wh..wh..opq`) hides
        // every path below.
        self.removed.contains(path)
            || (!path.is_empty() && self.opaque.contains(&b""[..]))
            || ancestors(path).any(|a| {
                self.removed.contains(a)
                    || self.opaque.contains(a)
                    || self.nodes.get(a).is_some_and(|(n, _)| n.kind != Kind::Dir)
            })
    }

    /// Whether a lower layer's entry at `path` is hidden or replaced.
    pub(super) fn covers(&self, path: &[u8]) -> bool {
        self.nodes.contains_key(path) || self.hidden(path)
    }

    /// What the view shows at `path` over `below`: its own entry, nothing
    /// when it hides the path, else `below`'s (tagged as such).
    pub(super) fn value<'a>(
        &'a self,
        below: Option<&'a View>,
        path: &[u8],
    ) -> Option<(&'a Node, Layer)> {
        if let Some((n, pos)) = self.nodes.get(path) {
            return Some((n, Layer::Own(*pos)));
        }
        if self.hidden(path) {
            return None;
        }
        below
            .and_then(|b| b.nodes.get(path))
            .map(|(n, pos)| (n, Layer::Shared(*pos)))
    }
}

impl View {
    /// Each path of a group of hard links (a file and its links, chains
    /// followed) → the group's first path by name: what a diff compares,
    /// since which name a tar holds the content under, and which it links,
    /// is only the order its writer met them in. A link to a path the view
    /// lacks is in no group (it keeps its own target).
    pub(super) fn link_groups(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        // Union-find, the smaller root winning: a root is its group's first.
        let mut parent: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        fn root<'a>(parent: &BTreeMap<&'a [u8], &'a [u8]>, mut x: &'a [u8]) -> &'a [u8] {
            while let Some(&p) = parent.get(x) {
                if p == x {
                    break;
                }
                x = p;
            }
            x
        }
        for (path, (node, _)) in &self.nodes {
            let Some(target) = &node.hardlink else {
                continue;
            };
            let Some((target, _)) = self.nodes.get_key_value(target.as_slice()) else {
                continue;
            };
            let (a, b) = (root(&parent, path), root(&parent, target));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            parent.insert(low, low);
            parent.insert(high, low);
        }
        parent
            .keys()
            .map(|&member| (member.to_vec(), root(&parent, member).to_vec()))
            .collect()
    }
}

/// Where a value comes from: a side's own layer or a shared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Layer {
    /// A layer of the side alone (0 = top).
    Own(usize),
    /// A layer both sides share (0 = the top shared one).
    Shared(usize),
}

/// Whether comparing `a` and `b` (each over the same shared layers) needs
/// what the shared layers hold: a path only one side has, a deletion, or a
/// non-directory on one side where the other has a directory.
pub(super) fn needs_shared(a: &View, b: &View) -> bool {
    let deletes = |v: &View| !v.removed.is_empty() || !v.opaque.is_empty();
    if deletes(a) || deletes(b) {
        return true;
    }
    let one_sided = |x: &View, y: &View| {
        x.nodes.iter().any(|(p, (n, _))| match y.nodes.get(p) {
            None => !y.hidden(p),
            Some((m, _)) => (n.kind == Kind::Dir) != (m.kind == Kind::Dir),
        })
    };
    one_sided(a, b) || one_sided(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: Kind) -> Node {
        Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: None,
            sha256: None,
            target: None,
            hardlink: None,
            device: None,
            xattrs: BTreeMap::new(),
            entry: None,
        }
    }

    fn layer(nodes: &[(&str, Kind)], whiteouts: &[&str], opaque: &[&str]) -> LayerIndex {
        LayerIndex {
            nodes: nodes
                .iter()
                .map(|(p, k)| (p.as_bytes().to_vec(), node(*k)))
                .collect(),
            whiteouts: whiteouts.iter().map(|w| w.as_bytes().to_vec()).collect(),
            opaque: opaque.iter().map(|w| w.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn upper_layers_hide_what_they_delete_and_keep_their_own() {
        let top = layer(
            &[("var/new", Kind::File), ("etc/x", Kind::File)],
            &["etc/gone"],
            &["var"],
        );
        let mid = layer(&[("etc", Kind::Dir), ("lib", Kind::File)], &[], &[]);
        let bottom = layer(
            &[
                ("etc/gone", Kind::File),
                ("etc/gone/deeper", Kind::File),
                ("var/old", Kind::File),
                ("lib/a", Kind::File),
                ("etc/x", Kind::Dir),
                ("etc/kept", Kind::File),
            ],
            &[],
            &[],
        );
        let v = View::compose([&top, &mid, &bottom]);
        let shown: Vec<&[u8]> = v.nodes.keys().map(Vec::as_slice).collect();
        assert_eq!(
            shown,
            [&b"etc"[..], b"etc/kept", b"etc/x", b"lib", b"var/new"],
            "a whiteout, an opaque dir and a file over a dir hide what is below"
        );
        assert_eq!(v.nodes[&b"etc/x".to_vec()].1, 0);
        assert_eq!(v.nodes[&b"etc/kept".to_vec()].1, 2);
        assert!(v.hidden(b"etc/gone/deeper") && v.hidden(b"var/old") && v.hidden(b"lib/a"));
    }

    #[test]
    fn the_shared_layers_are_needed_only_when_one_side_has_what_the_other_lacks() {
        let a = View::compose([&layer(&[("etc/v", Kind::File)], &[], &[])]);
        let b = View::compose([&layer(&[("etc/v", Kind::File)], &[], &[])]);
        assert!(!needs_shared(&a, &b));
        let c = View::compose([&layer(
            &[("etc/v", Kind::File), ("etc/w", Kind::File)],
            &[],
            &[],
        )]);
        assert!(needs_shared(&a, &c));
        let d = View::compose([&layer(&[("etc/v", Kind::File)], &["etc/z"], &[])]);
        assert!(needs_shared(&a, &d));
        let e = View::compose([&layer(&[("etc/v", Kind::Dir)], &[], &[])]);
        assert!(needs_shared(&a, &e));
    }
}
