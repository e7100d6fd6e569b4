//! Each task's results gathered from Ansible's lines, one [`Event::AnsibleTask`]
//! per task: its name and every host's result.

use crate::events::TaskResult;

use super::scanner::{header, result_message};

/// Gathers each task's results from Ansible's lines: a task is done at the
/// next task, play or recap header, or at the end of the output.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    current: Option<String>,
    results: Vec<TaskResult>,
    /// The host of the last failure (an `...ignoring` after it takes it back).
    last_failed: Option<usize>,
}

impl Tasks {
    /// Feeds one line; a task that this line ends, with its results.
    pub(crate) fn feed(&mut self, line: &str) -> Option<(String, Vec<TaskResult>)> {
        if let Some(task) = header(line, "TASK [").or_else(|| header(line, "RUNNING HANDLER [")) {
            let done = self.finish();
            self.current = Some(task.to_owned());
            return done;
        }
        if line.starts_with("PLAY [") || line.starts_with("PLAY RECAP") {
            return self.finish();
        }
        self.current.as_ref()?;
        if line.trim() == "...ignoring" {
            if let Some(i) = self.last_failed.take() {
                self.results[i].status = "ignored".into();
            }
            return None;
        }
        if let Some(rest) = line.strip_prefix("included: ") {
            if let Some((_, hosts)) = rest.rsplit_once(" for ") {
                for host in hosts.split(", ") {
                    self.add(host.trim(), "included", None);
                }
            }
            return None;
        }
        let (status, rest) = line.split_once(": [")?;
        let status = match status {
            "ok" | "changed" | "skipping" => status,
            "fatal" | "failed" if rest.contains("UNREACHABLE!") => "unreachable",
            "fatal" | "failed" => "failed",
            _ => return None,
        };
        let end = rest.find(']')?;
        let host = rest[..end].split(" -> ").next().unwrap_or_default();
        let message = matches!(status, "failed" | "unreachable")
            .then(|| result_message(&rest[end + 1..]))
            .flatten();
        self.add(host, status, message);
        None
    }

    /// The task under way, if it has results.
    pub(crate) fn finish(&mut self) -> Option<(String, Vec<TaskResult>)> {
        self.last_failed = None;
        let task = self.current.take()?;
        let results = std::mem::take(&mut self.results);
        (!results.is_empty()).then_some((task, results))
    }

    /// A host's result: one per host and task, the worst of its items'.
    fn add(&mut self, host: &str, status: &str, message: Option<String>) {
        const RANK: [&str; 7] = [
            "included",
            "skipping",
            "ok",
            "changed",
            "ignored",
            "failed",
            "unreachable",
        ];
        let rank = |s: &str| RANK.iter().position(|r| *r == s).unwrap_or(0);
        let i = match self.results.iter().position(|r| r.host == host) {
            Some(i) => i,
            None => {
                self.results.push(TaskResult {
                    host: host.to_owned(),
                    status: status.to_owned(),
                    message: None,
                });
                self.results.len() - 1
            }
        };
        let r = &mut self.results[i];
        if rank(status) >= rank(&r.status) {
            r.status = status.to_owned();
        }
        if r.message.is_none() {
            r.message = message;
        }
        if matches!(status, "failed" | "unreachable") {
            self.last_failed = Some(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tasks of a run over two hosts, each with every host's result:
    /// items and `--diff` folded, ignored failures told apart.
    #[test]
    fn each_task_gathers_its_hosts_results() {
        let run = r#"PLAY [Web] *********
TASK [Gathering Facts] *****
ok: [web01]
ok: [web02]
TASK [Config] *****
--- before: /etc/web.conf
+++ after: /etc/web.conf
@@ -0,0 +1 @@
+port=80
changed: [web01] => {"changed": true, "dest": "/etc/web.conf"}
ok: [web02] => (item=a)
changed: [web02] => (item=b)
TASK [Maybe] *****
fatal: [web01]: FAILED! => {"changed": false, "msg": "tolerated"}
...ignoring
skipping: [web02]
TASK [Fail where asked] *****
fatal: [web02]: FAILED! => {"changed": false, "msg": "asked to fail"}
RUNNING HANDLER [restart] *****
changed: [web01 -> localhost]
PLAY RECAP *****
web01 : ok=4 changed=2 failed=0
"#;
        let mut tasks = Tasks::default();
        let mut done: Vec<(String, Vec<TaskResult>)> =
            run.lines().filter_map(|l| tasks.feed(l)).collect();
        done.extend(tasks.finish());
        let summary: Vec<String> = done
            .iter()
            .map(|(task, results)| {
                let r: Vec<String> = results
                    .iter()
                    .map(|r| match &r.message {
                        Some(m) => format!("{} {} ({m})", r.status, r.host),
                        None => format!("{} {}", r.status, r.host),
                    })
                    .collect();
                format!("{task}: {}", r.join(", "))
            })
            .collect();
        assert_eq!(
            summary,
            [
                "Gathering Facts: ok web01, ok web02",
                "Config: changed web01, changed web02",
                "Maybe: ignored web01 (tolerated), skipping web02",
                "Fail where asked: failed web02 (asked to fail)",
                "restart: changed web01",
            ]
        );
        assert_eq!(tasks.finish(), None);
    }
}
