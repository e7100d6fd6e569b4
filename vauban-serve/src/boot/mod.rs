//! The boot service: hosts PXE-boot from `vauban serve` (or `vauban serve
//! --boot-only`), each at its master's deployed build.
//!
//! - A **deployment** names a master's boot artifact (the store's
//!   `<master>/boot` of a build, see [`artifact`]); `deploy` records one
//!   (from a build of the history, or a tag of the store, pulled from the
//!   registry when the store lacks it), `rollback` goes back to the one
//!   before. Each is tagged in the store (`<master>/boot:deploy-N`, the last
//!   [`KEEP_DEPLOYMENTS`] kept) so `vauban gc` keeps what hosts boot.
//! - A host asks for its **iPXE script** by MAC ([`script`]): the host whose
//!   deployed `boot.json` lists the MAC (or a `discoverable` host bound to
//!   the first unknown MAC), its script naming each file by digest, with a
//!   fresh **boot token** (256 random bits, kept hashed, expiring) in every
//!   URL. An unknown MAC boots its local disk, and is recorded.
//! - **Files** are blobs of the store, served in place ([`files`]): the
//!   kernel, initramfs and rootfs to a boot whose artifact holds them (or to
//!   an operator's API token); a conffs (the host's sshd keys) only to its
//!   host's boot, once (the first whole fetch spends it), before the token
//!   expires and, with `--conffs-from-known-ip`, only from the host's
//!   inventory address.
//! - Every fetch is **recorded** ([`records`]): `/hosts` tells each host's
//!   last boot, how far it went, and whether it runs the deployed build.

pub mod artifact;
pub mod drift;
pub mod files;
pub mod records;
pub mod routes;
pub mod script;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use vauban_core::build::publish::{self, Registry};
use vauban_core::vauban_oci::oci_spec::image::{Descriptor, MediaType};
use vauban_core::vauban_oci::store::Store;
use vauban_core::vauban_oci::{Digest, Reference};

use crate::db::History;
use crate::error::{Result, ServeError};
use artifact::{Artifact, Artifacts, FileKind};
use records::{Boot, Deployment, Records, SeenMac};

/// Deployments of a master whose artifact the store keeps named.
pub const KEEP_DEPLOYMENTS: usize = 5;
/// Builds of a master whose artifact the store keeps named (for `deploy --build`).
pub const KEEP_BUILDS: usize = 10;

/// How the boot service is set up.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The URL hosts reach the server at (`http://10.0.0.1:8080`); else
    /// the `Host` each request names.
    pub boot_url: Option<String>,
    /// How long a boot token lives.
    pub token_ttl: Duration,
    /// A conffs only to its host's inventory address.
    pub conffs_from_known_ip: bool,
    /// Where `deploy --from TAG` pulls an artifact the store lacks.
    pub registry: Option<Registry>,
    /// The largest drift a host may send (`POST /hosts/{name}/drift`).
    pub max_drift: u64,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            boot_url: None,
            token_ttl: Duration::from_secs(30 * 60),
            conffs_from_known_ip: false,
            registry: None,
            max_drift: 64 << 20,
        }
    }
}

/// The boot service's state.
pub struct BootService {
    /// The image store the builds write into.
    pub store: Store,
    /// Deployments, boots, fetches, MACs.
    pub records: Records,
    /// The artifacts read.
    pub artifacts: Artifacts,
    /// The build history (to deploy a build by id).
    pub history: Arc<History>,
    /// The options.
    pub opts: BootOptions,
    /// Where the drifts hosts send are kept (`drifts/` beside the database).
    pub drift_dir: std::path::PathBuf,
    /// The drifts being received at once (at most [`DRIFT_UPLOADS`]).
    pub drift_uploads: Arc<tokio::sync::Semaphore>,
    /// The drifts being received per boot, the signatures that failed.
    pub drift_attempts: Arc<drift::DriftAttempts>,
}

