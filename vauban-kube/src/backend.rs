//! [`KubeBackend`]: the coordinator's [`Backend`] on a Kubernetes cluster,
//! through the `kube` client on vauban's runtime. A job is an Indexed Job
//! ([`manifests::job`]); its tasks are followed through the Job's status and
//! its pods ([`state`]); a task's output is its pods' logs, oldest pod
//! first, each line handed out once; a cancel deletes the Job and waits for
//! its pods to be gone.
//!
//! Every method blocks on [`vauban_core::runtime()`]: call them from a
//! thread that is not one of its workers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use vauban_core::executor::{Backend, ExecutorKind, JobId, JobSpec, TaskState};
use vauban_core::{Blame, Error};

use crate::error::{KubeError, Result};
use crate::manifests::{self, CONTAINER};
use crate::options::KubeOptions;
use crate::state::{self, INDEX_LABEL, JOB_NAME_LABEL};

/// How long [`Backend::cancel`] waits for a deleted Job's pods to go: their
/// grace period (30 s by default) and the garbage collector's delay.
pub const DEFAULT_CANCEL_WAIT: Duration = Duration::from_secs(120);
/// How often it looks meanwhile.
pub const DEFAULT_CANCEL_INTERVAL: Duration = Duration::from_secs(2);

/// The Kubernetes batch system, as the coordinator drives it.
pub struct KubeBackend {
    client: Client,
    opts: KubeOptions,
    /// Lines handed out so far, by job, index and pod.
    seen: HashMap<(String, usize), BTreeMap<String, usize>>,
    cancel_wait: Duration,
    cancel_interval: Duration,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("namespace", &self.opts.namespace)
            .field("image", &self.opts.image)
            .finish_non_exhaustive()
    }
}

fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let rt = vauban_core::runtime().map_err(|e| KubeError::Runtime(Box::new(e)))?;
    rt.block_on(fut)
}

impl KubeBackend {
    /// Connects to the cluster: `opts.kubeconfig` (and `opts.context`) when
    /// given, else as `kubectl` finds it (`$KUBECONFIG`, `~/.kube/config`,
    /// the pod's service account in the cluster).
    pub fn new(opts: KubeOptions) -> vauban_core::Result<Self> {
        Ok(Self::connect(opts)?)
    }

    fn connect(opts: KubeOptions) -> Result<Self> {
        // kube's TLS takes the process's default provider; rustls chooses
        // none when two are built (ring for kube, aws-lc-rs for reqwest,
        // which names its own). One already installed is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = block_on(async {
            let config = match &opts.kubeconfig {
                Some(path) => {
                    let file =
                        Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                            path: path.clone(),
                            source: Box::new(source),
                        })?;
                    let options = KubeConfigOptions {
                        context: opts.context.clone(),
                        ..KubeConfigOptions::default()
                    };
                    Config::from_custom_kubeconfig(file, &options)
                        .await
                        .map_err(|source| KubeError::Kubeconfig {
                            path: path.clone(),
                            source: Box::new(source),
                        })?
                }
                None if opts.context.is_some() => {
                    let options = KubeConfigOptions {
                        context: opts.context.clone(),
                        ..KubeConfigOptions::default()
                    };
                    Config::from_kubeconfig(&options).await.map_err(|source| {
                        KubeError::Kubeconfig {
                            path: "$KUBECONFIG or ~/.kube/config".into(),
                            source: Box::new(source),
                        }
                    })?
                }
                None => Config::infer().await.map_err(|source| KubeError::Infer {
                    source: Box::new(source),
                })?,
            };
            let server = config.cluster_url.to_string();
            // The client spawns its buffer's task: made on the runtime.
            Client::try_from(config).map_err(|source| KubeError::Client {
                server,
                source: Box::new(source),
            })
        })?;
        Ok(KubeBackend {
            client,
            opts,
            seen: HashMap::new(),
            cancel_wait: DEFAULT_CANCEL_WAIT,
            cancel_interval: DEFAULT_CANCEL_INTERVAL,
        })
    }

    /// How long [`Backend::cancel`] waits for the pods to go, and how often
    /// it looks ([`DEFAULT_CANCEL_WAIT`], [`DEFAULT_CANCEL_INTERVAL`]).
    pub fn with_cancel_wait(mut self, wait: Duration, interval: Duration) -> Self {
        self.cancel_wait = wait;
        self.cancel_interval = interval;
        self
    }

    /// The options it makes Jobs with.
    pub fn options(&self) -> &KubeOptions {
        &self.opts
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.opts.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.opts.namespace)
    }

    fn ns(&self) -> &str {
        &self.opts.namespace
    }

    /// The pods of Job `job`, or of its index `index`.
    async fn list_pods(&self, job: &str, index: Option<usize>) -> Result<Vec<Pod>> {
        let mut selector = format!("{JOB_NAME_LABEL}={job}");
        if let Some(i) = index {
            selector.push_str(&format!(",{INDEX_LABEL}={i}"));
        }
        let list = self
            .pods()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| {
                KubeError::of_request("list", format!("the pods of Job {job}"), self.ns(), e)
            })?;
        Ok(list.items)
    }

    async fn submit_async(&self, spec: &JobSpec) -> Result<JobId> {
        let job = manifests::job(spec, &self.opts)?;
        let created = self
            .jobs()
            .create(&PostParams::default(), &job)
            .await
            .map_err(|e| {
                KubeError::of_request("create", format!("Job {}", spec.name), self.ns(), e)
            })?;
        let name = created.metadata.name.unwrap_or_else(|| spec.name.clone());
        tracing::info!(job = %name, namespace = %self.ns(), tasks = spec.tasks, "Job created");
        Ok(JobId(name))
    }

    async fn poll_async(&self, id: &JobId) -> Result<BTreeMap<usize, TaskState>> {
        let job = self
            .jobs()
            .get(&id.0)
            .await
            .map_err(|e| KubeError::of_request("get", format!("Job {id}"), self.ns(), e))?;
        let pods = self.list_pods(&id.0, None).await?;
        Ok(state::task_states(&job, &pods))
    }

    /// Each started pod's log, oldest pod first, as `(pod, log, ended)`.
    async fn logs_async(&self, id: &JobId, index: usize) -> Result<Vec<(String, String, bool)>> {
        let pods = self.list_pods(&id.0, Some(index)).await?;
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            ..LogParams::default()
        };
        let mut out = Vec::new();
        for pod in state::pods_of_index(&pods, index) {
            let phase = state::phase(pod);
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            if phase == "Pending" {
                continue;
            }
            match self.pods().logs(&name, &params).await {
                Ok(log) => out.push((name, log, matches!(phase, "Succeeded" | "Failed"))),
                // The container has not started (400) or the pod is gone
                // (404): nothing to read, not an error.
                Err(kube::Error::Api(s)) if s.code == 400 || s.code == 404 => {
                    tracing::debug!(pod = %name, "no log yet: {}", s.message);
                }
                Err(e) => {
                    return Err(KubeError::of_request(
                        "read the log of",
                        format!("pod {name} (Job {id}, index {index})"),
                        self.ns(),
                        e,
                    ))
                }
            }
        }
        Ok(out)
    }

    async fn cancel_async(&self, id: &JobId) -> Result<()> {
        match self.jobs().delete(&id.0, &DeleteParams::background()).await {
            Ok(_) => {}
            // Already gone (its TTL, a previous cancel): its pods may not be.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(KubeError::of_request(
                    "delete",
                    format!("Job {id}"),
                    self.ns(),
                    e,
                ))
            }
        }
        let start = Instant::now();
        loop {
            let pods = self.list_pods(&id.0, None).await?;
            if pods.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= self.cancel_wait {
                let names: Vec<String> = pods.into_iter().filter_map(|p| p.metadata.name).collect();
                return Err(KubeError::PodsRemain {
                    job: id.0.clone(),
                    namespace: self.ns().to_owned(),
                    seconds: self.cancel_wait.as_secs(),
                    pods: names.join(", "),
                });
            }
            tokio::time::sleep(self.cancel_interval).await;
        }
    }
}

