//! Ansible's lines scanned for what a failure says: the current task, the
//! first failure and each host's, the recap, the last lines.

use std::collections::VecDeque;

use super::TAIL_LINES;

/// A failure Ansible reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The task that failed (`TASK [name]` or `RUNNING HANDLER [name]`), if seen.
    pub task: Option<String>,
    /// The host in `fatal: [host]` / `failed: [host]`, if any.
    pub host: Option<String>,
    /// The `msg` of Ansible's result, or the text of an `ERROR!` line.
    pub message: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.task, &self.host) {
            (Some(task), Some(host)) => write!(f, "task {task:?} failed on host {host}")?,
            (Some(task), None) => write!(f, "task {task:?} failed")?,
            (None, Some(host)) => write!(f, "failed on host {host}")?,
            (None, None) => f.write_str("Ansible reported an error")?,
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Reads Ansible's lines one by one: remembers the current task, the first failure and
/// the last lines.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    task: Option<String>,
    failure: Option<Failure>,
    tail: VecDeque<String>,
    plays: u32,
    plays_without_hosts: u32,
    /// The first failure of each host.
    by_host: std::collections::BTreeMap<String, Failure>,
    /// Hosts the PLAY RECAP counts failed or unreachable tasks for.
    recap_failed: std::collections::BTreeSet<String>,
    in_recap: bool,
    /// Whether a PLAY RECAP was seen (it then says who failed).
    recap_seen: bool,
    /// The host of the last `fatal:` line (an `...ignoring` after it takes
    /// it back).
    last_fatal: Option<String>,
}

impl Scanner {
    /// Feeds one line (without its newline).
    pub(crate) fn feed(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
        if line.starts_with("PLAY RECAP") {
            self.in_recap = true;
            self.recap_seen = true;
            return;
        }
        if line.trim() == "...ignoring" {
            // `ignore_errors: true`: the failure just printed does not count.
            if let Some(host) = self.last_fatal.take() {
                self.by_host.remove(&host);
                if self.failure.as_ref().and_then(|f| f.host.as_ref()) == Some(&host) {
                    self.failure = self.by_host.values().next().cloned();
                }
            }
            return;
        }
        if self.in_recap {
            if let Some((host, counts)) = recap_line(line) {
                if counts
                    .iter()
                    .any(|(k, v)| (*k == "failed" || *k == "unreachable") && *v > 0)
                {
                    self.recap_failed.insert(host.to_owned());
                }
            }
            return;
        }
        if line.starts_with("PLAY [") {
            self.plays += 1;
            return;
        }
        if line.trim() == "skipping: no hosts matched" {
            self.plays_without_hosts += 1;
            return;
        }
        if let Some(task) = header(line, "TASK [").or_else(|| header(line, "RUNNING HANDLER [")) {
            self.task = Some(task.to_owned());
            return;
        }
        if let Some((host, rest)) = failed_host(line) {
            let failure = Failure {
                task: self.task.clone(),
                host: Some(host.to_owned()),
                message: result_message(rest),
            };
            self.last_fatal = Some(host.to_owned());
            self.by_host
                .entry(host.to_owned())
                .or_insert_with(|| failure.clone());
            if self.failure.as_ref().is_none_or(|f| f.host.is_none()) {
                self.failure = Some(failure);
            }
        } else if let Some(error) = line
            .strip_prefix("ERROR! ")
            .filter(|_| self.failure.as_ref().is_none_or(|f| f.host.is_none()))
        {
            if self.failure.is_none() {
                self.failure = Some(Failure {
                    task: self.task.clone(),
                    host: None,
                    message: Some(error.trim().to_owned()),
                });
            }
        }
    }

    /// Whether every play said "no hosts matched": the run did nothing.
    pub(crate) fn matched_no_host(&self) -> bool {
        self.plays > 0 && self.plays == self.plays_without_hosts
    }

    /// The first failure of `host`, if any.
    pub(crate) fn failure_of(&self, host: &str) -> Option<&Failure> {
        self.by_host.get(host)
    }

    /// The hosts that failed: those the recap counts failures for, or
    /// without a recap (Ansible stopped short) those of a `fatal:`/`failed:`
    /// line that was not ignored.
    pub(crate) fn failed_hosts(&self) -> std::collections::BTreeSet<String> {
        if self.recap_seen {
            return self.recap_failed.clone();
        }
        self.by_host.keys().cloned().collect()
    }

