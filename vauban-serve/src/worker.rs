//! One build's worker: `vauban build … --events json` as a process of its
//! own (the sandbox forks and may crash: the server never builds in its own
//! process), leading its own process group, under the server's user. Its
//! standard output is the event stream, kept as it is in
//! `STATE/builds/ID/events.jsonl` and rendered for people into `log.txt`
//! with its standard error; its steps go to the history as they start and
//! end; followers get every line live ([`crate::live`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::db::History;
use crate::live::{Feed, Hub};
use crate::model::{BuildRequest, Step};

/// How a worker is started: the program (a `vauban` binary) and the
/// arguments every build gets (`--store`, `build`, `--config`, ...); the
/// request's own come after.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The `vauban` executable.
    pub program: PathBuf,
    /// Arguments before the subcommand (`--store DIR`).
    pub global_args: Vec<String>,
    /// Arguments of `vauban build` every build gets (`--config`, `--ansible`,
    /// `--registry`, `--out`, key store options...).
    pub build_args: Vec<String>,
    /// Environment variables set for the worker (besides the server's).
    pub env: Vec<(String, String)>,
}

impl WorkerCommand {
    /// The whole argument list for `req`, its logs under `logs`.
    pub fn argv(&self, req: &BuildRequest, logs: &Path) -> Vec<String> {
        let mut argv = self.global_args.clone();
        argv.extend(["--events".to_string(), "json".into(), "build".into()]);
        argv.extend(self.build_args.iter().cloned());
        argv.push("--log-dir".into());
        argv.push(logs.display().to_string());
        argv.extend(req.build_args());
        argv
    }
}

/// How a worker ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The error it printed last.
    pub error: Option<String>,
    /// The first step that failed.
    pub failed_step: Option<String>,
    /// The host of that step, when it had one.
    pub failed_host: Option<String>,
}

/// A started worker.
pub struct Started {
    /// Its pid (and process group id).
    pub pid: u32,
    /// Its start time as `/proc/PID/stat` says (to recognise it later).
    pub start_time: String,
    child: tokio::process::Child,
}

/// Starts the worker for `req`; its files go under `dir`. The server's own
/// secrets (its Sentry DSN, its API token) are not passed on: a build runs
/// code we did not write.
pub fn start(cmd: &WorkerCommand, req: &BuildRequest, dir: &Path) -> std::io::Result<Started> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let argv = cmd.argv(req, &dir.join("logs"));
    let mut command = tokio::process::Command::new(&cmd.program);
    command
        .args(&argv)
        .env_remove("SENTRY_DSN")
        .env_remove("VAUBAN_TOKEN")
        .env_remove("VAUBAN_TOKEN_FILE")
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    Ok(Started {
        pid,
        start_time: process_start_time(pid).unwrap_or_default(),
        child,
    })
}

/// The start time (clock ticks since boot) of process `pid`, from
/// `/proc/PID/stat`: with the pid, it names one process for good.
pub fn process_start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_owned)
}

/// Follows the worker to its end: its lines to the hub (and so to its
/// files), its steps to the history.
pub async fn follow(
    started: Started,
    id: &str,
    hub: &Arc<Hub>,
    history: &History,
) -> std::io::Result<Outcome> {
    let Started { mut child, .. } = started;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let err_hub = hub.clone();
    let err_id = id.to_string();
    let errors = tokio::spawn(async move {
        let mut last_error = None;
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = vauban_core::printable::escape(&line).into_owned();
            if let Some(e) = line.strip_prefix("vauban: error: ") {
                last_error = Some(e.to_string());
            }
            if let Err(e) = err_hub.push(&err_id, Feed::Log, &line) {
                tracing::warn!(id = err_id, "writing the log: {e}");
            }
        }
        last_error
    });
    let mut steps = Steps::default();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        let line = vauban_core::printable::escape(&line).into_owned();
        hub.push(id, Feed::Events, &line)?;
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if steps.update(&event) {
            if let Err(e) = history.set_steps(id, &steps.list) {
                tracing::warn!("{e:#}");
            }
        }
        if let Some(text) = render(&event) {
            hub.push(id, Feed::Log, &text)?;
        }
    }
    let status = child.wait().await?;
    let mut outcome = Outcome {
        code: status.code(),
        error: errors.await.ok().flatten(),
        failed_step: steps.failed_step,
        failed_host: steps.failed_host,
    };
    if outcome.code != Some(0) && outcome.failed_host.is_none() {
        outcome.failed_host = outcome.error.as_deref().and_then(host_in_error);
    }
    Ok(outcome)
}