/// The lines of `log` not handed out yet (`seen` of them were), and how
/// many have been now: only whole lines while the pod runs, the last one
/// too once it `ended`.
pub fn new_lines(log: &str, seen: usize, ended: bool) -> (Vec<String>, usize) {
    let mut lines: Vec<&str> = log.split_inclusive('\n').collect();
    if !ended && lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    let fresh: Vec<String> = lines
        .iter()
        .skip(seen)
        .map(|l| l.trim_end_matches('\n').trim_end_matches('\r').to_owned())
        .collect();
    (fresh, lines.len().max(seen))
}

impl Backend for KubeBackend {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Kubernetes
    }

    fn submit(&mut self, job: &JobSpec) -> vauban_core::Result<JobId> {
        Ok(block_on(self.submit_async(job))?)
    }

    /// Kubernetes retries a failed task itself (`backoffLimitPerIndex`).
    fn retries_itself(&self) -> bool {
        true
    }

    fn resubmit(&mut self, job: &JobSpec, index: usize) -> vauban_core::Result<JobId> {
        Err(Error::Executor {
            executor: ExecutorKind::Kubernetes,
            message: format!(
                "Job {} index {index}: Kubernetes retries its tasks itself \
                 (backoffLimitPerIndex); a resubmit is not offered",
                job.name
            ),
            blame: Blame::Internal,
        })
    }

    fn poll(&mut self, id: &JobId) -> vauban_core::Result<BTreeMap<usize, TaskState>> {
        Ok(block_on(self.poll_async(id))?)
    }

    fn output(&mut self, id: &JobId, index: usize) -> vauban_core::Result<Vec<String>> {
        let logs = block_on(self.logs_async(id, index))?;
        let seen = self.seen.entry((id.0.clone(), index)).or_default();
        let mut out = Vec::new();
        for (pod, log, ended) in logs {
            let count = seen.entry(pod).or_default();
            let (fresh, now) = new_lines(&log, *count, ended);
            *count = now;
            out.extend(fresh);
        }
        Ok(out)
    }

    fn cancel(&mut self, id: &JobId) -> vauban_core::Result<()> {
        block_on(self.cancel_async(id))?;
        self.seen.retain(|(job, _), _| *job != id.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::new_lines;

    #[test]
    fn a_line_is_handed_out_once_and_whole() {
        let (lines, n) = new_lines("a\nb\npart", 0, false);
        assert_eq!((lines, n), (vec!["a".to_owned(), "b".to_owned()], 2));
        let (lines, n) = new_lines("a\nb\npartial\nc", 2, false);
        assert_eq!((lines, n), (vec!["partial".to_owned()], 3));
        let (lines, n) = new_lines("a\nb\npartial\nc", 3, true);
        assert_eq!((lines, n), (vec!["c".to_owned()], 4));
        let (lines, n) = new_lines("a\nb\npartial\nc", 4, true);
        assert_eq!((lines, n), (Vec::<String>::new(), 4));
    }

    #[test]
    fn an_empty_log_has_no_line() {
        assert_eq!(new_lines("", 0, true), (Vec::new(), 0));
    }
}
