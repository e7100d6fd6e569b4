//! The crate's one error enum: what was asked (the Job, the namespace) and
//! what the cluster or the client said; it becomes vauban-core's
//! `Error::Executor` at the [`Backend`](vauban_core::executor::Backend)'s
//! edge, with a blame.

use std::path::PathBuf;

use vauban_core::executor::ExecutorKind;
use vauban_core::Blame;

/// A failure of the Kubernetes executor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// The kubeconfig named by the options could not be read or used.
    #[error("cannot use the kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    /// Neither a kubeconfig nor the pod's service account gave a cluster.
    #[error("cannot find a cluster (no usable kubeconfig, not in a pod): {source}")]
    Infer {
        /// Why.
        #[source]
        source: Box<kube::config::InferConfigError>,
    },
    /// The client could not be made from the configuration (its TLS
    /// material).
    #[error("cannot make a client for {server}: {source}")]
    Client {
        /// The API server's address.
        server: String,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server refused a request.
    #[error(
        "{verb} {what} in namespace {namespace}: the API server answered {code} {reason}: {message}"
    )]
    Api {
        /// `create`, `get`, `list`, `delete`, `read the log of`.
        verb: &'static str,
        /// `Job vauban-b1-conffs`, `the pods of Job vauban-b1-conffs`.
        what: String,
        /// The namespace.
        namespace: String,
        /// The HTTP status.
        code: u16,
        /// Its `reason` (`Forbidden`, `AlreadyExists`, `NotFound`).
        reason: String,
        /// Its `message`.
        message: String,
    },
    /// A request did not get an answer (connection, TLS, a body that is
    /// not the API's).
    #[error("{verb} {what} in namespace {namespace}: {source}")]
    Request {
        /// What was asked, as in [`KubeError::Api`].
        verb: &'static str,
        /// The object.
        what: String,
        /// The namespace.
        namespace: String,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
    /// Pods of a cancelled Job were still there when the wait ended.
    #[error(
        "Job {job} in namespace {namespace} was deleted, but after {seconds}s its pods are still there: {pods}"
    )]
    PodsRemain {
        /// The Job.
        job: String,
        /// The namespace.
        namespace: String,
        /// How long it waited.
        seconds: u64,
        /// The pods left.
        pods: String,
    },
    /// A [`JobSpec`](vauban_core::executor::JobSpec) that cannot be a Job.
    #[error("job {job}: {reason}")]
    InvalidJob {
        /// The job's name.
        job: String,
        /// Why.
        reason: String,
    },
    /// A `VAUBAN_KUBE_*` variable's value is not one.
    #[error("${variable}={value:?}: {reason}")]
    InvalidOption {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The manifests could not be written as YAML.
    #[error("cannot write the manifests as YAML: {source}")]
    Yaml {
        /// Why.
        #[source]
        source: Box<serde_saphyr::SerializeError>,
    },
    /// vauban's async runtime could not be started.
    #[error(transparent)]
    Runtime(Box<vauban_core::Error>),
}

impl KubeError {
    /// Wraps a client error of a request: the API's refusals apart.
    pub(crate) fn of_request(
        verb: &'static str,
        what: impl Into<String>,
        namespace: &str,
        e: kube::Error,
    ) -> Self {
        match e {
            kube::Error::Api(status) => KubeError::Api {
                verb,
                what: what.into(),
                namespace: namespace.to_owned(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            source => KubeError::Request {
                verb,
                what: what.into(),
                namespace: namespace.to_owned(),
                source: Box::new(source),
            },
        }
    }

    /// The HTTP status of an API refusal.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Who has to act: the site for access, quotas, a missing namespace or
    /// an unreachable server; the user for what was asked (a Job that
    /// exists, options the API refuses); vauban for the rest.
    pub fn blame(&self) -> Blame {
        match self {
            KubeError::Kubeconfig { .. } | KubeError::Infer { .. } | KubeError::Client { .. } => {
                Blame::Environment
            }
            KubeError::Api { code, .. } => match code {
                400 | 409 | 422 => Blame::User,
                _ => Blame::Environment,
            },
            KubeError::Request { .. } | KubeError::PodsRemain { .. } => Blame::Environment,
            KubeError::InvalidJob { .. } | KubeError::InvalidOption { .. } => Blame::User,
            KubeError::Yaml { .. } => Blame::Internal,
            KubeError::Runtime(e) => e.blame(),
        }
    }
}

impl From<KubeError> for vauban_core::Error {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::Runtime(inner) => *inner,
            e => vauban_core::Error::Executor {
                executor: ExecutorKind::Kubernetes,
                blame: e.blame(),
                message: chain(&e),
            },
        }
    }
}

/// The message and its sources, `: `-joined, each once (kube's errors
/// repeat their source in their own message).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The crate's results.
pub type Result<T, E = KubeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, reason: &str) -> KubeError {
        KubeError::Api {
            verb: "create",
            what: "Job vauban-b1-conffs".into(),
            namespace: "builds".into(),
            code,
            reason: reason.into(),
            message: "nope".into(),
        }
    }

    #[test]
    fn refusals_are_blamed_on_who_acts() {
        assert_eq!(refused(409, "AlreadyExists").blame(), Blame::User);
        assert_eq!(refused(422, "Invalid").blame(), Blame::User);
        assert_eq!(refused(403, "Forbidden").blame(), Blame::Environment);
        assert_eq!(refused(404, "NotFound").blame(), Blame::Environment);
        assert_eq!(
            refused(503, "ServiceUnavailable").blame(),
            Blame::Environment
        );
    }

    #[test]
    fn the_core_error_names_the_job_the_namespace_and_the_answer() {
        let e: vauban_core::Error = refused(403, "Forbidden").into();
        let text = e.to_string();
        assert_eq!(
            text,
            "kubernetes: create Job vauban-b1-conffs in namespace builds: \
             the API server answered 403 Forbidden: nope"
        );
        assert_eq!(e.blame(), Blame::Environment);
    }
}