/// The step of a build that made a master's boot artifact is named this
/// and the master (its image: the artifact's digest).
pub const BOOT_STEP_PREFIX: &str = "boot files ";

/// A build's steps as its events tell them: the phase running (`rootfs
/// master-web`, from `step_started`) last, the results of the phases
/// before it (`step_result`: each stage of each host, built, cached or
/// failed).
#[derive(Debug, Default)]
pub struct Steps {
    /// The steps.
    pub list: Vec<Step>,
    /// The phase running, if any (its index in `list`).
    running: Option<usize>,
    /// Whether every result of the running phase so far came from the cache.
    all_cached: bool,
    /// The first step that failed.
    pub failed_step: Option<String>,
    /// Its host.
    pub failed_host: Option<String>,
}

impl Steps {
    /// Takes one event; whether the steps changed.
    pub fn update(&mut self, event: &serde_json::Value) -> bool {
        let s = |k: &str| event.get(k).and_then(|v| v.as_str());
        // A master's boot artifact: a step of its own, which `deploy
        // --build` looks up.
        if let ("boot_artifact", Some(master), Some(artifact)) =
            (s("event").unwrap_or_default(), s("master"), s("artifact"))
        {
            let result = Step {
                step: format!("{BOOT_STEP_PREFIX}{master}"),
                state: "built".into(),
                image: Some(artifact.to_owned()),
                seconds: None,
            };
            match self.running {
                Some(i) => {
                    self.list.insert(i, result);
                    self.running = Some(i + 1);
                }
                None => self.list.push(result),
            }
            return true;
        }
        let (Some(kind), Some(step)) = (s("event"), s("step")) else {
            return false;
        };
        let image = s("image").map(str::to_owned);
        let seconds = event.get("seconds").and_then(|v| v.as_f64());
        match kind {
            "step_started" => {
                self.list.push(Step {
                    step: step.to_string(),
                    state: "running".into(),
                    image: None,
                    seconds: None,
                });
                self.running = Some(self.list.len() - 1);
                self.all_cached = true;
            }
            "step_result" => {
                let state = s("outcome").unwrap_or("built").to_string();
                self.all_cached &= state == "cached";
                if state == "failed" && self.failed_step.is_none() {
                    self.failed_step = Some(step.to_string());
                    self.failed_host = host_of(step);
                }
                let result = Step {
                    step: step.to_string(),
                    state,
                    image,
                    seconds,
                };
                match self.running {
                    // Results go before the phase they belong to.
                    Some(i) => {
                        self.list.insert(i, result);
                        self.running = Some(i + 1);
                    }
                    None => self.list.push(result),
                }
            }
            "step_finished" => {
                let Some(i) = self.running.take() else {
                    return false;
                };
                let failed = s("outcome") == Some("failed");
                if failed && self.failed_step.is_none() {
                    self.failed_step = Some(step.to_string());
                }
                let phase = &mut self.list[i];
                // A phase is cached when each of its rows was.
                phase.state = match (failed, self.all_cached) {
                    (true, _) => "failed",
                    (false, true) => "cached",
                    (false, false) => "built",
                }
                .into();
                phase.image = image;
                phase.seconds = seconds;
            }
            _ => return false,
        }
        true
    }
}

/// The host an error message names (`... on host web02 ...`).
fn host_in_error(error: &str) -> Option<String> {
    // Only where vauban's errors name the host being built ("stage S for
    // host H: …", "… on host H"), never any word after "host" ("matches no
    // host of the inventory").
    let at = ["for host ", "on host "]
        .iter()
        .filter_map(|p| error.find(p).map(|i| i + p.len()))
        .min()?;
    let rest = &error[at..];
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    (!host.is_empty()).then_some(host)
}

