//! Following a job to its end: its tasks' events relayed into the build's
//! own (the same live view, recap and history as a local build), each
//! task's whole output kept in the build's log directory, a failed task
//! retried once (unless the batch system retries by itself), and everything
//! cancelled when the build is interrupted (SIGINT, SIGTERM, a `DELETE` of
//! the build service).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Backend, JobId, JobSpec, TaskState};
use crate::error::{Error, Result};
use crate::events::{Event, Events, Stamped};

/// How often the batch system is asked.
pub const POLL: Duration = Duration::from_millis(500);

/// What one task gave: the events it reported (its Ansible lines left out:
/// they went to the live view and its log), and why it failed, if it did
/// (a failed task may have built some of its hosts).
#[derive(Debug)]
pub struct TaskResult {
    /// Its events, of its last try.
    pub events: Vec<Event>,
    /// Why it failed.
    pub error: Option<Error>,
}

/// One task's place: the job it runs in now, its tries, its log.
struct Task {
    job: JobId,
    tries: u32,
    /// The batch system listed it once (a task it no longer lists ended).
    seen: bool,
    events: Vec<Event>,
    /// Its last lines that are not events (its error, on stderr).
    tail: Vec<String>,
    done: Option<TaskResult>,
    log: PathBuf,
}

/// Runs `job` on `backend` to its end; each task's result by index. `what`
/// names a task for messages (`conffs master-web: web01,web02`); `logs`
/// keeps each task's output (`<job>-<index>.log`).
pub fn run_job(
    backend: &mut dyn Backend,
    job: &JobSpec,
    events: &Events,
    logs: &Path,
    what: &dyn Fn(usize) -> String,
    interrupted: &dyn Fn() -> Option<i32>,
) -> Result<Vec<TaskResult>> {
    crate::private::dir(logs).map_err(|e| Error::io("create", logs, e))?;
    let id = backend.submit(job)?;
    events.emit(Event::JobSubmitted {
        executor: backend.kind().to_string(),
        job: id.to_string(),
        name: job.name.clone(),
        tasks: job.tasks,
        retry_of: None,
    });
    let mut tasks: Vec<Task> = (0..job.tasks)
        .map(|i| Task {
            job: id.clone(),
            tries: 0,
            seen: false,
            events: Vec::new(),
            tail: Vec::new(),
            done: None,
            log: logs.join(format!("{}-{i}.log", job.name)),
        })
        .collect();
    loop {
        if let Some(signal) = interrupted() {
            cancel_all(backend, &tasks);
            return Err(Error::BuildInterrupted { signal });
        }
        let mut states: BTreeMap<JobId, BTreeMap<usize, TaskState>> = BTreeMap::new();
        for t in tasks.iter().filter(|t| t.done.is_none()) {
            if !states.contains_key(&t.job) {
                let polled = backend.poll(&t.job)?;
                states.insert(t.job.clone(), polled);
            }
        }
        for (index, t) in tasks.iter_mut().enumerate() {
            if t.done.is_some() {
                continue;
            }
            // Output first: what a task wrote before it ended is read in the
            // round that sees it end.
            relay(backend, t, index, events)?;
            let state = match states.get(&t.job).and_then(|s| s.get(&index)) {
                Some(s) => {
                    t.seen = true;
                    s.clone()
                }
                None if t.seen => TaskState::Failed("no longer listed by the batch system".into()),
                None => TaskState::Pending,
            };
            match state {
                TaskState::Succeeded => {
                    t.done = Some(TaskResult {
                        events: std::mem::take(&mut t.events),
                        error: None,
                    })
                }
                TaskState::Failed(reason) if t.tries == 0 && !backend.retries_itself() => {
                    let reason = with_tail(backend, t, index, reason);
                    events.emit(Event::Warning {
                        message: format!(
                            "{} job {}: task {index} ({}) failed: {reason}; retried once",
                            backend.kind(),
                            t.job,
                            what(index)
                        ),
                    });
                    t.job = backend.resubmit(job, index)?;
                    events.emit(Event::JobSubmitted {
                        executor: backend.kind().to_string(),
                        job: t.job.to_string(),
                        name: job.name.clone(),
                        tasks: 1,
                        retry_of: Some(index),
                    });
                    t.tries += 1;
                    t.seen = false;
                    t.events.clear();
                    t.tail.clear();
                }
                TaskState::Failed(reason) => {
                    let reason = with_tail(backend, t, index, reason);
                    t.done = Some(TaskResult {
                        events: std::mem::take(&mut t.events),
                        error: Some(Error::TaskFailed {
                            executor: backend.kind(),
                            job: t.job.to_string(),
                            index,
                            what: what(index),
                            reason,
                            log: Some(t.log.clone()),
                        }),
                    });
                }
                TaskState::Pending | TaskState::Running => {}
            }
        }
        if tasks.iter().all(|t| t.done.is_some()) {
            return Ok(tasks
                .into_iter()
                .map(|t| t.done.expect("every task is done"))
                .collect());
        }
        std::thread::sleep(POLL);
    }
}

