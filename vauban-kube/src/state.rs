//! Where each task of an Indexed Job is, read from the Job's status and its
//! pods, without the API server: what [`KubeBackend::poll`] returns.
//!
//! The Job's `completedIndexes` and `failedIndexes` are final: Kubernetes
//! lists an index as failed only once its retries (`backoffLimitPerIndex`)
//! are spent. Until then the newest pod of an index tells where it is; a
//! failed pod whose index is not listed failed is a retry coming, not an
//! end. A Job that failed as a whole (its deadline, `maxFailedIndexes`)
//! ends every index it did not complete.
//!
//! [`KubeBackend::poll`]: crate::KubeBackend

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use vauban_core::executor::TaskState;

/// The label (and annotation) Kubernetes gives each pod of an Indexed Job.
pub const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
/// The label Kubernetes gives each pod of a Job: the Job's name.
pub const JOB_NAME_LABEL: &str = "job-name";

/// Parses Kubernetes' index list: `1,3-5,7`. Whatever is not a number or a
/// range is left out.
pub fn parse_indexes(list: &str) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// The index of a pod of an Indexed Job: its label, else its annotation.
pub fn pod_index(pod: &Pod) -> Option<usize> {
    let meta = &pod.metadata;
    let from = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()?.get(INDEX_LABEL)?.parse::<usize>().ok()
    };
    from(&meta.labels).or_else(|| from(&meta.annotations))
}

/// A pod's phase (`Pending` when it has none yet).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Why a pod failed, as Kubernetes says it: the container's end
/// (`Error, exit code 1`, `OOMKilled, exit code 137`), else the pod's
/// reason (`Evicted: ...`, `DeadlineExceeded`).
pub fn failure_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref())
        });
    if let Some(t) = terminated {
        let reason = t.reason.as_deref().unwrap_or("terminated");
        let mut text = format!("{reason}, exit code {}", t.exit_code);
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(": ");
            text.push_str(m.trim());
        }
        return text;
    }
    match (
        status.and_then(|s| s.reason.as_deref()),
        status.and_then(|s| s.message.as_deref()),
    ) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "failed".to_owned(),
    }
}

/// The pods of index `index`, oldest first.
pub fn pods_of_index(pods: &[Pod], index: usize) -> Vec<&Pod> {
    let mut of: Vec<&Pod> = pods
        .iter()
        .filter(|p| pod_index(p) == Some(index))
        .collect();
    of.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    of
}

/// The condition that failed the Job as a whole (`Failed`, or
/// `FailureTarget` while its pods are being ended), as `reason: message`.
fn job_failure(job: &Job) -> Option<String> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True")
        .map(|c| match (c.reason.as_deref(), c.message.as_deref()) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.to_owned(),
            (None, Some(m)) => m.to_owned(),
            (None, None) => "the Job failed".to_owned(),
        })
}

