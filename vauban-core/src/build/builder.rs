//! [`Builder`]: a config, a store and options in; a plan out ([`Builder::plan`],
//! [`Builder::check`]); then [`Builder::run`] fixes what the build starts from
//! (each branch's commit, each step's base image: `resolve`), builds it step
//! by step, every stage through the cache, names every image at the end in one
//! index write, and publishes. The steps themselves are in `rootfs`, `conffs`
//! and `boot`; what the cache holds without running anything is `walk`.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::cache::Cache;
use super::inputs::ToolCache;
use super::plan::{plan, Part, Step, StepKind};
use super::report::{BuildReport, Outcome, StepReport};
use super::resolve::Resolved;
use super::walk::Fresh;
use crate::config::{Config, Master};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::keys::KeySecret;
use crate::machine::Env;
use crate::sandbox::{pending_signal, SignalGuard};
use crate::stage::{AnsibleRepo, StageRunner};

use super::analysis::Analysed;
use super::naming::Named;
use super::options::BuildOptions;

/// Builds the masters of a config.
pub struct Builder<'a> {
    pub(super) config: Config,
    pub(super) store: &'a Store,
    pub(super) env: Env,
    pub(super) opts: BuildOptions,
    pub(super) cache: Cache<'a>,
    /// Runs the stages (tools, helper, confined controller, logs): one per build.
    pub(super) runner: StageRunner<'a>,
    /// The Ansible repository: fetched once, one checkout per branch.
    pub(super) repo: AnsibleRepo,
    /// Results of Ansible's tools, by what they read.
    pub(super) tools: ToolCache,
    /// Every stage playbook of the config (files are attributed among them).
    pub(super) playbooks: Vec<String>,
    pub(super) analysed: HashMap<PathBuf, Arc<Analysed>>,
    /// What each master's stages give now, as far as the cache knows.
    pub(super) fresh: HashMap<String, Fresh>,
    /// The hosts whose conffs this build wrote, by master.
    pub(super) conffs_made: HashMap<String, Vec<String>>,
    pub(super) names: Vec<Named>,
    pub(super) report: BuildReport,
    /// Where a conffs's hosts are built: here (`None`), or as tasks of a
    /// batch system ([`Builder::set_executor`]).
    pub(super) executor: Option<super::remote::Executor>,
}

