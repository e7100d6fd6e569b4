//! The Slurm backend: a job is one `sbatch --array=0-N` of a batch script
//! vauban writes (`#SBATCH` options from config, the task's command line
//! quoted), followed with `squeue` (the array's tasks unrolled, finished ones
//! too while slurmctld keeps them), its tasks' output read from the files
//! Slurm writes (`--output DIR/%A_%a.out`, where the coordinator reads them: a
//! directory both see), cancelled with `scancel`.
//!
//! Nothing of ours runs on the nodes but the `vauban build` of each task:
//! rootless there too (the node needs the user's subordinate id ranges), its
//! store node-local, its parent and results exchanged through the registry.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Backend, ExecutorKind, JobId, JobSpec, TaskState};
use crate::error::{Blame, Error, Result};

/// The `sbatch` options of a site (`executor: slurm:` in config.yml).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` (Slurm's spelling: `30`, `1:00:00`, `1-0`).
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem` (`4G`).
    pub mem: Option<String>,
    /// Where scripts and the tasks' output go: a directory the nodes and the
    /// coordinator both see (a shared home, a cluster file system).
    pub work_dir: PathBuf,
}

/// A submitted array: where its tasks write.
#[derive(Debug, Clone)]
struct Submitted {
    /// Bytes of each task's output already returned.
    read: HashMap<usize, u64>,
}

/// The Slurm backend.
#[derive(Debug)]
pub struct Slurm {
    opts: SlurmOptions,
    jobs: HashMap<JobId, Submitted>,
}

/// How long `cancel` waits for the tasks to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(120);

impl Slurm {
    /// A backend writing its scripts and outputs under `opts.work_dir`.
    pub fn new(opts: SlurmOptions) -> Result<Self> {
        crate::private::dir(&opts.work_dir).map_err(|e| Error::io("create", &opts.work_dir, e))?;
        Ok(Slurm {
            opts,
            jobs: HashMap::new(),
        })
    }

    /// The batch script of `job` (the same for a whole array and a retry).
    pub fn script(&self, job: &JobSpec) -> String {
        let mut s = String::from("#!/bin/sh\n");
        s.push_str(&format!(
            "# vauban-job-id={} master={}\n",
            job.build_id, job.master
        ));
        for (k, v) in &job.env {
            s.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        s.push_str("exec");
        for a in &job.argv {
            s.push(' ');
            s.push_str(&sh_quote(a));
        }
        s.push('\n');
        s
    }

    /// `sbatch`'s arguments for `job`, tasks `array` (`0-5`, `3`).
    fn sbatch_args(&self, job: &JobSpec, array: &str, script: &Path) -> Vec<String> {
        let o = &self.opts;
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", job.name),
            format!("--array={array}"),
            // Events only on stdout: what else a task says goes apart.
            format!("--output={}/%A_%a.out", o.work_dir.display()),
            format!("--error={}/%A_%a.err", o.work_dir.display()),
            format!("--comment=vauban-job-id={}", job.build_id),
            // What the task needs of the submitter's environment; nothing
            // else (a key store secret, a token) goes to the nodes.
            "--export=PATH,HOME,USER,LANG,LC_ALL,TMPDIR,XDG_RUNTIME_DIR,REGISTRY_AUTH_FILE"
                .to_owned(),
        ];
        let opt = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("--{name}={v}"));
        args.extend(opt("partition", &o.partition));
        args.extend(opt("account", &o.account));
        args.extend(opt("time", &o.time));
        args.extend(opt("mem", &o.mem));
        args.extend(o.cpus_per_task.map(|c| format!("--cpus-per-task={c}")));
        args.push(script.display().to_string());
        args
    }

    fn submit_array(&mut self, job: &JobSpec, array: &str) -> Result<JobId> {
        let script = self.opts.work_dir.join(format!("{}.sh", job.name));
        crate::private::write_file(&script, self.script(job).as_bytes())
            .map_err(|e| Error::io("write", &script, e))?;
        let out = run("sbatch", &self.sbatch_args(job, array, &script))?;
        // `--parsable`: `JOBID` or `JOBID;CLUSTER`.
        let id = out.trim().split(';').next().unwrap_or_default();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(slurm_error(format!(
                "sbatch of {} gave no job id: {out:?}",
                job.name
            )));
        }
        let id = JobId(id.to_owned());
        tracing::info!(job = %job.name, id = %id, array, "submitted to Slurm");
        self.jobs.insert(
            id.clone(),
            Submitted {
                read: HashMap::new(),
            },
        );
        Ok(id)
    }
}

impl Backend for Slurm {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Slurm
    }

    fn submit(&mut self, job: &JobSpec) -> Result<JobId> {
        if job.tasks == 0 {
            return Err(Error::internal("a job of no task"));
        }
        self.submit_array(job, &format!("0-{}", job.tasks - 1))
    }

    fn resubmit(&mut self, job: &JobSpec, index: usize) -> Result<JobId> {
        self.submit_array(job, &index.to_string())
    }

    fn poll(&mut self, id: &JobId) -> Result<BTreeMap<usize, TaskState>> {
        let out = run(
            "squeue",
            &[
                "--noheader".into(),
                "--array".into(),
                "--states=all".into(),
                format!("--jobs={id}"),
                "--format=%K|%T|%r".into(),
            ],
        );
        // A job slurmctld no longer keeps (MinJobAge passed) is refused as
        // an invalid id: its tasks are then as the last poll saw them.
        let out = match out {
            Err(Error::Executor { message, .. }) if message.contains("Invalid job id") => {
                String::new()
            }
            other => other?,
        };
        Ok(parse_squeue(&out))
    }

    fn output(&mut self, id: &JobId, index: usize) -> Result<Vec<String>> {
        let path = self.opts.work_dir.join(format!("{id}_{index}.out"));
        let Some(sub) = self.jobs.get_mut(id) else {
            return Ok(Vec::new());
        };
        let offset = sub.read.entry(index).or_insert(0);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| Error::io("read", &path, e))?;
        let mut buf = Vec::new();
        file.take(16 << 20)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &path, e))?;
        // Whole lines only: the rest is read again next time.
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        *offset += end as u64 + 1;
        Ok(String::from_utf8_lossy(&buf[..end])
            .lines()
            .map(str::to_owned)
            .collect())
    }

    fn error_tail(&mut self, id: &JobId, index: usize) -> Vec<String> {
        let path = self.opts.work_dir.join(format!("{id}_{index}.err"));
        let Ok(file) = std::fs::File::open(&path) else {
            return Vec::new();
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let mut tail = String::new();
        let mut file = file;
        if file
            .seek(SeekFrom::Start(len.saturating_sub(4096)))
            .is_err()
            || file.take(4096).read_to_string(&mut tail).is_err()
        {
            return Vec::new();
        }
        let lines: Vec<String> = tail
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| crate::printable::escape(l).into_owned())
            .collect();
        lines[lines.len().saturating_sub(5)..].to_vec()
    }

    fn cancel(&mut self, id: &JobId) -> Result<()> {
        run("scancel", std::slice::from_ref(&id.0))?;
        let started = Instant::now();
        loop {
            let states = self.poll(id)?;
            if states.values().all(TaskState::is_final) {
                return Ok(());
            }
            if started.elapsed() > CANCEL_WAIT {
                return Err(slurm_error(format!(
                    "job {id} still has tasks {} s after scancel",
                    CANCEL_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `squeue --array --format=%K|%T|%r`'s lines as each task's state.
fn parse_squeue(out: &str) -> BTreeMap<usize, TaskState> {
    let mut states = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.trim().split('|');
        let (Some(index), Some(state)) = (f.next(), f.next()) else {
            continue;
        };
        let reason = f.next().unwrap_or("").trim();
        // A task of a one-task job (no array) shows `N/A`.
        let Ok(index) = index.trim().parse::<usize>() else {
            continue;
        };
        let state = match state.trim() {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
            | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED" => TaskState::Pending,
            "RUNNING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => TaskState::Running,
            "COMPLETED" => TaskState::Succeeded,
            other if reason.is_empty() || reason == "None" => TaskState::Failed(other.to_owned()),
            other => TaskState::Failed(format!("{other} ({reason})")),
        };
        states.insert(index, state);
    }
    states
}

/// Runs a Slurm command; its stdout, or an error with what it said.
fn run(program: &str, args: &[String]) -> Result<String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Executor {
                executor: ExecutorKind::Slurm,
                message: format!("{program} is not installed here (Slurm's client commands)"),
                blame: Blame::Environment,
            }
        } else {
            Error::io("run", program, e)
        }
    })?;
    if !out.status.success() {
        return Err(slurm_error(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            crate::printable::escape(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn slurm_error(message: String) -> Error {
    Error::Executor {
        executor: ExecutorKind::Slurm,
        message,
        blame: Blame::Environment,
    }
}

/// `s` as one word of `sh`: single-quoted, a `'` written `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_task_states() {
        let out = "2|PENDING|Resources\n0|RUNNING|None\n1|FAILED|NonZeroExitCode\n\
                   3|COMPLETED|None\n4|CANCELLED|None\nN/A|RUNNING|None\n";
        let s = parse_squeue(out);
        assert_eq!(s[&0], TaskState::Running);
        assert_eq!(s[&1], TaskState::Failed("FAILED (NonZeroExitCode)".into()));
        assert_eq!(s[&2], TaskState::Pending);
        assert_eq!(s[&3], TaskState::Succeeded);
        assert_eq!(s[&4], TaskState::Failed("CANCELLED".into()));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn the_script_quotes_every_word() {
        let dir = tempfile::tempdir().unwrap();
        let slurm = Slurm::new(SlurmOptions {
            work_dir: dir.path().join("w"),
            ..Default::default()
        })
        .unwrap();
        let job = JobSpec {
            name: "vauban-b1-conffs".into(),
            build_id: "b1".into(),
            master: "master-web".into(),
            argv: vec!["/usr/bin/vauban".into(), "it's $(x)".into()],
            env: vec![("VAUBAN_X".into(), "a b".into())],
            tasks: 3,
        };
        let script = slurm.script(&job);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("export VAUBAN_X='a b'\n"));
        assert!(
            script.ends_with("exec '/usr/bin/vauban' 'it'\\''s $(x)'\n"),
            "{script}"
        );
        let args = slurm.sbatch_args(&job, "0-2", Path::new("/w/s.sh"));
        assert!(args.contains(&"--array=0-2".to_owned()));
        assert!(args.iter().any(|a| a.starts_with("--export=PATH,")));
        assert_eq!(args.last().unwrap(), "/w/s.sh");
    }
}
