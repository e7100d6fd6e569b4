//! Finding masters: by the name `--name` takes, a master's parent and chain (its
//! release first), and every master depth first in file order.

use super::master::Master;
use super::release::Release;
use super::Config;
use crate::error::{Error, Result};

/// Every master of a config, depth first in file order, each release's root first
/// (see [`Config::masters`]).
pub struct Masters<'a> {
    stack: Vec<&'a Master>,
}

impl<'a> Iterator for Masters<'a> {
    type Item = &'a Master;

    fn next(&mut self) -> Option<&'a Master> {
        let master = self.stack.pop()?;
        self.stack.extend(master.children.iter().rev());
        Some(master)
    }
}

impl Config {
    /// Every master, depth first in file order; the root of each release (which the
    /// original also builds and finds by name) comes before its masters.
    pub fn masters(&self) -> Masters<'_> {
        Masters {
            stack: self.releases.iter().rev().map(|r| &r.root).collect(),
        }
    }

    /// Every master name, in the order of [`Config::masters`].
    pub fn names(&self) -> Vec<&str> {
        self.masters().map(|m| m.name.as_str()).collect()
    }

    /// The master named `name` (the name `--name` takes: `name:` when given, the key
    /// otherwise), if there is one.
    pub fn get(&self, name: &str) -> Option<&Master> {
        self.masters().find(|m| m.name == name)
    }

    /// The master named `name`, or an error listing every master name.
    pub fn find(&self, name: &str) -> Result<&Master> {
        self.get(name).ok_or_else(|| Error::NoSuchMaster {
            name: name.to_owned(),
            file: self.path.clone(),
            known: self.names().into_iter().map(str::to_owned).collect(),
        })
    }

    /// The master `master` is built from; `None` for a release.
    pub fn parent(&self, master: &Master) -> Option<&Master> {
        self.get(master.parent.as_deref()?)
    }

    /// The release `master` belongs to.
    pub fn release_of(&self, master: &Master) -> Option<&Release> {
        self.releases.iter().find(|r| r.root.key == master.release)
    }

    /// The chain `master` is built along: its release's root first, then each
    /// ancestor, then `master` itself.
    pub fn chain<'a>(&'a self, master: &'a Master) -> Vec<&'a Master> {
        let mut chain = vec![master];
        let mut current = master;
        while let Some(parent) = self.parent(current) {
            chain.push(parent);
            current = parent;
        }
        chain.reverse();
        chain
    }
}
