//! The conffs step of a master: its hosts (`ansible 'PATTERN,!master-*'
//! --list-hosts`), their sshd keys from the key store, then the whole chain
//! of stages (release first, minus `ignore_stage_in_conffs`, after
//! `always_apply_stage_in_conffs`) with `in_conffs_build: true` on top of the
//! master's rootfs: every host of a stage in **one** `ansible-playbook` run
//! (one sandbox per host), each host's step through the cache. Then each
//! host's layers are exported as `OUT/<master>/conffs-<host>.tgz`. A failed
//! host stops there; the others go on and are kept; the failed host's
//! archive of an earlier build is removed (`out`), and `SHA256SUMS` written.

use std::collections::BTreeMap;

use vauban_oci::Image;

use super::builder::Builder;
use super::inputs;
use super::report::{Exported, Outcome};
use crate::config::Master;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::export::conffs::{export_conffs, ConffsOptions};
use crate::export::BootTree;
use crate::keys::KeyStore;
use crate::stage::Stage;

/// One host of a conffs build.
struct HostState {
    image: Image,
    /// Its name (`/imginfo`'s `source` of the next stage).
    name: String,
    failed: Option<crate::Error>,
}

impl HostState {
    /// Every host of `hosts` at the start: on `base`, the image of `master`.
    fn all(hosts: &[String], master: &Master, base: &Image) -> BTreeMap<String, HostState> {
        hosts
            .iter()
            .map(|h| {
                let st = HostState {
                    image: base.clone(),
                    name: master.name.clone(),
                    failed: None,
                };
                (h.clone(), st)
            })
            .collect()
    }
}

