//! Publishing with `--registry HOST[:PORT]/NAMESPACE`: every image a build
//! named is pushed as `NAMESPACE/<name>` with `latest` and the UTC date tag
//! (`%Y-%m-%dT%H%M`, as the original tags), except releases'; the boot files
//! go beside them as an artifact, except for the masters of `never_upload`
//! ([`pushes_images`], [`uploads_boot_files`]); [`deploy`] moves `deployed`. A
//! build on another machine starts from what the registry has ([`pull_latest`]).
//!
//! `never_upload` means what it meant in the original: `vauban.py` passed
//! `--upload no` for those masters, and `vauban.sh` then skipped `upload` (the
//! boot files to the DHCP servers) and `set_deployed`, while the Kubernetes
//! engine's pods pushed every stage's image all the same (`--destination` of
//! each pod, whatever `--upload` said): children build on them.

use std::sync::Arc;

use vauban_oci::registry::{self, Progress, RegistryOptions, RemoteReference};
use vauban_oci::store::Store;
use vauban_oci::{Image, Reference};

use crate::config::{Config, Master};
use crate::error::{Error, Result};

/// The tag `vauban deploy` moves.
pub const DEPLOYED_TAG: &str = "deployed";

/// Where a build publishes.
#[derive(Debug, Clone)]
pub struct Registry {
    /// `HOST[:PORT]`.
    pub host: String,
    /// The repository prefix (`vauban`).
    pub namespace: String,
    /// TLS, credentials.
    pub options: RegistryOptions,
}

impl Registry {
    /// Parses `HOST[:PORT]/NAMESPACE`.
    pub fn parse(arg: &str, options: RegistryOptions) -> Result<Self> {
        let probe = RemoteReference::parse(arg)?;
        if probe.manifest_ref() != "latest" || arg.ends_with(":latest") {
            return Err(Error::Oci(vauban_oci::Error::InvalidReference {
                reference: arg.to_owned(),
                reason: "a registry namespace has no tag: write HOST[:PORT]/NAMESPACE".into(),
            }));
        }
        Ok(Registry {
            host: probe.registry,
            namespace: probe.repository,
            options,
        })
    }

    /// `HOST/NAMESPACE/<name>:<tag>`.
    pub fn remote(&self, name: &str, tag: &str) -> Result<RemoteReference> {
        Ok(RemoteReference::parse(&format!(
            "{}/{}/{name}:{tag}",
            self.host, self.namespace
        ))?)
    }

    /// `HOST/NAMESPACE`, for messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.host, self.namespace)
    }
}

/// Whether the images of `master` are pushed: every master's, those of
/// `never_upload` too (their children build on them); a release's never.
pub fn pushes_images(master: &Master) -> bool {
    !master.is_release()
}

/// Whether the boot files of `master` go to the registry: not for the masters of
/// `never_upload`, whose boot files the original never uploaded.
pub fn uploads_boot_files(config: &Config, master: &Master) -> bool {
    pushes_images(master) && config.never_upload_entry(&master.name).is_none()
}

/// The UTC date tag of a build started at `now`.
pub fn date_tag(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%dT%H%M").to_string()
}

/// The runtime of the registry calls: the process's one ([`crate::runtime()`]).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    crate::runtime()
}

/// Pushes the store image `local` as `name` with `latest` and `date`; returns
/// the references written.
pub fn push(
    store: &Store,
    registry: &Registry,
    local: &Reference,
    name: &str,
    date: &str,
    progress: Arc<dyn Progress>,
) -> Result<Vec<String>> {
    let dest = registry.remote(name, date)?;
    let report = runtime()?.block_on(registry::push(
        store,
        local,
        &dest,
        &["latest".to_owned()],
        &registry.options,
        progress,
    ))?;
    Ok(report.pushed)
}

/// Pulls `NAMESPACE/<name>:latest` into the store as `local`; `None` when the
/// registry does not have it.
pub fn pull_latest(
    store: &Store,
    registry: &Registry,
    name: &str,
    local: &Reference,
    progress: Arc<dyn Progress>,
) -> Result<Option<Image>> {
    let src = registry.remote(name, "latest")?;
    match runtime()?.block_on(registry::pull(
        store,
        &src,
        Some(local),
        &registry.options,
        progress,
    )) {
        Ok(_) => Ok(Some(store.image(local)?)),
        Err(vauban_oci::Error::RegistryStatus { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Pulls `NAMESPACE/<name>@digest` into the store as `local`: exactly that
/// manifest (an executor's tasks and coordinator exchange by digest).
pub fn pull_digest(
    store: &Store,
    registry: &Registry,
    name: &str,
    digest: &vauban_oci::Digest,
    local: &Reference,
    progress: Arc<dyn Progress>,
) -> Result<Image> {
    let src = RemoteReference::parse(&format!(
        "{}/{}/{name}@{digest}",
        registry.host, registry.namespace
    ))?;
    runtime()?.block_on(registry::pull(
        store,
        &src,
        Some(local),
        &registry.options,
        progress,
    ))?;
    Ok(store.image(local)?)
}

/// Tags `NAMESPACE/<name>:<from>` as `deployed` in the registry (the image
/// goes through the store, whose blobs the registry mostly has already).
pub fn deploy(
    store: &Store,
    registry: &Registry,
    name: &str,
    from: &str,
    progress: Arc<dyn Progress>,
) -> Result<Vec<String>> {
    let src = registry.remote(name, from)?;
    let local = Reference::parse(&format!("vauban-cache/deploy:{}", std::process::id()))?;
    let runtime = runtime()?;
    runtime.block_on(registry::pull(
        store,
        &src,
        Some(&local),
        &registry.options,
        progress.clone(),
    ))?;
    let dest = registry.remote(name, DEPLOYED_TAG)?;
    let pushed = runtime.block_on(registry::push(
        store,
        &local,
        &dest,
        &[],
        &registry.options,
        progress,
    ));
    store.untag(&local)?;
    Ok(pushed?.pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_is_a_host_and_a_namespace() {
        let r = Registry::parse("127.0.0.1:5000/vauban", RegistryOptions::default()).unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.namespace, "vauban");
        assert_eq!(
            r.remote("master-web/web01", "latest").unwrap().to_string(),
            "127.0.0.1:5000/vauban/master-web/web01:latest"
        );
        assert!(Registry::parse("127.0.0.1:5000/vauban:v1", RegistryOptions::default()).is_err());
        assert!(Registry::parse("vauban", RegistryOptions::default()).is_err());
    }

    #[test]
    fn never_upload_pushes_images_but_no_boot_files() {
        let config = Config::parse(
            "configuration:\n  never_upload: [lab]\nbookworm:\n  image: x\n  \
             lab:\n    stages: [a.yml]\n    web:\n      stages: [b.yml]\n",
            "/t/config.yml",
        )
        .unwrap();
        let [release, lab, web] = ["bookworm", "lab", "web"].map(|n| config.find(n).unwrap());
        assert!(!pushes_images(release) && !uploads_boot_files(&config, release));
        assert!(pushes_images(lab) && !uploads_boot_files(&config, lab));
        assert!(pushes_images(web) && uploads_boot_files(&config, web));
    }

    #[test]
    fn the_date_tag_is_the_originals() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T13:05:59Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(date_tag(t), "2026-12-01T1305");
    }
}