/// `reason` a task failed for, with the last lines it wrote that were no
/// event and its standard error's last lines.
fn with_tail(backend: &mut dyn Backend, t: &mut Task, index: usize, reason: String) -> String {
    t.tail.extend(backend.error_tail(&t.job, index));
    match t.tail.is_empty() {
        true => reason,
        false => format!("{reason}: {}", t.tail.join(" / ")),
    }
}

/// A task's new output: every line to its log; its events relayed (and
/// kept, but for Ansible's lines).
fn relay(backend: &mut dyn Backend, t: &mut Task, index: usize, events: &Events) -> Result<()> {
    let lines = backend.output(&t.job, index)?;
    if lines.is_empty() {
        return Ok(());
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&t.log)
        .map_err(|e| Error::io("open", &t.log, e))?;
    for line in lines {
        writeln!(log, "{line}").map_err(|e| Error::io("write", &t.log, e))?;
        let Ok(stamped) = serde_json::from_str::<Stamped>(&line) else {
            if !line.trim().is_empty() {
                t.tail.push(crate::printable::escape(&line).into_owned());
                if t.tail.len() > 5 {
                    t.tail.remove(0);
                }
            }
            continue;
        };
        let event = stamped.event;
        if !matches!(event, Event::AnsibleLine { .. }) {
            t.events.push(event.clone());
        }
        events.emit(event);
    }
    Ok(())
}

