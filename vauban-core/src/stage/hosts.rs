//! One stage over several hosts at once: a sandbox per host over its own
//! image, the per-host steps (Python check, package lists, metadata, commit) on
//! a few threads, and **one** `ansible-playbook` run for all of them, each host
//! aimed at its own merged tree (`ansible_host` from the `vauban_roots` extra
//! var), so Ansible's start-up, inventory parsing and fact gathering are paid
//! once per stage. A host that fails is reported with its task; the others'
//! results are kept.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::check;
use super::command::{self, AnsibleConfig};
use super::confined::Confined;
use super::hooks::{self, WrapperOutcome};
use super::inventory;
use super::metadata::{self, ImgInfo, ImgInfoHead, MetadataWrite};
use super::output::{Follower, Scanner};
use super::repo::Checkout;
use super::spec::StageSpec;
use super::stage_name::Stage;
use super::tools::Tools;
use crate::error::{AnsibleFailure, Error, IoContext, Result};
use crate::events::Event;
use crate::machine::Env;
use crate::sandbox::controller::{self, CHROOT_EXE, INPUTS_DIR};
use crate::sandbox::{CommitOptions, Helper, Io, Program, RunIo, Sandbox, SandboxOptions};

/// `ANSIBLE_REMOTE_TEMP` in the image: the sandbox's `/tmp` is a tmpfs, so nothing
/// Ansible leaves there reaches the layer.
const REMOTE_TEMP: &str = "/tmp";

/// A host to build a stage for, from its own image.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host: `--limit`, `/etc/hostname`, its inventory variables.
    pub host: String,
    /// The image it starts from.
    pub base: Image,
    /// That image's name, for `/imginfo` (its digest when `None`).
    pub source: Option<String>,
    /// The history comment of its new layer (a build's cache key), if any.
    pub comment: Option<String>,
}

/// One stage of a build, ready to run over hosts.
pub(crate) struct StageRun<'a> {
    pub store: &'a Store,
    pub tools: &'a Tools,
    pub stage: &'a Stage,
    pub spec: &'a StageSpec,
    pub env: &'a Env,
    pub helper: &'a Helper,
    pub confined: &'a Confined,
    pub checkout: &'a Checkout,
    /// The run's log file (every host); each host's own lines also go to
    /// `<dir>/<host>/<file name>`.
    pub log: &'a Path,
    /// Hosts worked on at once.
    pub jobs: usize,
}

/// A prepared host.
struct Prepared<'s> {
    host: String,
    source: Option<String>,
    comment: Option<String>,
    sandbox: Sandbox<'s>,
    before: Option<String>,
}

