//! What a running build says, as it says it: its event lines (the worker's
//! `--events json` output, kept whole) and its log lines (those events
//! rendered for people, and the worker's standard error). Each line goes to
//! its file (`STATE/builds/ID/events.jsonl`, `log.txt`) under one lock, then
//! a broadcast wakes the followers, who read the files: a reader that comes
//! late, or after the end, reads the same lines in the same order, without
//! gap or repeat, and memory does not grow with the log (only the last
//! lines are kept, for notifications and the original's `/status`).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::AsyncBufReadExt;
use tokio::sync::broadcast;

/// Which stream of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The event lines (JSON).
    Events,
    /// The log lines (text).
    Log,
}

impl Feed {
    /// The file of this stream in a build's directory.
    pub fn file(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            Feed::Events => "events.jsonl",
            Feed::Log => "log.txt",
        })
    }
}

/// How many log lines are kept in memory per running build.
pub const TAIL: usize = 150;

/// One running build's files and followers.
struct Open {
    events: std::io::BufWriter<std::fs::File>,
    log: std::io::BufWriter<std::fs::File>,
    tail: VecDeque<String>,
    done: bool,
    wake: broadcast::Sender<()>,
}

/// Every running build's lines.
#[derive(Default)]
pub struct Hub {
    builds: Mutex<HashMap<String, Open>>,
}

impl Hub {
    /// Starts build `id`'s files in `dir`.
    pub fn open(&self, id: &str, dir: &Path) -> std::io::Result<()> {
        let create = |s: Feed| -> std::io::Result<_> {
            Ok(std::io::BufWriter::new(std::fs::File::create(s.file(dir))?))
        };
        let (wake, _) = broadcast::channel(16);
        let open = Open {
            events: create(Feed::Events)?,
            log: create(Feed::Log)?,
            tail: VecDeque::with_capacity(TAIL),
            done: false,
            wake,
        };
        self.lock().insert(id.to_string(), open);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a line to a stream of build `id`.
    pub fn push(&self, id: &str, stream: Feed, line: &str) -> std::io::Result<()> {
        let mut builds = self.lock();
        let Some(b) = builds.get_mut(id) else {
            return Ok(());
        };
        let file = match stream {
            Feed::Events => &mut b.events,
            Feed::Log => {
                if b.tail.len() == TAIL {
                    b.tail.pop_front();
                }
                b.tail.push_back(line.to_string());
                &mut b.log
            }
        };
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        file.flush()?;
        let _ = b.wake.send(());
        Ok(())
    }

    /// Build `id` ended: its files are complete; followers end at their end.
    pub fn close(&self, id: &str) {
        let mut builds = self.lock();
        if let Some(mut b) = builds.remove(id) {
            let _ = b.events.flush();
            let _ = b.log.flush();
            b.done = true;
            let _ = b.wake.send(());
        }
    }

    /// Whether build `id` runs here, and a receiver woken at its next line.
    fn watch(&self, id: &str) -> Option<broadcast::Receiver<()>> {
        self.lock().get(id).map(|b| b.wake.subscribe())
    }

    /// The last `n` log lines of build `id`, when it runs.
    pub fn tail(&self, id: &str, n: usize) -> Option<Vec<String>> {
        let builds = self.lock();
        let b = builds.get(id)?;
        Some(
            b.tail
                .iter()
                .skip(b.tail.len().saturating_sub(n))
                .cloned()
                .collect(),
        )
    }
}

/// The last `n` lines of a file (read from its end, whatever its size).
pub fn tail_of_file(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut start = len;
    let mut buf = Vec::new();
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let step = start.min(64 * 1024);
        start -= step;
        let mut chunk = vec![0; step as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut chunk).is_err() {
            return Vec::new();
        }
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Whether a build not running here is over (or may still start).
pub trait Ended: Send + Sync + 'static {
    /// `true` when build `id` is over (or unknown).
    fn ended(&self, id: &str) -> bool;
}

/// The lines of `stream` of build `id` (files in `dir`), numbered from 0,
/// from line `from` on: what is written, then what comes until the build
/// ends (`follow`), or only what is written.
pub fn lines(
    hub: Arc<Hub>,
    ended: Arc<dyn Ended>,
    id: String,
    dir: PathBuf,
    stream: Feed,
    from: usize,
    follow: bool,
) -> impl Stream<Item = (usize, String)> + Send {
    struct State {
        hub: Arc<Hub>,
        ended: Arc<dyn Ended>,
        id: String,
        path: PathBuf,
        reader: Option<tokio::io::BufReader<tokio::fs::File>>,
        pending: String,
        next: usize,
        from: usize,
        follow: bool,
    }
    let state = State {
        hub,
        ended,
        id,
        path: stream.file(&dir),
        reader: None,
        pending: String::new(),
        next: 0,
        from,
        follow,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            // Subscribe before reading, so a line written after the read
            // wakes us.
            let wake = s.hub.watch(&s.id);
            if s.reader.is_none() {
                if let Ok(f) = tokio::fs::File::open(&s.path).await {
                    s.reader = Some(tokio::io::BufReader::new(f));
                }
            }
            if let Some(reader) = &mut s.reader {
                match reader.read_line(&mut s.pending).await {
                    Ok(n) if n > 0 && s.pending.ends_with('\n') => {
                        let line = std::mem::take(&mut s.pending);
                        let line = line.trim_end_matches('\n').to_string();
                        let i = s.next;
                        s.next += 1;
                        if i < s.from {
                            continue;
                        }
                        return Some(((i, line), s));
                    }
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            // At the end of what is written.
            if !s.follow {
                return None;
            }
            match wake {
                Some(mut wake) => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), wake.recv()).await;
                }
                None if s.ended.ended(&s.id) => {
                    // Not running here and over: one more read for lines
                    // written just before the end, then stop.
                    if s.reader.is_some() {
                        if let Some(r) = &mut s.reader {
                            if r.read_line(&mut s.pending).await.unwrap_or(0) > 0 {
                                continue;
                            }
                        }
                    }
                    return None;
                }
                None => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    struct Never;
    impl Ended for Never {
        fn ended(&self, _: &str) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn followers_get_every_line_once_live_or_late() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::default());
        hub.open("b", dir.path()).unwrap();
        hub.push("b", Feed::Log, "one").unwrap();
        let follower = tokio::spawn(
            lines(
                hub.clone(),
                Arc::new(Never),
                "b".into(),
                dir.path().into(),
                Feed::Log,
                0,
                true,
            )
            .collect::<Vec<_>>(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        for l in ["two", "three"] {
            hub.push("b", Feed::Log, l).unwrap();
        }
        hub.push("b", Feed::Events, "{}").unwrap();
        assert_eq!(hub.tail("b", 2).unwrap(), ["two", "three"]);
        hub.close("b");
        let got = follower.await.unwrap();
        assert_eq!(
            got,
            [(0, "one".into()), (1, "two".into()), (2, "three".into())]
        );
        let late: Vec<_> = lines(
            hub.clone(),
            Arc::new(Never),
            "b".into(),
            dir.path().into(),
            Feed::Log,
            1,
            true,
        )
        .collect()
        .await;
        assert_eq!(late, [(1, "two".to_string()), (2, "three".into())]);
        assert_eq!(
            tail_of_file(&dir.path().join("log.txt"), 2),
            ["two", "three"]
        );
    }
}
