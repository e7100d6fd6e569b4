//! A conffs's hosts built as tasks of a batch system (`--executor slurm`,
//! `kubernetes`): the plan is the same, only where the hosts' stages run
//! changes. The master's image goes to the registry (a tag of this build),
//! the hosts are cut into shards, one task each, every task running
//! `vauban build --stage conffs --conffs-shards … --images-only
//! --base-digest …` on its node (its own store, no key store); each task
//! pushes its hosts' images and reports their digests in its events; the
//! coordinator pulls them back, and the archives are made here, where the key
//! store is, as for a local build. The sshd private keys therefore never
//! leave this machine: not to the nodes, not to the registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use vauban_oci::registry;
use vauban_oci::{Digest, Image, Reference};

use super::builder::Builder;
use super::plan::StepKind;
use super::report::{Outcome, StepReport};
use crate::config::Master;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::executor::{coordinator, shard, Backend, JobSpec};

/// Where a build's conffs hosts run, and how a task is started there.
pub struct Executor {
    /// The batch system.
    pub backend: Box<dyn Backend>,
    /// Hosts a task (`--shard-size`); `None`: [`shard::default_size`].
    pub shard_size: Option<usize>,
    /// What every task runs besides its shard.
    pub task: TaskCommand,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("backend", &self.backend.kind())
            .field("shard_size", &self.shard_size)
            .field("task", &self.task)
            .finish()
    }
}

/// The `vauban` a task runs, as the nodes see it.
#[derive(Debug, Clone)]
pub struct TaskCommand {
    /// vauban's executable on the nodes.
    pub vauban: PathBuf,
    /// `config.yml`, absolute, as the nodes see it.
    pub config: PathBuf,
    /// The tasks' store (`--store`); `None`: the node's default store.
    pub store: Option<PathBuf>,
    /// This build's id (the jobs' names and `vauban-job-id`).
    pub build_id: String,
    /// `--jobs` of each task (hosts at once on its node).
    pub jobs: Option<usize>,
    /// Whether the task is given this machine's `--authfile` (a Slurm node
    /// sees the same files; a Kubernetes pod gets its own from a Secret).
    pub pass_authfile: bool,
}

