//! [`StageRunner`]: what running stages takes, found once per build (the
//! tools, the sandbox helper, the confined controller, the build's log
//! directory); its playbooks checked before anything runs, then stages run
//! over hosts ([`super::hosts`]) from the checkouts of the build's one
//! [`AnsibleRepo`]; and [`apply_stages`], a chain of stages for one host
//! named at its end.

use std::path::{Path, PathBuf};

use vauban_oci::oci_spec::image::Descriptor;
use vauban_oci::store::Store;
use vauban_oci::Image;

use super::check;
use super::confined::Confined;
use super::hosts::{StageRun, Target};
use super::inventory;
use super::repo::{AnsibleRepo, Checkout};
use super::spec::StageSpec;
use super::stage_name::Stage;
use super::tools::Tools;
use crate::error::{Error, Result};
use crate::machine::Env;
use crate::sandbox::Helper;

/// Runs the stages of one build: one log directory (`<log_dir>/<time>-<label>`,
/// made when the first stage runs, so a build that runs none leaves none),
/// each run's log numbered in it.
pub struct StageRunner<'a> {
    store: &'a Store,
    env: Env,
    tools: Tools,
    helper: Helper,
    confined: Confined,
    logs: PathBuf,
    runs: usize,
    /// Hosts worked on at once.
    pub jobs: usize,
    /// The fact cache of the stages run now (a conffs's: each host's facts
    /// gathered at its first stage of the build), shown to the controller.
    pub facts: Option<PathBuf>,
}

impl<'a> StageRunner<'a> {
    /// Finds the tools and the helper, sets up the confined controller; the
    /// logs go to `<log_dir>/<time>-<label>`.
    pub fn new(store: &'a Store, env: &Env, label: &str) -> Result<Self> {
        let tools = Tools::find()?;
        let helper = env.helper()?;
        let confined = Confined::new(env, &tools, store.root())?;
        let logs = env.log_dir.join(format!(
            "{}-{label}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        Ok(StageRunner {
            store,
            env: env.clone(),
            tools,
            helper,
            confined,
            logs,
            runs: 0,
            jobs: 1,
            facts: None,
        })
    }

    /// The build's log directory (made when the first stage runs).
    pub fn log_dir(&self) -> &Path {
        &self.logs
    }

    /// How Ansible's controller and tools run.
    pub(crate) fn confined(&self) -> &Confined {
        &self.confined
    }

    /// `ansible-playbook` (its siblings `ansible`, `ansible-inventory` beside it).
    pub(crate) fn ansible_playbook(&self) -> &Path {
        &self.tools.ansible_playbook
    }

    /// Before any stage runs: every playbook exists in its branch's checkout
    /// of `repo` (else a "did you mean") and parses (one `--syntax-check` per
    /// checkout). `branch` is the build's (a stage's own wins).
    pub fn check(
        &self,
        repo: &mut AnsibleRepo,
        branch: Option<&str>,
        stages: &[Stage],
    ) -> Result<()> {
        let mut by_root: Vec<(std::sync::Arc<Checkout>, Vec<&str>)> = Vec::new();
        for stage in stages {
            let checkout = repo.checkout(stage.branch.as_deref().or(branch), &stage.to_string())?;
            check::check_exists(stage, &checkout)?;
            match by_root.iter_mut().find(|(c, _)| c.root == checkout.root) {
                Some((_, playbooks)) => playbooks.push(&stage.playbook),
                None => by_root.push((checkout, vec![&stage.playbook])),
            }
        }
        for (checkout, playbooks) in &by_root {
            check::check_syntax(
                &self.confined,
                &self.tools.ansible_playbook,
                checkout,
                &checkout.inventories,
                playbooks,
            )?;
        }
        Ok(())
    }

    /// Builds `stage` of `spec` from `checkout` for every target at once (one
    /// Ansible run); one result per host, in order. `label` names the run's
    /// log (`NN-<label>-<playbook>.log`).
    pub fn run(
        &mut self,
        spec: &StageSpec,
        stage: &Stage,
        checkout: &Checkout,
        label: &str,
        targets: &[Target],
    ) -> Vec<(String, Result<Image>)> {
        self.runs += 1;
        let playbook = super::spec::name_component(&stage.playbook).replace('/', "_");
        let name = if label.is_empty() {
            format!("{:02}-{playbook}.log", self.runs)
        } else {
            format!("{:02}-{label}-{playbook}.log", self.runs)
        };
        let log = self.logs.join(name);
        let run = StageRun {
            store: self.store,
            tools: &self.tools,
            stage,
            spec,
            env: &self.env,
            helper: &self.helper,
            confined: &self.confined,
            checkout,
            log: &log,
            jobs: self.jobs.max(1),
            facts: self.facts.as_deref(),
        };
        run.run(targets)
    }
}

/// Applies `stages` in order to `image` for `host`; each stage becomes one layer
/// and one image, the next stage starting from the image the previous one built
/// (never from a name looked up again), every stage of a branch from one
/// checkout of it. Every playbook is checked before the first stage runs.
/// Once every stage is built, the images are named at once
/// ([`StageSpec::stage_reference`], and [`StageSpec::final_name`] for the last).
/// Returns the last image. A failed stage names nothing and leaves no sandbox
/// behind.
pub fn apply_stages(
    store: &Store,
    image: &Image,
    stages: &[Stage],
    host: &str,
    opts: &StageSpec,
    env: &Env,
) -> Result<Image> {
    inventory::check_host(host)?;
    if stages.is_empty() {
        return Err(Error::BadStage {
            spec: String::new(),
            reason: "no stage given".into(),
        });
    }
    let mut repo = AnsibleRepo::new(opts.ansible.clone(), &opts.ansible_root, &env.cache_dir)
        .with_inventories(opts.inventories.clone());
    let mut runner = StageRunner::new(store, env, host)?;
    runner.check(&mut repo, opts.branch.as_deref(), stages)?;
    let mut source = image.clone();
    let mut source_name = None;
    let mut names = Vec::with_capacity(stages.len() + 1);
    for stage in stages {
        let checkout = repo.checkout(
            stage.branch.as_deref().or(opts.branch.as_deref()),
            &stage.to_string(),
        )?;
        let target = Target {
            host: host.to_string(),
            base: source.clone(),
            source: source_name.take(),
            comment: None,
        };
        let (_, built) = runner
            .run(opts, stage, &checkout, "", &[target])
            .pop()
            .ok_or(Error::Panicked("a stage run"))?;
        let built = built?;
        let name = opts.stage_reference(&stage.playbook)?;
        source_name = Some(name.name().to_owned());
        names.push((name, intermediate(built.descriptor())));
        source = built;
    }
    if let Some(name) = &opts.final_name {
        names.push((name.clone(), source.descriptor()));
    }
    store.tag_all(&names)?;
    Ok(source)
}

/// A stage's own image: marked so listings can leave it out.
pub fn intermediate(mut desc: Descriptor) -> Descriptor {
    let mut a = desc.annotations().clone().unwrap_or_default();
    a.insert(
        vauban_oci::store::ANNOTATION_INTERMEDIATE.to_string(),
        "true".to_string(),
    );
    desc.set_annotations(Some(a));
    desc
}
