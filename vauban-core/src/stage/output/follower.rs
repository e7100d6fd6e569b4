//! A log file followed while Ansible appends to it: each complete line escaped,
//! sent as an event, fed to the [`Scanner`] and the [`Tasks`].

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::events::{Event, Events, TaskResult};

use super::{Scanner, Tasks};

/// Follows a log file that another process appends to, feeding each complete line to a
/// [`Scanner`] and echoing it with a prefix, until [`Follower::finish`].
pub(crate) struct Follower {
    done: Arc<AtomicBool>,
    handle: JoinHandle<Result<Scanner>>,
}

impl Follower {
    /// Starts following `log` (which must exist) in a thread; each line is an
    /// [`Event::AnsibleLine`] of `stage` for `host`.
    pub(crate) fn start(log: &Path, stage: String, host: String, events: Events) -> Result<Self> {
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
    pub(crate) fn finish(self) -> Result<Scanner> {
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
