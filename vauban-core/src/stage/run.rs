//! [`StageRunner`]: the Ansible repository synced once, its playbooks checked
//! before anything runs, then stages run over hosts ([`super::hosts`]); and
//! [`apply_stages`], a chain of stages for one host named at its end.

use std::path::{Path, PathBuf};

use vauban_oci::oci_spec::image::Descriptor;
use vauban_oci::store::Store;
use vauban_oci::Image;

use super::check;
use super::confined::Confined;
use super::hosts::{StageRun, Target};
use super::inventory;
use super::options::StageSpec;
use super::repo::{AnsibleRepo, Checkout};
use super::spec::Stage;
use super::tools::Tools;
use crate::env::Env;
use crate::error::{Error, IoContext, Result};
use crate::sandbox::Helper;

/// Runs stages of one build: one repository, one log directory.
pub struct StageRunner<'a> {
    store: &'a Store,
    spec: &'a StageSpec,
    env: &'a Env,
    tools: Tools,
    helper: Helper,
    confined: Confined,
    repo: AnsibleRepo,
    logs: PathBuf,
    runs: usize,
    /// Hosts worked on at once.
    pub jobs: usize,
}

impl<'a> StageRunner<'a> {
    /// Finds the tools, syncs the Ansible repository (fetch), makes the build's
    /// log directory (`<log_dir>/<time>-<label>`).
    pub fn new(store: &'a Store, spec: &'a StageSpec, env: &'a Env, label: &str) -> Result<Self> {
        let tools = Tools::find()?;
        let helper = env.helper()?;
        let confined = Confined::new(env, &tools, store.root())?;
        let mut repo = AnsibleRepo::new(spec.ansible.clone(), &spec.ansible_root, &env.cache_dir);
        repo.sync()?;
        let logs = env.log_dir.join(format!(
            "{}-{label}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        crate::private::dir(&logs).at("create the log dir", &logs)?;
        Ok(StageRunner {
            store,
            spec,
            env,
            tools,
            helper,
            confined,
            repo,
            logs,
            runs: 0,
            jobs: 1,
        })
    }

    /// The build's log directory.
    pub fn log_dir(&self) -> &Path {
        &self.logs
    }

    /// The checkout a stage's playbook comes from (its branch, else the build's).
    pub fn checkout(&mut self, stage: &Stage) -> Result<Checkout> {
        let branch = stage.branch.as_deref().or(self.spec.branch.as_deref());
        self.repo.checkout(branch, &stage.to_string())
    }

    /// Before any stage runs: every playbook exists in its branch's checkout
    /// (else a "did you mean") and parses (one `--syntax-check` per checkout).
    pub fn check(&mut self, stages: &[Stage]) -> Result<()> {
        let mut by_root: Vec<(Checkout, Vec<&str>)> = Vec::new();
        for stage in stages {
            let checkout = self.checkout(stage)?;
            check::check_exists(stage, &checkout)?;
            match by_root.iter_mut().find(|(c, _)| c.root == checkout.root) {
                Some((_, playbooks)) => playbooks.push(&stage.playbook),
                None => by_root.push((checkout, vec![&stage.playbook])),
            }
        }
        for (checkout, playbooks) in &by_root {
            let inventories = inventory::repo_inventories(&checkout.root, &self.spec.inventories)?;
            check::check_syntax(
                &self.confined,
                &self.tools.ansible_playbook,
                checkout,
                &inventories,
                playbooks,
            )?;
        }
        Ok(())
    }

    /// Builds `stage` for every target at once (one Ansible run); one result
    /// per host, in order.
    pub fn run(&mut self, stage: &Stage, targets: &[Target]) -> Vec<(String, Result<Image>)> {
        let checkout = match self.checkout(stage) {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                return targets
                    .iter()
                    .map(|t| {
                        (
                            t.host.clone(),
                            Err(Error::StageFailed {
                                stage: stage.to_string(),
                                host: t.host.clone(),
                                message: message.clone(),
                            }),
                        )
                    })
                    .collect();
            }
        };
        self.runs += 1;
        let log = self.logs.join(format!(
            "{:02}-{}.log",
            self.runs,
            super::options::name_component(&stage.playbook).replace('/', "_")
        ));
        let run = StageRun {
            store: self.store,
            tools: &self.tools,
            stage,
            spec: self.spec,
            env: self.env,
            helper: &self.helper,
            confined: &self.confined,
            checkout: &checkout,
            log: &log,
            jobs: self.jobs,
        };
        run.run(targets)
    }
}

/// Applies `stages` in order to `image` for `host`; each stage becomes one layer
/// and one image, the next stage starting from the image the previous one built
/// (never from a name looked up again). Every playbook is checked before the
/// first stage runs. Once every stage is built, the images are named at once
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
    let mut runner = StageRunner::new(store, opts, env, host)?;
    runner.check(stages)?;
    let mut source = image.clone();
    let mut source_name = None;
    let mut names = Vec::with_capacity(stages.len() + 1);
    for stage in stages {
        let target = Target {
            host: host.to_string(),
            base: source.clone(),
            source: source_name.take(),
            comment: None,
        };
        let (_, built) = runner
            .run(stage, &[target])
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