impl Builder<'_> {
    /// The stages of a conffs of `master`, in order.
    pub(super) fn conffs_stages(&self, master: &Master) -> Vec<Stage> {
        let c = &self.config.configuration;
        let mut stages: Vec<Stage> = c
            .always_apply_stage_in_conffs
            .iter()
            .map(|s| s.value.clone())
            .collect();
        for m in self.config.chain(master) {
            for stage in m.stage_list() {
                if !c.ignore_stage_in_conffs.iter().any(|i| i.value == *stage) {
                    stages.push(stage.clone());
                }
            }
        }
        stages
    }

    /// The image name of `stage`'s image for `host` of `master`'s conffs
    /// (`<master>/<host>/<playbook>:latest`).
    pub(super) fn host_stage_name(
        master: &Master,
        host: &str,
        stage: &Stage,
    ) -> Result<vauban_oci::Reference> {
        Builder::local(&format!(
            "{}/{host}/{}",
            master.name,
            crate::stage::spec::name_component(&stage.playbook)
        ))
    }

    /// The hosts of the conffs of `master` (its pattern: `--conffs` for the
    /// master built, else `conffs:`); an error when none matches.
    pub(super) fn conffs_hosts(&mut self, master: &Master) -> Result<Vec<String>> {
        let pattern = self.pattern(master).ok_or_else(|| Error::NoConffs {
            master: master.name.clone(),
        })?;
        let hosts = self.hosts_of(master, &pattern)?;
        if hosts.is_empty() {
            return Err(Error::NoHosts {
                master: master.name.clone(),
                pattern,
            });
        }
        Ok(hosts)
    }

    /// The hosts of `pattern` in the inventory of the checkout of `master`'s
    /// conffs stages, through the tool cache.
    pub(super) fn hosts_of(&mut self, master: &Master, pattern: &str) -> Result<Vec<String>> {
        let first = self
            .conffs_stages(master)
            .first()
            .cloned()
            .unwrap_or_else(|| Stage::new("none.yml").expect("a plain playbook name is a stage"));
        let spec = self.spec(master, true);
        let analysed = self.analyse(&first, &spec)?;
        let key = inputs::tool_key("hosts", &[&analysed.inventory_digest, pattern]);
        if let Some(hosts) = self.tools.get(&key) {
            return Ok(hosts.lines().map(str::to_owned).collect());
        }
        let hosts = inputs::conffs_hosts(
            self.runner.confined(),
            self.runner.ansible_playbook(),
            &analysed.checkout.root,
            &analysed.checkout.inventories,
            pattern,
        )?;
        if !hosts.is_empty() {
            self.tools.put(&key, &hosts.join("\n"))?;
        }
        Ok(hosts)
    }

    /// Builds the conffs of every host of `master` on its rootfs `base`.
    pub(super) fn conffs(&mut self, master: &Master, base: &Image) -> Result<()> {
        let hosts = self.conffs_hosts(master)?;
        tracing::info!(master = %master.name, hosts = ?hosts, "conffs hosts");
        if self.opts.images_only {
            return self.conffs_images(master, base, &hosts);
        }
        let secret = self.opts.keys.clone().ok_or_else(|| Error::NoKeySecret {
            keystore: self.opts.keystore.clone(),
        })?;
        // Opened once (a passphrase costs a second per open): held until the
        // exports are written, so two builds sharing it take turns.
        let mut keystore = KeyStore::open(&self.opts.keystore, secret)?;
        let new = keystore.ensure_hosts(hosts.iter().map(String::as_str))?;
        keystore.save()?;
        if !new.is_empty() {
            // A host that had keys elsewhere (the original's vault) would
            // change its fingerprints without a word otherwise.
            self.warn(format!(
                "new sshd host keys made for {} (none in {}): a host moving from the original \
                 keeps its own only if they are imported first (`vauban keys import`)",
                new.join(", "),
                self.opts.keystore.display()
            ));
        }

        let mut state = HostState::all(&hosts, master, base);
        if self.executor.is_some() {
            let last = self.conffs_stages(master).last().cloned();
            for (host, image) in self.conffs_remote(master, base, &hosts)? {
                let st = state
                    .get_mut(&host)
                    .expect("a result for a host of the build");
                match image {
                    Ok(image) => {
                        if let Some(stage) = &last {
                            let name = Builder::host_stage_name(master, &host, stage)?;
                            self.name(name.name(), &image, true, false)?;
                        }
                        st.image = image;
                    }
                    Err(e) => st.failed = Some(e),
                }
            }
        } else {
            self.conffs_here(master, &mut state)?;
        }
        self.export_hosts(master, base, &hosts, state, keystore)
    }

    /// The stages of every host of `state`, here.
    fn conffs_here(
        &mut self,
        master: &Master,
        state: &mut BTreeMap<String, HostState>,
    ) -> Result<()> {
        let spec = self.spec(master, true);
        let label = format!("{}-conffs", master.name);
        // Each host's facts gathered once, at its first stage that runs: the
        // setup module was a third of a host's cost (issue 19's profile).
        let facts = tempfile::Builder::new()
            .prefix("facts-")
            .tempdir_in(self.store.tmp_dir())
            .map_err(|e| Error::io("create a temp dir in", self.store.tmp_dir(), e))?;
        self.runner.facts = Some(facts.path().to_path_buf());
        let built = self.conffs_stages_over(master, &spec, &label, state, facts.path());
        self.runner.facts = None;
        drop(facts);
        built
    }

    /// Each host's archive from its image (the hosts that made it), then
    /// its name; `--out` left consistent, `SHA256SUMS` written.
    fn export_hosts(
        &mut self,
        master: &Master,
        base: &Image,
        hosts: &[String],
        mut state: BTreeMap<String, HostState>,
        keystore: KeyStore,
    ) -> Result<()> {
        // Exports, then names, of the hosts that made it.
        let tree = BootTree::new(self.out().to_path_buf());
        let mut failures = Vec::new();
        let mut made = Vec::new();
        for host in hosts {
            let st = state.remove(host).expect("every host has a state");
            if let Some(e) = st.failed {
                failures.push((host.clone(), e));
                continue;
            }
            self.interrupted()?;
            let started = std::time::Instant::now();
            let keys = keystore
                .get(host)
                .ok_or_else(|| Error::internal("a host without keys after ensure_hosts"))?;
            tree.private_dir(&master.name)?;
            let dest = tree.conffs(&master.name, host);
            let opts = ConffsOptions {
                size_limit: self.config.configuration.conffs_size_limit,
                hostname: host.clone(),
            };
            match export_conffs(self.store, base, &st.image, keys, &opts, &dest) {
                Ok(report) => {
                    for path in &report.deletions {
                        self.warn(format!(
                            "conffs of {host}: {path} is deleted by its stages, which a tgz \
                             cannot carry: the live root keeps the master's copy"
                        ));
                    }
                    self.env.events.emit(Event::Exported {
                        path: dest.display().to_string(),
                        size: report.size,
                    });
                    self.report.exported.push(Exported {
                        path: dest.clone(),
                        size: report.size,
                    });
                    self.record(
                        format!("export conffs-{host}.tgz"),
                        Outcome::Built,
                        None,
                        report.size,
                        started,
                    );
                }
                Err(e) => {
                    failures.push((host.clone(), e));
                    continue;
                }
            }
            made.push(host.clone());
            let name = format!("{}/{host}", master.name);
            // A task of an executor pushed it already (`latest`, its date).
            let publish = self.published(master) && self.executor.is_none();
            self.name(&name, &st.image, false, publish)?;
        }
        drop(keystore);
        self.conffs_made.insert(master.name.clone(), made.clone());
        // `--out` as this build leaves it: no archive of a failed host.
        let failed: Vec<String> = failures.iter().map(|(h, _)| h.clone()).collect();
        self.tidy_out(master, base, &made, &failed)?;
        self.write_sums()?;
        if !failures.is_empty() {
            return Err(Error::HostsFailed {
                master: master.name.clone(),
                failures,
            });
        }
        Ok(())
    }

    /// Every conffs stage of `master` over each host of `state` still going.
    fn conffs_stages_over(
        &mut self,
        master: &Master,
        spec: &crate::stage::StageSpec,
        label: &str,
        state: &mut BTreeMap<String, HostState>,
        facts: &std::path::Path,
    ) -> Result<()> {
        for (i, stage) in self.conffs_stages(master).iter().enumerate() {
            self.interrupted()?;
            let mut targets: Vec<(String, Image, String)> = state
                .iter()
                .filter(|(_, st)| st.failed.is_none())
                .map(|(h, st)| (h.clone(), st.image.clone(), st.name.clone()))
                .collect();
            // The first stage: every host on the master's tree. The first
            // host alone first, whose facts then serve the others.
            let mut batches = vec![];
            if i == 0 && targets.len() > 2 && super::facts::cache_in_use() {
                let rest = targets.split_off(1);
                batches.push(targets);
                targets = rest;
            }
            batches.push(targets);
            let what = |host: &str| format!("conffs {}/{host}: {stage}", master.name);
            let mut results = Vec::new();
            for (n, batch) in batches.into_iter().enumerate() {
                if n == 1 {
                    let first = results
                        .iter()
                        .find_map(|(h, r): &(String, Result<_>)| r.is_ok().then(|| h.clone()));
                    if let Some(first) = first {
                        let others: Vec<String> = batch.iter().map(|(h, _, _)| h.clone()).collect();
                        let given = super::facts::share(facts, &first, &others)?;
                        tracing::info!(%first, given, "facts shared");
                    }
                }
                results.extend(self.stage_for(spec, stage, label, &what, batch)?);
            }
            for (host, result) in results {
                let st = state
                    .get_mut(&host)
                    .expect("a result for a host of the build");
                match result {
                    Ok((image, _)) => {
                        let name = Builder::host_stage_name(master, &host, stage)?;
                        self.name(name.name(), &image, true, false)?;
                        st.image = image;
                        st.name = name.name().to_owned();
                    }
                    Err(e) => st.failed = Some(e),
                }
            }
        }
        Ok(())
    }

    /// `--images-only` (a task of an executor): the stages of every host,
    /// each host's image named `<master>/<host>` (pushed with
    /// `--registry`), no archive, no key store.
    fn conffs_images(&mut self, master: &Master, base: &Image, hosts: &[String]) -> Result<()> {
        let mut state = HostState::all(hosts, master, base);
        self.conffs_here(master, &mut state)?;
        let mut failures = Vec::new();
        for (host, st) in state {
            match st.failed {
                Some(e) => failures.push((host, e)),
                None => {
                    let name = format!("{}/{host}", master.name);
                    self.name(&name, &st.image, false, self.published(master))?;
                }
            }
        }
        if !failures.is_empty() {
            return Err(Error::HostsFailed {
                master: master.name.clone(),
                failures,
            });
        }
        Ok(())
    }
}
