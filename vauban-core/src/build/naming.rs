//! The names a build gives and publishes: gathered while it runs, written in one
//! index write at the end ([`Builder::name_all`]), then pushed.

use std::sync::Arc;

use vauban_oci::oci_spec::image::Descriptor;
use vauban_oci::{Image, Reference};

use super::publish::{self};
use super::report::Outcome;
use crate::config::Master;
use crate::error::Result;

use super::builder::Builder;
use super::options::LOCAL_TAG;

/// A name to give at the end of the build.
#[derive(Debug, Clone)]
pub(super) struct Named {
    pub reference: Reference,
    pub descriptor: Descriptor,
    /// The registry name it is published as, if it is.
    pub publish: Option<String>,
}

impl Builder<'_> {
    /// The store name `<name>:latest`.
    pub(super) fn local(name: &str) -> Result<Reference> {
        Ok(Reference::parse(&format!("{name}:{LOCAL_TAG}"))?)
    }

    /// Whether `master`'s images are published ([`publish::pushes_images`]).
    pub(super) fn published(&self, master: &Master) -> bool {
        publish::pushes_images(master)
    }

    /// Gives `name` to `image` at the end of the build; `intermediate` names
    /// are hidden from listings; `publish` names are pushed.
    pub(super) fn name(
        &mut self,
        name: &str,
        image: &Image,
        intermediate: bool,
        publish: bool,
    ) -> Result<()> {
        let desc = if intermediate {
            crate::stage::intermediate(image.descriptor())
        } else {
            image.descriptor()
        };
        self.names.retain(|n| n.reference.name() != name);
        self.names.push(Named {
            reference: Builder::local(name)?,
            descriptor: desc,
            publish: publish.then(|| name.to_owned()),
        });
        Ok(())
    }

    pub(super) fn name_all(&mut self) -> Result<()> {
        let names: Vec<(Reference, Descriptor)> = self
            .names
            .iter()
            .map(|n| (n.reference.clone(), n.descriptor.clone()))
            .collect();
        self.store.tag_all(&names)?;
        self.report.names = names.iter().map(|(r, _)| r.to_string()).collect();
        Ok(())
    }

    pub(super) fn publish(&mut self) -> Result<()> {
        let Some(registry) = self.opts.registry.clone() else {
            return Ok(());
        };
        let date = publish::date_tag(chrono::Utc::now());
        let progress = Arc::new(self.env.events.registry_progress());
        for named in self.names.clone() {
            let Some(remote) = &named.publish else {
                continue;
            };
            self.interrupted()?;
            let started = std::time::Instant::now();
            let pushed = publish::push(
                self.store,
                &registry,
                &named.reference,
                remote,
                &date,
                progress.clone(),
            )?;
            self.record(format!("push {remote}"), Outcome::Built, None, 0, started);
            self.report.pushed.extend(pushed);
        }
        Ok(())
    }
}