/// The state of every task of `job` (indexes `0..completions`), from its
/// status and `pods` (those labelled with its name).
pub fn task_states(job: &Job, pods: &[Pod]) -> BTreeMap<usize, TaskState> {
    let tasks = job
        .spec
        .as_ref()
        .and_then(|s| s.completions)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let status = job.status.as_ref();
    let list = |f: Option<&String>| f.map(|s| parse_indexes(s)).unwrap_or_default();
    let completed = list(status.and_then(|s| s.completed_indexes.as_ref()));
    let failed = list(status.and_then(|s| s.failed_indexes.as_ref()));
    let job_failed = job_failure(job);
    (0..tasks)
        .map(|i| {
            let of = pods_of_index(pods, i);
            let newest = of.last().copied();
            let state = if completed.contains(&i) {
                TaskState::Succeeded
            } else if failed.contains(&i) {
                TaskState::Failed(
                    of.iter()
                        .rev()
                        .find(|p| phase(p) == "Failed")
                        .map_or_else(|| "failed".to_owned(), |p| failure_reason(p)),
                )
            } else if let Some(why) = &job_failed {
                TaskState::Failed(why.clone())
            } else {
                match newest.map(phase) {
                    Some("Running") => TaskState::Running,
                    Some("Succeeded") => TaskState::Succeeded,
                    // Failed but not listed failed: its retry is coming.
                    _ => TaskState::Pending,
                }
            };
            (i, state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, index: usize, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "labels": {"job-name": "j", INDEX_LABEL: index.to_string()},
            },
            "status": status,
        }))
        .unwrap()
    }

    fn job(completions: i32, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"completions": completions, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn failed_pod(name: &str, index: usize, created: &str) -> Pod {
        pod(
            name,
            index,
            created,
            json!({"phase": "Failed", "containerStatuses": [{
                "name": "vauban", "image": "v", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }]}),
        )
    }

    #[test]
    fn index_lists_are_read_with_their_ranges() {
        assert_eq!(
            parse_indexes("1,3-5,7").into_iter().collect::<Vec<_>>(),
            [1, 3, 4, 5, 7]
        );
        assert!(parse_indexes("").is_empty());
        assert_eq!(parse_indexes("x,2").into_iter().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_task_without_pod_is_pending_and_the_newest_pod_tells() {
        let pods = [
            pod(
                "j-0-a",
                0,
                "2026-01-01T00:00:00Z",
                json!({"phase": "Running"}),
            ),
            pod(
                "j-1-a",
                1,
                "2026-01-01T00:00:00Z",
                json!({"phase": "Pending"}),
            ),
        ];
        let states = task_states(&job(3, json!({})), &pods);
        assert_eq!(
            states.into_values().collect::<Vec<_>>(),
            [TaskState::Running, TaskState::Pending, TaskState::Pending]
        );
    }

    #[test]
    fn a_failed_pod_whose_index_is_retried_is_not_an_end() {
        let pods = [failed_pod("j-0-a", 0, "2026-01-01T00:00:00Z")];
        let states = task_states(&job(1, json!({"failed": 1})), &pods);
        assert_eq!(states[&0], TaskState::Pending);
        // The retry's pod is newer: it tells.
        let pods = [
            failed_pod("j-0-a", 0, "2026-01-01T00:00:00Z"),
            pod(
                "j-0-b",
                0,
                "2026-01-01T00:01:00Z",
                json!({"phase": "Running"}),
            ),
        ];
        assert_eq!(
            task_states(&job(1, json!({})), &pods)[&0],
            TaskState::Running
        );
    }

    #[test]
    fn listed_indexes_are_final_with_the_reason_of_their_last_pod() {
        let pods = [
            failed_pod("j-1-a", 1, "2026-01-01T00:00:00Z"),
            failed_pod("j-1-b", 1, "2026-01-01T00:01:00Z"),
        ];
        let status = json!({"completedIndexes": "0", "failedIndexes": "1"});
        let states = task_states(&job(2, status), &pods);
        assert_eq!(states[&0], TaskState::Succeeded);
        assert_eq!(states[&1], TaskState::Failed("Error, exit code 1".into()));
    }

    #[test]
    fn a_failed_job_ends_every_index_it_did_not_complete() {
        let status = json!({"completedIndexes": "1", "conditions": [{
            "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline",
        }]});
        let pods = [pod(
            "j-0-a",
            0,
            "2026-01-01T00:00:00Z",
            json!({"phase": "Running"}),
        )];
        let states = task_states(&job(2, status), &pods);
        assert_eq!(
            states[&0],
            TaskState::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into()
            )
        );
        assert_eq!(states[&1], TaskState::Succeeded);
    }

    #[test]
    fn a_pod_without_container_end_says_the_pod_reason() {
        let p = pod(
            "j-0-a",
            0,
            "2026-01-01T00:00:00Z",
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}),
        );
        assert_eq!(failure_reason(&p), "Evicted: low on disk");
    }
}
