//! [`Sandbox`]: prepare (layer dirs, sandbox dir, private files), run programs in
//! it, and clean up on drop.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::controller::{self, Controller, ControllerRoot, Shown};
use super::helper::init::{InitJob, Setup, Tree};
use super::helper::keeper::KeeperJob;
use super::helper::protocol::{CommandSpec, FromHelper, Job, Reply};
use super::helper::spawn::{call, Call};
use super::helper::Helper;
use super::layers::ensure_layer_dirs;
use super::mount::Overlay;
use super::network::Network;
use super::ns::NsConfig;
use super::program::{host_env, image_env, Io, Program, RunIo};
use super::pty::{is_terminal, Relay};
use super::rootfs::{self, INIT_FUNCTIONS_HOOK, POLICY_RC_D, POLICY_RC_D_SCRIPT};
use super::signals::SignalGuard;
use crate::error::{Error, IoContext, Result};

/// How a sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The host name the build sees (`hostname`, `/etc/hostname`, `/etc/hosts`).
    pub hostname: String,
    /// Environment variables given to every program, after the defaults.
    pub env: Vec<(String, String)>,
    /// The helper executable; `None`: [`Helper::from_env`].
    pub helper: Option<Helper>,
    /// Who hears about layer extraction.
    pub events: crate::events::Events,
    /// The network the programs get (a namespace of their own by default).
    pub network: Network,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            hostname: "vauban".into(),
            env: Vec::new(),
            helper: None,
            events: crate::events::Events::default(),
            network: Network::isolated(),
        }
    }
}

/// A prepared sandbox over an image; see the [module docs](super).
#[derive(Debug)]
pub struct Sandbox<'s> {
    pub(super) store: &'s Store,
    pub(super) ns: NsConfig,
    pub(super) helper: Helper,
    pub(super) image: Image,
    /// Cached layer dirs, topmost first.
    pub(super) lower: Vec<PathBuf>,
    pub(super) dir: PathBuf,
    pub(super) opts: SandboxOptions,
    /// What the private files held when the sandbox was made, by file name.
    pub(super) initial: Vec<(String, Vec<u8>)>,
    pub(super) removed: bool,
    _signals: SignalGuard,
}

impl<'s> Sandbox<'s> {
    /// Prepares a sandbox over `image` (an image of `store`): extracts its
    /// missing layer dirs and makes a fresh sandbox dir under `STORE/tmp`.
    pub fn prepare(store: &'s Store, image: &Image, opts: SandboxOptions) -> Result<Self> {
        let signals = SignalGuard::install()?;
        let ns = NsConfig::detect()?;
        let helper = match &opts.helper {
            Some(h) => h.clone(),
            None => Helper::from_env()?,
        };
        let mut lower = ensure_layer_dirs(store, &ns, &helper, image, &opts.events)?;
        lower.reverse();
        let tmp = store.tmp_dir();
        let dir = tempfile::Builder::new()
            .prefix("sandbox-")
            .tempdir_in(&tmp)
            .at("create a sandbox dir in", &tmp)?
            .keep();
        let mut sandbox = Sandbox {
            store,
            ns,
            helper,
            image: image.clone(),
            lower,
            dir,
            opts,
            initial: Vec::new(),
            removed: false,
            _signals: signals,
        };
        sandbox.make_dirs()?;
        Ok(sandbox)
    }

