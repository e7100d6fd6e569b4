//! The rootfs step of a master: its parent's image (for a release, its base,
//! made once per recipe), then its stages one layer each, each through the
//! cache, with `--limit <master>` as the original runs them. Each stage's
//! image is named `<master>/<playbook>`, the last `<master>`.

use vauban_oci::Image;

use super::builder::{runner, Builder};
use super::cache::StepKey;
use super::error::BuildError;
use super::release;
use super::report::Outcome;
use crate::config::Master;
use crate::events::Event;
use crate::stage::Target;

impl Builder<'_> {
    /// Builds (or finds in the cache) the rootfs of `master`.
    pub(super) fn rootfs(&mut self, master: &Master) -> Result<(), BuildError> {
        let (mut image, mut source) = match self.config.parent(master) {
            Some(parent) => {
                let parent = parent.clone();
                (self.existing(&parent)?, parent.name)
            }
            None => (self.release_base(master)?, master.name.clone()),
        };
        let stages: Vec<_> = master.stage_list().cloned().collect();
        if !stages.is_empty() {
            let spec = self.spec(master, false);
            let env = self.env.clone();
            let mut runner = runner(
                self.store,
                &spec,
                &env,
                &format!("{}-rootfs", master.name),
                self.opts.jobs,
            )?;
            for stage in &stages {
                self.interrupted()?;
                let started = std::time::Instant::now();
                let analysed = self.analyse(&mut runner, stage, &spec)?;
                let inputs = self.inputs(&analysed, stage, &spec, &master.name, &image);
                let key = inputs.key();
                let what = format!("rootfs {}: {stage}", master.name);
                let (built, outcome) = match self.cached(&key, &what)? {
                    Some(hit) => (hit, Outcome::Cached),
                    None => {
                        let _lock = self.cache.lock(&key)?;
                        match self.cached(&key, &what)? {
                            Some(hit) => (hit, Outcome::Cached),
                            None => {
                                let target = Target {
                                    host: master.name.clone(),
                                    base: image.clone(),
                                    source: Some(source.clone()),
                                    comment: Some(inputs.comment()),
                                };
                                let (_, built) = runner
                                    .run(stage, &[target])
                                    .pop()
                                    .ok_or(crate::Error::Panicked("a stage run"))?;
                                let built = built?;
                                self.cache.record(&key, &built)?;
                                (built, Outcome::Built)
                            }
                        }
                    }
                };
                let size = built.layers().last().map(|l| l.size()).unwrap_or(0);
                self.record(what, outcome, Some(&built), size, started);
                let name = spec.stage_reference(&stage.playbook)?;
                self.name(name.name(), &built, true, self.published(master))?;
                image = built;
                source = name.name().to_owned();
            }
        }
        self.images.insert(master.name.clone(), image.clone());
        self.name(&master.name, &image, false, self.published(master))?;
        Ok(())
    }

    /// The image `key` built, telling the cache hit.
    pub(super) fn cached(&self, key: &StepKey, what: &str) -> Result<Option<Image>, BuildError> {
        let hit = self.cache.lookup(key)?;
        if let Some(image) = &hit {
            self.env.events.emit(Event::CacheHit {
                step: what.to_owned(),
                image: image.manifest_digest.clone(),
                key: key.0.clone(),
            });
        }
        Ok(hit)
    }

    /// The base image of the release `root`, made once per recipe.
    fn release_base(&mut self, root: &Master) -> Result<Image, BuildError> {
        let release = self
            .config
            .release_of(root)
            .ok_or_else(|| crate::Error::Panicked("a release root without its release"))?
            .clone();
        let started = std::time::Instant::now();
        let key = release::cache_key(&release);
        let what = format!("release {}", release.key());
        if let Some(hit) = self.cached(&key, &what)? {
            self.record(what, Outcome::Cached, Some(&hit), hit.size(), started);
            return Ok(hit);
        }
        let _lock = self.cache.lock(&key)?;
        if let Some(hit) = self.cached(&key, &what)? {
            self.record(what, Outcome::Cached, Some(&hit), hit.size(), started);
            return Ok(hit);
        }
        let work = tempfile::Builder::new()
            .prefix("vauban-release-")
            .tempdir_in(self.store.tmp_dir())
            .map_err(|e| crate::Error::io("create a temp dir in", self.store.tmp_dir(), e))?;
        let registry = self
            .opts
            .registry
            .as_ref()
            .map(|r| r.options.clone())
            .unwrap_or_default();
        let image = release::make(self.store, &release, &registry, work.path())?;
        self.cache.record(&key, &image)?;
        self.record(what, Outcome::Built, Some(&image), image.size(), started);
        Ok(image)
    }
}
