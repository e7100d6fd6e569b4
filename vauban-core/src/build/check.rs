//! `--check`: the plan of a build, step by step, with each stage's images,
//! hosts and whether the cache serves it, and if not which input changed
//! since the image of that name was built. Runs no stage.

use serde::Serialize;
use vauban_oci::Image;

use super::builder::{runner, Builder};
use super::error::BuildError;
use super::plan::StepKind;
use crate::config::Master;

/// Whether a checked stage would run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StepStatus {
    /// The cache has it.
    Cached,
    /// It runs; what changed since its image was last built (empty: never built).
    Run {
        /// The inputs that changed.
        changed: Vec<String>,
    },
    /// It runs because a step before it runs.
    AfterChange,
    /// Not a stage (exports, the release): it runs, cached or not, as the build finds.
    Export,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepStatus::Cached => f.write_str("cached"),
            StepStatus::Run { changed } if changed.is_empty() => f.write_str("runs (never built)"),
            StepStatus::Run { changed } => write!(f, "runs ({} changed)", changed.join(", ")),
            StepStatus::AfterChange => f.write_str("runs (a step before it runs)"),
            StepStatus::Export => f.write_str("exports"),
        }
    }
}

/// One line of `--check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedStep {
    /// The plan step (`rootfs master-web`).
    pub step: String,
    /// The stage, if it is one.
    pub stage: Option<String>,
    /// The image name it gives.
    pub name: String,
    /// The hosts it runs for.
    pub hosts: Vec<String>,
    /// Whether it runs.
    pub status: StepStatus,
}

impl Builder<'_> {
    /// The plan with the cache's answer for every stage; runs nothing (the
    /// Ansible repository is synced and its inventory read).
    pub fn check(&mut self) -> Result<Vec<CheckedStep>, BuildError> {
        let mut out = Vec::new();
        // Masters whose rootfs this build would change.
        let mut changed: Vec<String> = Vec::new();
        let steps = self.plan()?;
        self.check_playbooks(&steps)?;
        for step in steps {
            let master = self.config.find(&step.master)?.clone();
            match step.kind {
                StepKind::Rootfs => self.check_rootfs(&master, &mut changed, &mut out)?,
                StepKind::Conffs => {
                    let hosts = self.check_hosts(&master)?;
                    out.push(CheckedStep {
                        step: step.to_string(),
                        stage: None,
                        name: format!("{}/<host>", master.name),
                        hosts,
                        status: if changed.contains(&master.name) {
                            StepStatus::AfterChange
                        } else {
                            StepStatus::Export
                        },
                    });
                }
                StepKind::Boot => out.push(CheckedStep {
                    step: step.to_string(),
                    stage: None,
                    name: format!("{}/rootfs.img", master.name),
                    hosts: Vec::new(),
                    status: StepStatus::Export,
                }),
            }
        }
        Ok(out)
    }

    fn check_rootfs(
        &mut self,
        master: &Master,
        changed: &mut Vec<String>,
        out: &mut Vec<CheckedStep>,
    ) -> Result<(), BuildError> {
        out.extend(self.release_row(master)?);
        let parent_changed = self
            .config
            .parent(master)
            .is_some_and(|p| changed.contains(&p.name));
        let mut image: Option<Image> = if parent_changed {
            None
        } else {
            match self.config.parent(master).cloned() {
                Some(p) => self.in_store(&p)?,
                None => None,
            }
        };
        let spec = self.spec(master, false);
        let env = self.env.clone();
        let mut runner = runner(self.store, &spec, &env, "check", 1)?;
        let mut after_change = parent_changed || (image.is_none() && !master.is_release());
        for stage in master.stage_list().cloned().collect::<Vec<_>>() {
            let name = spec.stage_reference(&stage.playbook)?;
            let status = match (&image, after_change) {
                (Some(parent), false) => {
                    let analysed = self.analyse(&mut runner, &stage, &spec)?;
                    let inputs = self.inputs(&analysed, &stage, &spec, &master.name, parent);
                    match self.cache.peek(&inputs.key())? {
                        Some(hit) if !self.opts.no_cache => {
                            image = Some(hit);
                            StepStatus::Cached
                        }
                        _ => {
                            after_change = true;
                            StepStatus::Run {
                                changed: self.changed_since(&name, &inputs),
                            }
                        }
                    }
                }
                _ => StepStatus::AfterChange,
            };
            out.push(CheckedStep {
                step: format!("rootfs {}", master.name),
                stage: Some(stage.to_string()),
                name: name.to_string(),
                hosts: vec![master.name.clone()],
                status,
            });
        }
        if after_change || image.is_none() {
            changed.push(master.name.clone());
        }
        Ok(())
    }

    /// What differs between `inputs` and those recorded on the image named
    /// `name` (its last layer's history comment).
    fn changed_since(
        &self,
        name: &vauban_oci::Reference,
        inputs: &super::cache::StepInputs,
    ) -> Vec<String> {
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

    fn check_hosts(&mut self, master: &Master) -> Result<Vec<String>, BuildError> {
        let Some(pattern) = self.pattern(master) else {
            return Ok(Vec::new());
        };
        let stages = self.conffs_stages(master);
        let Some(first) = stages.first().cloned() else {
            return Ok(Vec::new());
        };
        let spec = self.spec(master, true);
        let env = self.env.clone();
        let mut runner = runner(self.store, &spec, &env, "check", 1)?;
        let analysed = self.analyse(&mut runner, &first, &spec)?;
        self.hosts_of(&analysed, &pattern)
    }
}
