//! The conffs step of a master: its hosts (`ansible 'PATTERN,!master-*'
//! --list-hosts`), their sshd keys from the key store, then the whole chain
//! of stages (release first, minus `ignore_stage_in_conffs`, after
//! `always_apply_stage_in_conffs`) with `in_conffs_build: true` on top of the
//! master's rootfs: every host of a stage in **one** `ansible-playbook` run
//! (one sandbox per host), each host's step through the cache. Then each
//! host's layers are exported as `OUT/<master>/conffs-<host>.tgz`. A failed
//! host stops there; the others go on and are kept.

use std::collections::BTreeMap;

use vauban_oci::Image;

use super::builder::{runner, Builder};
use super::cache::StepKey;
use super::error::BuildError;
use super::inputs;
use super::report::{Exported, Outcome};
use crate::config::Master;
use crate::events::Event;
use crate::export::conffs::{export_conffs, ConffsOptions};
use crate::export::BootTree;
use crate::keys::KeyStore;
use crate::stage::{Stage, Target};

/// One host of a conffs build.
struct HostState {
    image: Image,
    /// Its name (`/imginfo`'s `source` of the next stage).
    name: String,
    failed: Option<crate::Error>,
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

    /// The hosts of `pattern` in the inventory of `analysed`, through the
    /// tool cache.
    pub(super) fn hosts_of(
        &self,
        analysed: &super::builder::Analysed,
        pattern: &str,
    ) -> Result<Vec<String>, BuildError> {
        let key = inputs::tool_key("hosts", &[&analysed.inventory_digest, pattern]);
        if let Some(hosts) = self.tools.get(&key) {
            return Ok(hosts.lines().map(str::to_owned).collect());
        }
        let hosts = inputs::conffs_hosts(
            &self.confined,
            &self.ansible_playbook,
            &analysed.checkout.root,
            &analysed.inventories,
            pattern,
        )?;
        if !hosts.is_empty() {
            self.tools.put(&key, &hosts.join("\n"))?;
        }
        Ok(hosts)
    }