    fn make_dirs(&mut self) -> Result<()> {
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
            .at("chmod", &self.dir)?;
        for d in ["upper", "work", "merged", "private", "empty"] {
            let p = self.dir.join(d);
            std::fs::create_dir(&p).at("mkdir", &p)?;
        }
        std::fs::set_permissions(self.upper_dir(), std::fs::Permissions::from_mode(0o755))
            .at("chmod", self.upper_dir())?;
        let resolv = self.opts.network.resolv_conf();
        let host = &self.opts.hostname;
        let files: [(&str, Vec<u8>); 3] = [
            ("resolv.conf", resolv),
            ("hosts", rootfs::hosts_file(host).into_bytes()),
            ("hostname", format!("{host}\n").into_bytes()),
        ];
        for (name, content) in files {
            let p = self.private_dir().join(name);
            std::fs::write(&p, &content).at("write", &p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).at("chmod", &p)?;
            // mtime 0: any write by the build moves it (see `commit`), even one
            // that writes the same bytes.
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(std::time::UNIX_EPOCH))
                .at("set the mtime of", &p)?;
            self.initial.push((name.to_string(), content));
        }
        for (name, script) in [
            (POLICY_RC_D.0, POLICY_RC_D_SCRIPT),
            (INIT_FUNCTIONS_HOOK.0, INIT_FUNCTIONS_HOOK.2),
        ] {
            let p = self.private_dir().join(name);
            std::fs::write(&p, script).at("write", &p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).at("chmod", &p)?;
        }
        Ok(())
    }

    /// Where the overlay is mounted (inside the sandbox's mount namespace only).
    pub fn merged_dir(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The upper dir: every change made by the programs run.
    pub fn upper_dir(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub(super) fn private_dir(&self) -> PathBuf {
        self.dir.join("private")
    }

    /// The image the sandbox was made from.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The host name the build sees.
    pub fn hostname(&self) -> &str {
        &self.opts.hostname
    }

    /// What init (or a keeper) mounts for this sandbox.
    pub(super) fn tree(&self) -> Tree {
        // An image without layers (`FROM scratch`): the overlay needs a lower dir.
        let lower = if self.lower.is_empty() {
            vec![self.dir.join("empty")]
        } else {
            self.lower.clone()
        };
        Tree {
            overlay: Overlay {
                lower,
                upper: self.upper_dir(),
                work: self.dir.join("work"),
            },
            merged: self.merged_dir(),
            private: self.private_dir(),
        }
    }

    /// Puts a file at `rel` (relative to `/`) of the merged tree, owned by root,
    /// before programs run (a config file for a tool run in the image). Missing
    /// parent directories are made in the upper dir (mode 0755); nothing is
    /// followed out of it.
    pub fn put_file(&self, rel: &str, content: &[u8], mode: u32) -> Result<()> {
        super::commit::put_in_upper(&self.upper_dir(), rel, content, mode)
    }

    /// Runs `program` with vauban's standard streams; see [`Sandbox::run_with`].
    pub fn run(&self, program: &Program) -> Result<ExitStatus> {
        self.run_with(program, RunIo::default())
    }

    /// Runs `program` in fresh namespaces over the sandbox's upper dir and
    /// returns its exit status. A program that cannot be started is
    /// [`Error::Exec`]. SIGINT/SIGTERM/SIGHUP kill the whole process tree and
    /// give [`Error::Interrupted`]. A program on the bare tree
    /// ([`Program::OnTree`]) never has a network.
    pub fn run_with(&self, program: &Program, io: RunIo) -> Result<ExitStatus> {
        let network = match program {
            Program::OnTree(_) => &Network::Offline,
            Program::Image(_) => &self.opts.network,
        };
        self.run_on(program, io, network)
    }

    /// Runs a command of vauban's own in the image (a check, a package
    /// listing): no network.
    pub(crate) fn run_offline(&self, program: &Program, io: RunIo) -> Result<ExitStatus> {
        self.run_on(program, io, &Network::Offline)
    }

    fn run_on(&self, program: &Program, io: RunIo, network: &Network) -> Result<ExitStatus> {
        let argv = program.argv();
        if argv.is_empty() {
            return Err(Error::EmptyCommand);
        }
        let in_image = program.in_image();
        let (stdio, tty) = streams(io, in_image)?;
        let env = if in_image {
            let term = std::env::var("TERM").ok();
            let mut extra = network.env();
            extra.extend(self.opts.env.iter().cloned());
            image_env(term.as_deref(), &extra)
        } else {
            host_env(std::env::vars(), &self.opts.env)
        };
        let cwd = if in_image {
            PathBuf::from("/")
        } else {
            std::env::current_dir().unwrap_or_else(|_| "/".into())
        };
        let init = InitJob {
            setup: Setup::Tree {
                tree: self.tree(),
                hostname: self.opts.hostname.clone(),
                rootfs: program.mounts_rootfs(),
                in_image,
            },
            net: network.ns(),
            tty,
            command: CommandSpec {
                argv: argv.to_vec(),
                env,
                cwd,
            },
        };
        tracing::info!(?program, "running in the sandbox");
        run_job(
            &self.helper,
            &self.ns,
            init,
            network,
            stdio,
            tty,
            &format!("run {}", argv[0]),
        )
    }

    /// Runs `controller` (`ansible-playbook` and its shell) as the confined
    /// Ansible controller over several sandboxes of one store: each sandbox's
    /// tree is kept by a process of its own (its own pid, mount and uts
    /// namespaces) that runs what the controller's `vauban-chroot` asks for;
    /// the controller sees none of them but through
    /// [`controller::host_root`] (see [`super::controller`]). The network
    /// is the first sandbox's, shared by all of them.
    pub fn run_controller(
        sandboxes: &[&Sandbox<'_>],
        controller: &Controller,
        io: RunIo,
    ) -> Result<ExitStatus> {
        let Some(first) = sandboxes.first() else {
            return Err(Error::EmptyCommand);
        };
        let network = &first.opts.network;
        let term = std::env::var("TERM").ok();
        let hosts = sandboxes
            .iter()
            .map(|s| {
                let mut extra = network.env();
                extra.extend(s.opts.env.iter().cloned());
                KeeperJob {
                    tree: s.tree(),
                    hostname: s.opts.hostname.clone(),
                    env: image_env(term.as_deref(), &extra),
                    net: network.ns(),
                }
            })
            .collect();
        run_controller_over(
            &first.helper,
            &first.ns,
            hosts,
            controller,
            network,
            Some(&first.private_dir().join("resolv.conf")),
            io,
        )
    }
}

/// Runs `controller` as the confined Ansible controller with no host (an
/// `ansible-inventory --list`, a syntax check, a host listing), through
/// `helper`, on `network`.
pub fn run_controller_alone(
    helper: &Helper,
    controller: &Controller,
    network: &Network,
    io: RunIo,
) -> Result<ExitStatus> {
    let _signals = SignalGuard::install()?;
    let ns = NsConfig::detect()?;
    let resolv =
        tempfile::NamedTempFile::new().at("create a temp file in", std::env::temp_dir())?;
    std::fs::write(resolv.path(), network.resolv_conf()).at("write", resolv.path())?;
    std::fs::set_permissions(resolv.path(), std::fs::Permissions::from_mode(0o644))
        .at("chmod", resolv.path())?;
    run_controller_over(
        helper,
        &ns,
        Vec::new(),
        controller,
        network,
        Some(resolv.path()),
        io,
    )
}

/// A session: the controller's root made in a private temp dir (removed
/// after), the keepers of `hosts`, the controller.
fn run_controller_over(
    helper: &Helper,
    ns: &NsConfig,
    hosts: Vec<KeeperJob>,
    controller: &Controller,
    network: &Network,
    resolv_conf: Option<&std::path::Path>,
    io: RunIo,
) -> Result<ExitStatus> {
    let Some(program) = controller.argv.first() else {
        return Err(Error::EmptyCommand);
    };
    let session = tempfile::Builder::new()
        .prefix("vauban-controller-")
        .tempdir()
        .at("create a temp dir in", std::env::temp_dir())?
        .keep();
    let result = (|| {
        let root = controller_root(&session, helper, controller, resolv_conf, &hosts)?;
        let (stdio, tty) = streams(io, false)?;
        let mut env = controller.env.clone();
        for (k, v) in network.env() {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
        let init = InitJob {
            setup: Setup::Session {
                hosts,
                controller: root,
            },
            net: network.ns(),
            tty,
            command: CommandSpec {
                argv: controller.argv.clone(),
                env,
                cwd: controller.cwd.clone(),
            },
        };
        tracing::info!(program, "running the Ansible controller");
        tracing::debug!(argv = ?controller.argv, "the controller's command line");
        run_job(
            helper,
            ns,
            init,
            network,
            stdio,
            tty,
            &format!("run {program}"),
        )
    })();
    if let Err(e) = super::layers::remove_in_namespace(
        helper,
        ns,
        vec![session.clone()],
        "remove the controller's temp dir",
    ) {
        tracing::warn!(dir = %session.display(), "cannot remove the controller's temp dir: {e}");
    }
    result
}

/// What init builds for `controller`, its private dirs made under `session`.
fn controller_root(
    session: &std::path::Path,
    helper: &Helper,
    controller: &Controller,
    resolv_conf: Option<&std::path::Path>,
    hosts: &[KeeperJob],
) -> Result<ControllerRoot> {
    let dir = |name: &str| -> Result<PathBuf> {
        let p = session.join(name);
        std::fs::create_dir(&p).at("mkdir", &p)?;
        Ok(p)
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| controller::normalise(&h))
        .filter(|h| h.parent().is_some())
        .unwrap_or_else(|| PathBuf::from("/vauban/home"));
    let mut read_only = Vec::new();
    for p in std::iter::once(&controller.cwd).chain(&controller.read_only) {
        controller::normalise(p).ok_or_else(|| controller::not_absolute(p))?;
        // Missing: nothing to show.
        read_only.extend(Shown::of(p));
    }
    let helper_exe = std::fs::canonicalize(helper.path()).at("find", helper.path())?;
    Ok(ControllerRoot {
        dir: dir("root")?,
        tmp: dir("tmp")?,
        home_dir: dir("home")?,
        home,
        read_only,
        hidden: controller
            .hidden
            .iter()
            .filter_map(|p| {
                std::fs::canonicalize(p)
                    .ok()
                    .or_else(|| controller::normalise(p))
            })
            .collect(),
        inputs: controller.inputs.clone(),
        facts: controller.facts.clone(),
        helper: helper_exe,
        resolv_conf: resolv_conf.map(PathBuf::from),
        hosts: hosts.iter().map(|h| h.hostname.clone()).collect(),
    })
}

/// Runs `init` in a helper (with the egress proxy when `network` is
/// isolated), relaying an interactive run's pty.
fn run_job(
    helper: &Helper,
    ns: &NsConfig,
    init: InitJob,
    network: &Network,
    stdio: [Stdio; 3],
    tty: [bool; 3],
    what: &str,
) -> Result<ExitStatus> {
    let proxy = match network {
        Network::Isolated { allow } => Some(allow.clone()),
        Network::Host | Network::Offline => None,
    };
    let mut relay: Option<Relay> = None;
    let reply = call(
        helper,
        ns,
        Job::Run {
            init: Box::new(init),
            proxy,
        },
        Call {
            what,
            interruptible: true,
            stdio,
        },
        &mut |msg, chan| {
            if let FromHelper::Pty = msg {
                let master = chan.take_fd().ok_or_else(|| Error::ChildProtocol {
                    message: "a pty announced without its descriptor".into(),
                })?;
                relay =
                    Some(Relay::start(master, tty).map_err(|e| Error::sys("relay the pty", e))?);
            }
            Ok(())
        },
    );
    if let Some(relay) = relay {
        relay.finish();
    }
    match reply? {
        Reply::Exited(raw) => Ok(ExitStatus::from_raw(raw)),
        Reply::ExecFailed { program, errno } => Err(Error::Exec {
            program,
            source: std::io::Error::from_raw_os_error(errno),
        }),
        Reply::Failed(e) => Err(Error::InSandbox {
            what: what.to_string(),
            source: Box::new(e),
        }),
        other => Err(Error::ChildProtocol {
            message: format!("unexpected reply to a run: {other:?}"),
        }),
    }
}

/// The helper's standard streams for a program's `io`, and which of them are
/// the program's own pty: a stream left to vauban's terminal never reaches the
/// sandbox.
fn streams(io: RunIo, in_image: bool) -> Result<([Stdio; 3], [bool; 3])> {
    let fds = [
        rustix::stdio::stdin(),
        rustix::stdio::stdout(),
        rustix::stdio::stderr(),
    ];
    let mut tty = [false; 3];
    let mut out: Vec<Stdio> = Vec::with_capacity(3);
    for (i, (io, fd)) in [io.stdin, io.stdout, io.stderr]
        .into_iter()
        .zip(fds)
        .enumerate()
    {
        out.push(match io {
            Io::Null => Stdio::null(),
            Io::File(f) => Stdio::from(f),
            Io::Inherit if is_terminal(fd) => {
                tty[i] = in_image;
                Stdio::null()
            }
            Io::Inherit => {
                let owned = fd
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::sys("dup", e))?;
                Stdio::from(owned)
            }
        });
    }
    let [stdin, stdout, stderr]: [Stdio; 3] = out.try_into().expect("three streams");
    Ok(([stdin, stdout, stderr], tty))
}

impl Sandbox<'_> {
    /// Removes the sandbox dir (inside the user namespace: it holds files owned by
    /// subordinate ids). Called by drop; call it to see the error.
    pub fn discard(mut self) -> Result<()> {
        self.remove()
    }

    pub(super) fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        super::layers::remove_in_namespace(
            &self.helper,
            &self.ns,
            vec![self.dir.clone()],
            "remove the sandbox dir",
        )
    }
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(dir = %self.dir.display(), "cannot remove the sandbox dir: {e}");
        }
    }
}
