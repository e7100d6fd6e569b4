//! How the CLI shows the event stream: for people (a bar per blob on a
//! terminal, plain lines otherwise: CI logs; of Ansible, a line per task with
//! each host's result, or with `-v` Ansible's own lines with their `--diff`,
//! on stdout; a line per host and stage), or as JSON lines on stdout
//! (`--events json`) for scripts, a build server and remote workers. In JSON
//! mode nothing else is written on stdout.
//!
//! What an event says may come from the build (Ansible's `--diff` shows the
//! image's files): vauban-core escapes it where it enters, and every line
//! printed here is escaped again as a last line of defence
//! ([`vauban_core::printable`]), so no control character of a build reaches
//! the terminal. In JSON mode serde escapes C0 controls; DEL and C1 controls,
//! which it leaves raw, are written as `\u00XX` (the same JSON value). Bars
//! are drawn only when stderr is a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vauban_core::events::{Event, EventSink, Stamped, TaskResult};
use vauban_core::printable::escape;
use vauban_oci::Digest;

use crate::commands::images::human_size;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsMode {
    /// Progress and lines for people.
    Human,
    /// One JSON object per line on stdout.
    Json,
}

/// How much of Ansible's output people see (the logs keep all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsibleOutput {
    /// Nothing (`--quiet`).
    Nothing,
    /// A line per task: its name and each host's result (the default).
    Tasks,
    /// Ansible's own lines, `-v --diff` (`-v`).
    Lines,
}

/// The CLI's event sink.
pub struct Renderer {
    mode: EventsMode,
    /// What of Ansible's output is shown.
    ansible: AnsibleOutput,
    bars: Option<(MultiProgress, Mutex<HashMap<Digest, ProgressBar>>)>,
    sizes: Mutex<HashMap<Digest, u64>>,
    stdout: Mutex<()>,
}

