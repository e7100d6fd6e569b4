//! Where a build's independent steps run: here (`local`), or as batch jobs of
//! a cluster the site already has (`slurm`, `kubernetes`). The plan does not
//! change; only where its steps run. The registry is the exchange: a task
//! pulls its parent from it and pushes its images to it, and the coordinator
//! ([`coordinator`]) pulls the results back.
//!
//! A [`JobSpec`] is one batch of independent tasks (a Slurm job array, a
//! Kubernetes Indexed Job): every task runs the same `vauban` command line,
//! and picks its shard of hosts from its index ([`task_index`]). A
//! [`Backend`] submits, follows, retries and cancels such batches.

pub mod coordinator;
pub mod shard;
pub mod slurm;

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Result;

/// Where a build's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// In this process (the default).
    #[default]
    Local,
    /// As Slurm job arrays (`sbatch --array`).
    Slurm,
    /// As Kubernetes Indexed Jobs.
    Kubernetes,
}

impl ExecutorKind {
    /// The names `--executor` and `executor:` take.
    pub const NAMES: [&'static str; 3] = ["local", "slurm", "kubernetes"];

    /// Parses `local`, `slurm` or `kubernetes`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            "kubernetes" | "k8s" => Some(ExecutorKind::Kubernetes),
            _ => None,
        }
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::Kubernetes => "kubernetes",
        })
    }
}

/// The environment variables a task reads its index from: vauban's own (a
/// retry submitted as a job of one task sets it), Slurm's array index, then
/// Kubernetes' completion index.
pub const INDEX_VARIABLES: [&str; 3] = [
    "VAUBAN_TASK_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "JOB_COMPLETION_INDEX",
];

/// The index of the task this process is, from [`INDEX_VARIABLES`].
pub fn task_index() -> Option<usize> {
    INDEX_VARIABLES
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// One batch of independent tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's name: `vauban-<build>-<step>`, lower-case letters, digits
    /// and `-`, at most 63 bytes (a Kubernetes name, a Slurm job name).
    pub name: String,
    /// The build it belongs to (the original's `vauban-job-id` label).
    pub build_id: String,
    /// The master the step is of.
    pub master: String,
    /// The command every task runs, `vauban` first; a task finds its shard
    /// from its index ([`task_index`]).
    pub argv: Vec<String>,
    /// Environment variables set for every task (no secrets: those come
    /// from the backend's own means, a Kubernetes Secret, the node's files).
    pub env: Vec<(String, String)>,
    /// How many tasks (array size, completions).
    pub tasks: usize,
}

/// A submitted job, as its backend names it (a Slurm job id, a Job's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one task of a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a node.
    Pending,
    /// Running.
    Running,
    /// Ended with success.
    Succeeded,
    /// Ended otherwise: why, as the backend says it (`FAILED exit 1`,
    /// `NODE_FAIL`, `OOMKilled`).
    Failed(String),
}

impl TaskState {
    /// Whether it ended, either way.
    pub fn is_final(&self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed(_))
    }
}

/// A cluster's batch system, as the coordinator drives it.
pub trait Backend: Send {
    /// `slurm`, `kubernetes`.
    fn kind(&self) -> ExecutorKind;

    /// Submits every task of `job`.
    fn submit(&mut self, job: &JobSpec) -> Result<JobId>;

    /// Whether the batch system retries a failed task itself (a Kubernetes
    /// Job's `backoffLimitPerIndex`); else the coordinator calls [`resubmit`].
    ///
    /// [`resubmit`]: Backend::resubmit
    fn retries_itself(&self) -> bool {
        false
    }

    /// Submits task `index` of `job` again (a retry), as a new job whose one
    /// task still has index `index` (its [`task_index`]).
    fn resubmit(&mut self, job: &JobSpec, index: usize) -> Result<JobId>;

    /// The state of each task of `id` the batch system knows, by index (a
    /// task it does not list yet is pending).
    fn poll(&mut self, id: &JobId) -> Result<BTreeMap<usize, TaskState>>;

    /// Output lines task `index` of `id` wrote since the last call (its
    /// events, one JSON object a line).
    fn output(&mut self, id: &JobId, index: usize) -> Result<Vec<String>>;

    /// The last lines task `index` of `id` wrote on its stderr, when the
    /// batch system keeps them apart from its events (Slurm's `--error`).
    fn error_tail(&mut self, _id: &JobId, _index: usize) -> Vec<String> {
        Vec::new()
    }

    /// Cancels the job; returns once nothing of it runs any more.
    fn cancel(&mut self, id: &JobId) -> Result<()>;
}
