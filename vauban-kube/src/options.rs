//! What a site says about where and how its build pods run: the namespace,
//! vauban's container image, the Secrets and ConfigMap they mount, how many
//! run at once and for how long. [`KubeOptions::new`] holds the defaults;
//! [`KubeOptions::from_env`] reads them from `VAUBAN_KUBE_*` variables (what
//! the Helm chart gives `vauban serve`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{KubeError, Result};

/// How build Jobs are made and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// The namespace the Jobs are created in.
    pub namespace: String,
    /// vauban's container image (`registry.example/vauban:0.1.0`): its
    /// `vauban` runs the task's command line.
    pub image: String,
    /// The service account of the build pods (its token is not mounted:
    /// a build does not talk to the API server); `None` for the
    /// namespace's `default`.
    pub service_account: Option<String>,
    /// A Secret of type `kubernetes.io/dockerconfigjson` holding the
    /// registry's credentials: its `.dockerconfigjson` is mounted and named
    /// by `$REGISTRY_AUTH_FILE`, where vauban looks first.
    pub registry_secret: Option<String>,
    /// A Secret whose keys become the tasks' environment variables (such as
    /// `VAUBAN_KEYSTORE_KEY`): what must not be in a [`JobSpec`]'s `env`.
    ///
    /// [`JobSpec`]: vauban_core::executor::JobSpec
    pub env_secret: Option<String>,
    /// A ConfigMap holding `config.yml`, mounted read-only at
    /// [`CONFIG_DIR`](crate::manifests::CONFIG_DIR).
    pub config_map: Option<String>,
    /// How many tasks of a Job run at once; `None` for all of them.
    pub parallelism: Option<u32>,
    /// How long a finished Job and its pods (their logs) are kept.
    pub ttl_seconds_after_finished: Option<u32>,
    /// How long a Job may run before Kubernetes fails what is left of it.
    pub active_deadline_seconds: Option<u64>,
    /// How often Kubernetes retries a failed task (`backoffLimitPerIndex`):
    /// 1, once, as the coordinator does for a batch system that does not.
    pub backoff_limit_per_index: u32,
    /// The pods' `hostUsers`: `Some(false)`, the default, runs each pod in a
    /// user namespace of its own, so the capability the sandbox needs
    /// (`CAP_SYS_ADMIN`, to mount) is only over the pod's own namespaces.
    /// Anything else gives it over the node: do not, but on a cluster
    /// without user namespaces (Linux < 6.3, Kubernetes < 1.33) and only
    /// on nodes kept for builds.
    pub host_users: Option<bool>,
    /// The container's CPU request (`2`, `500m`).
    pub cpu_request: Option<String>,
    /// The container's memory request (`4Gi`).
    pub memory_request: Option<String>,
    /// The pods' `nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// The kubeconfig to read; `None` infers the configuration as
    /// `kubectl` does (`$KUBECONFIG`, `~/.kube/config`, then the pod's
    /// service account when vauban runs in the cluster).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context to use; `None` for its current one.
    pub context: Option<String>,
}

/// Finished Jobs are kept an hour: time to read a failed task's log.
pub const DEFAULT_TTL_SECONDS: u32 = 3600;
/// A Job may run six hours (a conffs of hundreds of hosts, a slow mirror).
pub const DEFAULT_ACTIVE_DEADLINE_SECONDS: u64 = 6 * 3600;

/// Where a pod finds its own namespace.
const IN_CLUSTER_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The variables [`KubeOptions::from_env`] reads, one per option.
pub const ENV_VARIABLES: [&str; 16] = [
    "VAUBAN_KUBE_NAMESPACE",
    "VAUBAN_KUBE_IMAGE",
    "VAUBAN_KUBE_SERVICE_ACCOUNT",
    "VAUBAN_KUBE_REGISTRY_SECRET",
    "VAUBAN_KUBE_ENV_SECRET",
    "VAUBAN_KUBE_CONFIG_MAP",
    "VAUBAN_KUBE_PARALLELISM",
    "VAUBAN_KUBE_TTL_SECONDS_AFTER_FINISHED",
    "VAUBAN_KUBE_ACTIVE_DEADLINE_SECONDS",
    "VAUBAN_KUBE_BACKOFF_LIMIT_PER_INDEX",
    "VAUBAN_KUBE_HOST_USERS",
    "VAUBAN_KUBE_CPU_REQUEST",
    "VAUBAN_KUBE_MEMORY_REQUEST",
    "VAUBAN_KUBE_NODE_SELECTOR",
    "VAUBAN_KUBE_KUBECONFIG",
    "VAUBAN_KUBE_CONTEXT",
];