/// Cancels every job a task still runs in (each once); errors are logged:
/// the interruption is what the caller reports.
fn cancel_all(backend: &mut dyn Backend, tasks: &[Task]) {
    let mut jobs: Vec<&JobId> = tasks
        .iter()
        .filter(|t| t.done.is_none())
        .map(|t| &t.job)
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    jobs.dedup();
    for id in jobs {
        if let Err(e) = backend.cancel(id) {
            tracing::error!(job = %id, "cannot cancel: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ExecutorKind;
    use std::collections::HashMap;

    /// A batch system whose tasks go through scripted states.
    struct Scripted {
        /// Each job's states, one map a poll (the last one repeats).
        script: HashMap<String, Vec<BTreeMap<usize, TaskState>>>,
        polls: HashMap<String, usize>,
        submitted: Vec<String>,
        cancelled: Vec<String>,
        output: HashMap<(String, usize), Vec<String>>,
    }

    impl Backend for Scripted {
        fn kind(&self) -> ExecutorKind {
            ExecutorKind::Slurm
        }
        fn submit(&mut self, _job: &JobSpec) -> Result<JobId> {
            self.submitted.push("1".into());
            Ok(JobId("1".into()))
        }
        fn resubmit(&mut self, _job: &JobSpec, index: usize) -> Result<JobId> {
            let id = format!("retry{index}");
            self.submitted.push(id.clone());
            Ok(JobId(id))
        }
        fn poll(&mut self, id: &JobId) -> Result<BTreeMap<usize, TaskState>> {
            let n = self.polls.entry(id.0.clone()).or_default();
            let states = &self.script[&id.0];
            let s = states[(*n).min(states.len() - 1)].clone();
            *n += 1;
            Ok(s)
        }
        fn output(&mut self, id: &JobId, index: usize) -> Result<Vec<String>> {
            Ok(self
                .output
                .remove(&(id.0.clone(), index))
                .unwrap_or_default())
        }
        fn cancel(&mut self, id: &JobId) -> Result<()> {
            self.cancelled.push(id.0.clone());
            Ok(())
        }
    }

    fn job(tasks: usize) -> JobSpec {
        JobSpec {
            name: "vauban-b-conffs".into(),
            build_id: "b".into(),
            master: "m".into(),
            argv: vec!["vauban".into()],
            env: Vec::new(),
            tasks,
        }
    }

    fn states(s: &[(usize, TaskState)]) -> BTreeMap<usize, TaskState> {
        s.iter().cloned().collect()
    }

    #[test]
    fn a_failed_task_is_retried_once_and_its_events_relayed() {
        use TaskState::*;
        let line = serde_json::to_string(&Stamped::now(Event::Warning {
            message: "from the task".into(),
        }))
        .unwrap();
        let mut b = Scripted {
            script: HashMap::from([
                (
                    "1".into(),
                    vec![
                        states(&[(0, Running), (1, Pending)]),
                        states(&[(0, Succeeded), (1, Failed("NODE_FAIL".into()))]),
                    ],
                ),
                ("retry1".into(), vec![states(&[(1, Succeeded)])]),
            ]),
            polls: HashMap::new(),
            submitted: Vec::new(),
            cancelled: Vec::new(),
            output: HashMap::from([
                (("1".into(), 0), vec![line.clone(), "not json".into()]),
                (("retry1".into(), 1), vec![line]),
            ]),
        };
        let logs = tempfile::tempdir().unwrap();
        let results = run_job(
            &mut b,
            &job(2),
            &Events::default(),
            logs.path(),
            &|i| format!("shard {i}"),
            &|| None,
        )
        .unwrap();
        assert_eq!(b.submitted, ["1", "retry1"]);
        assert_eq!(results.len(), 2);
        for r in &results {
            assert!(r.error.is_none());
            assert_eq!(r.events.len(), 1, "the task's one event");
        }
        let log = std::fs::read_to_string(logs.path().join("vauban-b-conffs-0.log")).unwrap();
        assert!(log.contains("not json"), "every line is logged: {log}");
    }

    #[test]
    fn a_task_failing_twice_fails_and_an_interruption_cancels() {
        use TaskState::*;
        let failed = || states(&[(0, Failed("FAILED (NonZeroExitCode)".into()))]);
        let mut b = Scripted {
            script: HashMap::from([
                ("1".into(), vec![failed()]),
                ("retry0".into(), vec![failed()]),
            ]),
            polls: HashMap::new(),
            submitted: Vec::new(),
            cancelled: Vec::new(),
            output: HashMap::new(),
        };
        let logs = tempfile::tempdir().unwrap();
        let results = run_job(
            &mut b,
            &job(1),
            &Events::default(),
            logs.path(),
            &|_| "conffs m: web01".into(),
            &|| None,
        )
        .unwrap();
        let err = results[0].error.as_ref().unwrap().to_string();
        assert!(err.contains("task 0 (conffs m: web01) failed"), "{err}");
        assert!(err.contains("retry0"), "the retry's job is named: {err}");

        let mut b = Scripted {
            script: HashMap::from([("1".into(), vec![states(&[(0, Running)])])]),
            polls: HashMap::new(),
            submitted: Vec::new(),
            cancelled: Vec::new(),
            output: HashMap::new(),
        };
        let err = run_job(
            &mut b,
            &job(1),
            &Events::default(),
            logs.path(),
            &|_| String::new(),
            &|| Some(2),
        )
        .unwrap_err();
        assert!(matches!(err, Error::BuildInterrupted { signal: 2 }));
        assert_eq!(b.cancelled, ["1"]);
    }
}