/// Drifts received at once.
pub const DRIFT_UPLOADS: usize = 4;

/// A host found by MAC, at its master's deployment.
#[derive(Debug, Clone)]
pub struct Found {
    /// The host.
    pub host: String,
    /// Its deployment.
    pub deployment: Deployment,
    /// The deployed artifact.
    pub artifact: Arc<Artifact>,
}

/// What a MAC is to the service.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A host of a deployed master.
    Host(Box<Found>),
    /// A host whose master has no deployment yet.
    NotDeployed {
        /// The host.
        host: String,
        /// Its master.
        master: String,
    },
    /// Nobody's.
    Unknown,
}

/// A host as `/hosts` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostView {
    /// The host.
    pub host: String,
    /// Its master (the deployed one that lists it).
    pub master: String,
    /// Its MACs (inventory, or bound by discovery).
    pub macs: Vec<String>,
    /// The deployment its next boot gets.
    pub deployed: Option<Deployment>,
    /// Its last boot (asked for: complete or not).
    pub last_boot: Option<Boot>,
    /// Its last boot that fetched its four files whole.
    pub last_complete_boot: Option<Boot>,
    /// Whether its last complete boot was of the deployed artifact.
    pub runs_deployed: Option<bool>,
    /// In words: `web02 still runs build X of 2026-12-01 (deployed: Y)`.
    pub summary: String,
}

/// `/hosts`: the hosts of the deployed masters, and the MACs nobody owns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostsView {
    /// The hosts.
    pub hosts: Vec<HostView>,
    /// MACs that asked and are no host's.
    pub unknown: Vec<SeenMac>,
}

impl BootService {
    /// The service over `store`, its records in the database at `db`.
    pub fn open(
        store: Store,
        db: &std::path::Path,
        history: Arc<History>,
        opts: BootOptions,
    ) -> Result<BootService> {
        let service = BootService {
            store,
            drift_dir: db
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("drifts"),
            drift_uploads: Arc::new(tokio::sync::Semaphore::new(DRIFT_UPLOADS)),
            drift_attempts: Arc::default(),
            records: Records::open(db)?,
            artifacts: Artifacts::default(),
            history,
            opts,
        };
        service.clean_drift_dir()?;
        Ok(service)
    }

    /// The artifact `digest` (of `master`, when given).
    pub fn artifact(&self, digest: &str, master: Option<&str>) -> Result<Arc<Artifact>> {
        let d = Digest::parse(digest)
            .map_err(|_| ServeError::Missing(format!("{digest} is not a sha256 digest")))?;
        self.artifacts.load(&self.store, &d, master)
    }

    /// Every boot artifact the store names (`*/boot:*`); one that cannot
    /// be read is left out.
    fn store_artifacts(&self) -> Result<Vec<Arc<Artifact>>> {
        let mut found = Vec::new();
        for (reference, desc) in self.store.list()? {
            if !reference.name().ends_with("/boot") {
                continue;
            }
            if let Ok(a) = self.artifact(desc.digest().as_ref(), None) {
                if !found.iter().any(|f: &Arc<Artifact>| f.digest == a.digest) {
                    found.push(a);
                }
            }
        }
        Ok(found)
    }

    /// Each deployed master's current deployment and artifact (a master
    /// whose artifact cannot be read is logged and left out).
    fn deployed(&self) -> Result<Vec<(Deployment, Arc<Artifact>)>> {
        let mut out = Vec::new();
        for d in self.records.current_deployments()? {
            match self.artifact(&d.artifact, Some(&d.master)) {
                Ok(a) => out.push((d, a)),
                Err(e) => {
                    tracing::error!(master = %d.master, "deployed artifact {}: {e}", d.artifact)
                }
            }
        }
        Ok(out)
    }