impl StageRun<'_> {
    /// Builds the stage for every target; one result per host, in order.
    pub(crate) fn run(&self, targets: &[Target]) -> Vec<(String, Result<Image>)> {
        let started = std::time::Instant::now();
        let mut results: Vec<(String, Option<Result<Image>>)> =
            targets.iter().map(|t| (t.host.clone(), None)).collect();
        for t in targets {
            self.env.events.emit(Event::StageStarted {
                stage: self.stage.to_string(),
                host: t.host.clone(),
                base: t.base.manifest_digest.clone(),
            });
        }
        // Sandboxes one after the other: the hosts share the master's layer
        // dirs, extracted by the first.
        let mut prepared: Vec<Option<Sandbox<'_>>> = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            match self.sandbox(t) {
                Ok(s) => prepared.push(Some(s)),
                Err(e) => {
                    results[i].1 = Some(Err(e));
                    prepared.push(None);
                }
            }
        }
        let work = match tempfile::Builder::new()
            .prefix("vauban-stage-")
            .tempdir()
            .at("create a temp dir in", std::env::temp_dir())
        {
            Ok(w) => w,
            Err(e) => return fail_all(results, &e),
        };
        // Python and the package list before, per host.
        let checked = par_map(prepared, self.jobs, |i, sandbox| {
            let sandbox = sandbox?;
            let host = &targets[i].host;
            let before = self.check_python(&sandbox).and_then(|()| {
                self.dpkg_list(&sandbox, &work.path().join(format!("{host}.before")))
            });
            Some(before.map(|b| Prepared {
                host: host.clone(),
                source: targets[i].source.clone(),
                comment: targets[i].comment.clone(),
                sandbox,
                before: b,
            }))
        });
        let mut ready: Vec<(usize, Prepared<'_>)> = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Some(Ok(p)) => ready.push((i, p)),
                Some(Err(e)) => results[i].1 = Some(Err(e)),
                None => {}
            }
        }
        if !ready.is_empty() {
            let sandboxes: Vec<&Sandbox<'_>> = ready.iter().map(|(_, p)| &p.sandbox).collect();
            match self.run_ansible(&sandboxes, work.path()) {
                Err(e) => {
                    // The run as a whole failed (hooks, nothing matched): every
                    // host of it did.
                    for (i, p) in &ready {
                        results[*i].1 = Some(Err(self.whole_run_failed(&e, &p.host)));
                    }
                    ready.clear();
                }
                Ok(scanner) => {
                    let failed = scanner.failed_hosts();
                    ready.retain(|(i, p)| {
                        if failed.contains(&p.host) {
                            results[*i].1 = Some(Err(self.host_failed(&scanner, &p.host)));
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        // The package list after, the metadata and the commit, per host.
        let items: Vec<Option<(usize, Prepared<'_>)>> = ready.into_iter().map(Some).collect();
        let committed = par_map(items, self.jobs, |_, item| {
            let (i, p) = item?;
            Some((i, self.finish(p, work.path(), started)))
        });
        for (i, r) in committed.into_iter().flatten() {
            results[i].1 = Some(r);
        }
        results
            .into_iter()
            .map(|(h, r)| {
                (
                    h,
                    r.unwrap_or_else(|| Err(Error::Panicked("a stage's host step"))),
                )
            })
            .collect()
    }

    fn sandbox(&self, t: &Target) -> Result<Sandbox<'_>> {
        let opts = SandboxOptions {
            hostname: t.host.clone(),
            env: Vec::new(),
            helper: Some(self.helper.clone()),
            events: self.env.events.clone(),
            network: self.env.network.clone(),
        };
        Sandbox::prepare(self.store, &t.base, opts)
    }

    fn finish(&self, p: Prepared<'_>, work: &Path, started: std::time::Instant) -> Result<Image> {
        let after = self.dpkg_list(&p.sandbox, &work.join(format!("{}.after", p.host)))?;
        let diff = match (&p.before, &after) {
            (Some(b), Some(a)) => Some(metadata::package_diff(b, a)),
            _ => None,
        };
        self.write_metadata(&p, diff.as_deref())?;
        let mut commit = CommitOptions::new(self.created_by(&p.host));
        commit.compression = self.spec.compression;
        commit.exclude.extend(self.spec.exclude.iter().cloned());
        commit.comment = p.comment.clone();
        let image = p.sandbox.commit(&commit)?;
        if let Some(layer) = image.layers().last() {
            self.env.events.emit(Event::Committed {
                image: image.manifest_digest.clone(),
                layer: vauban_oci::image::digest_of(layer)?,
                size: layer.size(),
            });
        }
        self.env.events.emit(Event::StageFinished {
            stage: self.stage.to_string(),
            host: p.host.clone(),
            image: image.manifest_digest.clone(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(image)
    }

    fn created_by(&self, host: &str) -> String {
        crate::history::stage(self.stage, host, self.checkout.commit.as_deref())
    }

    fn step(&self, step: &'static str, status: ExitStatus) -> Error {
        Error::StageStep {
            stage: self.stage.to_string(),
            step,
            status: status.to_string(),
        }
    }

    fn check_python(&self, sandbox: &Sandbox<'_>) -> Result<()> {
        let python = &self.spec.python_interpreter;
        let status = sandbox.run_offline(
            &Program::Image(vec![
                "/bin/sh".into(),
                "-c".into(),
                "[ -x \"$1\" ] && exec \"$1\" -I -B -c ''".into(),
                "vauban-check-python".into(),
                python.clone(),
            ]),
            RunIo::default(),
        )?;
        if !status.success() {
            return Err(Error::NoPython {
                image: sandbox.image().manifest_digest.to_string(),
                interpreter: python.clone(),
            });
        }
        Ok(())
    }

    /// `apt list --installed` in the image, its output written into `out`;
    /// `None` when the image has no apt.
    fn dpkg_list(&self, sandbox: &Sandbox<'_>, out: &Path) -> Result<Option<String>> {
        let file = std::fs::File::create(out).at("create", out)?;
        let mut argv = vec!["/usr/bin/env".to_string(), "LC_ALL=C".into()];
        argv.extend(metadata::package_list_argv());
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(file),
            stderr: Io::Null,
        };
        let status = match sandbox.run_offline(&Program::Image(argv), io) {
            Err(Error::Exec { .. }) => None,
            other => Some(other?),
        };
        match status.and_then(|s| s.code()) {
            Some(0) => {
                // The image's output: bounded.
                let bytes = vauban_oci::beneath::read_regular_at(
                    rustix::fs::CWD,
                    out,
                    DPKG_LIST_LIMIT,
                    out,
                )?
                .unwrap_or_default();
                let text = String::from_utf8(bytes).map_err(|e| {
                    Error::io(
                        "read",
                        out,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })?;
                Ok(Some(text))
            }
            None | Some(127) => {
                tracing::debug!("no apt in the image: /packages lists no package change");
                Ok(None)
            }
            _ => Err(self.step(
                "dpkg-query",
                status.unwrap_or_else(|| ExitStatus::from_raw(127 << 8)),
            )),
        }
    }

    /// One `ansible-playbook` over every sandbox, as the confined controller;
    /// the scanner of its output.
    fn run_ansible(&self, sandboxes: &[&Sandbox<'_>], work: &Path) -> Result<Scanner> {
        let root = &self.checkout.root;
        let inventories = &self.checkout.inventories;
        let hosts: Vec<&str> = sandboxes.iter().map(|s| s.hostname()).collect();
        // vauban's files for the run, shown read-only at INPUTS_DIR.
        let inputs = work.join("in");
        std::fs::create_dir(&inputs).at("create", &inputs)?;
        let generated = "vauban-inventory.yml";
        let path = inputs.join(generated);
        std::fs::write(&path, inventory::generated_inventory_for(&hosts)).at("write", &path)?;
        let config = AnsibleConfig {
            ansible_playbook: self.tools.ansible_playbook.clone(),
            chroot_exe: CHROOT_EXE.into(),
            ansible_root: root.clone(),
            playbook: self.stage.playbook.clone(),
            hosts: hosts
                .iter()
                .map(|h| (h.to_string(), controller::host_root(h)))
                .collect(),
            forks: self.jobs,
            inventories: inventories.clone(),
            generated_inventory: Path::new(INPUTS_DIR).join(generated),
            in_conffs_build: self.spec.in_conffs_build,
            python_interpreter: self.spec.python_interpreter.clone(),
            extra_args: self.spec.extra_args.clone(),
            local_temp: super::confined::LOCAL_TEMP.into(),
            remote_temp: REMOTE_TEMP.into(),
        };
        let cmd = command::ansible_playbook(&config);
        let header = format!(
            "vauban: stage {} for {}, Ansible {} (branch {})\nvauban: {}\n",
            self.stage,
            hosts.join(", "),
            self.checkout
                .commit
                .as_deref()
                .unwrap_or("(not a git checkout)"),
            self.checkout.branch.as_deref().unwrap_or("-"),
            cmd.display(),
        );
        if let Some(parent) = self.log.parent() {
            crate::private::dir(parent).at("create", parent)?;
        }
        crate::private::write_file(self.log, header.as_bytes()).at("write", self.log)?;
        let argv = hooks::wrapper_argv(&self.tools.sh, &self.tools.env, &self.spec.hooks, &cmd);
        let argv = argv
            .into_iter()
            .map(os_string)
            .collect::<Result<Vec<_>>>()?;
        let controller = self.confined.controller(argv, root, &[], Some(inputs))?;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log)
            .at("open", self.log)?;
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(log.try_clone().at("open", self.log)?),
            stderr: Io::File(log),
        };
        let follower = Follower::start(
            self.log,
            self.stage.to_string(),
            hosts.join(","),
            self.env.events.clone(),
        )?;
        let result = Sandbox::run_controller(sandboxes, &controller, io);
        let scanner = follower.finish()?;
        for host in &hosts {
            split_log(self.log, host)?;
        }
        let status = result?;
        let stage = self.stage.to_string();
        let hook_failed = |hook: &'static str| Error::HookFailed {
            stage: stage.clone(),
            hook,
            status: status.to_string(),
            log: self.log.to_path_buf(),
        };
        match WrapperOutcome::from_code(status.code()) {
            WrapperOutcome::Success if scanner.matched_no_host() => Err(check::no_host_matched(
                self.confined,
                &self.tools.ansible_playbook,
                self.checkout,
                inventories,
                self.stage,
                &hosts.join(","),
            )),
            WrapperOutcome::Success => Ok(scanner),
            // Hosts failed: the scanner says which.
            WrapperOutcome::AnsibleFailed(_) if !scanner.failed_hosts().is_empty() => Ok(scanner),
            WrapperOutcome::AnsibleFailed(_) => {
                Err(Error::AnsibleFailed(Box::new(AnsibleFailure {
                    stage,
                    host: hosts.join(","),
                    status: status.to_string(),
                    failure: scanner.failure().map(|f| f.to_string()),
                    log: self.log.to_path_buf(),
                    tail: scanner.tail(),
                })))
            }
            WrapperOutcome::PreHookFailed => Err(hook_failed("pre-ansible")),
            WrapperOutcome::PostHookFailed => Err(hook_failed("post-ansible")),
            WrapperOutcome::EndedEarly => {
                Err(hook_failed("pre- or post-ansible (it called `exit`)"))
            }
            WrapperOutcome::NoWorkingDirectory => Err(Error::io(
                "enter the Ansible root",
                root,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )),
        }
    }

    /// The error of one host when the run as a whole failed with `e`.
    fn whole_run_failed(&self, e: &Error, host: &str) -> Error {
        match e {
            Error::AnsibleFailed(f) => Error::AnsibleFailed(Box::new(AnsibleFailure {
                host: host.to_string(),
                ..(**f).clone()
            })),
            Error::HookFailed {
                stage,
                hook,
                status,
                log,
            } => Error::HookFailed {
                stage: stage.clone(),
                hook,
                status: status.clone(),
                log: log.clone(),
            },
            Error::NoHostMatched {
                stage,
                patterns,
                groups,
                ..
            } => Error::NoHostMatched {
                stage: stage.clone(),
                host: host.to_string(),
                patterns: patterns.clone(),
                groups: groups.clone(),
            },
            other => Error::StageFailed {
                stage: self.stage.to_string(),
                host: host.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// The error of a host Ansible failed on, from its own log.
    fn host_failed(&self, scanner: &Scanner, host: &str) -> Error {
        let log = host_log(self.log, host);
        let tail = std::fs::read(&log)
            .map(|t| {
                let t = crate::printable::escape_bytes(&t);
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(super::output::TAIL_LINES)..].join("\n")
            })
            .unwrap_or_default();
        Error::AnsibleFailed(Box::new(AnsibleFailure {
            stage: self.stage.to_string(),
            host: host.to_string(),
            status: "failed".into(),
            failure: scanner.failure_of(host).map(|f| f.to_string()),
            log,
            tail,
        }))
    }

    /// Appends to `/imginfo` and `/packages` (their heads first where the image
    /// has none), and puts `/etc/hostname` in the layer when the image's differs.
    fn write_metadata(&self, p: &Prepared<'_>, diff: Option<&[String]>) -> Result<()> {
        let (sandbox, host) = (&p.sandbox, p.host.as_str());
        let now = chrono::Utc::now();
        let source_digest = sandbox.image().manifest_digest.to_string();
        let info = ImgInfo {
            date: now,
            playbook: self.stage.playbook.clone(),
            hostname: host.to_owned(),
            source: p.source.clone(),
            source_digest: source_digest.clone(),
            git_sha1: self.checkout.commit.clone(),
            git_branch: self.checkout.branch.clone(),
        };
        let hostname = format!("{host}\n");
        let write_hostname = image_file(self.store, sandbox.image(), "etc/hostname")?.as_deref()
            != Some(hostname.as_bytes());
        let write = MetadataWrite {
            imginfo_head: ImgInfoHead {
                debian_release: self.spec.release.clone(),
                date: now,
            }
            .to_yaml(),
            imginfo_entry: info.to_yaml(),
            packages_head: metadata::packages_head(
                p.source.as_deref().unwrap_or(&source_digest),
                host,
                p.before.as_deref(),
            ),
            packages_entry: metadata::packages_entry(&self.stage.playbook, host, diff),
            hostname: write_hostname.then_some(hostname),
        };
        let status = sandbox.run_offline(&Program::Image(write.argv()), RunIo::default())?;
        if !status.success() {
            return Err(self.step("writing /imginfo and /packages", status));
        }
        Ok(())
    }
}

/// Every result of a run failed with `e` (before any host started).
fn fail_all(
    results: Vec<(String, Option<Result<Image>>)>,
    e: &Error,
) -> Vec<(String, Result<Image>)> {
    results
        .into_iter()
        .map(|(h, r)| {
            let r = r.unwrap_or_else(|| {
                Err(Error::StageFailed {
                    stage: String::new(),
                    host: h.clone(),
                    message: e.to_string(),
                })
            });
            (h, r)
        })
        .collect()
}

/// `f(i, item)` for every item on up to `jobs` threads; results in order.
fn par_map<T: Send, R: Send>(
    items: Vec<T>,
    jobs: usize,
    f: impl Fn(usize, T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let slots: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|t| std::sync::Mutex::new(Some(t)))
        .collect();
    let out: Vec<std::sync::Mutex<Option<R>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, n.max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let item = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(item) = item {
                    let r = f(i, item);
                    *out[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was worked on")
        })
        .collect()
}

/// `<dir of log>/<host>/<log file name>`.
fn host_log(log: &Path, host: &str) -> PathBuf {
    let dir = log.parent().unwrap_or(Path::new("."));
    dir.join(host).join(log.file_name().unwrap_or_default())
}

/// Writes the lines of `log` that are `host`'s (its results, and the play,
/// task and recap headers) to its own log.
fn split_log(log: &Path, host: &str) -> Result<()> {
    let text = std::fs::read_to_string(log).at("read", log)?;
    let mark = format!("[{host}]");
    let mark_delegated = format!("[{host} ->");
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("PLAY")
                || l.starts_with("TASK [")
                || l.starts_with("RUNNING HANDLER")
                || l.starts_with("vauban:")
                || l.starts_with("ERROR!")
                || l.contains(&mark)
                || l.contains(&mark_delegated)
                || l.split(" : ").next().is_some_and(|h| h.trim() == host)
        })
        .collect();
    let out = host_log(log, host);
    crate::private::write_file(&out, (mine.join("\n") + "\n").as_bytes()).at("write", &out)
}

/// The largest package list read (a Debian with 3000 packages: 250 KB).
const DPKG_LIST_LIMIT: u64 = 64 << 20;

/// The largest image file read on the host ([`image_file`]).
const IMAGE_FILE_LIMIT: u64 = 64 << 10;

/// The content of the regular file `rel` in `image` as its extracted layer dirs
/// hold it, merged as overlayfs merges them (`None`: absent, deleted, reached
/// through a link, or not a regular file). The tree is the image's: each
/// component is opened beneath its layer dir with no link followed, a FIFO or a
/// device is never opened, and more than [`IMAGE_FILE_LIMIT`] bytes is an error.
fn image_file(store: &Store, image: &Image, rel: &str) -> Result<Option<Vec<u8>>> {
    let dirs: Vec<PathBuf> = image
        .chain_ids()?
        .iter()
        .rev()
        .map(|c| store.layer_dir(c))
        .collect();
    Ok(vauban_oci::layer::merged::read_file(
        &dirs,
        rel,
        IMAGE_FILE_LIMIT,
    )?)
}

fn os_string(s: OsString) -> Result<String> {
    s.into_string().map_err(|s| {
        Error::io(
            "use a non-UTF-8 argument",
            PathBuf::from(s),
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_the_order() {
        let out = par_map((0..20).collect(), 3, |i, x: i32| (i as i32) * 100 + x);
        assert_eq!(out, (0..20).map(|x| x * 101).collect::<Vec<_>>());
    }

    /// The image's `/etc/hostname` is read beneath its layer dirs: a link out
    /// of the tree, to `/dev/zero`, a FIFO or a huge file is never read
    /// through, nor does it block.
    #[test]
    fn image_file_reads_beneath_the_layer_dirs() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let layer = |content: &[u8]| {
            let (digest, size) = store.write_blob(content).unwrap();
            vauban_oci::layer::PackedLayer {
                entries: 0,
                digest,
                size,
                diff_id: vauban_oci::Digest::of_bytes(content),
                media_type: vauban_oci::layer::MEDIA_TYPE_TAR.into(),
            }
        };
        let history = vauban_oci::image::HistoryEntry {
            created_by: "test".into(),
            created: chrono::Utc::now(),
            comment: None,
        };
        let image =
            vauban_oci::image::build(&store, None, &[layer(b"base"), layer(b"top")], &history)
                .unwrap();
        let chains = image.chain_ids().unwrap();
        let (base, top) = (store.layer_dir(&chains[0]), store.layer_dir(&chains[1]));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/hostname"), "base\n").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("hostname"), "host secret\n").unwrap();

        let read = |make: &dyn Fn(&Path)| {
            let _ = std::fs::remove_dir_all(&top);
            std::fs::create_dir_all(&top).unwrap();
            make(&top);
            let started = Instant::now();
            let r = image_file(&store, &image, "etc/hostname");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the read blocked"
            );
            r
        };
        let etc = |t: &Path| std::fs::create_dir(t.join("etc")).unwrap();
        assert_eq!(read(&|_| {}).unwrap().as_deref(), Some(&b"base\n"[..]));
        let out = outside.join("hostname");
        let absolute_link_out = read(&|t| {
            etc(t);
            std::os::unix::fs::symlink(&out, t.join("etc/hostname")).unwrap();
        });
        assert_eq!(absolute_link_out.unwrap(), None);
        let link_to_dev_zero = read(&|t| {
            etc(t);
            std::os::unix::fs::symlink("/dev/zero", t.join("etc/hostname")).unwrap();
        });
        assert_eq!(link_to_dev_zero.unwrap(), None);
        let etc_a_link_out = read(&|t| {
            std::os::unix::fs::symlink(&outside, t.join("etc")).unwrap();
        });
        assert_eq!(etc_a_link_out.unwrap(), None);
        let fifo = read(&|t| {
            etc(t);
            nix::unistd::mkfifo(&t.join("etc/hostname"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        });
        assert_eq!(fifo.unwrap(), None);
        let big = read(&|t| {
            etc(t);
            let f = std::fs::File::create(t.join("etc/hostname")).unwrap();
            f.set_len(IMAGE_FILE_LIMIT + 1).unwrap();
        });
        assert!(big.is_err(), "{big:?}");
    }

    #[test]
    fn each_host_gets_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("01-base.log");
        std::fs::write(
            &log,
            "vauban: stage base.yml\nPLAY [x] *\nTASK [a] *\nok: [web01]\nchanged: [db01]\nfatal: [db01]: FAILED! => {}\n\nPLAY RECAP *\nweb01 : ok=1 failed=0\ndb01 : ok=1 failed=1\n",
        )
        .unwrap();
        split_log(&log, "db01").unwrap();
        let mine = std::fs::read_to_string(dir.path().join("db01/01-base.log")).unwrap();
        assert!(mine.contains("changed: [db01]") && mine.contains("db01 : ok=1 failed=1"));
        assert!(!mine.contains("web01"), "{mine}");
    }
}
