//! OCI chain IDs (image-spec, `config.md`): the identity of a layer *with every
//! layer below it*. `ChainID(L0) = DiffID(L0)` and `ChainID(Ln) =
//! sha256(ChainID(Ln-1) + " " + DiffID(Ln))`, over the `sha256:<hex>` strings.
//!
//! They name the store's layer dirs: a layer is extracted over the dirs of the
//! layers below it (a hard link to a lower file is written as a copy, a parent
//! directory the layer lacks takes the lower directory's mode and owner), so
//! what its dir holds depends on the whole stack, not on its diff_id alone.

use std::fmt;

use sha2::{Digest as _, Sha256};

use super::Image;
use crate::digest::Digest;
use crate::error::Result;

/// The chain ID of a layer of an image: its diff_id and those of every layer
/// below it. A distinct type from [`Digest`] so that a diff_id is never taken
/// for one (a layer dir is named by a chain ID only).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ChainId(Digest);

impl ChainId {
    /// The chain ID of the layer `diff_id` over the chain `below` (`None` for
    /// the base layer, whose chain ID is its diff_id).
    pub fn over(below: Option<&ChainId>, diff_id: &Digest) -> ChainId {
        match below {
            None => ChainId(diff_id.clone()),
            Some(below) => {
                let mut h = Sha256::new();
                h.update(below.0.to_string().as_bytes());
                h.update(b" ");
                h.update(diff_id.to_string().as_bytes());
                ChainId(Digest::from_hasher(h))
            }
        }
    }

    /// The chain IDs of a stack of layers given by their diff_ids, base first.
    pub fn of_stack(diff_ids: &[Digest]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = ChainId::over(out.last(), d);
            out.push(next);
        }
        out
    }

    /// The chain ID as a digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The 64 hex digits (a layer dir's name).
    pub fn hex(&self) -> &str {
        self.0.hex()
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain {}", self.0)
    }
}

impl Image {
    /// The chain ID of each layer, base first (the names of its layer dirs).
    pub fn chain_ids(&self) -> Result<Vec<ChainId>> {
        Ok(ChainId::of_stack(&self.diff_ids()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_layer_is_its_own_chain() {
        let d = Digest::of_bytes(b"base");
        assert_eq!(
            ChainId::of_stack(std::slice::from_ref(&d)),
            vec![ChainId(d)]
        );
        assert!(ChainId::of_stack(&[]).is_empty());
    }
}
