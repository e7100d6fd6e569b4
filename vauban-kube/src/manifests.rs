//! A [`JobSpec`] as a Kubernetes Indexed Job: one pod per task, each told
//! its index by `JOB_COMPLETION_INDEX`, retried by Kubernetes itself
//! (`backoffLimitPerIndex`); and [`dry_run`], the same Jobs as YAML
//! documents for `kubectl apply -f -`.
//!
//! What the pod grants, and why: vauban runs as root of the pod's own user
//! namespace (`hostUsers: false`), so it takes the sandbox's "real root"
//! path (no `newuidmap`, no subordinate ids: the pod's 65536 ids are the
//! image's) and every capability below is over namespaces the pod owns,
//! none over the node:
//! - `SYS_ADMIN`: `unshare` of the mount, pid, uts, ipc, cgroup and network
//!   namespaces of each sandbox, the overlay mount of the layer dirs
//!   (`fsopen`/`fsmount` or `mount(2)`), `pivot_root`, `mount_setattr`,
//!   the read-only bind of vauban's own executable, `proc`/`tmpfs`/`devpts`
//!   mounts inside;
//! - `NET_ADMIN`: bringing up `lo` in each sandbox's own network namespace
//!   (`SIOCSIFFLAGS`);
//! - the rest is `sandbox::ALLOWED_CAPABILITIES`, what the image's own
//!   processes keep (apt, dpkg, useradd, setcap): vauban can only pass on
//!   what it has.
//!
//! `procMount: Unmasked`: the kernel mounts a new `proc` in a pid namespace
//! only where the `/proc` it sees is fully visible, and the runtime's masked
//! paths (`/proc/kcore` under `/dev/null`...) make it not; vauban masks the
//! same paths again inside each sandbox (`sandbox::MASKED_FILES`). Allowed
//! only with `hostUsers: false` (and where the `ProcMountType` feature is
//! on: an API server without it drops the field, and the sandbox's `proc`
//! mount then fails).
//!
//! `seccompProfile: Unconfined`: the runtimes' default profiles return
//! `EPERM` for `keyctl` (vauban gives each sandbox a session keyring of its
//! own, as runc does) and, on some runtimes, for the new mount API. What a
//! build runs (the image's processes, the Ansible controller) is under
//! vauban's own seccomp filter (`sandbox::seccomp`).
//!
//! `appArmorProfile: Unconfined`: the runtimes' default AppArmor profile has
//! `deny mount`.
//!
//! `allowPrivilegeEscalation: false`: `no_new_privs`, no setuid or
//! file-capability gain on exec (nothing vauban runs as root of the pod
//! needs one). Kubernetes calls it void beside `CAP_SYS_ADMIN`, which on
//! the node could undo it, and its validation refuses the pair when the
//! capability is spelled `CAP_SYS_ADMIN`; spelled `SYS_ADMIN`, as here, it
//! passes. In the pod's user namespace the capability does not reach the
//! node, so the flag still holds; with `hostUsers` other than `false` it
//! does not: see [`KubeOptions::host_users`]. `readOnlyRootFilesystem: true` (the store,
//! `$HOME` and `/tmp` are emptyDirs: the overlay's upper dir cannot be on the
//! container's own overlay root anyway), and no service account token (a
//! build does not talk to the API server).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec as K8sJobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use vauban_core::executor::JobSpec;

use crate::error::{KubeError, Result};
use crate::options::KubeOptions;

/// The label the original vauban put on its Jobs: the build's id.
pub const JOB_ID_LABEL: &str = "vauban-job-id";
/// The label naming the master a Job builds.
pub const MASTER_LABEL: &str = "vauban.io/master";
/// The container's name (its logs are the task's events).
pub const CONTAINER: &str = "vauban";
/// Where the ConfigMap's `config.yml` is (`--config /config/config.yml`).
pub const CONFIG_DIR: &str = "/config";
/// The emptyDir holding the store and `$HOME`.
pub const WORK_DIR: &str = "/var/lib/vauban";
/// The store in it (`$VAUBAN_STORE`).
pub const STORE_DIR: &str = "/var/lib/vauban/store";
/// `$HOME` in it (vauban's cache, state and config directories).
pub const HOME_DIR: &str = "/var/lib/vauban/home";
/// Where the registry Secret is mounted.
pub const REGISTRY_AUTH_DIR: &str = "/var/run/vauban/registry";
/// The auth file in it (`$REGISTRY_AUTH_FILE`).
pub const REGISTRY_AUTH_FILE: &str = "/var/run/vauban/registry/auth.json";

/// The labels of a job's Job and pods.
pub fn labels(spec: &JobSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (JOB_ID_LABEL.to_owned(), label_value(&spec.build_id)),
        ("app.kubernetes.io/name".to_owned(), "vauban".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "build".to_owned()),
        (MASTER_LABEL.to_owned(), label_value(&spec.master)),
    ])
}

