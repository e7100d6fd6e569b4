//! What the build reads of the Ansible repository: its checkouts (one per branch,
//! reported once), each analysed once (tree, inventory), the playbooks checked
//! before anything runs, and the stage spec and cache inputs of each step.

use std::sync::Arc;

use vauban_oci::Image;

use super::cache::StepInputs;
use super::inputs::{self, AnsibleTree, Inventory};
use super::plan::{Step, StepKind};
use super::report::AnsibleCheckout;
use crate::config::Master;
use crate::error::Result;
use crate::events::Event;
use crate::stage::repo::Checkout;
use crate::stage::{Stage, StageSpec};

use super::builder::Builder;
use super::options::LOCAL_TAG;

/// What a checkout of the Ansible repository gives the cache: read once per
/// checkout, that is once per branch per build.
pub(super) struct Analysed {
    pub tree: AnsibleTree,
    pub inventory: Inventory,
    /// The digest of the inventory's files ([`inputs::inventory_digest`]).
    pub inventory_digest: String,
    /// The checkout (its inventories, commit, branch).
    pub checkout: Arc<Checkout>,
}

impl Builder<'_> {
    /// Before anything runs: every playbook of the plan exists in its
    /// checkout (else a "did you mean") and parses.
    pub(super) fn check_playbooks(&mut self, steps: &[Step]) -> Result<()> {
        for step in steps {
            let master = self.config.find(&step.master)?.clone();
            let (stages, conffs): (Vec<Stage>, bool) = match step.kind {
                StepKind::Rootfs => (master.stage_list().cloned().collect(), false),
                StepKind::Conffs => (self.conffs_stages(&master), true),
                StepKind::Boot => continue,
            };
            let Some(first) = stages.first() else {
                continue;
            };
            let spec = self.spec(&master, conffs);
            // A check that passed on the same files is not run again (only
            // when every stage comes from one checkout, the one keyed).
            let analysed = self.analyse(first, &spec)?;
            let one_checkout = stages.iter().all(|s| s.branch.is_none());
            let playbooks: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
            let key = inputs::tool_key(
                "syntax",
                &[
                    &analysed.tree.digest(),
                    &analysed.inventory_digest,
                    &playbooks.join(" "),
                ],
            );
            if one_checkout && self.tools.get(&key).is_some() {
                continue;
            }
            let before = self.repo.checkouts().count();
            self.runner
                .check(&mut self.repo, spec.branch.as_deref(), &stages)?;
            self.new_checkouts(before);
            if one_checkout {
                self.tools.put(&key, "passed")?;
            }
        }
        Ok(())
    }

    /// The stage spec of `master`'s stages (`in_conffs_build` for a conffs).
    pub(super) fn spec(&self, master: &Master, conffs: bool) -> StageSpec {
        let mut spec = StageSpec::new(self.repo.source().clone(), master.name.clone());
        spec.tag = LOCAL_TAG.into();
        spec.ansible_root = self
            .config
            .configuration
            .ansible_root
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        spec.branch = self
            .opts
            .branch
            .clone()
            .or_else(|| master.branch.as_ref().map(|b| b.value.clone()));
        spec.extra_args = self.opts.ansible_args.clone();
        spec.hooks = self.opts.hooks.clone();
        spec.in_conffs_build = conffs;
        spec.release = Some(master.release.clone());
        spec
    }

    /// The checkout `stage` of `spec` runs from (one per branch per build,
    /// fetched once), analysed once.
    pub(super) fn analyse(&mut self, stage: &Stage, spec: &StageSpec) -> Result<Arc<Analysed>> {
        let before = self.repo.checkouts().count();
        let checkout = self.repo.checkout(
            stage.branch.as_deref().or(spec.branch.as_deref()),
            &stage.to_string(),
        )?;
        self.new_checkouts(before);
        if let Some(a) = self.analysed.get(&checkout.root) {
            return Ok(a.clone());
        }
        let tree = AnsibleTree::read(&checkout.root, &checkout.inventories)?;
        let inventory_digest = inputs::inventory_digest(&checkout.root, &checkout.inventories)?;
        let inventory = Inventory::load_cached(
            &self.tools,
            &inventory_digest,
            self.runner.confined(),
            self.runner.ansible_playbook(),
            &checkout.root,
            &checkout.inventories,
        )?;
        let root = checkout.root.clone();
        let analysed = Arc::new(Analysed {
            tree,
            inventory,
            inventory_digest,
            checkout,
        });
        self.analysed.insert(root, analysed.clone());
        Ok(analysed)
    }

    /// Reports the checkouts made since there were `before` of them: each
    /// branch's commit, for the whole build.
    fn new_checkouts(&mut self, before: usize) {
        let source = self.repo.source().to_string();
        let new: Vec<Arc<Checkout>> = self.repo.checkouts().skip(before).cloned().collect();
        for c in new {
            let checkout = AnsibleCheckout {
                source: source.clone(),
                branch: c.branch.clone(),
                commit: c.commit.clone(),
            };
            self.env.events.emit(Event::Checkout {
                source: checkout.source.clone(),
                branch: checkout.branch.clone(),
                commit: checkout.commit.clone(),
            });
            self.report.ansible.push(checkout);
        }
    }

    /// The inputs of `stage` of `spec` for `host` on `parent`.
    pub(super) fn inputs(
        &self,
        analysed: &Analysed,
        stage: &Stage,
        spec: &StageSpec,
        host: &str,
        parent: &Image,
    ) -> StepInputs {
        StepInputs {
            vauban: env!("CARGO_PKG_VERSION"),
            parent: parent.manifest_digest.to_string(),
            stage: stage.to_string(),
            tree: analysed.tree.stage_digest(&stage.playbook, &self.playbooks),
            commit: analysed.checkout.commit.clone(),
            host: host.to_owned(),
            inventory: analysed.inventory.host_inputs(host).1,
            // The branch asked for (a directory's own branch name says
            // nothing its files do not).
            branch: spec.branch.clone(),
            in_conffs_build: spec.in_conffs_build,
            extra_args: spec.extra_args.clone(),
            hooks: (spec.hooks.pre.clone(), spec.hooks.post.clone()),
            python: spec.python_interpreter.clone(),
            layer: format!("{:?} {:?}", spec.compression, spec.exclude),
        }
    }
}