    /// Who `mac` is: by the deployed `boot.json`s, then the MACs bound by
    /// discovery, then (for an unknown MAC) the first `discoverable` host
    /// with no MAC yet, bound to it now; else the boot artifacts of the
    /// store, to say that the host's master is not deployed.
    pub fn lookup(&self, mac: &str) -> Result<Lookup> {
        let deployed = self.deployed()?;
        let found = |host: &str, deployed: &[(Deployment, Arc<Artifact>)]| {
            deployed
                .iter()
                .find(|(_, a)| a.info.hosts.contains_key(host))
                .map(|(d, a)| {
                    Lookup::Host(Box::new(Found {
                        host: host.to_owned(),
                        deployment: d.clone(),
                        artifact: a.clone(),
                    }))
                })
        };
        for (d, a) in &deployed {
            if let Some((host, _)) = a
                .info
                .hosts
                .iter()
                .find(|(_, h)| h.macs.iter().any(|m| m == mac))
            {
                return Ok(Lookup::Host(Box::new(Found {
                    host: host.clone(),
                    deployment: d.clone(),
                    artifact: a.clone(),
                })));
            }
        }
        let macs = self.records.macs()?;
        if let Some(host) = macs
            .iter()
            .find(|m| m.mac == mac)
            .and_then(|m| m.host.clone())
        {
            if let Some(l) = found(&host, &deployed) {
                return Ok(l);
            }
        }
        let bound: Vec<&str> = macs.iter().filter_map(|m| m.host.as_deref()).collect();
        let mut candidates: Vec<&str> = deployed
            .iter()
            .flat_map(|(_, a)| a.info.hosts.iter())
            .filter(|(h, i)| i.discoverable && i.macs.is_empty() && !bound.contains(&h.as_str()))
            .map(|(h, _)| h.as_str())
            .collect();
        candidates.sort();
        for host in candidates {
            if self.records.bind(mac, host)? {
                tracing::info!(mac, host, "discovery: an unknown MAC is now this host's");
                if let Some(l) = found(host, &deployed) {
                    return Ok(l);
                }
            }
        }
        for a in self.store_artifacts()? {
            if let Some((host, _)) = a
                .info
                .hosts
                .iter()
                .find(|(_, h)| h.macs.iter().any(|m| m == mac))
            {
                return Ok(Lookup::NotDeployed {
                    host: host.clone(),
                    master: a.info.master.clone(),
                });
            }
        }
        Ok(Lookup::Unknown)
    }

    /// Starts a boot of `found` for `mac` asking from `ip`: its record and
    /// its token (returned; only its hash is kept).
    pub fn start_boot(&self, found: &Found, mac: &str, ip: IpAddr) -> Result<(Boot, String)> {
        let token = new_token()?;
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(self.opts.token_ttl)
            .unwrap_or(chrono::Duration::minutes(30));
        let boot = Boot {
            id: ulid::Ulid::new().to_string(),
            host: found.host.clone(),
            mac: mac.to_owned(),
            ip: ip.to_string(),
            master: found.deployment.master.clone(),
            artifact: found.deployment.artifact.clone(),
            build_id: found.deployment.build_id.clone(),
            deployment: found.deployment.id,
            started: crate::runner::now_at(now),
            files_done: Vec::new(),
            last_file: None,
            last_at: None,
            state: "in progress".into(),
        };
        self.records.start_boot(
            &boot,
            &token_hash(&token),
            &crate::runner::now_at(now + ttl),
        )?;
        Ok((boot, token))
    }

