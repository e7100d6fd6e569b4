//! One stage over several hosts at once: a sandbox per host over its own
//! image, the per-host steps (Python check, package lists, metadata, commit) on
//! a few threads, and **one** `ansible-playbook` run for all of them, each host
//! aimed at its own merged tree (`ansible_host` from the `vauban_roots` extra
//! var), so Ansible's start-up, inventory parsing and fact gathering are paid
//! once per stage. A host that fails is reported with its task; the others'
//! results are kept.

use std::path::Path;
use std::process::ExitStatus;

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::confined::Confined;
use super::metadata::{self};
use super::repo::Checkout;
use super::spec::StageSpec;
use super::stage_name::Stage;
use super::tools::Tools;
use crate::error::{Error, IoContext, Result};
use crate::events::Event;
use crate::machine::Env;
use crate::sandbox::{CommitOptions, Helper, Sandbox, SandboxOptions};

mod ansible_run;
mod host_image;
mod parallel;

use parallel::par_map;

/// A host to build a stage for, from its own image.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host: `--limit`, `/etc/hostname`, its inventory variables.
    pub host: String,
    /// The image it starts from.
    pub base: Image,
    /// That image's name, for `/imginfo` (its digest when `None`).
    pub source: Option<String>,
    /// The history comment of its new layer (a build's cache key), if any.
    pub comment: Option<String>,
}

/// One stage of a build, ready to run over hosts.
pub(crate) struct StageRun<'a> {
    pub store: &'a Store,
    pub tools: &'a Tools,
    pub stage: &'a Stage,
    pub spec: &'a StageSpec,
    pub env: &'a Env,
    pub helper: &'a Helper,
    pub confined: &'a Confined,
    pub checkout: &'a Checkout,
    /// The run's log file (every host); each host's own lines also go to
    /// `<dir>/<host>/<file name>`.
    pub log: &'a Path,
    /// Hosts worked on at once.
    pub jobs: usize,
    /// The build's fact cache, when facts are gathered once per host.
    pub facts: Option<&'a Path>,
}

/// A prepared host.
struct Prepared<'s> {
    host: String,
    source: Option<String>,
    comment: Option<String>,
    sandbox: Sandbox<'s>,
    before: Option<String>,
}

