//! [`Sandbox`]: prepare (layer dirs, sandbox dir, private files), run programs in
//! it, and clean up on drop.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use vauban_oci::store::Store;
use vauban_oci::{Image, Reference};

use super::layers::ensure_layer_dirs;
use super::mount::Overlay;
use super::rootfs::{self, POLICY_RC_D, POLICY_RC_D_SCRIPT};
use super::signals::SignalGuard;
use super::userns::{in_namespaces, NsConfig, Spawn};
use crate::error::{Error, IoContext, Result};

/// How a sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The host name the build sees (`hostname`, `/etc/hostname`, `/etc/hosts`).
    pub hostname: String,
    /// Environment variables given to every program, after the defaults.
    pub env: Vec<(String, String)>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            hostname: "vauban".into(),
            env: Vec::new(),
        }
    }
}

/// A program to run in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Runs chrooted in the merged tree, with a clean environment.
    Chroot(Vec<String>),
    /// Runs a host program inside the sandbox's namespaces (uid 0 of the user
    /// namespace) with the overlay mounted at [`Sandbox::merged_dir`] and the host's
    /// environment: e.g. `ansible-playbook` with the chroot connection.
    Host(Vec<String>),
}

/// The default environment of a chrooted program.
pub const DEFAULT_ENV: [(&str, &str); 5] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("container", "vauban"),
];

/// A prepared sandbox over an image; see the [module docs](super).
#[derive(Debug)]
pub struct Sandbox<'s> {
    pub(super) store: &'s Store,
    pub(super) ns: NsConfig,
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
    /// Prepares a sandbox over the image `reference` of `store`: extracts its missing
    /// layer dirs and makes a fresh sandbox dir under `STORE/tmp`.
    pub fn prepare(store: &'s Store, reference: &Reference, opts: SandboxOptions) -> Result<Self> {
        let signals = SignalGuard::install()?;
        let ns = NsConfig::detect()?;
        let image = store.image(reference)?;
        let mut lower = ensure_layer_dirs(store, &ns, &image)?;
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
            image,
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
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).at("chmod", &p)
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

    /// Runs `program` in fresh namespaces over the sandbox's upper dir and returns
    /// its exit status. SIGINT/SIGTERM/SIGHUP kill the whole process tree and give
    /// [`Error::Interrupted`].
    pub fn run(&self, program: &Program) -> Result<ExitStatus> {
        let argv = match program {
            Program::Chroot(a) | Program::Host(a) => a,
        };
        if argv.is_empty() {
            return Err(Error::EmptyCommand);
        }
        // An image without layers (`FROM scratch`): the overlay needs a lower dir.
        let lower = if self.lower.is_empty() {
            vec![self.dir.join("empty")]
        } else {
            self.lower.clone()
        };
        let overlay = Overlay {
            lower,
            upper: self.upper_dir(),
            work: self.dir.join("work"),
        };
        let merged = self.merged_dir();
        let private = self.private_dir();
        let spawn = Spawn {
            what: "run",
            pid_ns: true,
            hostname: Some(&self.opts.hostname),
            interruptible: true,
        };
        tracing::info!(?program, "running in the sandbox");
        let raw: i32 = in_namespaces(&self.ns, &spawn, || {
            overlay.mount(&merged)?;
            rootfs::setup(&merged, &private)?;
            run_as_init(&merged, program, &self.opts.env)
        })?;
        Ok(ExitStatus::from_raw(raw))
    }
}

/// The command for `program`: chrooted programs get a clean environment.
pub fn command_for(program: &Program, env: &[(String, String)]) -> std::process::Command {
    let (argv, chroot) = match program {
        Program::Chroot(a) => (a, true),
        Program::Host(a) => (a, false),
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if chroot {
        cmd.env_clear();
        if let Ok(term) = std::env::var("TERM") {
            cmd.env("TERM", term);
        }
        cmd.envs(DEFAULT_ENV);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// In the sandbox's pid 1: chroots if asked, starts the program, reaps every
/// process until the program exits, and returns its raw wait status.
fn run_as_init(merged: &Path, program: &Program, env: &[(String, String)]) -> Result<i32> {
    if let Program::Chroot(_) = program {
        nix::unistd::chroot(merged).map_err(|e| Error::io("chroot", merged, e.into()))?;
        std::env::set_current_dir("/").at("chdir", "/")?;
    }
    let mut cmd = command_for(program, env);
    let argv0 = match program {
        Program::Chroot(a) | Program::Host(a) => a[0].clone(),
    };
    let child = cmd.spawn().map_err(|e| Error::io("run", argv0, e))?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok((code & 0xff) << 8),
            Ok(WaitStatus::Signaled(p, sig, core)) if p == pid => {
                return Ok(sig as i32 | if core { 0x80 } else { 0 })
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
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
        let dir = self.dir.clone();
        let spawn = Spawn {
            what: "remove the sandbox dir",
            ..Spawn::default()
        };
        in_namespaces(&self.ns, &spawn, || {
            // After an interrupted run the sandbox's processes are being killed by
            // the kernel (their pid namespace lost its init) and may still write
            // for a few milliseconds: try again before giving up.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound && tries < 20 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    res => return res.at("remove", &dir),
                }
            }
        })
    }
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(dir = %self.dir.display(), "cannot remove the sandbox dir: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroot_commands_get_a_clean_env_with_overrides() {
        let env = vec![
            ("FOO".to_string(), "1".to_string()),
            ("HOME".into(), "/x".into()),
        ];
        let cmd = command_for(
            &Program::Chroot(vec!["sh".into(), "-c".into(), "true".into()]),
            &env,
        );
        assert_eq!(cmd.get_program(), "sh");
        let vars: Vec<_> = cmd.get_envs().collect();
        assert!(vars
            .iter()
            .any(|(k, v)| *k == "FOO" && *v == Some("1".as_ref())));
        assert!(vars
            .iter()
            .any(|(k, v)| *k == "HOME" && *v == Some("/x".as_ref())));
        assert!(vars.iter().any(|(k, _)| *k == "PATH"));
    }

    #[test]
    fn host_commands_keep_the_host_env() {
        let cmd = command_for(&Program::Host(vec!["ansible-playbook".into()]), &[]);
        assert_eq!(cmd.get_envs().count(), 0);
    }
}