    /// Checks that the boot of `token` may fetch the blob `digest` from
    /// `ip`: its boot and what the file is. A conffs is claimed when
    /// `claim` (a `GET`): no other fetch gets it until this one ends, and
    /// only one that ends incomplete gives it back ([`Records::release_conffs`]).
    pub fn authorize_boot_fetch(
        &self,
        token: &str,
        digest: &Digest,
        ip: IpAddr,
        claim: bool,
    ) -> Result<(Boot, FileKind)> {
        let refused = || ServeError::Forbidden("this boot token does not open this file".into());
        let Some(tb) = self.records.boot_of_token(&token_hash(token))? else {
            return Err(refused());
        };
        let expired = chrono::DateTime::parse_from_rfc3339(&tb.expires)
            .map(|t| t.to_utc() < chrono::Utc::now())
            .unwrap_or(true);
        if expired {
            return Err(ServeError::Gone(
                "this boot token expired: the host asks for its script again".into(),
            ));
        }
        let artifact = self.artifact(&tb.boot.artifact, Some(&tb.boot.master))?;
        let Some((_, kind, owner)) = artifact.by_digest(digest) else {
            return Err(refused());
        };
        match kind {
            FileKind::Kernel | FileKind::Initramfs | FileKind::Rootfs => {}
            FileKind::Conffs => {
                if owner != Some(tb.boot.host.as_str()) {
                    return Err(refused());
                }
                let gone = || {
                    ServeError::Gone(format!(
                        "the conffs of {} was handed over already for this boot: the host \
                         asks for its script again",
                        tb.boot.host
                    ))
                };
                if tb.conffs_spent {
                    return Err(gone());
                }
                if self.opts.conffs_from_known_ip {
                    let known = artifact.info.hosts.get(&tb.boot.host).and_then(|h| h.ip);
                    if known != Some(ip) {
                        tracing::warn!(host = %tb.boot.host, %ip, "conffs refused: not the host's inventory address");
                        return Err(ServeError::Forbidden(format!(
                            "the conffs of {} goes only to its inventory address",
                            tb.boot.host
                        )));
                    }
                }
                if claim && !self.records.claim_conffs(&tb.boot.id)? {
                    return Err(gone());
                }
            }
            FileKind::Other => return Err(refused()),
        }
        Ok((tb.boot, kind))
    }

    /// Whether an operator (API token) may fetch `digest`: a file of a boot
    /// artifact of the store that is no conffs; what it is.
    pub fn authorize_operator_fetch(&self, digest: &Digest) -> Result<FileKind> {
        let mut kind = None;
        for a in self.store_artifacts()? {
            match a.by_digest(digest) {
                Some((_, FileKind::Conffs, _)) => {
                    return Err(ServeError::Forbidden(
                        "a conffs goes only to its host's boot, never to an API token".into(),
                    ))
                }
                Some((_, k, _)) => kind = Some(k),
                None => {}
            }
        }
        kind.ok_or_else(|| ServeError::Missing(format!("no boot file {digest} in the store")))
    }

    /// Deploys the artifact of build `build_id` of `master`.
    pub fn deploy_build(
        &self,
        master: &str,
        build_id: &str,
        by: &str,
        source: &str,
    ) -> Result<Deployment> {
        let build = self
            .history
            .get(build_id)?
            .ok_or_else(|| ServeError::NotFound(build_id.to_owned()))?;
        let artifact = build
            .boot_artifact(master)
            .map(str::to_owned)
            .ok_or_else(|| {
                ServeError::Conflict(format!(
                    "build {build_id} made no boot files of {master} (its stage must be \
                     `initramfs` or `all`, and it must have succeeded)"
                ))
            })?;
        self.deploy(master, &artifact, Some(build_id), source, by)
    }