impl StageRun<'_> {
    /// Builds the stage for every target; one result per host, in order.
    pub(crate) fn run(&self, targets: &[Target]) -> Vec<(String, Result<Image>)> {
        let started = std::time::Instant::now();
        let mut results: Vec<(String, Option<Result<Image>>)> =
            targets.iter().map(|t| (t.host.clone(), None)).collect();
        for t in targets {
            self.env.events.emit(Event::StageStarted {
                stage: self.stage.to_string(),
                host: t.host.clone(),
                base: t.base.manifest_digest.clone(),
            });
        }
        // Sandboxes one after the other: the hosts share the master's layer
        // dirs, extracted by the first.
        let mut prepared: Vec<Option<Sandbox<'_>>> = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            match self.sandbox(t) {
                Ok(s) => prepared.push(Some(s)),
                Err(e) => {
                    results[i].1 = Some(Err(e));
                    prepared.push(None);
                }
            }
        }
        let work = match tempfile::Builder::new()
            .prefix("vauban-stage-")
            .tempdir()
            .at("create a temp dir in", std::env::temp_dir())
        {
            Ok(w) => w,
            Err(e) => return fail_all(results, &e),
        };
        // Python and the package list before, per host.
        let checked = par_map(prepared, self.jobs, |i, sandbox| {
            let sandbox = sandbox?;
            let host = &targets[i].host;
            let before = self.check_python(&sandbox).and_then(|()| {
                self.dpkg_list(&sandbox, &work.path().join(format!("{host}.before")))
            });
            Some(before.map(|b| Prepared {
                host: host.clone(),
                source: targets[i].source.clone(),
                comment: targets[i].comment.clone(),
                sandbox,
                before: b,
            }))
        });
        let mut ready: Vec<(usize, Prepared<'_>)> = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Some(Ok(p)) => ready.push((i, p)),
                Some(Err(e)) => results[i].1 = Some(Err(e)),
                None => {}
            }
        }
        if !ready.is_empty() {
            let sandboxes: Vec<&Sandbox<'_>> = ready.iter().map(|(_, p)| &p.sandbox).collect();
            match self.run_ansible(&sandboxes, work.path()) {
                Err(e) => {
                    // The run as a whole failed (hooks, nothing matched): every
                    // host of it did.
                    for (i, p) in &ready {
                        results[*i].1 = Some(Err(self.whole_run_failed(&e, &p.host)));
                    }
                    ready.clear();
                }
                Ok(scanner) => {
                    let failed = scanner.failed_hosts();
                    ready.retain(|(i, p)| {
                        if failed.contains(&p.host) {
                            results[*i].1 = Some(Err(self.host_failed(&scanner, &p.host)));
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        // The package list after, the metadata and the commit, per host.
        let items: Vec<Option<(usize, Prepared<'_>)>> = ready.into_iter().map(Some).collect();
        let committed = par_map(items, self.jobs, |_, item| {
            let (i, p) = item?;
            Some((i, self.finish(p, work.path(), started)))
        });
        for (i, r) in committed.into_iter().flatten() {
            results[i].1 = Some(r);
        }
        results
            .into_iter()
            .map(|(h, r)| {
                (
                    h,
                    r.unwrap_or_else(|| Err(Error::Panicked("a stage's host step"))),
                )
            })
            .collect()
    }

    fn sandbox(&self, t: &Target) -> Result<Sandbox<'_>> {
        let opts = SandboxOptions {
            hostname: t.host.clone(),
            env: Vec::new(),
            helper: Some(self.helper.clone()),
            events: self.env.events.clone(),
            network: self.env.network.clone(),
        };
        Sandbox::prepare(self.store, &t.base, opts)
    }

    fn finish(&self, p: Prepared<'_>, work: &Path, started: std::time::Instant) -> Result<Image> {
        let after = self.dpkg_list(&p.sandbox, &work.join(format!("{}.after", p.host)))?;
        let diff = match (&p.before, &after) {
            (Some(b), Some(a)) => Some(metadata::package_diff(b, a)),
            _ => None,
        };
        self.write_metadata(&p, diff.as_deref())?;
        let mut commit = CommitOptions::new(self.created_by(&p.host));
        commit.compression = self.spec.compression;
        commit.exclude.extend(self.spec.exclude.iter().cloned());
        commit.comment = p.comment.clone();
        let image = p.sandbox.commit(&commit)?;
        if let Some(layer) = image.layers().last() {
            self.env.events.emit(Event::Committed {
                image: image.manifest_digest.clone(),
                layer: vauban_oci::image::digest_of(layer)?,
                size: layer.size(),
            });
        }
        self.env.events.emit(Event::StageFinished {
            stage: self.stage.to_string(),
            host: p.host.clone(),
            image: image.manifest_digest.clone(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(image)
    }

    fn created_by(&self, host: &str) -> String {
        crate::history::stage(self.stage, host, self.checkout.commit.as_deref())
    }

    fn step(&self, step: &'static str, status: ExitStatus) -> Error {
        Error::StageStep {
            stage: self.stage.to_string(),
            step,
            status: status.to_string(),
        }
    }
}

/// Every result of a run failed with `e` (before any host started).
fn fail_all(
    results: Vec<(String, Option<Result<Image>>)>,
    e: &Error,
) -> Vec<(String, Result<Image>)> {
    results
        .into_iter()
        .map(|(h, r)| {
            let r = r.unwrap_or_else(|| {
                Err(Error::StageFailed {
                    stage: String::new(),
                    host: h.clone(),
                    message: e.to_string(),
                })
            });
            (h, r)
        })
        .collect()
}
