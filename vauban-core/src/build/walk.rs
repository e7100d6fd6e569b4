//! What the cache holds, without running anything: for stages from a base
//! image, each stage's key looked up in turn ([`Builder::walk`]); for a
//! master, its whole chain from its release's base ([`Builder::freshness`]).
//! `--check` shows the first; the build uses both to tell a stale master
//! (`resolve`) and which hosts' conffs in `--out` are current (`out`).

use vauban_oci::{Image, Reference};

use super::builder::Builder;
use super::cache::StepInputs;
use super::check::StepStatus;
use crate::config::Master;
use crate::error::Result;
use crate::stage::{Stage, StageSpec};

/// What a master's stages give now, as far as the cache knows.
#[derive(Debug, Clone)]
pub(super) enum Fresh {
    /// Every stage of its chain is cached: the image they give.
    Image(Box<Image>),
    /// A stage of `master` (this one or an ancestor) would run: its inputs
    /// changed since its image was built.
    Stale {
        /// The master whose stage runs.
        master: String,
        /// The stage.
        stage: String,
        /// Why.
        why: StepStatus,
    },
    /// The cache cannot tell (its release or a stage was never built in this
    /// store).
    Unknown,
}

/// What a walk found: each stage's status, and the last image when every
/// stage is cached (a walk with no stage gives its base).
#[derive(Debug)]
pub(super) struct Walked {
    /// The stages walked.
    pub(super) stages: Vec<Stage>,
    /// Each one's status.
    pub(super) statuses: Vec<StepStatus>,
    /// The image of the last, when all are cached.
    pub(super) image: Option<Image>,
}

impl Walked {
    /// The first stage that runs, and why; `None` when all are cached.
    pub(super) fn first_run(&self) -> Option<(&Stage, &StepStatus)> {
        self.stages
            .iter()
            .zip(&self.statuses)
            .find(|(_, s)| **s != StepStatus::Cached)
    }
}

/// Whether a walk honours `--no-cache` (the plan shown by `--check`) or only
/// asks what the cache holds (what is current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asking {
    /// As the build would: with `--no-cache`, every stage runs.
    AsBuilt,
    /// What the cache holds.
    Cached,
}

impl Builder<'_> {
    /// The status of each of `stages` of `spec` for `host` from `base`
    /// (`None`: not known before the build runs), and the image of the last
    /// when every one is cached. `name` is the image name a stage's image
    /// gets (what changed is told against its recorded inputs).
    pub(super) fn walk(
        &mut self,
        spec: &StageSpec,
        stages: &[Stage],
        host: &str,
        base: Option<&Image>,
        name: &dyn Fn(&Stage) -> Result<Reference>,
        asking: Asking,
    ) -> Result<(Vec<StepStatus>, Option<Image>)> {
        let mut image = base.cloned();
        let mut out = Vec::with_capacity(stages.len());
        for stage in stages {
            let Some(parent) = image.take() else {
                out.push(StepStatus::AfterChange);
                continue;
            };
            let analysed = self.analyse(stage, spec)?;
            let inputs = self.inputs(&analysed, stage, spec, host, &parent);
            let no_cache = asking == Asking::AsBuilt && self.opts.no_cache;
            match self.cache.peek(&inputs.key())? {
                Some(hit) if !no_cache => {
                    image = Some(hit);
                    out.push(StepStatus::Cached);
                }
                _ if no_cache => out.push(StepStatus::Run {
                    changed: vec!["--no-cache".into()],
                }),
                _ => out.push(StepStatus::Run {
                    changed: self.changed_since(&name(stage)?, &inputs),
                }),
            }
        }
        Ok((out, image))
    }

    /// [`Builder::walk`] of the rootfs stages of `master` from `base`: the
    /// stages, their statuses, the last image when all are cached.
    pub(super) fn walk_rootfs(
        &mut self,
        master: &Master,
        base: Option<&Image>,
        asking: Asking,
    ) -> Result<Walked> {
        let stages: Vec<Stage> = master.stage_list().cloned().collect();
        let spec = self.spec(master, false);
        let name = |s: &Stage| spec.stage_reference(&s.playbook);
        let (statuses, image) = self.walk(&spec, &stages, &master.name, base, &name, asking)?;
        Ok(Walked {
            stages,
            statuses,
            image,
        })
    }

    /// [`Builder::walk`] of the conffs stages of `host` of `master` on
    /// `base`, the master's rootfs.
    pub(super) fn walk_conffs(
        &mut self,
        master: &Master,
        host: &str,
        base: Option<&Image>,
        asking: Asking,
    ) -> Result<Walked> {
        let stages = self.conffs_stages(master);
        let spec = self.spec(master, true);
        let name = |s: &Stage| Builder::host_stage_name(master, host, s);
        let (statuses, image) = self.walk(&spec, &stages, host, base, &name, asking)?;
        Ok(Walked {
            stages,
            statuses,
            image,
        })
    }

    /// What the chain of `master` gives now (see [`Fresh`]); asked once per
    /// master and build.
    pub(super) fn freshness(&mut self, master: &Master) -> Result<Fresh> {
        if let Some(f) = self.fresh.get(&master.name) {
            return Ok(f.clone());
        }
        let base = match self.config.parent(master).cloned() {
            None => self
                .release_cached(master)?
                .map(|i| Fresh::Image(Box::new(i))),
            Some(parent) => Some(self.freshness(&parent)?),
        };
        let fresh = match base {
            None | Some(Fresh::Unknown) => Fresh::Unknown,
            Some(stale @ Fresh::Stale { .. }) => stale,
            Some(Fresh::Image(base)) => {
                let walked = self.walk_rootfs(master, Some(&base), Asking::Cached)?;
                match (&walked.image, walked.first_run()) {
                    (Some(image), _) => Fresh::Image(Box::new(image.clone())),
                    (None, Some((stage, why @ StepStatus::Run { changed })))
                        if !changed.is_empty() =>
                    {
                        Fresh::Stale {
                            master: master.name.clone(),
                            stage: stage.to_string(),
                            why: why.clone(),
                        }
                    }
                    (None, _) => Fresh::Unknown,
                }
            }
        };
        self.fresh.insert(master.name.clone(), fresh.clone());
        Ok(fresh)
    }

    /// The base of the release `root` if the cache has it (made by an
    /// earlier build from the same recipe).
    pub(super) fn release_cached(&self, root: &Master) -> Result<Option<Image>> {
        let Some(release) = self.config.release_of(root) else {
            return Ok(None);
        };
        self.cache.peek(&super::release::cache_key(release))
    }

    /// What differs between `inputs` and those recorded on the image named
    /// `name` (its last layer's history comment); empty when it has none.
    pub(super) fn changed_since(&self, name: &Reference, inputs: &StepInputs) -> Vec<String> {
        let Ok(image) = self.store.image(name) else {
            return Vec::new();
        };
        let comment = image
            .config
            .history()
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment().clone())
            .unwrap_or_default();
        let field = |label: &str| {
            comment
                .split(", ")
                .find_map(|part| part.strip_prefix(label).map(str::to_owned))
                .unwrap_or_default()
        };
        let mut changed = Vec::new();
        if comment.is_empty() {
            return changed;
        }
        if field("parent ") != inputs.parent {
            changed.push("parent image".into());
        }
        if !inputs.tree.starts_with(&field("tree ")) {
            changed.push("Ansible files".into());
        }
        if !inputs.inventory.starts_with(&field("inventory ")) {
            changed.push("inventory variables".into());
        }
        if changed.is_empty() {
            changed.push("options".into());
        }
        changed
    }
}
