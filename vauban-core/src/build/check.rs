//! `--check`: the plan of a build, row by row, with what the cache serves and,
//! for what runs, why: each stage of a rootfs; each host of a conffs (cached,
//! or the first of its stages that runs and why); the release's base; the
//! initramfs and `rootfs.img`. Runs no stage (the Ansible repository is
//! fetched and its inventory read) and writes nothing: not the store, not a
//! log directory.

use serde::Serialize;
use vauban_oci::Image;

use super::boot;
use super::builder::Builder;
use super::plan::{Base, StepKind};
use super::walk::Asking;
use crate::config::Master;
use crate::error::Result;

/// Whether a checked row would run.
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
    /// It starts from an image the build pulls from the registry: the cache
    /// serves it if it knows that image.
    AfterPull,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepStatus::Cached => f.write_str("cached"),
            StepStatus::Run { changed } if changed.is_empty() => f.write_str("runs (never built)"),
            StepStatus::Run { changed } => write!(f, "runs ({} changed)", changed.join(", ")),
            StepStatus::AfterChange => f.write_str("runs (a step before it runs)"),
            StepStatus::AfterPull => f.write_str("runs unless cached (its base is pulled first)"),
        }
    }
}

/// One row of `--check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedStep {
    /// The plan step (`rootfs master-web`).
    pub step: String,
    /// The stage: a rootfs row's own, a host's first that runs.
    pub stage: Option<String>,
    /// The image name it gives (a file of `--out` for the boot files).
    pub name: String,
    /// The hosts it runs for.
    pub hosts: Vec<String>,
    /// Whether it runs.
    pub status: StepStatus,
}

impl Builder<'_> {
    /// The plan with the cache's answer for every row; runs nothing.
    pub fn check(&mut self) -> Result<Vec<CheckedStep>> {
        let resolved = self.resolve(false)?;
        let mut out = Vec::new();
        // The rootfs each step would give, when the cache knows it.
        let mut made: Vec<Option<Image>> = vec![None; resolved.planned.len()];
        for (i, p) in resolved.planned.iter().enumerate() {
            let master = self.config.find(&p.step.master)?.clone();
            let step = p.step.to_string();
            let base = match &p.base {
                Base::Release => {
                    let image = self.release_cached(&master)?;
                    if let Some(release) = self.config.release_of(&master) {
                        out.push(CheckedStep {
                            step: format!("release {}", release.key()),
                            stage: Some(super::release::describe(release)),
                            name: release.name().to_owned(),
                            hosts: Vec::new(),
                            status: self.cached_or_run(image.is_some()),
                        });
                    }
                    image
                }
                base => resolved.image(base, &made),
            };
            let pulled = matches!(&p.base, Base::Found(m) if !resolved.found.contains_key(m));
            match p.step.kind {
                StepKind::Rootfs => {
                    made[i] = self.check_rootfs(&master, &step, base, pulled, &mut out)?
                }
                StepKind::Conffs => self.check_conffs(&master, &step, base, pulled, &mut out)?,
                StepKind::Boot => {
                    let kernel = p
                        .kernel
                        .as_ref()
                        .and_then(|k| resolved.image(k, &made))
                        .or_else(|| base.clone());
                    self.check_boot(&master, &step, base, kernel, &mut out)?
                }
            }
        }
        Ok(out)
    }

    fn cached_or_run(&self, cached: bool) -> StepStatus {
        if cached && !self.opts.no_cache {
            StepStatus::Cached
        } else if cached {
            StepStatus::Run {
                changed: vec!["--no-cache".into()],
            }
        } else {
            StepStatus::Run {
                changed: Vec::new(),
            }
        }
    }

    /// A row per stage of the rootfs of `master`; the image they give.
    fn check_rootfs(
        &mut self,
        master: &Master,
        step: &str,
        base: Option<Image>,
        pulled: bool,
        out: &mut Vec<CheckedStep>,
    ) -> Result<Option<Image>> {
        let walked = self.walk_rootfs(master, base.as_ref(), Asking::AsBuilt)?;
        let spec = self.spec(master, false);
        for (stage, status) in walked.stages.iter().zip(&walked.statuses) {
            out.push(CheckedStep {
                step: step.to_owned(),
                stage: Some(stage.to_string()),
                name: spec.stage_reference(&stage.playbook)?.to_string(),
                hosts: vec![master.name.clone()],
                status: if pulled {
                    StepStatus::AfterPull
                } else {
                    status.clone()
                },
            });
        }
        Ok(walked.image)
    }

    /// A row per host of the conffs of `master`: cached, or its first stage
    /// that runs and why.
    fn check_conffs(
        &mut self,
        master: &Master,
        step: &str,
        base: Option<Image>,
        pulled: bool,
        out: &mut Vec<CheckedStep>,
    ) -> Result<()> {
        for host in self.conffs_hosts(master)? {
            let walked = self.walk_conffs(master, &host, base.as_ref(), Asking::AsBuilt)?;
            let first = walked.first_run();
            out.push(CheckedStep {
                step: step.to_owned(),
                stage: first.map(|(stage, _)| stage.to_string()),
                name: format!("{}/{host}", master.name),
                hosts: vec![host.clone()],
                status: match first {
                    _ if pulled => StepStatus::AfterPull,
                    Some((_, why)) => why.clone(),
                    None => StepStatus::Cached,
                },
            });
        }
        Ok(())
    }

    /// The rows of the boot files: the initramfs and `rootfs.img`.
    fn check_boot(
        &mut self,
        master: &Master,
        step: &str,
        base: Option<Image>,
        kernel: Option<Image>,
        out: &mut Vec<CheckedStep>,
    ) -> Result<()> {
        let initramfs = match &kernel {
            Some(k) => self
                .cached_or_run(self.boot_is_cached(&boot::initramfs_key(k, &self.dracut_conf()?))),
            None => StepStatus::AfterChange,
        };
        out.push(CheckedStep {
            step: step.to_owned(),
            stage: None,
            name: "linux/initramfs".into(),
            hosts: Vec::new(),
            status: initramfs,
        });
        let rootfs = match &base {
            Some(image) => {
                let key = boot::rootfs_key(image, &self.squashfs_options(Default::default()));
                self.cached_or_run(self.boot_is_cached(&key))
            }
            None => StepStatus::AfterChange,
        };
        out.push(CheckedStep {
            step: step.to_owned(),
            stage: None,
            name: format!("{}/rootfs.img", master.name),
            hosts: Vec::new(),
            status: rootfs,
        });
        Ok(())
    }
}
