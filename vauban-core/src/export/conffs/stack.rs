//! What the layers above hide, read top layer first: an entry hides the same
//! path below (and, if it is not a directory, everything under it), a
//! whiteout hides its path and everything under it, an opaque marker hides
//! everything under its directory. A layer's own entries are never hidden by
//! its own whiteouts: a layer is [`Hidden::add`]ed only once it has been read.

use std::collections::{HashMap, HashSet};

use super::names::ancestors;

/// The paths the layers read so far provide or hide.
#[derive(Debug, Default)]
pub(super) struct Hidden {
    /// Paths provided by an upper layer: whether each is a directory.
    entries: HashMap<Vec<u8>, bool>,
    /// Paths whited out by an upper layer, with their subtrees.
    whiteouts: HashSet<Vec<u8>>,
    /// Directories whose lower content an upper layer hides.
    opaque: HashSet<Vec<u8>>,
}

/// What one layer changes, gathered while it is read.
#[derive(Debug, Default)]
pub(super) struct LayerChanges {
    /// Its entries: path and whether it is a directory.
    pub(super) entries: Vec<(Vec<u8>, bool)>,
    /// The paths of its whiteouts.
    pub(super) whiteouts: Vec<Vec<u8>>,
    /// The directories of its opaque markers.
    pub(super) opaque: Vec<Vec<u8>>,
}

impl Hidden {
    /// Whether a lower entry at `path` is hidden by a whiteout or an opaque
    /// marker above, or by a non-directory above at one of its ancestors.
    pub(super) fn is_hidden(&self, path: &[u8]) -> bool {
        self.whiteouts.contains(path)
            || ancestors(path).any(|a| {
                self.whiteouts.contains(a)
                    || self.opaque.contains(a)
                    || self.entries.get(a) == Some(&false)
            })
    }

    /// Whether an upper layer has an entry at `path`.
    pub(super) fn is_provided(&self, path: &[u8]) -> bool {
        self.entries.contains_key(path)
    }

    /// Whether a lower entry at `path` is hidden or replaced.
    pub(super) fn is_covered(&self, path: &[u8]) -> bool {
        self.is_provided(path) || self.is_hidden(path)
    }

    /// Adds what a layer just read provides and hides, for the layers below.
    pub(super) fn add(&mut self, changes: LayerChanges) {
        let mut visible = Vec::new();
        for (path, dir) in changes.entries {
            if !self.is_covered(&path) {
                visible.push((path, dir));
            }
        }
        let whiteouts: Vec<_> = changes
            .whiteouts
            .into_iter()
            .filter(|p| !self.is_hidden(p))
            .collect();
        let opaque: Vec<_> = changes
            .opaque
            .into_iter()
            .filter(|p| !self.is_hidden(p))
            .collect();
        self.entries.extend(visible);
        self.whiteouts.extend(whiteouts);
        self.opaque.extend(opaque);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(entries: &[(&str, bool)], whiteouts: &[&str], opaque: &[&str]) -> LayerChanges {
        let v = |s: &&str| s.as_bytes().to_vec();
        LayerChanges {
            entries: entries.iter().map(|(p, d)| (v(p), *d)).collect(),
            whiteouts: whiteouts.iter().map(v).collect(),
            opaque: opaque.iter().map(v).collect(),
        }
    }

    #[test]
    fn whiteouts_opaque_dirs_and_files_over_dirs_hide_what_is_below() {
        let mut h = Hidden::default();
        h.add(changes(
            &[("etc", true), ("opt", true), ("srv", false)],
            &["usr/games"],
            &["opt"],
        ));
        assert!(h.is_provided(b"etc") && !h.is_hidden(b"etc"));
        assert!(!h.is_covered(b"etc/motd"));
        assert!(h.is_hidden(b"usr/games") && h.is_hidden(b"usr/games/x"));
        assert!(!h.is_covered(b"usr/gamesx"));
        assert!(h.is_hidden(b"opt/app") && !h.is_hidden(b"opt"));
        assert!(h.is_hidden(b"srv/www"));
    }
}
