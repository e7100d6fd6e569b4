//! The queue: builds wait in the history until a slot is free (`--jobs`
//! builds at once) and their master has no other build running (one build
//! per master at a time); an identical request to a queued build joins it
//! (the original's `coalesce`). A cancelled running build gets SIGTERM in
//! its worker's process group (the worker cleans its sandboxes up and ends
//! by the signal), SIGKILL if it lingers. On start, builds the history says
//! are running were cut short by the server's end: they are marked failed,
//! what is left of their workers killed, and the store's temp space emptied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::History;
use crate::error::{Result, ServeError};
use crate::live::{Feed, Hub, TAIL};
use crate::model::{Build, BuildRequest, Status, Trigger};
use crate::notify::Notifier;
use crate::worker::{self, WorkerCommand};

/// Why a build the server's end cut short failed.
pub const INTERRUPTED: &str = "interrupted: the server stopped";

/// How long a cancelled worker has to clean up before SIGKILL.
const CANCEL_GRACE: Duration = Duration::from_secs(20);

/// A running build (or one being started: no pid yet).
#[derive(Debug, Clone)]
struct Running {
    master: String,
    pid: Option<u32>,
    cancelled: bool,
}

/// The queue and its workers.
pub struct Runner {
    /// The history.
    pub history: Arc<History>,
    /// The live lines of running builds.
    pub hub: Arc<Hub>,
    cmd: WorkerCommand,
    /// `STATE/builds`.
    builds_dir: PathBuf,
    jobs: usize,
    running: Mutex<HashMap<String, Running>>,
    wake: Notify,
    notifier: Arc<Notifier>,
    /// The server is stopping: builds that end are interrupted, not cancelled.
    stopping: std::sync::atomic::AtomicBool,
    /// What runs when a build succeeded, before the history says so (the
    /// boot service names and deploys its boot files).
    pub after_success: std::sync::OnceLock<AfterSuccess>,
}

/// A hook run on each successful build.
pub type AfterSuccess = Box<dyn Fn(&crate::model::Build) + Send + Sync>;

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The build's id.
    pub id: String,
    /// Whether it joined an identical queued build.
    pub coalesced: bool,
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was queued: it never runs.
    Dequeued,
    /// It was running: its worker was told to stop.
    Stopping,
    /// It was already over.
    AlreadyOver,
}