/// The host of a conffs step (`conffs master-web/web01: web.yml` → `web01`).
fn host_of(step: &str) -> Option<String> {
    let subject = step.split(':').next()?;
    let (_, rest) = subject.split_once(' ')?;
    let (_, host) = rest.split_once('/')?;
    Some(host.trim().to_string())
}

/// An event as a log line for people (`None`: not worth a line).
pub fn render(event: &serde_json::Value) -> Option<String> {
    let s = |k: &str| event.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let secs = event.get("seconds").and_then(|v| v.as_f64()).unwrap_or(0.0);
    Some(match event.get("event")?.as_str()? {
        "ansible_line" => format!("[{}] {}", s("host"), s("line")),
        "step_started" => format!("==> {}", s("step")),
        "step_result" => format!("    {}: {} ({secs:.1} s)", s("step"), s("outcome")),
        "step_finished" => format!("==> {}: {} ({secs:.1} s)", s("step"), s("outcome")),
        "warning" => format!("warning: {}", s("message")),
        "exported" => format!("    wrote {}", s("path")),
        "registry" => format!("    {}", s("message")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_the_failed_host_come_from_the_events() {
        let mut steps = Steps::default();
        for line in [
            r#"{"time":"t","event":"step_started","step":"rootfs m","kind":"rootfs"}"#,
            r#"{"time":"t","event":"step_result","step":"rootfs m: a.yml","outcome":"cached","image":"sha256:ab","size":1,"seconds":0.5}"#,
            r#"{"time":"t","event":"step_finished","step":"rootfs m","outcome":"done","image":"sha256:ab","seconds":0.6}"#,
            r#"{"time":"t","event":"step_started","step":"conffs m","kind":"conffs"}"#,
            r#"{"time":"t","event":"ansible_line","stage":"a.yml","host":"web01","line":"ok"}"#,
            r#"{"time":"t","event":"step_result","step":"conffs m/web01: a.yml","outcome":"failed","image":null,"size":0,"seconds":2.0}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            steps.update(&v);
        }
        let states: Vec<_> = steps
            .list
            .iter()
            .map(|s| (s.step.as_str(), s.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("rootfs m: a.yml", "cached"),
                ("rootfs m", "cached"),
                ("conffs m/web01: a.yml", "failed"),
                ("conffs m", "running")
            ]
        );
        assert_eq!(steps.list[0].image.as_deref(), Some("sha256:ab"));
        assert_eq!(steps.failed_step.as_deref(), Some("conffs m/web01: a.yml"));
        assert_eq!(steps.failed_host.as_deref(), Some("web01"));
        assert_eq!(
            host_in_error("task \"x\" failed on host web-02.fr: boom").as_deref(),
            Some("web-02.fr")
        );
        assert_eq!(
            host_in_error("stage web.yml for host web01: ansible-playbook failed").as_deref(),
            Some("web01")
        );
        assert_eq!(
            host_in_error(
                "the conffs pattern \"nohost*\" of master master-web matches no host of the inventory"
            ),
            None
        );
    }

    #[test]
    fn the_worker_gets_one_argument_per_field() {
        let cmd = WorkerCommand {
            program: "/usr/bin/vauban".into(),
            global_args: vec!["--store".into(), "/s".into()],
            build_args: vec!["--config".into(), "/c.yml".into()],
            env: vec![],
        };
        let req = BuildRequest {
            name: "m".into(),
            stage: "all".into(),
            build_parents: -1,
            conffs: None,
            branch: None,
            no_cache: false,
            rebuild_stale: false,
            deploy: false,
        };
        assert_eq!(
            cmd.argv(&req, Path::new("/st/b/logs")),
            [
                "--store",
                "/s",
                "--events",
                "json",
                "build",
                "--config",
                "/c.yml",
                "--log-dir",
                "/st/b/logs",
                "--name",
                "m",
                "--stage",
                "all",
                "--build-parents",
                "-1"
            ]
        );
    }

    #[test]
    fn our_own_start_time_is_read() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(process_start_time(u32::MAX).is_none());
    }
}
