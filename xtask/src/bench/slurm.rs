//! The `--executor slurm` row: 60 hosts' conffs as a Slurm job array on a
//! real one-node cluster of this machine (`crate::slurm`), tasks exchanging
//! through a throwaway `docker-registry` on loopback, against the same conffs
//! with `--executor local` in the same run. What the engine costs a task
//! (submission, `squeue` polls, the base pulled into the task's store, the
//! images pushed and pulled back) is the difference over the tasks.

use std::process::Command;

use anyhow::{Context, Result};

use super::build::Fleet;
use super::{measure, Comparison, Ctx};
use crate::registry::Registry;
use crate::slurm::Cluster;
use crate::util;

/// Hosts of the row's fleet.
pub const HOSTS: usize = 60;

/// The row's fleet, cluster and registry, made on first use.
pub struct SlurmFleet {
    fleet: Fleet,
    registry: Registry,
    cluster: Cluster,
}

impl SlurmFleet {
    /// The fleet's `vauban build` ([`Fleet::build`]) of the conffs, with the
    /// registry, the cluster and `args`.
    fn build(&self, vauban: &std::path::Path, args: &[&str]) -> Command {
        let registry = format!("{}/vauban", self.registry.addr);
        let mut all = vec![
            "--stage",
            "conffs",
            "--registry",
            &registry,
            "--tls-verify=false",
        ];
        all.extend(args);
        let mut cmd = self.fleet.build(vauban, &all);
        cmd.env("SLURM_CONF", &self.cluster.conf);
        cmd
    }
}

fn fleet(ctx: &mut Ctx) -> Result<&SlurmFleet> {
    if ctx.state.slurm.is_none() {
        let dir = ctx.fresh_dir("slurm-fleet")?;
        let tasks_store = format!(
            "  executor:\n    store: {}\n",
            dir.join("task-store").display()
        );
        super::build::write_fleet(&dir, &ctx.fixture, HOSTS, &tasks_store)?;
        let registry = Registry::start(&dir.join("registry"))?;
        let cluster = Cluster::start(&dir.join("slurm"))?;
        let fleet = SlurmFleet {
            fleet: Fleet::at(dir),
            registry,
            cluster,
        };
        // Untimed: the chain, the keys, and one Slurm conffs (the tasks'
        // store gets its base once, as a site's nodes keep theirs).
        util::run(&mut fleet.build(&ctx.vauban, &["--build-parents", "-1"]))
            .context("preparing the Slurm bench fleet")?;
        util::run(&mut fleet.build(&ctx.vauban, &["--executor", "slurm"]))
            .context("a first conffs on the bench's Slurm")?;
        ctx.state.slurm = Some(fleet);
    }
    Ok(ctx.state.slurm.as_ref().expect("just made"))
}

/// 60 hosts' conffs on Slurm against the same here.
pub fn conffs_on_slurm(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let vauban = ctx.vauban.clone();
    let local = fleet(ctx)?.build(&vauban, &["--no-cache", "--executor", "local"]);
    let local = measure(ctx, &local)?;
    let slurm = fleet(ctx)?.build(&vauban, &["--no-cache", "--executor", "slurm"]);
    let slurm = measure(ctx, &slurm)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) * 2;
    let tasks = HOSTS.div_ceil(HOSTS.div_ceil(jobs).clamp(4, 50));
    let per_task = |slurm: &super::Sample, local: &super::Sample, what: &str| {
        let more = slurm.wall.as_secs_f64() - local.wall.as_secs_f64();
        eprintln!(
            "    {what}: {tasks} tasks, {more:.2} s more than local, {:.2} s a task",
            more / tasks as f64
        );
    };
    per_task(&slurm, &local, "every stage run");
    // Every stage a cache hit, here and in the tasks' store: what is left
    // is the engine (submit, start, poll, the registry exchange, pulls).
    let local_cached = fleet(ctx)?.build(&vauban, &["--executor", "local"]);
    let local_cached = measure(ctx, &local_cached)?;
    let slurm_cached = fleet(ctx)?.build(&vauban, &["--executor", "slurm"]);
    let slurm_cached = measure(ctx, &slurm_cached)?;
    per_task(&slurm_cached, &local_cached, "cached (the engine alone)");
    let mut engine = Comparison::new(
        &format!("conffs {HOSTS} hosts, Slurm, cached"),
        slurm_cached,
        "--executor local",
        local_cached,
    );
    engine.checked = false;
    Ok(vec![
        Comparison::new(
            &format!("conffs {HOSTS} hosts, Slurm"),
            slurm,
            "--executor local",
            local,
        ),
        engine,
    ])
}
