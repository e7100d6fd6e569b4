//! What a build starts from, fixed before any step runs: every playbook
//! checked, each step's base ([`Base`]): the rootfs an earlier step makes, a
//! release's own base, or a master's image found in the store (else pulled
//! from `--registry`) once, now. A release the build needs and the store
//! lacks becomes a step of its own. A found master whose stages would not
//! give that image any more (a playbook or its variables changed since:
//! `walk`) is *stale*: the build warns, naming the `--build-parents` that
//! rebuilds it, or with `--rebuild-stale` rebuilds it (and its stale
//! parents) first.

use std::collections::HashMap;

use vauban_oci::Image;

use super::builder::Builder;
use super::check::StepStatus;
use super::plan::{with_bases, Base, Planned, Step, StepKind};
use super::publish;
use super::walk::Fresh;
use crate::config::Master;
use crate::error::{Error, Result};

/// The plan with every base fixed.
pub(super) struct Resolved {
    /// The steps, each with its bases.
    pub planned: Vec<Planned>,
    /// The image of each [`Base::Found`] master (`--check` does not pull: a
    /// master only the registry has is missing here).
    pub found: HashMap<String, Image>,
}

impl Resolved {
    /// The image `base` is, given the rootfs each step made so far (`None`:
    /// a release's own base, or not known yet).
    pub(super) fn image(&self, base: &Base, made: &[Option<Image>]) -> Option<Image> {
        match base {
            Base::Release => None,
            Base::Step(i) => made.get(*i).cloned().flatten(),
            Base::Found(m) => self.found.get(m).cloned(),
        }
    }
}

