//! One stage for some hosts, each from its own image, through the cache: the
//! rootfs step runs it for the master, the conffs step for every host at
//! once. Each host's key is looked up; the hosts still missing after their
//! locks are taken run in **one** `ansible-playbook` from the stage's branch's
//! one checkout, and what they make is recorded under their keys
//! ([`super::cache::get_or_build`]).

use vauban_oci::Image;

use super::builder::Builder;
use super::cache::get_or_build;
use super::report::Outcome;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::stage::{Stage, StageSpec, Target};

/// A host's result: its image and whether the cache had it, or its error.
pub(super) type HostResult = Result<(Image, Outcome), crate::Error>;

impl Builder<'_> {
    /// `stage` of `spec` for each `(host, base, base's name)` of `targets`
    /// (the name is `/imginfo`'s `source`); one result per
    /// host, in order. `label` names the run's log; `what` a host's line in
    /// the report. An interrupted run is an error of the whole.
    pub(super) fn stage_for(
        &mut self,
        spec: &StageSpec,
        stage: &Stage,
        label: &str,
        what: &dyn Fn(&str) -> String,
        targets: Vec<(String, Image, String)>,
    ) -> Result<Vec<(String, HostResult)>> {
        let started = std::time::Instant::now();
        let analysed = self.analyse(stage, spec)?;
        let wanted: Vec<_> = targets
            .into_iter()
            .map(|(host, base, source)| {
                let inputs = self.inputs(&analysed, stage, spec, &host, &base);
                (
                    inputs.key(),
                    Target {
                        host,
                        base,
                        source: Some(source),
                        comment: Some(inputs.comment()),
                    },
                )
            })
            .collect();
        let keys: std::collections::HashMap<String, String> = wanted
            .iter()
            .map(|(k, t)| (t.host.clone(), k.0.clone()))
            .collect();
        let (cache, runner) = (&self.cache, &mut self.runner);
        let got = get_or_build(
            wanted,
            |key| cache.lookup(key),
            |key| cache.lock(key),
            |todo| {
                let targets: Vec<Target> = todo.iter().map(|(_, t)| t.clone()).collect();
                let results = runner.run(spec, stage, &analysed.checkout, label, &targets);
                let mut out = Vec::with_capacity(todo.len());
                for ((key, target), (_, result)) in todo.into_iter().zip(results) {
                    if let Ok(image) = &result {
                        cache.record(&key, image)?;
                    }
                    out.push((target, result));
                }
                Ok(out)
            },
        )?;
        let mut out = Vec::with_capacity(got.len());
        for (target, result) in got {
            let host = target.host;
            let line = what(&host);
            match &result {
                Err(Error::Interrupted { signal }) => {
                    return Err(Error::BuildInterrupted { signal: *signal })
                }
                Err(_) => self.record(line, Outcome::Failed, None, 0, started),
                Ok((image, outcome)) => {
                    if *outcome == Outcome::Cached {
                        self.env.events.emit(Event::CacheHit {
                            step: line.clone(),
                            image: image.manifest_digest.clone(),
                            key: keys.get(&host).cloned().unwrap_or_default(),
                        });
                    }
                    let size = image.layers().last().map(|l| l.size()).unwrap_or(0);
                    self.record(line, *outcome, Some(image), size, started);
                }
            }
            out.push((host, result));
        }
        Ok(out)
    }
}
