//! [`apply_stages`]: for each stage, a sandbox over the previous image, the host's
//! `ansible-playbook` run in it through the chroot connection, the metadata written,
//! and the upper dir committed as one layer named `<prefix>/<playbook>`.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::check;
use super::command::{self, AnsibleConfig};
use super::hooks::{self, WrapperOutcome};
use super::inventory;
use super::metadata::{self, ImgInfo};
use super::options::StageSpec;
use super::output::Follower;
use super::repo::{AnsibleRepo, Checkout};
use super::spec::Stage;
use crate::env::Env;
use crate::error::{AnsibleFailure, Error, IoContext, Result};
use crate::events::Event;
use crate::sandbox::{CommitOptions, Helper, Io, Program, RunIo, Sandbox, SandboxOptions};

/// `ANSIBLE_REMOTE_TEMP` in the image: the sandbox's `/tmp` is a tmpfs, so nothing
/// Ansible leaves there reaches the layer.
const REMOTE_TEMP: &str = "/tmp";

/// Host programs a stage needs.
#[derive(Debug)]
struct Tools {
    ansible_playbook: PathBuf,
    env: PathBuf,
    sh: PathBuf,
}

impl Tools {
    fn find() -> Result<Self> {
        let path = std::env::var_os("PATH");
        let find = |tool: &str, hint: &'static str| {
            command::which(tool, path.as_deref()).ok_or_else(|| Error::ToolMissing {
                tool: tool.to_owned(),
                hint,
            })
        };
        Ok(Tools {
            ansible_playbook: find(
                "ansible-playbook",
                "install Ansible with the community.general collection (`apt-get install ansible`)",
            )?,
            env: find("env", "install coreutils")?,
            sh: find("sh", "install a POSIX shell")?,
        })
    }
}