impl Builder<'_> {
    /// The plan with each step's base fixed (see the module doc); `pull`:
    /// look in the registry for what the store lacks (the build does,
    /// `--check` does not).
    pub(super) fn resolve(&mut self, pull: bool) -> Result<Resolved> {
        let mut steps = self.plan()?;
        self.check_playbooks(&steps)?;
        let kernel = self
            .config
            .configuration
            .initramfs_release
            .as_ref()
            .map(|n| n.value.clone());
        let mut found: HashMap<String, Image> = HashMap::new();
        let mut warned: Vec<String> = Vec::new();
        'plan: loop {
            let planned = with_bases(&self.config, &steps, kernel.as_deref())?;
            for name in found_masters(&planned) {
                if found.contains_key(&name) {
                    continue;
                }
                let master = self.config.find(&name)?.clone();
                if let Some(digest) = self
                    .opts
                    .base_digest
                    .clone()
                    .filter(|_| name == self.exact_base_owner())
                {
                    let image = self.exact_base(&master, &digest, pull)?;
                    found.insert(name, image);
                } else if let Some(image) = self.in_store(&master)? {
                    found.insert(name, image);
                } else if master.is_release() {
                    // Made on the way: its base once per recipe, its own
                    // stages through the cache.
                    steps.insert(0, rootfs_step(&name));
                    continue 'plan;
                } else if let Some(image) = self.pulled(&master, pull)? {
                    found.insert(name, image);
                } else if !pull && self.opts.registry.is_some() {
                    // `--check`: the build would pull it.
                } else {
                    return Err(self.not_built(&master));
                }
            }
            for name in found_masters(&planned) {
                let Some(image) = found.get(&name).cloned() else {
                    continue;
                };
                let master = self.config.find(&name)?.clone();
                let Some((stale, stage, why)) = self.stale(&master, &image)? else {
                    continue;
                };
                let chain: Vec<String> = self
                    .config
                    .chain(&master)
                    .iter()
                    .map(|m| m.name.clone())
                    .skip_while(|m| *m != stale)
                    .collect();
                if self.opts.rebuild_stale {
                    let added: Vec<Step> = chain
                        .iter()
                        .filter(|m| !steps.contains(&rootfs_step(m)))
                        .map(|m| rootfs_step(m))
                        .collect();
                    self.check_playbooks(&added)?;
                    for (i, step) in added.into_iter().enumerate() {
                        steps.insert(i, step);
                    }
                    found.remove(&name);
                    continue 'plan;
                }
                if !warned.contains(&name) {
                    warned.push(name.clone());
                    self.warn(format!(
                        "the rootfs of {name}, which this build starts from, is out of date: \
                         {stage} of {stale} would run ({why}); the build goes on from it as it \
                         is. Add --build-parents {} to rebuild it first, or --rebuild-stale",
                        chain.len(),
                        why = reason(&why),
                    ));
                }
            }
            return Ok(Resolved { planned, found });
        }
    }

    /// Whether `image`, the rootfs of `master` the build found, is no longer
    /// what its stages make: the stale master (itself or an ancestor), the
    /// stage that would run, and why. Only a change the cache can name
    /// counts: a chain never built in this store (images pulled from a
    /// registry) is not called stale.
    fn stale(
        &mut self,
        master: &Master,
        image: &Image,
    ) -> Result<Option<(String, String, StepStatus)>> {
        Ok(match self.freshness(master)? {
            Fresh::Image(fresh) if fresh.manifest_digest != image.manifest_digest => Some((
                master.name.clone(),
                "its last stage".into(),
                StepStatus::Run {
                    changed: vec!["the cache holds a newer build of its stages".into()],
                },
            )),
            Fresh::Stale { master, stage, why } => Some((master, stage, why)),
            Fresh::Image(_) | Fresh::Unknown => None,
        })
    }

    /// The master whose image `--base-digest` names: the parent of the
    /// master built for a rootfs, the master itself for a conffs.
    fn exact_base_owner(&self) -> String {
        let target = self.config.find(&self.opts.name).ok();
        match (self.opts.part, target.and_then(|t| self.config.parent(t))) {
            (super::plan::Part::Rootfs, Some(parent)) => parent.name.clone(),
            _ => self.opts.name.clone(),
        }
    }

    /// `--base-digest`: the master's image, that manifest exactly: the
    /// store's name when it is that one, else pulled by digest from
    /// `--registry` (under a name of the cache, not the master's).
    fn exact_base(
        &self,
        master: &Master,
        digest: &vauban_oci::Digest,
        pull: bool,
    ) -> Result<Image> {
        if let Some(image) = self
            .in_store(master)?
            .filter(|i| i.manifest_digest == *digest)
        {
            return Ok(image);
        }
        let local = vauban_oci::Reference::parse(&format!("vauban-cache/base:{}", digest.hex()))?;
        if let Ok(image) = self.store.image(&local) {
            return Ok(image);
        }
        let registry = match (&self.opts.registry, pull) {
            (Some(r), true) => r.clone(),
            _ => return Err(self.not_built(master)),
        };
        let progress = std::sync::Arc::new(self.env.events.registry_progress());
        publish::pull_digest(
            self.store,
            &registry,
            &master.name,
            digest,
            &local,
            progress,
        )
    }

    /// The rootfs of `master` as the store names it.
    pub(super) fn in_store(&self, master: &Master) -> Result<Option<Image>> {
        match self.store.image(&Builder::local(&master.name)?) {
            Ok(image) => Ok(Some(image)),
            Err(vauban_oci::Error::ImageNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `NAMESPACE/<master>:latest` pulled from `--registry` (when `pull`,
    /// and the master is published there).
    fn pulled(&self, master: &Master, pull: bool) -> Result<Option<Image>> {
        let Some(registry) = self.opts.registry.clone() else {
            return Ok(None);
        };
        if !pull || !self.published(master) {
            return Ok(None);
        }
        let progress = std::sync::Arc::new(self.env.events.registry_progress());
        let local = Builder::local(&master.name)?;
        publish::pull_latest(self.store, &registry, &master.name, &local, progress)
    }

    pub(super) fn not_built(&self, master: &Master) -> Error {
        Error::NotBuilt {
            master: master.name.clone(),
            what: "the rootfs",
            registry: self
                .opts
                .registry
                .as_ref()
                .map(|r| format!(", nor in {}", r.display()))
                .unwrap_or_default(),
        }
    }
}

/// The masters whose found image a planned step starts from, first use first.
fn found_masters(planned: &[Planned]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in planned {
        for base in std::iter::once(&p.base).chain(p.kernel.as_ref()) {
            if let Base::Found(m) = base {
                if !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
    }
    out
}

fn rootfs_step(master: &str) -> Step {
    Step {
        kind: StepKind::Rootfs,
        master: master.to_owned(),
    }
}

/// Why a stage runs, for a sentence.
fn reason(status: &StepStatus) -> String {
    let text = status.to_string();
    text.strip_prefix("runs (")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(&text)
        .to_owned()
}
