//! Ansible's output: followed line by line from the stage's log file while the
//! playbook runs, sent as [`Event::AnsibleLine`]s, gathered into one
//! [`Event::AnsibleTask`] per task (its name and each host's result, what a
//! person follows; the lines carry `-v --diff`'s detail, which the log keeps),
//! and scanned for the task and host that failed (`TASK [name]`,
//! `fatal: [host]: FAILED! => {...}`).
//! A line's control characters are escaped ([`crate::printable`]) before it is
//! sent or scanned: what the events, the failure and the tail carry is safe
//! to print. The log file keeps the bytes as Ansible wrote them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::events::{Event, Events, TaskResult};

/// How many lines of output an error carries.
pub const TAIL_LINES: usize = 25;

/// A failure Ansible reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
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
pub struct Scanner {
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
    pub fn feed(&mut self, line: &str) {
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
    pub fn matched_no_host(&self) -> bool {
        self.plays > 0 && self.plays == self.plays_without_hosts
    }

    /// The first failure of `host`, if any.
    pub fn failure_of(&self, host: &str) -> Option<&Failure> {
        self.by_host.get(host)
    }

    /// The hosts that failed: those the recap counts failures for, or
    /// without a recap (Ansible stopped short) those of a `fatal:`/`failed:`
    /// line that was not ignored.
    pub fn failed_hosts(&self) -> std::collections::BTreeSet<String> {
        if self.recap_seen {
            return self.recap_failed.clone();
        }
        self.by_host.keys().cloned().collect()
    }

    /// The first failure seen, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The last [`TAIL_LINES`] lines.
    pub fn tail(&self) -> String {
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
fn header<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
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
fn result_message(rest: &str) -> Option<String> {
    let json = rest.split_once("=> ")?.1;
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let message = match value.get("msg")? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(crate::printable::escape(&message).into_owned())
}

/// Gathers each task's results from Ansible's lines: a task is done at the
/// next task, play or recap header, or at the end of the output.
#[derive(Debug, Default)]
pub struct Tasks {
    current: Option<String>,
    results: Vec<TaskResult>,
    /// The host of the last failure (an `...ignoring` after it takes it back).
    last_failed: Option<usize>,
}

impl Tasks {
    /// Feeds one line; a task that this line ends, with its results.
    pub fn feed(&mut self, line: &str) -> Option<(String, Vec<TaskResult>)> {
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
    pub fn finish(&mut self) -> Option<(String, Vec<TaskResult>)> {
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

/// Follows a log file that another process appends to, feeding each complete line to a
/// [`Scanner`] and echoing it with a prefix, until [`Follower::finish`].
pub struct Follower {
    done: Arc<AtomicBool>,
    handle: JoinHandle<Result<Scanner>>,
}

impl Follower {
    /// Starts following `log` (which must exist) in a thread; each line is an
    /// [`Event::AnsibleLine`] of `stage` for `host`.
    pub fn start(log: &Path, stage: String, host: String, events: Events) -> Result<Self> {
        let file = File::open(log).at("open", log)?;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let path = log.to_owned();
        let to = Lines {
            stage,
            host,
            events,
        };
        let handle = std::thread::Builder::new()
            .name("vauban-ansible-log".into())
            .spawn(move || follow(file, &path, &to, &flag))
            .at("spawn a thread for", log)?;
        Ok(Follower { done, handle })
    }

    /// Stops following once the file is read to its end, and returns what was seen.
    pub fn finish(self) -> Result<Scanner> {
        self.done.store(true, Ordering::Release);
        self.handle
            .join()
            .unwrap_or_else(|_| Ok(Scanner::default()))
    }
}

/// Where the lines go.
struct Lines {
    stage: String,
    host: String,
    events: Events,
}

impl Lines {
    fn task(&self, done: Option<(String, Vec<TaskResult>)>) {
        if let Some((task, results)) = done {
            self.events.emit(Event::AnsibleTask {
                stage: self.stage.clone(),
                task,
                results,
            });
        }
    }
}

fn follow(mut file: File, path: &Path, to: &Lines, done: &AtomicBool) -> Result<Scanner> {
    let mut scanner = Scanner::default();
    let mut tasks = Tasks::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read `done` before reading the file: after it is set, one more full read
        // drains what the writer left.
        let finished = done.load(Ordering::Acquire);
        loop {
            let n = file.read(&mut buf).at("read", path)?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                emit(&mut scanner, &mut tasks, &line[..line.len() - 1], to);
            }
        }
        if finished {
            if !pending.is_empty() {
                emit(&mut scanner, &mut tasks, &std::mem::take(&mut pending), to);
            }
            to.task(tasks.finish());
            return Ok(scanner);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one line, its control characters escaped ([`crate::printable`]): the
/// output shows the image's files (`--diff`) and whatever its programs print.
fn emit(scanner: &mut Scanner, tasks: &mut Tasks, line: &[u8], to: &Lines) {
    let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
    let line = crate::printable::escape_bytes(&line[..end]);
    to.events.emit(Event::AnsibleLine {
        stage: to.stage.clone(),
        host: to.host.clone(),
        line: line.to_string(),
    });
    to.task(tasks.feed(&line));
    scanner.feed(&line);
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

    #[test]
    fn tail_is_bounded() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let s = scan(&text);
        assert_eq!(s.tail().lines().count(), TAIL_LINES);
        assert!(s.tail().ends_with("line 99"));
    }

    /// Follows a log that `write` fills (stage `t.yml`, host `h`): what the
    /// scanner saw, and the lines sent.
    fn followed(write: impl FnOnce(&mut File)) -> (Scanner, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut w = File::create(&log).unwrap();
        let sink = Arc::new(crate::events::Collect::default());
        let follower =
            Follower::start(&log, "t.yml".into(), "h".into(), Events::to(sink.clone())).unwrap();
        write(&mut w);
        drop(w);
        let scanner = follower.finish().unwrap();
        let lines = sink
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::AnsibleLine { stage, host, line } => {
                    assert_eq!((stage.as_str(), host.as_str()), ("t.yml", "h"));
                    Some(line)
                }
                Event::AnsibleTask { .. } => None,
                other => panic!("{other:?}"),
            })
            .collect();
        (scanner, lines)
    }

    #[test]
    fn lines_and_failures_reach_the_events_escaped() {
        use std::io::Write;
        let (scanner, lines) = followed(|w| {
            w.write_all(b"-\x1b]0;pwned\x07\x1b[2J\xff\r\n").unwrap();
            w.write_all(b"TASK [t\xc2\x9b2J] *\r\n").unwrap();
            w.write_all(b"fatal: [h]: FAILED! => {\"msg\": \"bad \\u001b[31m\"}\n")
                .unwrap();
        });
        assert_eq!(lines[0], "-\\x1b]0;pwned\\x07\\x1b[2J\\xff");
        assert_eq!(lines[1], "TASK [t\\x9b2J] *");
        let failure = scanner.failure().unwrap();
        assert_eq!(failure.task.as_deref(), Some("t\\x9b2J"));
        assert_eq!(failure.message.as_deref(), Some("bad \\x1b[31m"));
        assert!(!scanner.tail().contains('\x1b'), "{:?}", scanner.tail());
    }

    #[test]
    fn follows_a_growing_file() {
        use std::io::Write;
        let (scanner, lines) = followed(|w| {
            write!(w, "TASK [one] ***\npartial").unwrap();
            std::thread::sleep(Duration::from_millis(120));
            write!(w, " line\nfatal: [h]: FAILED! => {{\"msg\": \"m\"}}").unwrap();
        });
        assert_eq!(
            scanner.tail(),
            "TASK [one] ***\npartial line\nfatal: [h]: FAILED! => {\"msg\": \"m\"}"
        );
        assert_eq!(scanner.failure().unwrap().task.as_deref(), Some("one"));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1], "partial line");
    }
}