/// Applies `stages` in order to `image` for `host`; each stage becomes one layer
/// and one image, the next stage starting from the image the previous one built
/// (never from a name looked up again). Once every stage is built, the images
/// are named at once ([`StageSpec::stage_reference`], and
/// [`StageSpec::final_name`] for the last). Returns the last image. A failed
/// stage names nothing and leaves no sandbox behind.
pub fn apply_stages(
    store: &Store,
    image: &Image,
    stages: &[Stage],
    host: &str,
    opts: &StageSpec,
    env: &Env,
) -> Result<Image> {
    inventory::check_host(host)?;
    if stages.is_empty() {
        return Err(Error::BadStage {
            spec: String::new(),
            reason: "no stage given".into(),
        });
    }
    let tools = Tools::find()?;
    let helper = env.helper()?;
    let mut repo = AnsibleRepo::new(opts.ansible.clone(), &opts.ansible_root, &env.cache_dir);
    repo.sync()?;
    let build_logs = env.log_dir.join(format!(
        "{}-{host}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::create_dir_all(&build_logs).at("create the log dir", &build_logs)?;

    check_all(&mut repo, stages, opts, &tools)?;

    let mut source = image.clone();
    let mut names = Vec::with_capacity(stages.len() + 1);
    for (index, stage) in stages.iter().enumerate() {
        let branch = stage.branch.as_deref().or(opts.branch.as_deref());
        let checkout = repo.checkout(branch, &stage.to_string())?;
        let log = build_logs.join(format!(
            "{:02}-{}.log",
            index + 1,
            super::options::name_component(&stage.playbook).replace('/', "_")
        ));
        let ctx = StageRun {
            store,
            tools: &tools,
            stage,
            host,
            opts,
            env,
            helper: &helper,
            checkout: &checkout,
            log: &log,
        };
        let built = ctx.run(&source)?;
        names.push((
            opts.stage_reference(&stage.playbook)?,
            intermediate(built.descriptor()),
        ));
        source = built;
    }
    if let Some(name) = &opts.final_name {
        names.push((name.clone(), source.descriptor()));
    }
    store.tag_all(&names)?;
    Ok(source)
}

/// Before any stage runs: every playbook exists in its branch's checkout and
/// parses (one `--syntax-check` per checkout).
fn check_all(
    repo: &mut AnsibleRepo,
    stages: &[Stage],
    opts: &StageSpec,
    tools: &Tools,
) -> Result<()> {
    let mut by_root: Vec<(Checkout, Vec<&str>)> = Vec::new();
    for stage in stages {
        let branch = stage.branch.as_deref().or(opts.branch.as_deref());
        let checkout = repo.checkout(branch, &stage.to_string())?;
        check::check_exists(stage, &checkout)?;
        match by_root.iter_mut().find(|(c, _)| c.root == checkout.root) {
            Some((_, playbooks)) => playbooks.push(&stage.playbook),
            None => by_root.push((checkout, vec![&stage.playbook])),
        }
    }
    for (checkout, playbooks) in &by_root {
        let inventories = inventory::repo_inventories(&checkout.root, &opts.inventories)?;
        check::check_syntax(&tools.ansible_playbook, checkout, &inventories, playbooks)?;
    }
    Ok(())
}

/// A stage's own image: marked so listings can leave it out.
fn intermediate(
    mut desc: vauban_oci::oci_spec::image::Descriptor,
) -> vauban_oci::oci_spec::image::Descriptor {
    let mut a = desc.annotations().clone().unwrap_or_default();
    a.insert(
        vauban_oci::store::ANNOTATION_INTERMEDIATE.to_string(),
        "true".to_string(),
    );
    desc.set_annotations(Some(a));
    desc
}

/// One stage being applied.
struct StageRun<'a> {
    store: &'a Store,
    tools: &'a Tools,
    stage: &'a Stage,
    host: &'a str,
    opts: &'a StageSpec,
    env: &'a Env,
    helper: &'a Helper,
    checkout: &'a Checkout,
    log: &'a Path,
}

impl StageRun<'_> {
    fn run(&self, source: &Image) -> Result<Image> {
        let stage = self.stage.to_string();
        check::check_exists(self.stage, self.checkout)?;
        tracing::info!(%stage, host = self.host, source = %source.manifest_digest, "applying stage");
        let started = std::time::Instant::now();
        self.env.events.emit(Event::StageStarted {
            stage: stage.clone(),
            host: self.host.to_owned(),
            base: source.manifest_digest.clone(),
        });
        let sandbox_opts = SandboxOptions {
            hostname: self.host.to_owned(),
            env: Vec::new(),
            helper: Some(self.helper.clone()),
            events: self.env.events.clone(),
        };
        let sandbox = Sandbox::prepare(self.store, source, sandbox_opts)?;
        let work = tempfile::Builder::new()
            .prefix("vauban-stage-")
            .tempdir()
            .at("create a temp dir in", std::env::temp_dir())?;

        self.check_python(&sandbox)?;
        let before = self.dpkg_list(&sandbox, &work.path().join("dpkg-before"))?;
        self.run_ansible(&sandbox, work.path())?;
        let after = self.dpkg_list(&sandbox, &work.path().join("dpkg-after"))?;
        let diff = match (&before, &after) {
            (Some(b), Some(a)) => Some(metadata::package_diff(b, a)),
            _ => None,
        };
        self.write_metadata(&sandbox, diff.as_deref())?;

        let mut commit = CommitOptions::new(self.created_by());
        commit.compression = self.opts.compression;
        commit.exclude.extend(self.opts.exclude.iter().cloned());
        let image = sandbox.commit(&commit)?;
        if let Some(layer) = image.layers().last() {
            self.env.events.emit(Event::Committed {
                image: image.manifest_digest.clone(),
                layer: vauban_oci::image::digest_of(layer)?,
                size: layer.size(),
            });
        }
        self.env.events.emit(Event::StageFinished {
            stage,
            host: self.host.to_owned(),
            image: image.manifest_digest.clone(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(image)
    }

    fn created_by(&self) -> String {
        format!(
            "vauban stage {} --host {}{}",
            self.stage,
            self.host,
            self.checkout
                .commit
                .as_deref()
                .map(|c| format!(" (ansible {c})"))
                .unwrap_or_default()
        )
    }

    fn step(&self, step: &'static str, status: ExitStatus) -> Error {
        Error::StageStep {
            stage: self.stage.to_string(),
            step,
            status: status.to_string(),
        }
    }

    fn check_python(&self, sandbox: &Sandbox<'_>) -> Result<()> {
        let python = &self.opts.python_interpreter;
        let status = sandbox.run(&Program::Image(vec![
            "/bin/sh".into(),
            "-c".into(),
            "[ -x \"$1\" ] && exec \"$1\" -I -B -c ''".into(),
            "vauban-check-python".into(),
            python.clone(),
        ]))?;
        if !status.success() {
            return Err(Error::NoPython {
                image: sandbox.image().manifest_digest.to_string(),
                interpreter: python.clone(),
            });
        }
        Ok(())
    }

    /// `dpkg-query -W` in the image, its output written into `out`; `None` when
    /// the image has no dpkg-query.
    fn dpkg_list(&self, sandbox: &Sandbox<'_>, out: &Path) -> Result<Option<String>> {
        let file = std::fs::File::create(out).at("create", out)?;
        let mut argv = vec!["/usr/bin/env".to_string(), "LC_ALL=C".into()];
        argv.extend(metadata::dpkg_query_argv());
        let io = RunIo {
            stdin: Io::Null,
            stdout: Io::File(file),
            stderr: Io::Null,
        };
        let status = match sandbox.run_with(&Program::Image(argv), io) {
            Err(Error::Exec { .. }) => None,
            other => Some(other?),
        };
        match status.and_then(|s| s.code()) {
            Some(0) => Ok(Some(std::fs::read_to_string(out).at("read", out)?)),
            None | Some(127) => {
                tracing::warn!(
                    "no dpkg-query in the image: /packages will not list package changes"
                );
                Ok(None)
            }
            _ => Err(self.step(
                "dpkg-query",
                status.unwrap_or_else(|| std::process::ExitStatus::from_raw(127 << 8)),
            )),
        }
    }

    fn run_ansible(&self, sandbox: &Sandbox<'_>, work: &Path) -> Result<()> {
        let root = &self.checkout.root;
        let inventories = inventory::repo_inventories(root, &self.opts.inventories)?;
        let generated = work.join("vauban-inventory.yml");
        std::fs::write(&generated, inventory::generated_inventory(self.host))
            .at("write", &generated)?;
        let local_temp = work.join("ansible-local");
        std::fs::create_dir(&local_temp).at("create", &local_temp)?;
        let image_root = sandbox.merged_dir();
        let config = AnsibleConfig {
            ansible_playbook: self.tools.ansible_playbook.clone(),
            chroot_exe: sandbox.chroot_exe(),
            ansible_root: root.clone(),
            playbook: self.stage.playbook.clone(),
            host: self.host.to_owned(),
            inventories: inventories.clone(),
            generated_inventory: generated,
            image_root: path_string(&image_root)?,
            in_conffs_build: self.opts.in_conffs_build,
            python_interpreter: self.opts.python_interpreter.clone(),
            extra_args: self.opts.extra_args.clone(),
            local_temp,
            remote_temp: REMOTE_TEMP.into(),
        };
        let cmd = command::ansible_playbook(&config);
        let header = format!(
            "vauban: stage {} for host {} on {}, Ansible {} (branch {})\nvauban: {}\n",
            self.stage,
            self.host,
            sandbox.image().manifest_digest,
            self.checkout
                .commit
                .as_deref()
                .unwrap_or("(not a git checkout)"),
            self.checkout.branch.as_deref().unwrap_or("-"),
            cmd.display(),
        );
        if let Some(parent) = self.log.parent() {
            std::fs::create_dir_all(parent).at("create", parent)?;
        }
        std::fs::write(self.log, header).at("write", self.log)?;
        let argv = hooks::wrapper_argv(
            &self.tools.sh,
            &self.tools.env,
            &self.opts.hooks,
            self.log,
            &cmd,
        );
        let argv = argv
            .into_iter()
            .map(os_string)
            .collect::<Result<Vec<_>>>()?;

        let follower = Follower::start(
            self.log,
            self.stage.to_string(),
            self.host.to_owned(),
            self.env.events.clone(),
        )?;
        let result = sandbox.run(&Program::Host(argv));
        let scanner = follower.finish()?;
        let status = result?;
        let stage = self.stage.to_string();
        let log = self.log.to_owned();
        let hook_failed = |hook: &'static str| Error::HookFailed {
            stage: stage.clone(),
            hook,
            status: status.to_string(),
            log: log.clone(),
        };
        match WrapperOutcome::from_code(status.code()) {
            WrapperOutcome::Success if scanner.matched_no_host() => Err(check::no_host_matched(
                &self.tools.ansible_playbook,
                self.checkout,
                &inventories,
                self.stage,
                self.host,
            )),
            WrapperOutcome::Success => Ok(()),
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
            WrapperOutcome::AnsibleFailed(_) => {
                Err(Error::AnsibleFailed(Box::new(AnsibleFailure {
                    stage,
                    host: self.host.to_owned(),
                    status: status.to_string(),
                    failure: scanner.failure().map(|f| f.to_string()),
                    log,
                    tail: scanner.tail(),
                })))
            }
        }
    }

    /// Appends to `/imginfo` and `/packages`, and puts `/etc/hostname` in the layer
    /// when the image's differs (through `/toslash`, which the commit moves onto `/`:
    /// the sandbox mounts its own `/etc/hostname`).
    fn write_metadata(&self, sandbox: &Sandbox<'_>, diff: Option<&[String]>) -> Result<()> {
        let info = ImgInfo {
            date: chrono::Utc::now(),
            playbook: self.stage.playbook.clone(),
            hostname: self.host.to_owned(),
            source: sandbox.image().manifest_digest.to_string(),
            git_sha1: self.checkout.commit.clone(),
            git_branch: self.checkout.branch.clone(),
            vauban_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let packages = metadata::packages_entry(&self.stage.playbook, self.host, diff);
        let hostname = format!("{}\n", self.host);
        let write_hostname = image_file(self.store, sandbox.image(), "etc/hostname")?.as_deref()
            != Some(hostname.as_bytes());
        let script = "umask 022\n\
             printf '%s' \"$1\" >>/imginfo\n\
             printf '%s' \"$2\" >>/packages\n\
             if [ \"$3\" = yes ]; then mkdir -p /toslash/etc && printf '%s' \"$4\" >/toslash/etc/hostname; fi\n";
        let status = sandbox.run(&Program::Image(vec![
            "/bin/sh".into(),
            "-ec".into(),
            script.into(),
            "vauban-metadata".into(),
            info.to_yaml(),
            packages,
            if write_hostname { "yes" } else { "no" }.into(),
            hostname,
        ]))?;
        if !status.success() {
            return Err(self.step("writing /imginfo and /packages", status));
        }
        Ok(())
    }
}

/// The content of the regular file `rel` in `image` as its extracted layer dirs hold
/// it (`None`: absent, deleted or not a regular file).
fn image_file(store: &Store, image: &Image, rel: &str) -> Result<Option<Vec<u8>>> {
    for diff_id in image.diff_ids()?.iter().rev() {
        let path = store.layer_dir(diff_id).join(rel);
        match path.symlink_metadata() {
            Ok(m) if m.is_file() => return Ok(std::fs::read(&path).ok()),
            Ok(m) if m.file_type().is_char_device() => return Ok(None),
            Ok(_) => return Ok(None),
            Err(_) => continue,
        }
    }
    Ok(None)
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

fn path_string(p: &Path) -> Result<String> {
    os_string(p.as_os_str().to_owned())
}