    /// Deploys `<master>/boot:TAG` of the store, pulled from the registry
    /// first when the store lacks it and the server has one.
    pub fn deploy_tag(&self, master: &str, tag: &str, by: &str) -> Result<Deployment> {
        let reference = Reference::parse(&format!("{master}/boot:{tag}")).map_err(|e| {
            ServeError::BadRequest {
                field: "from",
                message: e.to_string(),
            }
        })?;
        let desc = match self.store.resolve(&reference) {
            Ok(d) => d,
            Err(_) if self.opts.registry.is_some() => {
                let registry = self.opts.registry.as_ref().expect("checked");
                tracing::info!(%reference, registry = %registry.display(), "pulling the boot files to deploy");
                let src = registry
                    .remote(&format!("{master}/boot"), tag)
                    .map_err(ServeError::Config)?;
                let runtime = publish::runtime().map_err(ServeError::Config)?;
                runtime
                    .block_on(vauban_core::vauban_oci::registry::pull(
                        &self.store,
                        &src,
                        Some(&reference),
                        &registry.options,
                        Arc::new(vauban_core::vauban_oci::registry::NoProgress),
                    ))
                    .map_err(|e| ServeError::Conflict(format!("pulling {src}: {e}")))?;
                self.store.resolve(&reference)?
            }
            Err(_) => {
                return Err(ServeError::Missing(format!(
                "the store has no {reference} (and the server has no --registry to pull it from)"
            )))
            }
        };
        let digest = desc.digest().to_string();
        let build_id = self.build_of_artifact(master, &digest)?;
        self.deploy(
            master,
            &digest,
            build_id.as_deref(),
            &format!("tag {tag}"),
            by,
        )
    }

    /// The build of the history that made `artifact`, if any.
    fn build_of_artifact(&self, master: &str, artifact: &str) -> Result<Option<String>> {
        let filter = crate::db::Filter {
            master: None,
            status: Some(crate::model::Status::Succeeded),
            limit: 200,
        };
        Ok(self
            .history
            .list(&filter)?
            .into_iter()
            .find(|b| b.boot_artifact(master) == Some(artifact))
            .map(|b| b.id))
    }