impl Renderer {
    /// A renderer in `mode` showing `ansible` of Ansible's output.
    pub fn new(mode: EventsMode, ansible: AnsibleOutput) -> Self {
        let bars = (mode == EventsMode::Human && std::io::stderr().is_terminal()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        Renderer {
            mode,
            ansible,
            bars,
            sizes: Mutex::new(HashMap::new()),
            stdout: Mutex::new(()),
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some((m, _)) = &self.bars {
            let _ = m.clear();
        }
    }

    /// A line for people on stderr (above the bars on a terminal), escaped.
    pub fn note(&self, line: &str) {
        let line = escape(line);
        match &self.bars {
            Some((m, _)) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// A result line: stdout for people, stderr in JSON mode (stdout is the
    /// event stream's); escaped.
    pub fn result(&self, line: &str) {
        let line = escape(line);
        match self.mode {
            EventsMode::Human => {
                let _guard = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
                println!("{line}");
            }
            EventsMode::Json => eprintln!("{line}"),
        }
    }

    fn json(&self, event: &Event) {
        let Ok(line) = serde_json::to_string(&Stamped::now(event.clone())) else {
            return;
        };
        let line = json_escape_controls(&line);
        let _guard = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    fn human(&self, event: &Event) {
        match event {
            Event::BlobStarted { digest, size } => self.blob_started(digest, *size),
            Event::BlobProgress { digest, done } => {
                if let Some((_, bars)) = &self.bars {
                    if let Some(b) = lock(bars).get(digest) {
                        b.set_position(*done);
                    }
                }
            }
            Event::BlobDone { digest, outcome } => self.blob_done(digest, outcome),
            Event::Registry { message } => self.note(message),
            Event::Warning { message } => self.note(&format!("warning: {message}")),
            Event::JobSubmitted {
                executor,
                job,
                name,
                tasks,
                retry_of,
            } => self.note(&match retry_of {
                Some(i) => format!("==> {executor} job {job} ({name}): task {i} again"),
                None => format!("==> {executor} job {job} ({name}): {tasks} task(s)"),
            }),
            Event::StageStarted { stage, host, base } if self.ansible == AnsibleOutput::Lines => {
                self.note(&format!("==> stage {stage} for {host} on {}", short(base)))
            }
            Event::AnsibleLine { stage, line, .. } if self.ansible == AnsibleOutput::Lines => {
                self.out(&format!("[stage {}] {}", escape(stage), escape(line)))
            }
            Event::AnsibleTask {
                stage,
                task,
                results,
            } if self.ansible == AnsibleOutput::Tasks => self.out(&format!(
                "[{}] {}: {}",
                escape(stage),
                escape(task),
                escape(&task_results(results))
            )),
            Event::StageFinished {
                stage,
                host,
                image,
                seconds,
            } => self.note(&format!(
                "==> stage {stage} for {host}: built {} ({seconds:.1} s)",
                short(image)
            )),
            Event::Checkout {
                source,
                branch,
                commit,
            } => self.note(&format!(
                "==> Ansible {source}{}: {}",
                branch
                    .as_ref()
                    .map(|b| format!(" branch {b}"))
                    .unwrap_or_default(),
                commit.as_deref().unwrap_or("not a git checkout")
            )),
            Event::CacheHit { step, image, .. } => {
                self.note(&format!("==> {step}: cached {}", short(image)))
            }
            Event::StepStarted { step, .. } => self.note(&format!("==> {step}")),
            Event::StepFinished {
                step,
                outcome,
                seconds,
                ..
            } => self.note(&format!("==> {step}: {outcome} ({seconds:.1} s)")),
            Event::Exported { path, size } => {
                self.note(&format!("==> wrote {path} ({})", human_size(*size)))
            }
            _ => {}
        }
    }

    /// A line of Ansible's on stdout (above the bars on a terminal), escaped.
    fn out(&self, line: &str) {
        let line = escape(line);
        if let Some((m, _)) = &self.bars {
            let _ = m.println(line);
        } else {
            let _guard = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
            println!("{line}");
        }
    }

    fn blob_started(&self, digest: &Digest, size: u64) {
        lock(&self.sizes).insert(digest.clone(), size);
        if let Some((m, bars)) = &self.bars {
            let bar = m.add(
                ProgressBar::new(size).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                ),
            );
            bar.set_message(short(digest));
            lock(bars).insert(digest.clone(), bar);
        }
    }

    fn blob_done(&self, digest: &Digest, outcome: &str) {
        let what = match outcome {
            "uploaded" => "uploaded",
            "exists" => "already in the repository",
            "mounted" => "mounted",
            "downloaded" => "downloaded",
            "cached" => "already in the store",
            other => other,
        };
        let size = lock(&self.sizes).get(digest).copied();
        let line = match size {
            Some(s) if matches!(outcome, "uploaded" | "downloaded") => {
                format!("blob {} {what} ({s} bytes)", short(digest))
            }
            _ => format!("blob {} {what}", short(digest)),
        };
        if let Some((_, bars)) = &self.bars {
            if let Some(b) = lock(bars).remove(digest) {
                b.finish_and_clear();
            }
        }
        self.note(&line);
    }
}

impl EventSink for Renderer {
    fn emit(&self, event: &Event) {
        match self.mode {
            EventsMode::Json => self.json(event),
            EventsMode::Human => self.human(event),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// A task's results, hosts grouped by result in the order first seen, each
/// group sorted: `changed web01 web02, ok db01, failed web03 (its message)`.
fn task_results(results: &[TaskResult]) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in results {
        let host = match &r.message {
            Some(m) => format!("{} ({m})", r.host),
            None => r.host.clone(),
        };
        match groups.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((r.status.clone(), vec![host])),
        }
    }
    groups
        .iter_mut()
        .map(|(status, hosts)| {
            hosts.sort();
            format!("{status} {}", hosts.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON text with DEL and the C1 controls (which serde_json writes raw) as
/// `\u00XX` escapes: the same JSON value, nothing a terminal obeys.
fn json_escape_controls(json: &str) -> std::borrow::Cow<'_, str> {
    let raw = |c: char| matches!(c, '\x7f'..='\u{9f}');
    if !json.contains(raw) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_one_line_of_hosts_by_result() {
        let r = |host: &str, status: &str, message: Option<&str>| TaskResult {
            host: host.into(),
            status: status.into(),
            message: message.map(String::from),
        };
        assert_eq!(
            task_results(&[
                r("web02", "changed", None),
                r("db01", "ok", None),
                r("web01", "changed", None),
                r("web03", "failed", Some("asked to fail")),
            ]),
            "changed web01 web02, ok db01, failed web03 (asked to fail)"
        );
    }

    #[test]
    fn json_lines_carry_no_raw_control_and_the_same_value() {
        let event = Event::Warning {
            message: "a\x1b]0;t\x07 \u{9b}2J \x7f é".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        let safe = json_escape_controls(&json);
        assert!(
            !safe.chars().any(|c| c.is_control()),
            "a raw control in {safe}"
        );
        assert!(safe.contains("\\u009b2J") && safe.contains('é'), "{safe}");
        assert_eq!(serde_json::from_str::<Event>(&safe).unwrap(), event);
        assert!(matches!(
            json_escape_controls("{\"a\":\"b\"}"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
