//! [`Builder`]: a config, a store and options in; a plan out ([`Builder::plan`],
//! [`Builder::check`]); then [`Builder::run`] fixes what the build starts from
//! (each branch's commit, each step's base image: `resolve`), builds it step
//! by step, every stage through the cache, names every image at the end in one
//! index write, and publishes. The steps themselves are in `rootfs`, `conffs`
//! and `boot`; what the cache holds without running anything is `walk`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vauban_oci::oci_spec::image::Descriptor;
use vauban_oci::store::Store;
use vauban_oci::{Image, Reference};

use super::cache::{Cache, StepInputs};
use super::inputs::{self, AnsibleTree, Inventory, ToolCache};
use super::plan::{plan, Part, Step, StepKind};
use super::publish::{self, Registry};
use super::report::{AnsibleCheckout, BuildReport, Outcome, StepReport};
use super::resolve::Resolved;
use super::walk::Fresh;
use crate::config::{Config, Master};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::keys::KeySecret;
use crate::machine::Env;
use crate::sandbox::{pending_signal, SignalGuard};
use crate::stage::repo::Checkout;
use crate::stage::{AnsibleRepo, AnsibleSource, Hooks, Stage, StageRunner, StageSpec};

/// The tag of every local name a build gives.
pub const LOCAL_TAG: &str = "latest";

/// What to build, and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--name`: the master.
    pub name: String,
    /// `--stage`.
    pub part: Part,
    /// `--build-parents` (`-1`: the whole chain).
    pub build_parents: i64,
    /// `--rebuild-stale`: a master the build starts from whose stages no
    /// longer give its image (a playbook or its variables changed since) is
    /// rebuilt first, with its stale parents; without it the build warns.
    pub rebuild_stale: bool,
    /// `--conffs`: the hosts' pattern instead of the master's `conffs:`.
    pub conffs: Option<String>,
    /// `--branch`: every stage from this branch.
    pub branch: Option<String>,
    /// `--ansible`, else the config's `ansible:`.
    pub ansible: Option<AnsibleSource>,
    /// Extra `ansible-playbook` arguments.
    pub ansible_args: Vec<String>,
    /// Shell snippets around `ansible-playbook`.
    pub hooks: Hooks,
    /// `--no-cache`: run every stage.
    pub no_cache: bool,
    /// Hosts worked on at once (Ansible's `--forks`).
    pub jobs: usize,
    /// `--out`: the output tree.
    pub out: PathBuf,
    /// `--registry`: where images are pushed and looked for.
    pub registry: Option<Registry>,
    /// The sshd host-key store.
    pub keystore: PathBuf,
    /// Its secret (needed by conffs steps only: [`Builder::needs_keys`]).
    pub keys: Option<KeySecret>,
    /// `--boot-url`, else the config's `boot_url:`.
    pub boot_url: Option<String>,
    /// `--network`/`--network-allow`, else the config's `network:` and
    /// `network_allow:`.
    pub network: Option<crate::sandbox::Network>,
}

impl BuildOptions {
    /// `--stage part` of master `name`, no parents, `./out`, two jobs per core.
    pub fn new(name: impl Into<String>, part: Part, keystore: impl Into<PathBuf>) -> Self {
        BuildOptions {
            name: name.into(),
            part,
            build_parents: 0,
            rebuild_stale: false,
            conffs: None,
            branch: None,
            ansible: None,
            ansible_args: Vec::new(),
            hooks: Hooks::default(),
            no_cache: false,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(2),
            out: PathBuf::from("out"),
            registry: None,
            keystore: keystore.into(),
            keys: None,
            boot_url: None,
            network: None,
        }
    }
}

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

/// A name to give at the end of the build.
#[derive(Debug, Clone)]
pub(super) struct Named {
    pub reference: Reference,
    pub descriptor: Descriptor,
    /// The registry name it is published as, if it is.
    pub publish: Option<String>,
}

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
    repo: AnsibleRepo,
    /// Results of Ansible's tools, by what they read.
    pub(super) tools: ToolCache,
    /// Every stage playbook of the config (files are attributed among them).
    pub(super) playbooks: Vec<String>,
    analysed: HashMap<PathBuf, Arc<Analysed>>,
    /// What each master's stages give now, as far as the cache knows.
    pub(super) fresh: HashMap<String, Fresh>,
    /// The hosts whose conffs this build wrote, by master.
    pub(super) conffs_made: HashMap<String, Vec<String>>,
    pub(super) names: Vec<Named>,
    pub(super) report: BuildReport,
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
        Ok(self.plan()?.iter().any(|s| s.kind == StepKind::Conffs))
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
        Ok(())
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
        Ok(())
    }

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

    /// An error if a signal came.
    pub(super) fn interrupted(&self) -> Result<()> {
        match pending_signal() {
            Some(signal) => Err(Error::BuildInterrupted { signal }),
            None => Ok(()),
        }
    }

    /// The store name `<name>:latest`.
    pub(super) fn local(name: &str) -> Result<Reference> {
        Ok(Reference::parse(&format!("{name}:{LOCAL_TAG}"))?)
    }

    /// Whether `master`'s images are published ([`publish::pushes_images`]).
    pub(super) fn published(&self, master: &Master) -> bool {
        publish::pushes_images(master)
    }

    /// Gives `name` to `image` at the end of the build; `intermediate` names
    /// are hidden from listings; `publish` names are pushed.
    pub(super) fn name(
        &mut self,
        name: &str,
        image: &Image,
        intermediate: bool,
        publish: bool,
    ) -> Result<()> {
        let desc = if intermediate {
            crate::stage::intermediate(image.descriptor())
        } else {
            image.descriptor()
        };
        self.names.retain(|n| n.reference.name() != name);
        self.names.push(Named {
            reference: Builder::local(name)?,
            descriptor: desc,
            publish: publish.then(|| name.to_owned()),
        });
        Ok(())
    }

    fn name_all(&mut self) -> Result<()> {
        let names: Vec<(Reference, Descriptor)> = self
            .names
            .iter()
            .map(|n| (n.reference.clone(), n.descriptor.clone()))
            .collect();
        self.store.tag_all(&names)?;
        self.report.names = names.iter().map(|(r, _)| r.to_string()).collect();
        Ok(())
    }

    fn publish(&mut self) -> Result<()> {
        let Some(registry) = self.opts.registry.clone() else {
            return Ok(());
        };
        let date = publish::date_tag(chrono::Utc::now());
        let progress = Arc::new(self.env.events.registry_progress());
        for named in self.names.clone() {
            let Some(remote) = &named.publish else {
                continue;
            };
            self.interrupted()?;
            let started = std::time::Instant::now();
            let pushed = publish::push(
                self.store,
                &registry,
                &named.reference,
                remote,
                &date,
                progress.clone(),
            )?;
            self.record(format!("push {remote}"), Outcome::Built, None, 0, started);
            self.report.pushed.extend(pushed);
        }
        Ok(())
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

    /// `--out`.
    pub(super) fn out(&self) -> &Path {
        &self.opts.out
    }
}