impl Runner {
    /// A runner of `jobs` builds at once.
    pub fn new(
        history: Arc<History>,
        cmd: WorkerCommand,
        builds_dir: PathBuf,
        jobs: usize,
        notifier: Arc<Notifier>,
    ) -> Runner {
        Runner {
            history,
            hub: Arc::new(Hub::default()),
            cmd,
            builds_dir,
            jobs: jobs.max(1),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            notifier,
            stopping: std::sync::atomic::AtomicBool::new(false),
            after_success: std::sync::OnceLock::new(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory of build `id`'s files.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.builds_dir.join(id)
    }

    /// Queues `req` (checked by the caller), or joins an identical queued
    /// build.
    pub fn submit(&self, req: &BuildRequest, by: &str, trigger: Trigger) -> Result<Submitted> {
        // One submission at a time, so two identical requests coalesce.
        let _running = self.running();
        if let Some(id) = self.history.queued_like(req)? {
            return Ok(Submitted {
                id,
                coalesced: true,
            });
        }
        let id = ulid::Ulid::new().to_string();
        self.history.insert(&id, req, by, trigger, &now())?;
        self.wake.notify_one();
        Ok(Submitted {
            id,
            coalesced: false,
        })
    }

    /// Cancels build `id`.
    pub fn cancel(self: &Arc<Self>, id: &str) -> Result<Cancelled> {
        let mut running = self.running();
        if let Some(r) = running.get_mut(id) {
            r.cancelled = true;
            if let Some(pid) = r.pid {
                drop(running);
                self.stop(id, pid);
            }
            // Else it is being started: its launcher stops it.
            return Ok(Cancelled::Stopping);
        }
        match self.history.get(id)? {
            None => Err(ServeError::NotFound(id.to_string())),
            Some(b) if b.status.is_done() => Ok(Cancelled::AlreadyOver),
            Some(_) => {
                // Queued (it cannot be starting: that holds `running`).
                self.history.finish(
                    id,
                    Status::Cancelled,
                    &now(),
                    Some("cancelled before it ran"),
                    None,
                    None,
                )?;
                Ok(Cancelled::Dequeued)
            }
        }
    }

    /// SIGTERM to the worker's group; SIGKILL after the grace time if the
    /// same build still runs.
    fn stop(self: &Arc<Self>, id: &str, pid: u32) {
        tracing::info!(id, pid, "cancelling: SIGTERM to the worker's process group");
        signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(CANCEL_GRACE).await;
            if me.running().get(&id).is_some_and(|r| r.pid == Some(pid)) {
                tracing::warn!(id, pid, "the worker outlived SIGTERM: SIGKILL");
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
    }

    /// How many builds wait.
    pub fn queue_length(&self) -> usize {
        self.history.queued().map(|q| q.len()).unwrap_or(0)
    }

    /// How many builds run.
    pub fn running_count(&self) -> usize {
        self.running().len()
    }

    /// Starts queued builds while slots are free, until the process ends.
    pub async fn dispatch(self: Arc<Self>) {
        loop {
            if let Err(e) = self.start_ready() {
                tracing::error!("starting queued builds: {e:#}");
                crate::notify::report_internal(&e);
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    fn start_ready(self: &Arc<Self>) -> Result<()> {
        for build in self.history.queued()? {
            {
                let mut running = self.running();
                if running.len() >= self.jobs {
                    return Ok(());
                }
                if running.values().any(|r| r.master == build.request.name) {
                    continue;
                }
                // Claimed under the lock: a cancel sees it either queued or
                // starting.
                if !self.history.claim(&build.id, &now())? {
                    continue;
                }
                running.insert(
                    build.id.clone(),
                    Running {
                        master: build.request.name.clone(),
                        pid: None,
                        cancelled: false,
                    },
                );
            }
            self.launch(build)?;
        }
        Ok(())
    }

    fn launch(self: &Arc<Self>, build: Build) -> Result<()> {
        let dir = self.dir_of(&build.id);
        let started = std::fs::create_dir_all(&dir)
            .and_then(|()| self.hub.open(&build.id, &dir))
            .and_then(|()| worker::start(&self.cmd, &build.request, &dir));
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                self.running().remove(&build.id);
                self.hub.close(&build.id);
                let message = format!(
                    "cannot start the worker {} in {}: {e}",
                    self.cmd.program.display(),
                    dir.display()
                );
                tracing::error!(id = %build.id, "{message}");
                self.history.finish(
                    &build.id,
                    Status::Failed,
                    &now(),
                    Some(&message),
                    None,
                    None,
                )?;
                return Ok(());
            }
        };
        self.history
            .set_worker(&build.id, started.pid, &started.start_time)?;
        let cancelled = {
            let mut running = self.running();
            let r = running.get_mut(&build.id);
            r.map(|r| {
                r.pid = Some(started.pid);
                r.cancelled
            })
            .unwrap_or(false)
        };
        if cancelled {
            self.stop(&build.id, started.pid);
        }
        tracing::info!(id = %build.id, master = %build.request.name, pid = started.pid, "build started");
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = worker::follow(started, &build.id, &me.hub, &me.history).await;
            me.finished(&build.id, outcome);
        });
        Ok(())
    }

    fn finished(self: &Arc<Self>, id: &str, outcome: std::io::Result<worker::Outcome>) {
        let tail = self.hub.tail(id, TAIL).unwrap_or_default();
        let cancelled = self.running().get(id).is_some_and(|r| r.cancelled);
        let (status, error, step, host) = match &outcome {
            Ok(o) if o.code == Some(0) => (Status::Succeeded, None, None, None),
            _ if self.stopping.load(std::sync::atomic::Ordering::SeqCst) => {
                (Status::Failed, Some(INTERRUPTED.to_string()), None, None)
            }
            _ if cancelled => (Status::Cancelled, Some("cancelled".to_string()), None, None),
            Ok(o) => (
                Status::Failed,
                Some(o.error.clone().unwrap_or_else(|| match o.code {
                    Some(c) => format!("the worker ended with code {c}"),
                    None => "the worker was killed by a signal".into(),
                })),
                o.failed_step.clone(),
                o.failed_host.clone(),
            ),
            Err(e) => (
                Status::Failed,
                Some(format!("following the worker: {e}")),
                None,
                None,
            ),
        };
        // The log's last line says how the build ended (a cancelled one
        // would otherwise end on the step that was killed, "failed").
        let last = match &error {
            Some(e) if e != status.as_str() => format!("==> build {}: {e}", status.as_str()),
            _ => format!("==> build {}", status.as_str()),
        };
        if let Err(e) = self.hub.push(id, Feed::Log, &last) {
            tracing::warn!(id, "log of the build: {e}");
        }
        if status == Status::Succeeded {
            if let (Some(hook), Ok(Some(build))) = (self.after_success.get(), self.history.get(id))
            {
                hook(&build);
            }
        }
        if let Err(e) = self.history.finish(
            id,
            status,
            &now(),
            error.as_deref(),
            step.as_deref(),
            host.as_deref(),
        ) {
            tracing::error!("{e:#}");
            crate::notify::report_internal(&e);
        }
        // The history says it is over before it leaves `running`, so a
        // follower never sees it neither running nor over.
        self.hub.close(id);
        self.running().remove(id);
        tracing::info!(id, status = status.as_str(), "build ended");
        if let Ok(Some(mut build)) = self.history.get(id) {
            build.tail = tail;
            let previous = self
                .history
                .previous_done(&build.request.name, id)
                .ok()
                .flatten();
            self.notifier.build_ended(&build, previous);
        }
        self.wake.notify_one();
    }

    /// Builds that were running when the server ended: each marked failed,
    /// what is left of its worker stopped (SIGTERM to its process group, so
    /// it cleans its sandboxes up, then SIGKILL). Returns how many there were.
    pub fn recover(&self) -> Result<usize> {
        let stale = self.history.running()?;
        for marked in &stale {
            let id = &marked.id;
            if let (Some(pid), Some(start)) = (marked.pid, &marked.start) {
                let alive = || worker::process_start_time(pid).as_deref() == Some(start.as_str());
                if alive() {
                    tracing::warn!(id, pid, "stopping the worker of an interrupted build");
                    signal_group(pid, nix::sys::signal::Signal::SIGTERM);
                    let deadline = std::time::Instant::now() + CANCEL_GRACE;
                    while alive() && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            self.history
                .finish(id, Status::Failed, &now(), Some(INTERRUPTED), None, None)?;
            tracing::warn!(id, "build interrupted by the server's end");
        }
        Ok(stale.len())
    }

    /// Stops every running build (the server is stopping): SIGTERM to each
    /// worker, SIGKILL after `grace`; each is marked interrupted.
    pub async fn stop_all(&self, grace: Duration) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let running: Vec<(String, Option<u32>)> = {
            let mut running = self.running();
            running
                .iter_mut()
                .map(|(id, r)| {
                    r.cancelled = true;
                    (id.clone(), r.pid)
                })
                .collect()
        };
        for (_, pid) in &running {
            if let Some(pid) = pid {
                signal_group(*pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + grace;
        while self.running_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (id, pid) in running {
            if let Some(pid) = pid {
                if self.running().contains_key(&id) {
                    signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            if self.running().contains_key(&id) {
                let _ =
                    self.history
                        .finish(&id, Status::Failed, &now(), Some(INTERRUPTED), None, None);
            }
        }
    }

    /// Whether a build of `master` is running.
    pub fn is_running(&self, master: &str) -> bool {
        self.running().values().any(|r| r.master == master)
    }

    /// The worker command.
    pub fn command(&self) -> &WorkerCommand {
        &self.cmd
    }
}

impl crate::live::Ended for Runner {
    fn ended(&self, id: &str) -> bool {
        if self.running().contains_key(id) {
            return false;
        }
        !matches!(self.history.get(id), Ok(Some(b)) if !b.status.is_done())
    }
}

/// Signals the process group of leader `pid`.
fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Now, RFC 3339 (UTC, milliseconds).
pub fn now() -> String {
    now_at(chrono::Utc::now())
}

/// `t` as the history writes times (RFC 3339, UTC, milliseconds: they sort
/// as text).
pub fn now_at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
