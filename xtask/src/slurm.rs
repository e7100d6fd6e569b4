//! A real one-node Slurm cluster for the tests and the bench: `munged`,
//! `slurmctld` and `slurmd` from Debian's `slurm-wlm` and `munge`, started as
//! root on 127.0.0.1 with a generated `slurm.conf` (its own ports, its own
//! munge key and socket: nothing of the machine's own Slurm or munge, if it
//! has any, is used or touched), stopped when dropped. The tests find it
//! with `$SLURM_CONF`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util;

/// A running cluster.
pub struct Cluster {
    dir: PathBuf,
    /// Its `slurm.conf` (what `$SLURM_CONF` names).
    pub conf: PathBuf,
}

impl Cluster {
    /// Starts the three daemons under `dir` (made readable to the test
    /// user: the conf and munge's socket), one node of every CPU here.
    pub fn start(dir: &Path) -> Result<Cluster> {
        if !util::is_root() {
            bail!("the test Slurm cluster needs root (slurmd runs the tasks as their user)");
        }
        std::fs::create_dir_all(dir)?;
        util::chmod(dir, 0o755)?;
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let key = dir.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .context("reading /dev/urandom")?;
        std::fs::write(&key, &bytes)?;
        util::chmod(&key, 0o600)?;
        let socket = dir.join("munge.sock");
        let node = hostname()?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            slurm_conf(
                dir,
                &node,
                cpus,
                util::free_port()?,
                util::free_port()?,
                &socket,
            ),
        )?;
        util::chmod(&conf, 0o644)?;
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: conf.clone(),
        };
        let d = |name: &str| dir.join(name).display().to_string();
        run(Command::new("munged").args([
            "--force".to_string(),
            format!("--socket={}", socket.display()),
            format!("--key-file={}", key.display()),
            format!("--log-file={}", d("munged.log")),
            format!("--pid-file={}", d("munged.pid")),
            format!("--seed-file={}", d("munged.seed")),
        ]))?;
        run(Command::new("slurmctld").arg("-f").arg(&conf))?;
        run(Command::new("slurmd").arg("-f").arg(&conf))?;
        cluster.wait_idle()?;
        eprintln!(
            "slurm: a one-node cluster ({cpus} CPUs) on 127.0.0.1, SLURM_CONF={}",
            conf.display()
        );
        Ok(cluster)
    }

    /// Waits until the node takes jobs.
    fn wait_idle(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let out = Command::new("sinfo")
                .args(["--noheader", "--format=%T"])
                .env("SLURM_CONF", &self.conf)
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.trim() == "idle" {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the test Slurm node is not idle after 60 s (sinfo: {:?}); logs in {}",
                    text.trim(),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (pid_file, name) in [
            ("slurmd.pid", "slurmd"),
            ("slurmctld.pid", "slurmctld"),
            ("munged.pid", "munged"),
        ] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(pid_file)) else {
                continue;
            };
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
                eprintln!("slurm: stopped {name}");
            }
        }
    }
}

fn hostname() -> Result<String> {
    Ok(nix::unistd::gethostname()?
        .into_string()
        .map_err(|_| anyhow::anyhow!("a host name that is not UTF-8"))?
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_string())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The cluster's `slurm.conf`: one node of `cpus` CPUs, everything on
/// 127.0.0.1, no accounting, jobs kept 10 minutes after they end (what
/// `squeue --states=all` shows).
pub fn slurm_conf(
    dir: &Path,
    node: &str,
    cpus: usize,
    ctld_port: u16,
    slurmd_port: u16,
    munge_socket: &Path,
) -> String {
    let d = dir.display();
    format!(
        "ClusterName=vauban-test\n\
         SlurmctldHost={node}(127.0.0.1)\n\
         SlurmctldPort={ctld_port}\n\
         SlurmdPort={slurmd_port}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         AuthType=auth/munge\n\
         CryptoType=crypto/munge\n\
         AuthInfo=socket={}\n\
         MpiDefault=none\n\
         ProctrackType=proctrack/pgid\n\
         TaskPlugin=task/none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         JobCompType=jobcomp/none\n\
         SchedulerType=sched/backfill\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_CPU\n\
         ReturnToService=2\n\
         MinJobAge=600\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/slurmctld.log\n\
         SlurmdLogFile={d}/slurmd.log\n\
         NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN\n\
         PartitionName=vauban Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
        munge_socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_is_loopback_only_with_its_own_munge() {
        let c = slurm_conf(
            Path::new("/s"),
            "vm",
            2,
            16817,
            16818,
            Path::new("/s/m.sock"),
        );
        assert!(c.contains("SlurmctldHost=vm(127.0.0.1)\n"));
        assert!(c.contains("NodeName=vm NodeAddr=127.0.0.1 CPUs=2 "));
        assert!(c.contains("AuthInfo=socket=/s/m.sock\n"));
        assert!(!c.contains("0.0.0.0"));
    }
}
