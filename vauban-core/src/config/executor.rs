//! `configuration: executor:`: where builds run their conffs hosts by
//! default (`--executor` wins), and the batch system's settings.
//!
//! ```yaml
//! configuration:
//!   executor:
//!     kind: slurm            # local (the default), slurm or kubernetes
//!     shard_size: 10         # hosts a task
//!     vauban: /opt/vauban/bin/vauban   # vauban on the nodes
//!     store: /var/tmp/vauban           # the tasks' store on their node
//!     slurm:
//!       work_dir: /shared/vauban-jobs  # scripts and outputs: seen by nodes and here
//!       partition: build
//!       account: infra
//!       time: "1:00:00"
//!       cpus_per_task: 4
//!       mem: 8G
//!     kubernetes:
//!       namespace: vauban
//!       image: registry.example.org/vauban:0.1
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;

use super::configuration::invalid;
use super::location::{Located, Location};
use super::read::Reader;
use super::yaml::Node;
use super::KeyContext;
use crate::error::Result;
use crate::executor::ExecutorKind;

/// The keys of `slurm:`.
const SLURM_KEYS: [&str; 6] = [
    "work_dir",
    "partition",
    "account",
    "time",
    "cpus_per_task",
    "mem",
];

/// The keys of `kubernetes:`: the lower-case names of vauban-kube's
/// `$VAUBAN_KUBE_*` variables.
pub const KUBERNETES_KEYS: [&str; 16] = [
    "namespace",
    "image",
    "service_account",
    "registry_secret",
    "env_secret",
    "config_map",
    "parallelism",
    "ttl_seconds_after_finished",
    "active_deadline_seconds",
    "backoff_limit_per_index",
    "host_users",
    "cpu_request",
    "memory_request",
    "node_selector",
    "kubeconfig",
    "context",
];

/// `executor:` of `configuration:`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// `local`, `slurm` or `kubernetes`.
    #[schemars(with = "String")]
    pub kind: Option<Located<String>>,
    /// Hosts a task; by default the hosts spread over `--jobs` tasks, 4 to
    /// 50 a task.
    pub shard_size: Option<usize>,
    /// vauban's executable on the nodes [default: this one's path].
    pub vauban: Option<PathBuf>,
    /// The tasks' store on their node [default: the node's default store].
    pub store: Option<PathBuf>,
    /// `sbatch` settings.
    pub slurm: SlurmConfig,
    /// The Kubernetes Job's settings, as `vauban-kube` reads them
    /// (`namespace`, `image`, `service_account`, `registry_secret`, ...).
    #[schemars(with = "BTreeMap<String, String>")]
    pub kubernetes: BTreeMap<String, Located<String>>,
}

/// `executor: slurm:`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// Where the batch scripts and the tasks' output go: a directory the
    /// nodes and the submitting machine both see [default: a directory of
    /// the build's logs].
    pub work_dir: Option<PathBuf>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`.
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`.
    pub mem: Option<String>,
}

impl ExecutorConfig {
    /// The kind asked, `local` when none is.
    pub fn kind(&self) -> ExecutorKind {
        self.kind
            .as_ref()
            .and_then(|k| ExecutorKind::parse(k))
            .unwrap_or_default()
    }
}