impl<'a> Builder<'a> {
    /// A builder of `opts` over `config`: checks that the master exists and
    /// that an Ansible repository is given, finds the tools; the config's
    /// warnings are its first ([`Event::Warning`], the report's). Nothing is
    /// fetched nor checked out yet.
    pub fn new(config: Config, store: &'a Store, mut env: Env, opts: BuildOptions) -> Result<Self> {
        config.find(&opts.name)?;
        let ansible = match (&opts.ansible, &config.configuration.ansible) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a.value.clone(),
            (None, None) => {
                return Err(Error::NoAnsible {
                    config: config.path.clone(),
                })
            }
        };
        env.network = opts
            .network
            .clone()
            .unwrap_or_else(|| config.configuration.network());
        // The boot tree (every host's conffs) and the key store are never
        // the controller's to see.
        env.hidden
            .push(std::path::absolute(&opts.out).unwrap_or_else(|_| opts.out.clone()));
        env.hidden.push(opts.keystore.clone());
        let mut runner = StageRunner::new(store, &env, &opts.name)?;
        runner.jobs = opts.jobs.max(1);
        let ansible_root = config
            .configuration
            .ansible_root
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        let repo = AnsibleRepo::new(ansible, ansible_root, &env.cache_dir);
        let mut playbooks: Vec<String> = config
            .masters()
            .flat_map(|m| m.stage_list())
            .chain(
                config
                    .configuration
                    .always_apply_stage_in_conffs
                    .iter()
                    .map(|s| &s.value),
            )
            .map(|s| s.playbook.clone())
            .collect();
        playbooks.sort();
        playbooks.dedup();
        let mut cache = Cache::new(store);
        cache.disabled = opts.no_cache;
        let mut tool_cache = ToolCache::new(store.root());
        tool_cache.disabled = opts.no_cache;
        let mut builder = Builder {
            config,
            store,
            env,
            opts,
            cache,
            runner,
            repo,
            tools: tool_cache,
            playbooks,
            analysed: HashMap::new(),
            fresh: HashMap::new(),
            conffs_made: HashMap::new(),
            names: Vec::new(),
            report: BuildReport::default(),
            executor: None,
        };
        // What the config holds that is ignored, first of all.
        for warning in builder.config.warnings.clone() {
            builder.warn(warning.to_string());
        }
        Ok(builder)
    }

    /// The options.
    pub fn options(&self) -> &BuildOptions {
        &self.opts
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What was done so far (all of it after [`Builder::run`], also when it failed).
    pub fn report(&self) -> &BuildReport {
        &self.report
    }

    /// The steps of the build, in order, as `--stage` and `--build-parents`
    /// ask (a release the build needs and the store lacks, or a stale master
    /// with `--rebuild-stale`, is added when the build starts).
    pub fn plan(&self) -> Result<Vec<Step>> {
        let target = self.config.find(&self.opts.name)?;
        if self.opts.part == Part::Conffs && self.pattern(target).is_none() {
            return Err(Error::NoConffs {
                master: target.name.clone(),
            });
        }
        plan(
            &self.config,
            &self.opts.name,
            self.opts.part,
            self.opts.build_parents,
            &|m| self.pattern(m).is_some(),
        )
    }

    /// Whether the build makes a conffs, which needs the key store's secret
    /// ([`BuildOptions::keys`]).
    pub fn needs_keys(&self) -> Result<bool> {
        Ok(!self.opts.images_only && self.plan()?.iter().any(|s| s.kind == StepKind::Conffs))
    }

    /// Gives the key store's secret (see [`Builder::needs_keys`]).
    pub fn set_keys(&mut self, secret: KeySecret) {
        self.opts.keys = Some(secret);
    }

    /// The conffs pattern of `master`: `--conffs` for the master built, else
    /// its `conffs:`.
    pub(super) fn pattern(&self, master: &Master) -> Option<String> {
        match &self.opts.conffs {
            Some(p) if master.name == self.opts.name => Some(p.clone()),
            _ => master.conffs.as_ref().map(|c| c.value.clone()),
        }
    }

    /// Runs the plan. Interrupted (SIGINT, SIGTERM), it stops between steps or
    /// inside a sandbox, leaves no mount nor process, and what was built
    /// stays in the cache.
    pub fn run(&mut self) -> Result<()> {
        let _signals = SignalGuard::install()?;
        let planned = self.resolve(true)?;
        // Private: the tree gets each host's conffs (see `export::tree`).
        crate::private::dir(&self.opts.out)
            .map_err(|e| Error::io("create the output dir", &self.opts.out, e))?;
        if self.env.network == crate::sandbox::Network::Host {
            self.warn(
                "the build ran on the host's network (`--network host` or `network: host`): \
                 its playbooks and images could reach every service this machine reaches"
                    .into(),
            );
        }
        let result = self.run_steps(&planned);
        // What was built is named, also when a later step or host failed (an
        // interrupted build names nothing: the cache keeps its work).
        if !matches!(result, Err(Error::BuildInterrupted { .. })) {
            self.name_all()?;
        }
        result?;
        if self.opts.registry.is_some() {
            self.publish()?;
        }
        // A signal that came while the images were named or pushed (no
        // sandbox ran to see it) still ends the build as asked.
        self.interrupted()
    }

    fn run_steps(&mut self, resolved: &Resolved) -> Result<()> {
        // The rootfs each step made, by step number.
        let mut made: Vec<Option<Image>> = vec![None; resolved.planned.len()];
        for (i, p) in resolved.planned.iter().enumerate() {
            self.interrupted()?;
            let master = self.config.find(&p.step.master)?.clone();
            let base = resolved.image(&p.base, &made);
            let started = std::time::Instant::now();
            self.env.events.emit(Event::StepStarted {
                step: p.step.to_string(),
                kind: format!("{:?}", p.step.kind).to_lowercase(),
            });
            let done = match (p.step.kind, base) {
                (StepKind::Rootfs, base) => self.rootfs(&master, base).map(Some),
                (StepKind::Conffs, Some(base)) => self.conffs(&master, &base).map(|()| None),
                (StepKind::Boot, Some(base)) => {
                    let kernel = p
                        .kernel
                        .as_ref()
                        .and_then(|k| resolved.image(k, &made))
                        .unwrap_or_else(|| base.clone());
                    self.boot(&master, &base, &kernel).map(|()| None)
                }
                (_, None) => Err(self.not_built(&master)),
            };
            if let Ok(Some(image)) = &done {
                made[i] = Some(image.clone());
            }
            self.env.events.emit(Event::StepFinished {
                step: p.step.to_string(),
                outcome: if done.is_ok() { "done" } else { "failed" }.into(),
                image: done
                    .as_ref()
                    .ok()
                    .and_then(|i| i.as_ref())
                    .map(|i| i.manifest_digest.clone()),
                seconds: started.elapsed().as_secs_f64(),
            });
            done.map_err(|e| match e {
                Error::Interrupted { signal } => Error::BuildInterrupted { signal },
                other => other,
            })?;
        }
        // A signal that came during the last step (an executor's tasks may
        // all be done by the round that would have seen it) still ends the
        // build as asked, before anything is named.
        self.interrupted()
    }

    /// An error if a signal came.
    pub(super) fn interrupted(&self) -> Result<()> {
        match pending_signal() {
            Some(signal) => Err(Error::BuildInterrupted { signal }),
            None => Ok(()),
        }
    }

    /// Adds a line to the report.
    pub(super) fn record(
        &mut self,
        step: String,
        outcome: Outcome,
        image: Option<&Image>,
        size: u64,
        started: std::time::Instant,
    ) {
        let report = StepReport {
            step,
            outcome,
            image: image.map(|i| i.manifest_digest.clone()),
            size,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.env.events.emit(Event::StepResult {
            step: report.step.clone(),
            outcome: report.outcome.to_string(),
            image: report.image.clone(),
            size: report.size,
            seconds: report.seconds,
        });
        self.report.steps.push(report);
    }

    /// A warning: in the report and the event stream (a log line too would
    /// show it twice where the events are rendered).
    pub(super) fn warn(&mut self, message: String) {
        tracing::debug!("warning: {message}");
        self.env.events.emit(Event::Warning {
            message: message.clone(),
        });
        self.report.warnings.push(message);
    }

    /// `--out`.
    pub(super) fn out(&self) -> &Path {
        &self.opts.out
    }
}