    /// Builds the conffs of every host of `master`.
    pub(super) fn conffs(&mut self, master: &Master) -> Result<(), BuildError> {
        let pattern = self.pattern(master).ok_or_else(|| BuildError::NoConffs {
            master: master.name.clone(),
        })?;
        let base = self.existing(master)?;
        let stages = self.conffs_stages(master);
        let spec = self.spec(master, true);
        let env = self.env.clone();
        let mut runner = runner(
            self.store,
            &spec,
            &env,
            &format!("{}-conffs", master.name),
            self.opts.jobs,
        )?;
        let hosts = {
            let first = stages.first().cloned().unwrap_or_else(|| {
                Stage::new("none.yml").expect("a plain playbook name is a stage")
            });
            let analysed = self.analyse(&mut runner, &first, &spec)?;
            self.hosts_of(&analysed, &pattern)?
        };
        if hosts.is_empty() {
            return Err(BuildError::NoHosts {
                master: master.name.clone(),
                pattern,
            });
        }
        tracing::info!(master = %master.name, hosts = ?hosts, "conffs hosts");
        let secret = self
            .opts
            .keys
            .clone()
            .ok_or_else(|| BuildError::NoKeySecret {
                keystore: self.opts.keystore.clone(),
            })?;
        // Opened once (a passphrase costs a second per open): held until the
        // exports are written, so two builds sharing it take turns.
        let mut keystore = KeyStore::open(&self.opts.keystore, secret)?;
        keystore.ensure_hosts(hosts.iter().map(String::as_str))?;
        keystore.save()?;

        let mut state: BTreeMap<String, HostState> = hosts
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    HostState {
                        image: base.clone(),
                        name: master.name.clone(),
                        failed: None,
                    },
                )
            })
            .collect();
        for stage in &stages {
            self.interrupted()?;
            self.conffs_stage(master, &mut runner, &spec, stage, &hosts, &mut state)?;
        }

        // Exports, then names, of the hosts that made it.
        let tree = BootTree::new(self.out().to_path_buf());
        let mut failures = Vec::new();
        for host in &hosts {
            let st = state.remove(host).expect("every host has a state");
            if let Some(e) = st.failed {
                failures.push((host.clone(), e));
                continue;
            }
            self.interrupted()?;
            let started = std::time::Instant::now();
            let keys = keystore
                .get(host)
                .ok_or_else(|| crate::Error::Panicked("a host without keys after ensure_hosts"))?;
            tree.private_dir(&master.name)?;
            let dest = tree.conffs(&master.name, host);
            let opts = ConffsOptions {
                size_limit: self.config.configuration.conffs_size_limit,
                hostname: host.clone(),
            };
            match export_conffs(self.store, &base, &st.image, keys, &opts, &dest) {
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
                    failures.push((host.clone(), crate::Error::from(e)));
                    continue;
                }
            }
            let name = format!("{}/{host}", master.name);
            self.name(&name, &st.image, false, self.published(master))?;
        }
        drop(keystore);
        if !failures.is_empty() {
            return Err(BuildError::HostsFailed {
                master: master.name.clone(),
                failures,
            });
        }
        Ok(())
    }

    /// One stage of a conffs for every host still going.
    fn conffs_stage(
        &mut self,
        master: &Master,
        runner: &mut crate::stage::StageRunner<'_>,
        spec: &crate::stage::StageSpec,
        stage: &Stage,
        hosts: &[String],
        state: &mut BTreeMap<String, HostState>,
    ) -> Result<(), BuildError> {
        let started = std::time::Instant::now();
        let analysed = self.analyse(runner, stage, spec)?;
        let mut missing: Vec<(String, StepKey, String)> = Vec::new();
        for host in hosts {
            let st = &state[host];
            if st.failed.is_some() {
                continue;
            }
            let inputs = self.inputs(&analysed, stage, spec, host, &st.image);
            let key = inputs.key();
            let what = format!("conffs {}/{host}: {stage}", master.name);
            match self.cached(&key, &what)? {
                Some(hit) => {
                    self.host_done(master, stage, host, hit, Outcome::Cached, started, state)?
                }
                None => missing.push((host.clone(), key, inputs.comment())),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        // Locks in key order (no two builds wait on each other), then a
        // second look: another build may have made them meanwhile.
        let mut order: Vec<usize> = (0..missing.len()).collect();
        order.sort_by(|a, b| missing[*a].1.cmp(&missing[*b].1));
        let mut locks = Vec::new();
        for i in order {
            if !locks.iter().any(|(k, _)| *k == missing[i].1) {
                locks.push((missing[i].1.clone(), self.cache.lock(&missing[i].1)?));
            }
        }
        let mut targets = Vec::new();
        let mut keys = BTreeMap::new();
        for (host, key, comment) in missing {
            let what = format!("conffs {}/{host}: {stage}", master.name);
            match self.cached(&key, &what)? {
                Some(hit) => {
                    self.host_done(master, stage, &host, hit, Outcome::Cached, started, state)?
                }
                None => {
                    targets.push(Target {
                        host: host.clone(),
                        base: state[&host].image.clone(),
                        source: Some(state[&host].name.clone()),
                        comment: Some(comment),
                    });
                    keys.insert(host, key);
                }
            }
        }
        if targets.is_empty() {
            return Ok(());
        }
        for (host, result) in runner.run(stage, &targets) {
            match result {
                Ok(built) => {
                    self.cache.record(&keys[&host], &built)?;
                    self.host_done(master, stage, &host, built, Outcome::Built, started, state)?;
                }
                Err(crate::Error::Interrupted { signal }) => {
                    return Err(BuildError::Interrupted { signal })
                }
                Err(e) => {
                    self.record(
                        format!("conffs {}/{host}: {stage}", master.name),
                        Outcome::Failed,
                        None,
                        0,
                        started,
                    );
                    if let Some(st) = state.get_mut(&host) {
                        st.failed = Some(e);
                    }
                }
            }
        }
        drop(locks);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn host_done(
        &mut self,
        master: &Master,
        stage: &Stage,
        host: &str,
        image: Image,
        outcome: Outcome,
        started: std::time::Instant,
        state: &mut BTreeMap<String, HostState>,
    ) -> Result<(), BuildError> {
        let size = image.layers().last().map(|l| l.size()).unwrap_or(0);
        self.record(
            format!("conffs {}/{host}: {stage}", master.name),
            outcome,
            Some(&image),
            size,
            started,
        );
        let name = format!(
            "{}/{host}/{}",
            master.name,
            crate::stage::options::name_component(&stage.playbook)
        );
        self.name(&name, &image, true, false)?;
        if let Some(st) = state.get_mut(host) {
            st.image = image;
            st.name = name;
        }
        Ok(())
    }
}
