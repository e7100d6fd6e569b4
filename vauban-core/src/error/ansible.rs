//! What an `ansible-playbook` that failed said ([`AnsibleFailure`]), carried
//! whole by [`Error::AnsibleFailed`](super::Error::AnsibleFailed).

use std::path::PathBuf;

/// What [`Error::AnsibleFailed`](super::Error::AnsibleFailed) says (boxed: it is large).
#[derive(Debug, Clone)]
pub struct AnsibleFailure {
    /// The stage.
    pub stage: String,
    /// The host being built.
    pub host: String,
    /// The exit status of `ansible-playbook`.
    pub status: String,
    /// The failed task and host as Ansible printed them, when found.
    pub failure: Option<String>,
    /// The saved log.
    pub log: PathBuf,
    /// The last lines of output.
    pub tail: String,
}

impl AnsibleFailure {
    /// The message without the output's last lines: stage, host, status, failed task,
    /// log path.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "stage {} for host {}: ansible-playbook failed ({})",
            self.stage, self.host, self.status
        );
        if let Some(failure) = &self.failure {
            s.push_str(": ");
            s.push_str(failure);
        }
        s.push_str(&format!("; log: {}", self.log.display()));
        s
    }
}

impl std::fmt::Display for AnsibleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nlast lines of its output:\n{}",
            self.summary(),
            self.tail
        )
    }
}
