//! [`Sandbox`]: prepare (layer dirs, sandbox dir, private files), run programs in
//! it, and clean up on drop.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use vauban_oci::store::Store;
use vauban_oci::Image;

use super::helper::init::{InitJob, Setup, Tree};
use super::helper::protocol::{CommandSpec, FromHelper, Job, Reply};
use super::helper::spawn::{call, Call};
use super::helper::{Helper, CHROOT_NAME};
use super::layers::ensure_layer_dirs;
use super::mount::Overlay;
use super::ns::NsConfig;
use super::program::{host_env, image_env, Io, Program, RunIo};
use super::pty::{is_terminal, Relay};
use super::rootfs::{self, POLICY_RC_D, POLICY_RC_D_SCRIPT};
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
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            hostname: "vauban".into(),
            env: Vec::new(),
            helper: None,
            events: crate::events::Events::default(),
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
        let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
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
        let p = self.private_dir().join(POLICY_RC_D.0);
        std::fs::write(&p, POLICY_RC_D_SCRIPT).at("write", &p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).at("chmod", &p)?;
        // What host programs (Ansible's chroot connection) run to enter the image.
        let chroot = self.chroot_exe();
        std::os::unix::fs::symlink(self.helper.path(), &chroot).at("symlink", &chroot)
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

    /// What a host program runs to enter the image, as `chroot(8)` is run:
    /// `CHROOT_EXE MERGED PROGRAM ARGS...` (Ansible's `chroot_exe`). The command
    /// is confined as a [`Program::Image`] is.
    pub fn chroot_exe(&self) -> PathBuf {
        self.private_dir().join(CHROOT_NAME)
    }

    /// The image the sandbox was made from.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The host name the build sees.
    pub fn hostname(&self) -> &str {
        &self.opts.hostname
    }

    /// What init mounts for this sandbox.
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
    /// give [`Error::Interrupted`].
    pub fn run_with(&self, program: &Program, io: RunIo) -> Result<ExitStatus> {
        run_trees(self, &[self.tree()], &self.opts.hostname, program, io)
    }

    /// Runs a host program ([`Program::Host`]) once over several sandboxes of
    /// one store: every tree is mounted at its [`Sandbox::merged_dir`] in one
    /// mount namespace, so one `ansible-playbook` builds them all (each host's
    /// commands enter its own tree through [`Sandbox::chroot_exe`]).
    pub fn run_over(
        sandboxes: &[&Sandbox<'_>],
        program: &Program,
        io: RunIo,
    ) -> Result<ExitStatus> {
        let Some(first) = sandboxes.first() else {
            return Err(Error::EmptyCommand);
        };
        if !matches!(program, Program::Host(_)) {
            return Err(Error::ChildProtocol {
                message: "only a host program runs over several sandboxes".into(),
            });
        }
        let trees: Vec<Tree> = sandboxes.iter().map(|s| s.tree()).collect();
        run_trees(first, &trees, "vauban", program, io)
    }
}

/// Runs `program` with `trees` mounted, through `sandbox`'s helper and mode.
fn run_trees(
    sandbox: &Sandbox<'_>,
    trees: &[Tree],
    hostname: &str,
    program: &Program,
    io: RunIo,
) -> Result<ExitStatus> {
    let argv = program.argv();
    if argv.is_empty() {
        return Err(Error::EmptyCommand);
    }
    let in_image = program.in_image();
    let (stdio, tty) = streams(io, in_image)?;
    let env = if in_image {
        let term = std::env::var("TERM").ok();
        image_env(term.as_deref(), &sandbox.opts.env)
    } else {
        host_env(std::env::vars(), &sandbox.opts.env)
    };
    let cwd = if in_image {
        PathBuf::from("/")
    } else {
        std::env::current_dir().unwrap_or_else(|_| "/".into())
    };
    let job = InitJob {
        setup: Setup::Sandbox {
            trees: trees.to_vec(),
            hostname: hostname.to_string(),
            rootfs: program.mounts_rootfs(),
        },
        in_image,
        tty,
        command: CommandSpec {
            argv: argv.to_vec(),
            env,
            cwd,
        },
    };
    tracing::info!(?program, trees = trees.len(), "running in the sandbox");
    let mut relay: Option<Relay> = None;
    let what = format!("run {}", argv[0]);
    let reply = call(
        &sandbox.helper,
        &sandbox.ns,
        Job::Run(job),
        Call {
            what: &what,
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
            what,
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