impl Builder<'_> {
    /// Has the masters' stages and the conffs hosts built by `executor`
    /// instead of here.
    pub fn set_executor(&mut self, executor: Executor) {
        self.executor = Some(executor);
    }

    /// A task's command line: `--stage part` of `master`, from `base` when
    /// given, with `extra`.
    fn task_argv(
        &self,
        task: &TaskCommand,
        master: &Master,
        part: &str,
        base: Option<&Digest>,
        extra: &[String],
    ) -> Vec<String> {
        let mut argv = vec![task.vauban.display().to_string()];
        if let Some(store) = &task.store {
            argv.extend(["--store".into(), store.display().to_string()]);
        }
        argv.extend(["--events".into(), "json".into(), "build".into()]);
        argv.extend(["--config".into(), task.config.display().to_string()]);
        argv.extend([
            "--name".into(),
            master.name.clone(),
            "--stage".into(),
            part.to_owned(),
        ]);
        argv.extend(extra.iter().cloned());
        if let Some(base) = base {
            argv.extend(["--base-digest".into(), base.to_string()]);
        }
        if let Some(r) = &self.opts.registry {
            argv.extend(["--registry".into(), r.display()]);
            if !r.options.tls_verify {
                argv.push("--tls-verify=false".into());
            }
            if let Some(file) = r
                .options
                .auth
                .authfile
                .as_ref()
                .filter(|_| task.pass_authfile)
            {
                argv.extend(["--authfile".into(), file.display().to_string()]);
            }
        }
        if let Some(a) = &self.opts.ansible {
            argv.extend(["--ansible".into(), a.to_string()]);
        }
        if let Some(b) = &self.opts.branch {
            argv.extend(["--branch".into(), b.clone()]);
        }
        for a in &self.opts.ansible_args {
            argv.push(format!("--ansible-arg={a}"));
        }
        if let Some(pre) = &self.opts.hooks.pre {
            argv.push(format!("--hook-pre={pre}"));
        }
        if let Some(post) = &self.opts.hooks.post {
            argv.push(format!("--hook-post={post}"));
        }
        match &self.opts.network {
            Some(crate::sandbox::Network::Host) => argv.push("--network=host".into()),
            Some(crate::sandbox::Network::Isolated { allow }) => {
                argv.push("--network=isolated".into());
                argv.extend(allow.iter().map(|a| format!("--network-allow={a}")));
            }
            _ => {}
        }
        if self.opts.no_cache {
            argv.push("--no-cache".into());
        }
        if let Some(j) = task.jobs {
            argv.extend(["--jobs".into(), j.to_string()]);
        }
        argv
    }

    /// The jobs the build would submit, without submitting nor pushing
    /// anything (`--dry-run`): each conffs step's, its master's digest when
    /// the store knows it (else zeros: the build makes it).
    pub fn executor_jobs(&mut self) -> Result<Vec<JobSpec>> {
        let Some(executor) = self.executor.take() else {
            return Ok(Vec::new());
        };
        let jobs = self.planned_jobs(&executor);
        self.executor = Some(executor);
        jobs
    }

    fn planned_jobs(&mut self, executor: &Executor) -> Result<Vec<JobSpec>> {
        let resolved = self.resolve(false)?;
        let unknown: Digest = format!("sha256:{}", "0".repeat(64)).parse()?;
        let mut jobs = Vec::new();
        for p in &resolved.planned {
            let master = self.config.find(&p.step.master)?.clone();
            let base = resolved.image(&p.base, &[]).map(|i| i.manifest_digest);
            match p.step.kind {
                StepKind::Rootfs if master.stage_list().next().is_some() => {
                    let base = match p.base {
                        super::plan::Base::Release => None,
                        _ => Some(base.unwrap_or_else(|| unknown.clone())),
                    };
                    jobs.push(self.rootfs_job(executor, &master, base.as_ref()));
                }
                StepKind::Conffs => {
                    let hosts = self.conffs_hosts(&master)?;
                    let base = base.unwrap_or_else(|| unknown.clone());
                    jobs.push(self.conffs_job(executor, &master, &hosts, &base).0);
                }
                _ => {}
            }
        }
        Ok(jobs)
    }

    /// The job of the rootfs of `master` from `base` (`None`: its release's).
    fn rootfs_job(&self, executor: &Executor, master: &Master, base: Option<&Digest>) -> JobSpec {
        let build_id = &executor.task.build_id;
        JobSpec {
            name: job_name(build_id, &master.name, "rootfs"),
            build_id: build_id.clone(),
            master: master.name.clone(),
            argv: self.task_argv(&executor.task, master, "rootfs", base, &[]),
            env: Vec::new(),
            tasks: 1,
        }
    }

    /// The job of the conffs of `hosts` of `master` from `base`, and its shards.
    fn conffs_job(
        &self,
        executor: &Executor,
        master: &Master,
        hosts: &[String],
        base: &Digest,
    ) -> (JobSpec, Vec<Vec<String>>) {
        let size = executor
            .shard_size
            .unwrap_or_else(|| shard::default_size(hosts.len(), self.opts.jobs));
        let shards = shard::split(hosts, size);
        let build_id = &executor.task.build_id;
        let extra = [
            "--conffs-shards".into(),
            shard::encode(&shards),
            "--images-only".into(),
        ];
        let job = JobSpec {
            name: job_name(build_id, &master.name, "conffs"),
            build_id: build_id.clone(),
            master: master.name.clone(),
            argv: self.task_argv(&executor.task, master, "conffs", Some(base), &extra),
            env: Vec::new(),
            tasks: shards.len(),
        };
        (job, shards)
    }

    /// Runs `f` with the executor taken out of the builder (and put back).
    fn with_executor<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Executor) -> Result<T>,
    ) -> Result<T> {
        let mut executor = self
            .executor
            .take()
            .ok_or_else(|| Error::internal("a remote step without an executor"))?;
        let result = f(self, &mut executor);
        self.executor = Some(executor);
        result
    }

    /// Runs `job` to its end, its tasks' rows in this build's report.
    fn run_tasks(
        &mut self,
        executor: &mut Executor,
        job: &JobSpec,
        what: &dyn Fn(usize) -> String,
    ) -> Result<Vec<coordinator::TaskResult>> {
        tracing::info!(job = %job.name, tasks = job.tasks, "submitting");
        let logs = self.runner.log_dir().join("tasks");
        let results = coordinator::run_job(
            executor.backend.as_mut(),
            job,
            &self.env.events,
            &logs,
            what,
            &crate::sandbox::pending_signal,
        )?;
        for r in &results {
            self.report_rows(&r.events);
        }
        Ok(results)
    }

    /// Builds the rootfs of `master` from `base` (`None`: its release's) as
    /// one task of the executor; its image, pulled into the store.
    pub(super) fn rootfs_remote(&mut self, master: &Master, base: Option<&Image>) -> Result<Image> {
        self.with_executor(|b, executor| {
            let registry = b.exchange(executor)?;
            if let (Some(base), Some(parent)) = (base, b.config.parent(master)) {
                b.push_base(&registry, executor, &parent.name.clone(), base)?;
            }
            let job = b.rootfs_job(executor, master, base.map(|i| &i.manifest_digest));
            let mut results =
                b.run_tasks(executor, &job, &|_| format!("rootfs {}", master.name))?;
            let result = results
                .pop()
                .ok_or_else(|| Error::internal("a job of one task gave none"))?;
            if let Some(e) = result.error {
                return Err(e);
            }
            let last = master
                .stage_list()
                .last()
                .map(|s| format!("rootfs {}: {s}", master.name))
                .ok_or_else(|| Error::internal("a remote rootfs of no stage"))?;
            let digest = reported(&result.events, &last).ok_or_else(|| Error::StageFailed {
                stage: last.clone(),
                host: master.name.clone(),
                message: "its task ended well but reported no image".into(),
            })?;
            let (_, image) = b
                .pull_all(
                    &registry,
                    vec![(master.name.clone(), master.name.clone(), digest)],
                )?
                .pop()
                .ok_or_else(|| Error::internal("a pull of one image gave none"))?;
            let image = b.with_drift_tool(master, image?)?;
            // Its task pushed it (`latest`, its date): named here, not again.
            b.name(&master.name, &image, false, false)?;
            Ok(image)
        })
    }

    /// Builds the images of `hosts` of `master` from `base` as tasks of the
    /// executor; each host's image (pulled into the store), or why it has none.
    pub(super) fn conffs_remote(
        &mut self,
        master: &Master,
        base: &Image,
        hosts: &[String],
    ) -> Result<BTreeMap<String, Result<Image>>> {
        self.with_executor(|b, executor| {
            let registry = b.exchange(executor)?;
            b.push_base(&registry, executor, &master.name, base)?;
            let (job, shards) = b.conffs_job(executor, master, hosts, &base.manifest_digest);
            let what = |i: usize| format!("conffs {}: {}", master.name, shards[i].join(","));
            let results = b.run_tasks(executor, &job, &what)?;
            // Each host's image: the last conffs stage's row its task reported.
            let last = b
                .conffs_stages(master)
                .last()
                .map(|s| s.to_string())
                .ok_or_else(|| Error::internal("a conffs without stages"))?;
            let mut images = BTreeMap::new();
            let mut wanted = Vec::new();
            for (shard, result) in shards.iter().zip(results) {
                for host in shard {
                    let row = format!("conffs {}/{host}: {last}", master.name);
                    let image = match (reported(&result.events, &row), &result.error) {
                        (Some(d), _) => {
                            wanted.push((host.clone(), format!("{}/{host}", master.name), d));
                            continue;
                        }
                        (None, Some(e)) => Err(Error::StageFailed {
                            stage: last.clone(),
                            host: host.clone(),
                            message: e.to_string(),
                        }),
                        (None, None) => Err(Error::StageFailed {
                            stage: last.clone(),
                            host: host.clone(),
                            message: "its task ended well but reported no image for it".into(),
                        }),
                    };
                    images.insert(host.clone(), image);
                }
            }
            images.extend(b.pull_all(&registry, wanted)?);
            Ok(images)
        })
    }

    /// The registry the tasks exchange through (`--registry`, required).
    fn exchange(&self, executor: &Executor) -> Result<super::Registry> {
        self.opts
            .registry
            .clone()
            .ok_or_else(|| Error::InvalidArgument {
                argument: format!("--executor {}", executor.backend.kind()),
                reason: "needs --registry: the registry is where its tasks find the image they \
                     start from and leave the images they make"
                    .into(),
            })
    }

    /// `base`, the image of master `owner`, pushed as
    /// `NAMESPACE/<owner>:base-<build>` for the tasks (they pull it by digest).
    fn push_base(
        &self,
        registry: &super::Registry,
        executor: &Executor,
        owner: &str,
        base: &Image,
    ) -> Result<()> {
        let build_id = &executor.task.build_id;
        let local = Reference::parse(&format!("vauban-cache/executor-base:{build_id}"))?;
        self.store.tag_all(&[(local.clone(), base.descriptor())])?;
        let dest = registry.remote(owner, &format!("base-{build_id}"))?;
        let progress = Arc::new(self.env.events.registry_progress());
        let pushed = crate::runtime()?.block_on(registry::push(
            self.store,
            &local,
            &dest,
            &[],
            &registry.options,
            progress,
        ));
        self.store.untag(&local)?;
        pushed?;
        Ok(())
    }

    /// Each `(host, name, digest)` pulled (`NAMESPACE/<name>@digest`), a few
    /// at once: each host's image, or why it could not be pulled.
    fn pull_all(
        &self,
        registry: &super::Registry,
        wanted: Vec<(String, String, Digest)>,
    ) -> Result<Vec<(String, Result<Image>)>> {
        use futures_util::stream::{self, StreamExt};
        let progress: Arc<dyn registry::Progress> = Arc::new(self.env.events.registry_progress());
        let store = self.store;
        let pulls = wanted.into_iter().map(|(host, name, digest)| {
            let progress = progress.clone();
            async move {
                let pulled = async {
                    let local = Reference::parse(&format!(
                        "vauban-cache/executor-result:{}",
                        digest.hex()
                    ))?;
                    let src = registry::RemoteReference::parse(&format!(
                        "{}/{}/{name}@{digest}",
                        registry.host, registry.namespace
                    ))?;
                    registry::pull(store, &src, Some(&local), &registry.options, progress).await?;
                    let image = store.image(&local)?;
                    store.untag(&local)?;
                    Ok::<_, Error>(image)
                }
                .await;
                (host, pulled)
            }
        });
        Ok(crate::runtime()?.block_on(stream::iter(pulls).buffer_unordered(8).collect()))
    }

    /// The tasks' rows in this build's report (its recap).
    fn report_rows(&mut self, events: &[Event]) {
        for e in events {
            if let Event::StepResult {
                step,
                outcome,
                image,
                size,
                seconds,
            } = e
            {
                let outcome = match outcome.as_str() {
                    "built" => Outcome::Built,
                    "cached" => Outcome::Cached,
                    _ => Outcome::Failed,
                };
                self.report.steps.push(StepReport {
                    step: step.clone(),
                    outcome,
                    image: image.clone(),
                    size: *size,
                    seconds: *seconds,
                });
            }
        }
    }
}