/// Reads `executor:`.
pub(crate) fn executor(r: &Reader, node: &Node, path: &str) -> Result<ExecutorConfig> {
    let mut c = ExecutorConfig::default();
    for e in r.map(node, path)? {
        let vpath = Location::child_path(path, &e.key);
        let value = &e.value;
        match e.key.as_str() {
            "kind" => {
                let text = r.non_empty(value, &vpath)?;
                if ExecutorKind::parse(&text).is_none() {
                    return Err(invalid(
                        &text,
                        &format!(
                            "unknown executor `{}`: {}",
                            text.value,
                            ExecutorKind::NAMES.join(", ")
                        ),
                    ));
                }
                c.kind = Some(text);
            }
            "shard_size" => c.shard_size = Some(positive(&r.non_empty(value, &vpath)?)?),
            "vauban" => c.vauban = Some(absolute(&r.non_empty(value, &vpath)?)?),
            "store" => c.store = Some(absolute(&r.non_empty(value, &vpath)?)?),
            "slurm" => c.slurm = slurm(r, value, &vpath)?,
            "kubernetes" => {
                for k in r.map(value, &vpath)? {
                    let kpath = Location::child_path(&vpath, &k.key);
                    let text = r.non_empty(&k.value, &kpath)?;
                    if !KUBERNETES_KEYS.contains(&k.key.as_str()) {
                        return Err(invalid(
                            &text,
                            &format!(
                                "unknown key `{}` in `kubernetes:`; valid keys: {}",
                                k.key,
                                KUBERNETES_KEYS.join(", ")
                            ),
                        ));
                    }
                    c.kubernetes.insert(k.key.clone(), text);
                }
            }
            _ => r.ignored_key(e, path, KeyContext::Configuration),
        }
    }
    Ok(c)
}

fn slurm(r: &Reader, node: &Node, path: &str) -> Result<SlurmConfig> {
    let mut c = SlurmConfig::default();
    for e in r.map(node, path)? {
        let vpath = Location::child_path(path, &e.key);
        if !SLURM_KEYS.contains(&e.key.as_str()) {
            r.ignored_key(e, path, KeyContext::Configuration);
            continue;
        }
        let text = r.non_empty(&e.value, &vpath)?;
        match e.key.as_str() {
            "work_dir" => c.work_dir = Some(absolute(&text)?),
            "partition" => c.partition = Some(text.value),
            "account" => c.account = Some(text.value),
            "time" => c.time = Some(text.value),
            "cpus_per_task" => c.cpus_per_task = Some(positive(&text)? as u32),
            _ => c.mem = Some(text.value),
        }
    }
    Ok(c)
}

fn positive(text: &Located<String>) -> Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 && n <= u32::MAX as usize => Ok(n),
        _ => Err(invalid(
            text,
            &format!("`{}` is not a positive number", text.value),
        )),
    }
}

fn absolute(text: &Located<String>) -> Result<PathBuf> {
    let p = PathBuf::from(&text.value);
    if !p.is_absolute() {
        return Err(invalid(text, "an absolute path, as the nodes see it"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn an_executor_with_slurm_settings_is_read() {
        let config = Config::parse(
            "configuration:\n  executor:\n    kind: slurm\n    shard_size: 3\n    \
             store: /var/tmp/s\n    slurm:\n      partition: build\n      cpus_per_task: 2\n      \
             time: '30'\nbookworm:\n  image: x\n",
            "/t/config.yml",
        )
        .unwrap();
        let e = &config.configuration.executor;
        assert_eq!(e.kind(), crate::executor::ExecutorKind::Slurm);
        assert_eq!(e.shard_size, Some(3));
        assert_eq!(e.slurm.partition.as_deref(), Some("build"));
        assert_eq!(e.slurm.cpus_per_task, Some(2));
        assert_eq!(e.slurm.time.as_deref(), Some("30"));
    }

    #[test]
    fn a_bad_executor_names_its_line() {
        let err = Config::parse(
            "configuration:\n  executor:\n    kind: pbs\nbookworm:\n  image: x\n",
            "/t/config.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown executor `pbs`") && err.contains(":3:"),
            "{err}"
        );
        let err = Config::parse(
            "configuration:\n  executor:\n    store: relative\nbookworm:\n  image: x\n",
            "/t/config.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("absolute path"), "{err}");
        let err = Config::parse(
            "configuration:\n  executor:\n    kubernetes:\n      imagee: x\nbookworm:\n  image: x\n",
            "/t/config.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown key `imagee`") && err.contains(":4:"),
            "{err}"
        );
    }
}
