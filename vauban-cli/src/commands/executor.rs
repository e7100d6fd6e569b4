//! The options of `vauban build` that say where a conffs's hosts are built
//! (`--executor`, `--shard-size`), and those a task of an executor is
//! started with (`--conffs-shards`, `--shard-index`, `--images-only`,
//! `--base-digest`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vauban_core::build::{Executor, TaskCommand};
use vauban_core::config::Config;
use vauban_core::executor::slurm::{Slurm, SlurmOptions};
use vauban_core::executor::{shard, task_index, ExecutorKind};

/// Where a conffs's hosts are built.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorArgs {
    /// Where the masters' stages and the conffs hosts are built: `local`,
    /// `slurm` (job arrays) or `kubernetes` (Indexed Jobs); needs --registry,
    /// the exchange of the tasks [default: `executor: kind:` of the config,
    /// else local].
    #[arg(long, value_name = "EXECUTOR", env = "VAUBAN_EXECUTOR", value_parser = parse_kind)]
    pub executor: Option<ExecutorKind>,

    /// Hosts a task of the executor [default: `executor: shard_size:`, else
    /// the hosts spread over --jobs tasks, 4 to 50 a task].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_size: Option<u64>,

    /// (What an executor's task is started with) shards of hosts, `a,b;c,d`:
    /// the task builds the shard of its index (--shard-index).
    #[arg(long, value_name = "SHARDS", conflicts_with = "conffs")]
    pub conffs_shards: Option<String>,

    /// The task's shard in --conffs-shards [default: $VAUBAN_TASK_INDEX,
    /// $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX].
    #[arg(long, value_name = "N", requires = "conffs_shards")]
    pub shard_index: Option<usize>,

    /// (A task) build the conffs hosts' images and publish them, without
    /// archives (no key store is read: the coordinator makes the archives).
    #[arg(long)]
    pub images_only: bool,

    /// (A task) the master's image the conffs starts from, this manifest
    /// exactly (pulled from --registry when the store lacks it).
    #[arg(long, value_name = "DIGEST")]
    pub base_digest: Option<String>,

    /// Print the Kubernetes Jobs the build would submit (YAML for `kubectl
    /// apply -f -`) and build nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_kind(s: &str) -> Result<ExecutorKind, String> {
    ExecutorKind::parse(s)
        .ok_or_else(|| format!("expected one of {}", ExecutorKind::NAMES.join(", ")))
}

impl ExecutorArgs {
    /// This task's shard of `--conffs-shards`, as a `--conffs` pattern.
    pub fn own_shard(&self, shards: &str) -> Result<String> {
        let index = self.shard_index.or_else(task_index).context(
            "--conffs-shards needs the task's index: --shard-index, or $VAUBAN_TASK_INDEX, \
             $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX",
        )?;
        Ok(shard::pick(shards, index)?)
    }

    /// `--base-digest`, checked.
    pub fn base_digest(&self) -> Result<Option<vauban_core::vauban_oci::Digest>> {
        self.base_digest
            .as_deref()
            .map(|d| {
                d.parse()
                    .with_context(|| format!("--base-digest {d}: not a digest"))
            })
            .transpose()
    }