/// The image of the row `step` a task reported (not failed), if any.
fn reported(events: &[Event], step: &str) -> Option<Digest> {
    events.iter().find_map(|e| match e {
        Event::StepResult {
            step: s,
            outcome,
            image: Some(d),
            ..
        } if s == step && outcome != "failed" => Some(d.clone()),
        _ => None,
    })
}

/// A job's name: `vauban-<build>-<master>-<step>`, lower-case letters,
/// digits and `-` only, at most 63 bytes (a Kubernetes name).
/// A name that had to change (a character replaced, cut to fit) ends with
/// 8 hex digits of the sha256 of what it names: two masters never share one.
pub fn job_name(build_id: &str, master: &str, step: &str) -> String {
    let raw = format!("vauban-{build_id}-{master}-{step}");
    let name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if name == raw && name.len() <= 63 {
        return name;
    }
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(raw.as_bytes())[..4]);
    let mut head = name;
    head.truncate(63 - 9);
    format!("{}-{hash}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_kubernetes_names() {
        assert_eq!(
            job_name("01kb2x", "master-web", "conffs"),
            "vauban-01kb2x-master-web-conffs"
        );
        let changed = job_name("01KB2X", "master_web", "conffs");
        assert!(
            changed.starts_with("vauban-01kb2x-master-web-conffs-"),
            "{changed}"
        );
        assert_ne!(changed, job_name("01KB2X", "master.web", "conffs"));
        let long = "master-web-frontend-production-europe-west";
        let (a, b) = (
            job_name("6b15029d-5ffd", long, "rootfs"),
            job_name("6b15029d-5ffd", &format!("{long}-canary"), "rootfs"),
        );
        assert!(a.len() <= 63 && b.len() <= 63 && a != b, "{a} {b}");
    }
}
