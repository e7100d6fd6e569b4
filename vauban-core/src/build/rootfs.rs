//! The rootfs step of a master: from its base (its parent's rootfs, as the
//! plan fixed it; for a release, its base made once per recipe), its stages
//! one layer each, each through the cache, with `--limit <master>` as the
//! original runs them. Each stage's image is named `<master>/<playbook>`, the
//! last `<master>`.

use std::convert::Infallible;

use vauban_oci::Image;

use super::builder::Builder;
use super::cache::get_or_build;
use super::release;
use super::report::Outcome;
use crate::config::Master;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::stage::Stage;

impl Builder<'_> {
    /// Builds (or finds in the cache) the rootfs of `master` from `base`
    /// (`None`: a release, from its own base); its image.
    pub(super) fn rootfs(&mut self, master: &Master, base: Option<Image>) -> Result<Image> {
        if self.executor.is_some() && master.stage_list().next().is_some() {
            return self.rootfs_remote(master, base.as_ref());
        }
        let mut image = match base {
            Some(image) => image,
            None => self.release_base(master)?,
        };
        // The name of the image each stage starts from (`/imginfo`'s source).
        let mut source = self
            .config
            .parent(master)
            .map_or_else(|| master.name.clone(), |p| p.name.clone());
        let stages: Vec<Stage> = master.stage_list().cloned().collect();
        let spec = self.spec(master, false);
        let label = format!("{}-rootfs", master.name);
        for stage in &stages {
            self.interrupted()?;
            let what = |_: &str| format!("rootfs {}: {stage}", master.name);
            let mut got = self.stage_for(
                &spec,
                stage,
                &label,
                &what,
                vec![(master.name.clone(), image, source.clone())],
            )?;
            let (_, result) = got.pop().expect("get_or_build gives one result per target");
            let (built, _) = result?;
            let name = spec.stage_reference(&stage.playbook)?;
            self.name(name.name(), &built, true, self.published(master))?;
            image = built;
            source = name.name().to_owned();
        }
        let image = self.with_drift_tool(master, image)?;
        self.name(&master.name, &image, false, self.published(master))?;
        Ok(image)
    }

    /// `image` with `vauban-drift` on top when `master` asks for it
    /// (`drift_report:`), else `image`.
    pub(super) fn with_drift_tool(&self, master: &Master, image: Image) -> Result<Image> {
        match &master.drift_report {
            Some(report) => super::drift_tool::with_tool(self.store, &image, &report.value),
            None => Ok(image),
        }
    }

    /// The base image of the release `root`, made once per recipe.
    fn release_base(&mut self, root: &Master) -> Result<Image> {
        let release = self
            .config
            .release_of(root)
            .ok_or_else(|| Error::internal("a release root without its release"))?
            .clone();
        let started = std::time::Instant::now();
        let key = release::cache_key(&release);
        let what = format!("release {}", release.key());
        let (cache, store) = (&self.cache, self.store);
        let registry = self
            .opts
            .registry
            .as_ref()
            .map(|r| r.options.clone())
            .unwrap_or_default();
        let got = get_or_build(
            vec![(key.clone(), ())],
            |k| cache.lookup(k),
            |k| cache.lock(k),
            |_| {
                let work = tempfile::Builder::new()
                    .prefix("vauban-release-")
                    .tempdir_in(store.tmp_dir())
                    .map_err(|e| Error::io("create a temp dir in", store.tmp_dir(), e))?;
                let image = release::make(store, &release, &registry, work.path())?;
                cache.record(&key, &image)?;
                Ok(vec![((), Ok::<_, Infallible>(image))])
            },
        )?;
        let Some(((), Ok((image, outcome)))) = got.into_iter().next() else {
            unreachable!("get_or_build gives one result per key, and this one cannot fail")
        };
        if outcome == Outcome::Cached {
            self.env.events.emit(Event::CacheHit {
                step: what.clone(),
                image: image.manifest_digest.clone(),
                key: key.0.clone(),
            });
        }
        self.record(what, outcome, Some(&image), image.size(), started);
        Ok(image)
    }
}