    /// The first failure seen, if any.
    pub(crate) fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The last [`TAIL_LINES`] lines.
    pub(crate) fn tail(&self) -> String {
        self.tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `web01   : ok=2 changed=1 unreachable=0 failed=1 ...` → the host and counts.
fn recap_line(line: &str) -> Option<(&str, Vec<(&str, u64)>)> {
    let (host, rest) = line.split_once(" : ")?;
    let counts: Vec<(&str, u64)> = rest
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    (!counts.is_empty()).then_some((host.trim(), counts))
}

/// `TASK [name] ****` → `name`.
pub(super) fn header<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(prefix)?;
    let end = rest.rfind(']')?;
    Some(&rest[..end])
}

/// `fatal: [host]: FAILED! => ...`, `failed: [host] (item=x) => ...`,
/// `fatal: [host]: UNREACHABLE! => ...` → `(host, rest)`.
fn failed_host(line: &str) -> Option<(&str, &str)> {
    let rest = line
        .strip_prefix("fatal: [")
        .or_else(|| line.strip_prefix("failed: ["))?;
    let end = rest.find(']')?;
    let host = &rest[..end];
    // `[web01 -> localhost]` when delegated: the host is the first name.
    let host = host.split(" -> ").next().unwrap_or(host);
    Some((host, &rest[end + 1..]))
}

/// The `msg` of the JSON result after `=> `, if it parses; escaped again, as
/// JSON's `\u001b` decodes to a control character.
pub(super) fn result_message(rest: &str) -> Option<String> {
    let json = rest.split_once("=> ")?.1;
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let message = match value.get("msg")? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(crate::printable::escape(&message).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED_RUN: &str = r#"
PLAY [Failing stage] ***********************************************************

TASK [Gathering Facts] *********************************************************
ok: [db01]

TASK [Leave a marker [with brackets]] ******************************************
changed: [db01] => {"changed": true}

TASK [This task always fails] **************************************************
fatal: [db01]: FAILED! => {"changed": false, "cmd": ["/bin/false"], "msg": "non-zero return code", "rc": 1}

NO MORE HOSTS LEFT *************************************************************

PLAY RECAP *********************************************************************
db01                       : ok=2    changed=1    unreachable=0    failed=1
"#;

    fn scan(text: &str) -> Scanner {
        let mut s = Scanner::default();
        text.lines().for_each(|l| s.feed(l));
        s
    }

    #[test]
    fn finds_the_failed_task_and_host() {
        let s = scan(FAILED_RUN);
        let f = s.failure().unwrap();
        assert_eq!(f.task.as_deref(), Some("This task always fails"));
        assert_eq!(f.host.as_deref(), Some("db01"));
        assert_eq!(f.message.as_deref(), Some("non-zero return code"));
        assert_eq!(
            f.to_string(),
            "task \"This task always fails\" failed on host db01: non-zero return code"
        );
        assert!(s.tail().ends_with("failed=1"));
    }

    #[test]
    fn brackets_in_task_names() {
        let mut s = Scanner::default();
        s.feed("TASK [Leave a marker [with brackets]] ****");
        s.feed("failed: [web01 -> localhost] (item=a) => {\"msg\": {\"k\": 1}}");
        let f = s.failure().unwrap();
        assert_eq!(f.task.as_deref(), Some("Leave a marker [with brackets]"));
        assert_eq!(f.host.as_deref(), Some("web01"));
        assert_eq!(f.message.as_deref(), Some("{\"k\":1}"));
    }

    #[test]
    fn unreachable_and_handlers() {
        let s = scan("RUNNING HANDLER [restart web] ***\nfatal: [web01]: UNREACHABLE! => {\"msg\": \"no route\", \"unreachable\": true}\n");
        let f = s.failure().unwrap();
        assert_eq!(f.task.as_deref(), Some("restart web"));
        assert_eq!(f.message.as_deref(), Some("no route"));
    }

    #[test]
    fn errors_before_any_task() {
        let s = scan("ERROR! the playbook: nope.yml could not be found\n");
        let f = s.failure().unwrap();
        assert_eq!(f.task, None);
        assert_eq!(f.host, None);
        assert_eq!(
            f.to_string(),
            "Ansible reported an error: the playbook: nope.yml could not be found"
        );
    }

    #[test]
    fn first_host_failure_wins_and_success_has_none() {
        let s = scan("TASK [a] *\nfatal: [h1]: FAILED! => {\"msg\": \"one\"}\nTASK [b] *\nfatal: [h2]: FAILED! => {\"msg\": \"two\"}\n");
        assert_eq!(s.failure().unwrap().host.as_deref(), Some("h1"));
        assert!(scan("TASK [a] *\nok: [h1]\n").failure().is_none());
    }

    #[test]
    fn a_run_whose_plays_all_skip_matched_no_host() {
        let none = "PLAY [Base] ****\nskipping: no hosts matched\n\nPLAY [Web] ****\nskipping: no hosts matched\n\nPLAY RECAP ****\n";
        assert!(scan(none).matched_no_host());
        let one = "PLAY [Base] ****\nskipping: no hosts matched\n\nPLAY [Web] ****\n\nTASK [x] ***\nok: [web01]\n";
        assert!(!scan(one).matched_no_host());
        assert!(!scan("").matched_no_host());
    }

    #[test]
    fn failures_and_the_recap_are_per_host() {
        let run = "TASK [a] *\nok: [web01]\nfatal: [db01]: FAILED! => {\"msg\": \"boom\"}\nTASK [b] *\nok: [web01]\n\nPLAY RECAP *\nweb01 : ok=2 changed=0 unreachable=0 failed=0\ndb01 : ok=0 changed=0 unreachable=0 failed=1\nweb02 : ok=0 changed=0 unreachable=1 failed=0\n";
        let s = scan(run);
        assert_eq!(s.failure_of("db01").unwrap().task.as_deref(), Some("a"));
        assert!(s.failure_of("web01").is_none());
        let failed: Vec<String> = s.failed_hosts().into_iter().collect();
        assert_eq!(failed, ["db01", "web02"]);
    }

    #[test]
    fn ignored_failures_do_not_count() {
        let run = "TASK [a] *\nfatal: [web01]: FAILED! => {\"msg\": \"x\"}\n...ignoring\nTASK [b] *\nok: [web01]\n";
        let s = scan(run);
        assert!(s.failed_hosts().is_empty(), "{:?}", s.failed_hosts());
        assert!(s.failure_of("web01").is_none());
        let with_recap = format!(
            "{run}\nPLAY RECAP *\nweb01 : ok=2 changed=0 unreachable=0 failed=0 ignored=1\n"
        );
        assert!(scan(&with_recap).failed_hosts().is_empty());
    }

    #[test]
    fn tail_is_bounded() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let s = scan(&text);
        assert_eq!(s.tail().lines().count(), TAIL_LINES);
        assert!(s.tail().ends_with("line 99"));
    }
}