    /// Goes back to the deployment before the current one of `master`.
    pub fn rollback(&self, master: &str, by: &str) -> Result<Deployment> {
        let current = self
            .records
            .deployments(master, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| ServeError::Conflict(format!("{master} was never deployed")))?;
        let before = current
            .previous
            .map(|p| self.records.deployment(p))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                ServeError::Conflict(format!(
                    "{master} has nothing to go back to: its current deployment #{} ({}) \
                     has no deployment before it",
                    current.id, current.source
                ))
            })?;
        let read = self.artifact(&before.artifact, Some(master))?;
        let mut d = self.records.deploy(
            master,
            &before.artifact,
            before.build_id.as_deref(),
            &format!("rollback to #{}", before.id),
            by,
            before.previous,
        )?;
        self.keep_named(master, &d)?;
        tracing::info!(master, id = d.id, artifact = %d.artifact, by, "rolled back");
        d.warnings = self.deploy_warnings(&read);
        Ok(d)
    }

    /// Records the deployment of `artifact` (checked to be `master`'s).
    fn deploy(
        &self,
        master: &str,
        artifact: &str,
        build_id: Option<&str>,
        source: &str,
        by: &str,
    ) -> Result<Deployment> {
        let read = self.artifact(artifact, Some(master))?;
        let previous = self.records.deployments(master, 1)?.into_iter().next();
        let mut d = self.records.deploy(
            master,
            artifact,
            build_id,
            source,
            by,
            previous.map(|p| p.id),
        )?;
        self.keep_named(master, &d)?;
        tracing::info!(master, id = d.id, artifact, by, source, "deployed");
        d.warnings = self.deploy_warnings(&read);
        Ok(d)
    }

    /// What is worth a warning in deploying `artifact`: with
    /// `--conffs-from-known-ip`, the hosts whose conffs nobody can fetch.
    fn deploy_warnings(&self, artifact: &Artifact) -> Vec<String> {
        if !self.opts.conffs_from_known_ip {
            return Vec::new();
        }
        let without: Vec<&str> = artifact
            .info
            .hosts
            .iter()
            .filter(|(_, h)| h.ip.is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if without.is_empty() {
            return Vec::new();
        }
        let w = format!(
            "--conffs-from-known-ip: {} ha{} no address in the inventory (host variable `ip`, \
             or an `ansible_host` that is an address): no conffs will be handed to {}",
            without.join(", "),
            if without.len() == 1 { "s" } else { "ve" },
            if without.len() == 1 { "it" } else { "them" },
        );
        tracing::warn!(master = %artifact.info.master, "{w}");
        vec![w]
    }

    /// Names deployment `d`'s artifact in the store (`<master>/boot:deploy-N`)
    /// and unnames those of deployments older than the last
    /// [`KEEP_DEPLOYMENTS`] (their blobs go at the next `vauban gc`).
    fn keep_named(&self, master: &str, d: &Deployment) -> Result<()> {
        self.tag_artifact(master, &format!("deploy-{}", d.id), &d.artifact)?;
        let keep: Vec<String> = self
            .records
            .deployments(master, KEEP_DEPLOYMENTS)?
            .iter()
            .map(|d| format!("deploy-{}", d.id))
            .collect();
        self.untag_but(master, "deploy-", &keep)
    }

    /// Names `artifact` `<master>/boot:TAG` in the store.
    pub fn tag_artifact(&self, master: &str, tag: &str, artifact: &str) -> Result<()> {
        let digest = Digest::parse(artifact)
            .map_err(|_| ServeError::Missing(format!("{artifact} is not a sha256 digest")))?;
        let size = std::fs::metadata(self.store.blob_path(&digest))
            .map_err(|e| ServeError::io("stat", self.store.blob_path(&digest), e))?
            .len();
        // Hidden from `vauban images` as the build's own name of it is.
        let desc = vauban_core::stage::intermediate(Descriptor::new(
            MediaType::ImageManifest,
            size,
            vauban_core::vauban_oci::image::oci_digest(&digest),
        ));
        let reference = Reference::parse(&format!("{master}/boot:{tag}"))
            .map_err(|e| ServeError::Conflict(e.to_string()))?;
        self.store.tag(&reference, &desc)?;
        Ok(())
    }

    /// Unnames `<master>/boot:PREFIX*` but the tags `keep`.
    pub fn untag_but(&self, master: &str, prefix: &str, keep: &[String]) -> Result<()> {
        let name = format!("{master}/boot");
        for (reference, _) in self.store.list()? {
            if reference.name() == name
                && reference.tag().starts_with(prefix)
                && !keep.iter().any(|k| k == reference.tag())
            {
                self.store.untag(&reference)?;
            }
        }
        Ok(())
    }

    /// After a successful build: names its boot artifacts by build
    /// (`<master>/boot:build-ID`, the last [`KEEP_BUILDS`] kept), and deploys
    /// them when the request asked for it or the master is `deploy: auto`.
    pub fn after_build(&self, build: &crate::model::Build, auto: &[String]) {
        for step in &build.steps {
            let (Some(master), Some(artifact)) = (
                step.step.strip_prefix(crate::worker::BOOT_STEP_PREFIX),
                step.image.as_deref(),
            ) else {
                continue;
            };
            let result = self
                .tag_artifact(master, &format!("build-{}", build.id), artifact)
                .and_then(|()| self.prune_builds(master))
                .and_then(|()| {
                    if build.request.deploy || auto.iter().any(|a| a == master) {
                        let why = if build.request.deploy {
                            format!("build {} (--deploy)", build.id)
                        } else {
                            format!("build {} (deploy: auto)", build.id)
                        };
                        self.deploy(master, artifact, Some(&build.id), &why, &build.requested_by)
                            .map(|_| ())
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = result {
                tracing::error!(id = %build.id, master, "after the build: {e:#}");
            }
        }
    }

    /// Keeps the last [`KEEP_BUILDS`] build names of `master`'s artifacts.
    fn prune_builds(&self, master: &str) -> Result<()> {
        let name = format!("{master}/boot");
        let mut tags: Vec<String> = self
            .store
            .list()?
            .into_iter()
            .filter(|(r, _)| r.name() == name && r.tag().starts_with("build-"))
            .map(|(r, _)| r.tag().to_owned())
            .collect();
        // ULIDs sort by time.
        tags.sort();
        let keep: Vec<String> = tags.iter().rev().take(KEEP_BUILDS).cloned().collect();
        self.untag_but(master, "build-", &keep)
    }

    /// `/hosts`.
    pub fn hosts(&self) -> Result<HostsView> {
        let deployed = self.deployed()?;
        let last = self.records.last_boots(false)?;
        let complete = self.records.last_boots(true)?;
        let macs = self.records.macs()?;
        let mut hosts = Vec::new();
        for (d, a) in &deployed {
            for (host, info) in &a.info.hosts {
                let mut host_macs = info.macs.clone();
                host_macs.extend(
                    macs.iter()
                        .filter(|m| m.host.as_deref() == Some(host))
                        .map(|m| m.mac.clone()),
                );
                let last_boot = last.iter().find(|b| &b.host == host).cloned();
                let last_complete_boot = complete.iter().find(|b| &b.host == host).cloned();
                let runs = last_complete_boot
                    .as_ref()
                    .map(|b| b.artifact == d.artifact);
                let summary = summary(host, d, last_complete_boot.as_ref(), last_boot.as_ref());
                hosts.push(HostView {
                    host: host.clone(),
                    master: d.master.clone(),
                    macs: host_macs,
                    deployed: Some(d.clone()),
                    last_boot,
                    last_complete_boot,
                    runs_deployed: runs,
                    summary,
                });
            }
        }
        // Hosts that booted once but are no deployed master's any more.
        for b in &last {
            if !hosts.iter().any(|h| h.host == b.host) {
                hosts.push(HostView {
                    host: b.host.clone(),
                    master: b.master.clone(),
                    macs: vec![b.mac.clone()],
                    deployed: None,
                    last_boot: Some(b.clone()),
                    last_complete_boot: complete.iter().find(|c| c.host == b.host).cloned(),
                    runs_deployed: None,
                    summary: format!(
                        "{} is in no deployed build; it last booted {}",
                        b.host,
                        build_words(b.build_id.as_deref(), &b.artifact)
                    ),
                });
            }
        }
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        let known: Vec<&String> = hosts.iter().flat_map(|h| &h.macs).collect();
        let unknown = macs
            .iter()
            .filter(|m| m.host.is_none() && !known.contains(&&m.mac))
            .cloned()
            .collect();
        Ok(HostsView { hosts, unknown })
    }
}

/// `web02 still runs build X (booted …); deployed: build Y`, from the last
/// complete boot, and the last boot asked for when it is another.
fn summary(host: &str, d: &Deployment, complete: Option<&Boot>, last: Option<&Boot>) -> String {
    let deployed = build_words(d.build_id.as_deref(), &d.artifact);
    let mut text = match complete {
        None => format!("{host} has not booted whole from vauban yet; deployed: {deployed}"),
        Some(b) if b.artifact == d.artifact => {
            format!("{host} runs the deployed {deployed} (booted {})", b.started)
        }
        Some(b) => format!(
            "{host} still runs {} (booted {}); deployed: {deployed}",
            build_words(b.build_id.as_deref(), &b.artifact),
            b.started
        ),
    };
    if let Some(l) = last.filter(|l| complete.is_none_or(|c| c.id != l.id)) {
        text.push_str(&format!(
            "; last asked for its script {} ({}, {})",
            l.started,
            build_words(l.build_id.as_deref(), &l.artifact),
            l.state
        ));
    }
    text
}

fn build_words(build: Option<&str>, artifact: &str) -> String {
    match build {
        Some(b) => format!("build {b}"),
        None => format!("artifact {}", &artifact[..artifact.len().min(19)]),
    }
}

/// A new boot token: 256 random bits, hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ServeError::Setup(format!("no randomness for a boot token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the records keep of a token.
pub(crate) fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