impl KubeOptions {
    /// The defaults, for Jobs in `namespace` running `image`.
    pub fn new(namespace: impl Into<String>, image: impl Into<String>) -> Self {
        KubeOptions {
            namespace: namespace.into(),
            image: image.into(),
            service_account: None,
            registry_secret: None,
            env_secret: None,
            config_map: None,
            parallelism: None,
            ttl_seconds_after_finished: Some(DEFAULT_TTL_SECONDS),
            active_deadline_seconds: Some(DEFAULT_ACTIVE_DEADLINE_SECONDS),
            backoff_limit_per_index: 1,
            host_users: Some(false),
            cpu_request: None,
            memory_request: None,
            node_selector: BTreeMap::new(),
            kubeconfig: None,
            context: None,
        }
    }

    /// The options from the environment ([`ENV_VARIABLES`]):
    /// `VAUBAN_KUBE_IMAGE` is required; the namespace is
    /// `VAUBAN_KUBE_NAMESPACE`, else this pod's own (in a cluster), else
    /// `default`.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`KubeOptions::from_env`] on any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let image = get("VAUBAN_KUBE_IMAGE").ok_or_else(|| KubeError::InvalidOption {
            variable: "VAUBAN_KUBE_IMAGE",
            value: String::new(),
            reason: "vauban's container image is required".into(),
        })?;
        let namespace = get("VAUBAN_KUBE_NAMESPACE")
            .or_else(|| {
                std::fs::read_to_string(IN_CLUSTER_NAMESPACE)
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "default".to_owned());
        let mut o = KubeOptions::new(namespace, image);
        o.service_account = get("VAUBAN_KUBE_SERVICE_ACCOUNT");
        o.registry_secret = get("VAUBAN_KUBE_REGISTRY_SECRET");
        o.env_secret = get("VAUBAN_KUBE_ENV_SECRET");
        o.config_map = get("VAUBAN_KUBE_CONFIG_MAP");
        o.cpu_request = get("VAUBAN_KUBE_CPU_REQUEST");
        o.memory_request = get("VAUBAN_KUBE_MEMORY_REQUEST");
        o.kubeconfig = get("VAUBAN_KUBE_KUBECONFIG").map(PathBuf::from);
        o.context = get("VAUBAN_KUBE_CONTEXT");
        let number = |name: &'static str| -> Result<Option<u64>> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|e| KubeError::InvalidOption {
                            variable: name,
                            value: v.clone(),
                            reason: e.to_string(),
                        })
                })
                .transpose()
        };
        let small = |name: &'static str| -> Result<Option<u32>> {
            number(name)?
                .map(|n| {
                    u32::try_from(n).map_err(|e| KubeError::InvalidOption {
                        variable: name,
                        value: n.to_string(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        o.parallelism = small("VAUBAN_KUBE_PARALLELISM")?;
        if let Some(ttl) = small("VAUBAN_KUBE_TTL_SECONDS_AFTER_FINISHED")? {
            o.ttl_seconds_after_finished = Some(ttl);
        }
        if let Some(deadline) = number("VAUBAN_KUBE_ACTIVE_DEADLINE_SECONDS")? {
            o.active_deadline_seconds = Some(deadline);
        }
        if let Some(limit) = small("VAUBAN_KUBE_BACKOFF_LIMIT_PER_INDEX")? {
            o.backoff_limit_per_index = limit;
        }
        if let Some(v) = get("VAUBAN_KUBE_HOST_USERS") {
            o.host_users = match v.trim() {
                "true" => Some(true),
                "false" => Some(false),
                "unset" => None,
                _ => {
                    return Err(KubeError::InvalidOption {
                        variable: "VAUBAN_KUBE_HOST_USERS",
                        value: v,
                        reason: "true, false or unset".into(),
                    })
                }
            };
        }
        if let Some(v) = get("VAUBAN_KUBE_NODE_SELECTOR") {
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, val) = pair
                    .split_once('=')
                    .ok_or_else(|| KubeError::InvalidOption {
                        variable: "VAUBAN_KUBE_NODE_SELECTOR",
                        value: v.clone(),
                        reason: format!("{pair:?} is not KEY=VALUE"),
                    })?;
                o.node_selector
                    .insert(k.trim().to_owned(), val.trim().to_owned());
            }
        }
        Ok(o)
    }

    /// Whether the pods run in a user namespace of their own.
    pub fn user_namespaced(&self) -> bool {
        self.host_users == Some(false)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn config_keys_are_the_variables_names() {
        let mut from_vars: Vec<String> = ENV_VARIABLES
            .iter()
            .map(|v| v.trim_start_matches("VAUBAN_KUBE_").to_ascii_lowercase())
            .collect();
        let mut keys: Vec<String> = vauban_core::config::executor::KUBERNETES_KEYS
            .iter()
            .map(|k| k.to_string())
            .collect();
        from_vars.sort();
        keys.sort();
        assert_eq!(from_vars, keys);
    }

    use super::*;

    #[test]
    fn defaults_retry_once_in_a_user_namespace() {
        let o = KubeOptions::new("builds", "vauban:1");
        assert_eq!(o.backoff_limit_per_index, 1);
        assert_eq!(o.host_users, Some(false));
        assert!(o.user_namespaced());
        assert_eq!(o.ttl_seconds_after_finished, Some(3600));
        assert_eq!(o.active_deadline_seconds, Some(21600));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn every_option_is_read_from_its_variable() {
        let o = KubeOptions::from_vars(vars(&[
            ("VAUBAN_KUBE_NAMESPACE", "builds"),
            ("VAUBAN_KUBE_IMAGE", "vauban:1"),
            ("VAUBAN_KUBE_SERVICE_ACCOUNT", "vauban-build"),
            ("VAUBAN_KUBE_REGISTRY_SECRET", "reg"),
            ("VAUBAN_KUBE_ENV_SECRET", "keys"),
            ("VAUBAN_KUBE_CONFIG_MAP", "cfg"),
            ("VAUBAN_KUBE_PARALLELISM", "8"),
            ("VAUBAN_KUBE_TTL_SECONDS_AFTER_FINISHED", "60"),
            ("VAUBAN_KUBE_ACTIVE_DEADLINE_SECONDS", "7200"),
            ("VAUBAN_KUBE_BACKOFF_LIMIT_PER_INDEX", "0"),
            ("VAUBAN_KUBE_HOST_USERS", "unset"),
            ("VAUBAN_KUBE_CPU_REQUEST", "2"),
            ("VAUBAN_KUBE_MEMORY_REQUEST", "4Gi"),
            ("VAUBAN_KUBE_NODE_SELECTOR", "a=b, c=d"),
            ("VAUBAN_KUBE_KUBECONFIG", "/k"),
            ("VAUBAN_KUBE_CONTEXT", "ctx"),
        ]))
        .unwrap();
        let mut want = KubeOptions::new("builds", "vauban:1");
        want.service_account = Some("vauban-build".into());
        want.registry_secret = Some("reg".into());
        want.env_secret = Some("keys".into());
        want.config_map = Some("cfg".into());
        want.parallelism = Some(8);
        want.ttl_seconds_after_finished = Some(60);
        want.active_deadline_seconds = Some(7200);
        want.backoff_limit_per_index = 0;
        want.host_users = None;
        want.cpu_request = Some("2".into());
        want.memory_request = Some("4Gi".into());
        want.node_selector = BTreeMap::from([
            ("a".to_owned(), "b".to_owned()),
            ("c".to_owned(), "d".to_owned()),
        ]);
        want.kubeconfig = Some("/k".into());
        want.context = Some("ctx".into());
        assert_eq!(o, want);
    }

    #[test]
    fn a_missing_image_or_a_bad_number_names_its_variable() {
        let e = KubeOptions::from_vars(vars(&[])).unwrap_err();
        assert!(e.to_string().contains("VAUBAN_KUBE_IMAGE"), "{e}");
        let e = KubeOptions::from_vars(vars(&[
            ("VAUBAN_KUBE_IMAGE", "v"),
            ("VAUBAN_KUBE_PARALLELISM", "many"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("$VAUBAN_KUBE_PARALLELISM=\"many\""),
            "{e}"
        );
        let e = KubeOptions::from_vars(vars(&[
            ("VAUBAN_KUBE_IMAGE", "v"),
            ("VAUBAN_KUBE_NODE_SELECTOR", "a"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("not KEY=VALUE"), "{e}");
    }
}
