//! The one event stream: every long operation of vauban reports into an
//! [`EventSink`] as typed [`Event`]s (blob transfers, layer extraction,
//! stages and their Ansible lines, commits, cache hits, build steps). The CLI
//! renders them (bars on a terminal, plain lines in CI) or writes them as JSON
//! lines (`--events json`), which a build server or a remote worker follows.
//!
//! The JSON form of an event is one object per line: `time` (RFC 3339, UTC),
//! `event` (the variant's name in snake case) and the variant's fields, also in
//! snake case; digests are `sha256:<hex>` strings. New fields and new events
//! may appear; existing ones keep their meaning. Text that comes from a build
//! (Ansible's lines, paths in warnings) is escaped ([`crate::printable`]).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vauban_oci::registry::{BlobOutcome, Progress};
use vauban_oci::Digest;

/// Something that happened, with what a follower needs to show or record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A blob transfer starts.
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size as announced.
        size: u64,
    },
    /// Bytes of a blob moved so far (may go back to 0 on a retry).
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes moved.
        done: u64,
    },
    /// A blob is settled.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// `uploaded`, `exists`, `mounted`, `downloaded` or `cached`.
        outcome: String,
    },
    /// A line of status from a registry transfer (manifest written, tag pushed).
    Registry {
        /// The line.
        message: String,
    },
    /// A layer was extracted into its cached layer dir.
    LayerExtracted {
        /// The layer's diff_id.
        diff_id: Digest,
        /// Tar entries applied.
        entries: u64,
        /// Device nodes skipped (not permitted here).
        skipped_devices: u64,
        /// Owners that could not be set.
        skipped_owners: u64,
    },
    /// A stage starts on an image for a host.
    StageStarted {
        /// The stage (`playbook.yml` or `branch@playbook.yml`).
        stage: String,
        /// The host.
        host: String,
        /// The image it starts from.
        base: Digest,
    },
    /// A line of Ansible's output.
    AnsibleLine {
        /// The stage.
        stage: String,
        /// The host (or hosts, comma-separated, of a run over several).
        host: String,
        /// The line, its control characters escaped ([`crate::printable`]).
        line: String,
    },
    /// A task of a stage's Ansible run is done on every host it ran on: its
    /// name and each host's result, without Ansible's detail (the results'
    /// JSON and `--diff`, which the log keeps).
    AnsibleTask {
        /// The stage.
        stage: String,
        /// The task's name (`TASK [name]`, `RUNNING HANDLER [name]`).
        task: String,
        /// Each host's result, in the order Ansible printed them.
        results: Vec<TaskResult>,
    },
    /// A branch of the Ansible repository was checked out: every stage of
    /// the build from that branch runs from this commit.
    Checkout {
        /// The repository (a directory or a git URL).
        source: String,
        /// The branch, when known.
        branch: Option<String>,
        /// The commit, when it is a git checkout.
        commit: Option<String>,
    },
    /// An upper dir became a layer and an image.
    Committed {
        /// The new image's manifest digest.
        image: Digest,
        /// The new layer's blob digest.
        layer: Digest,
        /// The layer's size in bytes.
        size: u64,
    },
    /// A stage is done.
    StageFinished {
        /// The stage.
        stage: String,
        /// The host.
        host: String,
        /// The image it made.
        image: Digest,
        /// Wall time in seconds.
        seconds: f64,
    },
    /// A step was served by the cache.
    CacheHit {
        /// The step.
        step: String,
        /// The image reused.
        image: Digest,
        /// The cache key.
        key: String,
    },
    /// A build step starts.
    StepStarted {
        /// The step (e.g. `rootfs web/base.yml`, `conffs web01`).
        step: String,
        /// Its kind (`release`, `stage`, `conffs`, `initramfs`, `export`, `push`).
        kind: String,
    },
    /// A build step is done.
    StepFinished {
        /// The step.
        step: String,
        /// `built`, `cached` or `failed`.
        outcome: String,
        /// The image it gave, if any.
        image: Option<Digest>,
        /// Wall time in seconds.
        seconds: f64,
    },
    /// One row of a build step's result (a stage of a rootfs, a stage of a
    /// host's conffs, a release base, a boot file, a push): what the recap
    /// lists, told as it happens.
    StepResult {
        /// The row (`rootfs master-web: web.yml`, `conffs master-web/web01: web.yml`).
        step: String,
        /// `built`, `cached` or `failed`.
        outcome: String,
        /// The image it gave, if any.
        image: Option<Digest>,
        /// The size of its new layer or file, in bytes.
        size: u64,
        /// Wall time in seconds.
        seconds: f64,
    },
    /// A file was written to the output tree.
    Exported {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A master's boot files were recorded in the store as one OCI artifact
    /// (`<master>/boot`): what a boot server deploys.
    BootArtifact {
        /// The master.
        master: String,
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The kernel version.
        kver: String,
    },
    /// Something worth telling that is not an error.
    Warning {
        /// What.
        message: String,
    },
    /// Tasks of the build were submitted to a batch system (`--executor`).
    JobSubmitted {
        /// `slurm`, `kubernetes`.
        executor: String,
        /// The job, as the batch system names it (a Slurm job id, a Job's name).
        job: String,
        /// vauban's name for it (`vauban-<build>-<master>-conffs`).
        name: String,
        /// How many tasks.
        tasks: usize,
        /// Of them, the one task submitted again (a retry).
        retry_of: Option<usize>,
    },
}