    /// The executor asked (`--executor`, else the config's), `None` for local.
    pub fn executor(
        &self,
        config: &Config,
        config_path: &Path,
        log_dir: &Path,
        registry: bool,
    ) -> Result<Option<Executor>> {
        let settings = &config.configuration.executor;
        let kind = self.executor.unwrap_or_else(|| settings.kind());
        if self.dry_run && kind != ExecutorKind::Kubernetes {
            bail!(
                "--dry-run prints the Kubernetes Jobs a build would submit: it needs \
                 --executor kubernetes (or `executor: kind: kubernetes`), not {kind}"
            );
        }
        if kind == ExecutorKind::Local || self.images_only {
            return Ok(None);
        }
        if !registry {
            bail!(
                "--executor {kind} needs --registry HOST[:PORT]/NAMESPACE: the registry is where \
                 its tasks find the image they start from and leave the images they make"
            );
        }
        let build_id = build_id();
        let kube = (kind == ExecutorKind::Kubernetes)
            .then(|| kube_options(settings))
            .transpose()?;
        let config = std::path::absolute(config_path)?;
        let task = TaskCommand {
            vauban: match (&settings.vauban, &kube) {
                (Some(v), _) => v.clone(),
                // The image's own vauban, on its PATH.
                (None, Some(_)) => PathBuf::from("vauban"),
                (None, None) => {
                    std::env::current_exe().context("finding vauban's own executable")?
                }
            },
            config: match &kube {
                // The ConfigMap's `config.yml`, where the pod has it.
                Some(k) if k.config_map.is_some() => {
                    Path::new(vauban_kube::manifests::CONFIG_DIR).join("config.yml")
                }
                _ => config,
            },
            // A pod's store is its emptyDir ($VAUBAN_STORE).
            store: settings.store.clone().filter(|_| kube.is_none()),
            build_id: build_id.clone(),
            jobs: None,
            pass_authfile: kube.is_none(),
        };
        let backend: Box<dyn vauban_core::executor::Backend> = match kind {
            ExecutorKind::Slurm => {
                let s = &settings.slurm;
                Box::new(Slurm::new(SlurmOptions {
                    partition: s.partition.clone(),
                    account: s.account.clone(),
                    time: s.time.clone(),
                    cpus_per_task: s.cpus_per_task,
                    mem: s.mem.clone(),
                    work_dir: s
                        .work_dir
                        .clone()
                        .unwrap_or_else(|| default_work_dir(log_dir))
                        .join(&build_id),
                })?)
            }
            ExecutorKind::Kubernetes => {
                let opts = kube.expect("made above for kubernetes");
                if self.dry_run {
                    Box::new(NotSubmitting(kind))
                } else {
                    Box::new(vauban_kube::KubeBackend::new(opts)?)
                }
            }
            ExecutorKind::Local => unreachable!("handled above"),
        };
        let shard_size = self.shard_size.map(|n| n as usize).or(settings.shard_size);
        Ok(Some(Executor {
            backend,
            shard_size,
            task,
        }))
    }
}

/// The Kubernetes options: `executor: kubernetes:` of the config, each key
/// the lower-case name of a `$VAUBAN_KUBE_*` variable, the variable winning.
pub fn kube_options(
    settings: &vauban_core::config::ExecutorConfig,
) -> Result<vauban_kube::KubeOptions> {
    Ok(vauban_kube::KubeOptions::from_vars(|name| {
        std::env::var(name).ok().or_else(|| {
            let key = name.strip_prefix("VAUBAN_KUBE_")?.to_ascii_lowercase();
            settings.kubernetes.get(&key).map(|v| v.value.clone())
        })
    })?)
}

/// The backend of `--dry-run`: what the build would submit is printed
/// before; nothing is.
struct NotSubmitting(ExecutorKind);

impl vauban_core::executor::Backend for NotSubmitting {
    fn kind(&self) -> ExecutorKind {
        self.0
    }
    fn submit(
        &mut self,
        job: &vauban_core::executor::JobSpec,
    ) -> vauban_core::Result<vauban_core::executor::JobId> {
        Err(vauban_core::Error::InvalidArgument {
            argument: "--dry-run".into(),
            reason: format!("{} would have been submitted", job.name),
        })
    }
    fn resubmit(
        &mut self,
        job: &vauban_core::executor::JobSpec,
        _: usize,
    ) -> vauban_core::Result<vauban_core::executor::JobId> {
        self.submit(job)
    }
    fn poll(
        &mut self,
        _: &vauban_core::executor::JobId,
    ) -> vauban_core::Result<std::collections::BTreeMap<usize, vauban_core::executor::TaskState>>
    {
        Ok(Default::default())
    }
    fn output(
        &mut self,
        _: &vauban_core::executor::JobId,
        _: usize,
    ) -> vauban_core::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn cancel(&mut self, _: &vauban_core::executor::JobId) -> vauban_core::Result<()> {
        Ok(())
    }
}

/// A build's id for its jobs: the time (seconds since the epoch) and this
/// process, lower-case hexadecimal.
fn build_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs:x}-{:x}", std::process::id())
}

/// Where the tasks' outputs are when nothing else is said.
pub fn default_work_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("slurm")
}