/// `s` as a label value: at most 63 characters, alphanumerics, `-`, `_`
/// and `.` inside, alphanumerics at the ends (others become `-`).
pub fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// The Indexed Job that runs every task of `spec`.
pub fn job(spec: &JobSpec, opts: &KubeOptions) -> Result<Job> {
    let invalid = |reason: String| KubeError::InvalidJob {
        job: spec.name.clone(),
        reason,
    };
    let tasks = i32::try_from(spec.tasks)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| invalid(format!("{} tasks: a Job has 1 to 2^31-1", spec.tasks)))?;
    if spec.argv.is_empty() {
        return Err(invalid("no command to run".into()));
    }
    let parallelism = opts
        .parallelism
        .map_or(tasks, |p| i32::try_from(p).unwrap_or(i32::MAX).min(tasks));
    let labels = labels(spec);
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(K8sJobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(tasks),
            parallelism: Some(parallelism),
            backoff_limit_per_index: Some(to_i32(opts.backoff_limit_per_index)),
            // A pod evicted (a node drained, a preemption) is replaced
            // without using up its index's retry.
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: Some("True".into()),
                    }]),
                    on_exit_codes: None,
                }],
            }),
            // A retry starts once its failed pod is gone: two pods of one
            // shard never push at the same time.
            pod_replacement_policy: Some("Failed".into()),
            ttl_seconds_after_finished: opts.ttl_seconds_after_finished.map(to_i32),
            active_deadline_seconds: opts
                .active_deadline_seconds
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod(spec, opts)),
            },
            ..K8sJobSpec::default()
        }),
        status: None,
    })
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn pod(spec: &JobSpec, opts: &KubeOptions) -> PodSpec {
    let mut volumes = vec![empty_dir("work"), empty_dir("tmp")];
    let mut mounts = vec![mount("work", WORK_DIR, false), mount("tmp", "/tmp", false)];
    if let Some(secret) = &opts.registry_secret {
        volumes.push(Volume {
            name: "registry-auth".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(vec![KeyToPath {
                    key: ".dockerconfigjson".into(),
                    path: "auth.json".into(),
                    ..KeyToPath::default()
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("registry-auth", REGISTRY_AUTH_DIR, true));
    }
    if let Some(map) = &opts.config_map {
        volumes.push(Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("config", CONFIG_DIR, true));
    }
    PodSpec {
        restart_policy: Some("Never".into()),
        host_users: opts.host_users,
        service_account_name: opts.service_account.clone(),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_selector: (!opts.node_selector.is_empty()).then(|| opts.node_selector.clone()),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            }),
            app_armor_profile: Some(AppArmorProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(opts.image.clone()),
            command: Some(spec.argv.clone()),
            env: Some(env(spec, opts)),
            env_from: opts.env_secret.as_ref().map(|s| {
                vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: s.clone(),
                        optional: Some(false),
                    }),
                    ..EnvFromSource::default()
                }]
            }),
            resources: resources(opts),
            security_context: Some(container_security(opts)),
            volume_mounts: Some(mounts),
            ..Container::default()
        }],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

fn env(spec: &JobSpec, opts: &KubeOptions) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    let mut env = vec![var("VAUBAN_STORE", STORE_DIR), var("HOME", HOME_DIR)];
    if opts.registry_secret.is_some() {
        env.push(var("REGISTRY_AUTH_FILE", REGISTRY_AUTH_FILE));
    }
    env.extend(spec.env.iter().map(|(k, v)| var(k, v)));
    env
}

fn resources(opts: &KubeOptions) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    if let Some(cpu) = &opts.cpu_request {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &opts.memory_request {
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    (!requests.is_empty()).then(|| ResourceRequirements {
        requests: Some(requests),
        ..ResourceRequirements::default()
    })
}

/// The capabilities the build container is given: the sandbox's own set,
/// and `SYS_ADMIN` and `NET_ADMIN` (see the module's doc).
pub fn capabilities() -> Vec<String> {
    let mut caps: Vec<String> = vauban_core::sandbox::ALLOWED_CAPABILITIES
        .iter_names()
        .map(|(name, _)| name.to_owned())
        .chain(["SYS_ADMIN".to_owned(), "NET_ADMIN".to_owned()])
        .collect();
    caps.sort();
    caps
}

fn container_security(opts: &KubeOptions) -> SecurityContext {
    SecurityContext {
        privileged: Some(false),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: Some(0),
        run_as_group: Some(0),
        run_as_non_root: Some(false),
        // Unmasked is refused by the API server without a user namespace.
        proc_mount: Some(
            if opts.user_namespaced() {
                "Unmasked"
            } else {
                "Default"
            }
            .into(),
        ),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: Some(capabilities()),
        }),
        ..SecurityContext::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The Jobs of `jobs` as YAML documents separated by `---`, for
/// `kubectl apply -f -` (apiVersion and kind included).
pub fn dry_run(jobs: &[JobSpec], opts: &KubeOptions) -> Result<String> {
    let mut out = String::new();
    for spec in jobs {
        let job = job(spec, opts)?;
        // serde_saphyr writes what it is given: the apiVersion and kind
        // come from k8s-openapi's serialization of `Job`.
        let yaml = serde_saphyr::to_string(&job).map_err(|source| KubeError::Yaml {
            source: Box::new(source),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