/// One host's result of an Ansible task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The host.
    pub host: String,
    /// `ok`, `changed`, `skipping`, `failed`, `unreachable`, `ignored`
    /// (a failure `ignore_errors` let pass) or `included`.
    pub status: String,
    /// What Ansible said of a failure (its `msg`), escaped.
    pub message: Option<String>,
}

/// Receives events; called from several threads at once.
pub trait EventSink: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: &Event);
}

/// A cheap, cloneable handle on a sink (none by default).
#[derive(Clone, Default)]
pub struct Events(Option<Arc<dyn EventSink>>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Events(sink)"
        } else {
            "Events(none)"
        })
    }
}

impl Events {
    /// Events sent to `sink`.
    pub fn to(sink: Arc<dyn EventSink>) -> Self {
        Events(Some(sink))
    }

    /// Sends `event` to the sink, if any.
    pub fn emit(&self, event: Event) {
        if let Some(sink) = &self.0 {
            sink.emit(&event);
        }
    }

    /// A registry [`Progress`] that reports into this stream.
    pub fn registry_progress(&self) -> RegistryEvents {
        RegistryEvents(self.clone())
    }
}

/// Keeps every event (for tests and embedders that look at them afterwards).
#[derive(Debug, Default)]
pub struct Collect(Mutex<Vec<Event>>);

impl Collect {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EventSink for Collect {
    fn emit(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// An event and when it happened: one line of `--events json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// When (RFC 3339, UTC).
    pub time: chrono::DateTime<chrono::Utc>,
    /// What.
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    /// `event`, now.
    pub fn now(event: Event) -> Self {
        Stamped {
            time: chrono::Utc::now(),
            event,
        }
    }
}

/// The registry client's progress callbacks, as events.
#[derive(Debug, Clone)]
pub struct RegistryEvents(Events);

impl Progress for RegistryEvents {
    fn blob_start(&self, digest: &Digest, size: u64) {
        self.0.emit(Event::BlobStarted {
            digest: digest.clone(),
            size,
        });
    }

    fn blob_progress(&self, digest: &Digest, done: u64) {
        self.0.emit(Event::BlobProgress {
            digest: digest.clone(),
            done,
        });
    }

    fn blob_done(&self, digest: &Digest, outcome: BlobOutcome) {
        let outcome = match outcome {
            BlobOutcome::Uploaded => "uploaded",
            BlobOutcome::Exists => "exists",
            BlobOutcome::Mounted => "mounted",
            BlobOutcome::Downloaded => "downloaded",
            BlobOutcome::Cached => "cached",
        };
        self.0.emit(Event::BlobDone {
            digest: digest.clone(),
            outcome: outcome.into(),
        });
    }

    fn message(&self, text: &str) {
        self.0.emit(Event::Registry {
            message: text.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_time_event_and_fields() {
        let digest = Digest::of_bytes(b"x");
        let line = serde_json::to_value(Stamped::now(Event::StageStarted {
            stage: "base.yml".into(),
            host: "web01".into(),
            base: digest.clone(),
        }))
        .unwrap();
        assert_eq!(line["event"], "stage_started");
        assert_eq!(line["host"], "web01");
        assert_eq!(line["base"], digest.to_string());
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        let back: Stamped = serde_json::from_value(line).unwrap();
        assert!(matches!(back.event, Event::StageStarted { .. }));
    }

    #[test]
    fn registry_progress_becomes_events() {
        let sink = Arc::new(Collect::default());
        let events = Events::to(sink.clone());
        let p = events.registry_progress();
        let d = Digest::of_bytes(b"b");
        p.blob_start(&d, 10);
        p.blob_done(&d, BlobOutcome::Mounted);
        assert_eq!(
            sink.events(),
            vec![
                Event::BlobStarted {
                    digest: d.clone(),
                    size: 10
                },
                Event::BlobDone {
                    digest: d,
                    outcome: "mounted".into()
                }
            ]
        );
    }
}
