//! Small helpers shared by the tasks: where the workspace is, how to run a
//! command so that a failure names it and shows the tail of its stderr, hashing,
//! and copying trees into a world-readable staging area.

use std::ffi::OsStr;
use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `<workspace>/target`, where fixtures, the demo store and bench scratch live.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// A `cargo` command (the one that runs us, so the toolchain is the same),
/// started in the workspace root.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd
}

/// Whether we run as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Renders a command as a shell-like line for messages.
pub fn display(cmd: &Command) -> String {
    let mut line = shell_word(cmd.get_program());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_word(arg));
    }
    line
}

/// Quotes one word for display when it holds characters a shell would split on.
pub fn shell_word(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited stdio; fails naming the command on a bad exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", display(cmd));
    }
    Ok(())
}

/// Runs a command and returns its stdout; on failure the error carries the tail
/// of its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{}",
            display(cmd),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", display(cmd)))
}

/// Runs a command showing its stderr (cargo's progress) and returns its stdout.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {}", display(cmd));
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed: {}", display(cmd), out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", display(cmd)))
}

/// A free TCP port on 127.0.0.1 (the kernel's pick, free until someone binds it).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("find a free loopback port")?
        .port())
}

/// Waits until `127.0.0.1:port` accepts connections; fails if `child` (named
/// `what`) exits first or nothing listens after `timeout`.
pub fn wait_listening(child: &mut Child, port: u16, what: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start ({status})");
        }
        if started.elapsed() > timeout {
            bail!("{what} does not listen on 127.0.0.1:{port} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Time since the task began, printed after each phase so a slow CI run says
/// where its minutes went.
pub struct Clock {
    start: std::time::Instant,
    lap: std::time::Instant,
}

impl Clock {
    /// Starts the clock.
    pub fn start() -> Clock {
        let now = std::time::Instant::now();
        Clock {
            start: now,
            lap: now,
        }
    }

    /// Prints `time: WHAT took Ns (N s since the start)` and starts a new lap.
    pub fn lap(&mut self, what: &str) {
        let now = std::time::Instant::now();
        eprintln!(
            "time: {what} took {:.0} s ({:.0} s since the start)",
            (now - self.lap).as_secs_f64(),
            (now - self.start).as_secs_f64()
        );
        self.lap = now;
    }
}

/// The last `n` lines of a text, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Lower-case hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Sets a path's permission bits.
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Copies a regular file and makes the copy world-readable (and executable by
/// all when the source is executable by its owner).
pub fn copy_readable(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    let mode = fs::metadata(from)
        .with_context(|| format!("stat {}", from.display()))?
        .permissions()
        .mode();
    chmod(to, world_readable(mode, false))
}

/// Makes a large read-only input (a fixture) available at `to` for another
/// user: a hard link when the file is already world-readable (no copy of
/// hundreds of MB), else a world-readable copy. The source is never chmod-ed.
pub fn link_or_copy_readable(from: &Path, to: &Path) -> Result<()> {
    let mode = fs::metadata(from)
        .with_context(|| format!("stat {}", from.display()))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 && fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    copy_readable(from, to)
}

/// Copies a directory tree (files, dirs, symlinks), making everything readable
/// (and dirs traversable) by every user.
pub fn copy_tree_readable(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("mkdir {}", to.display()))?;
    chmod(to, 0o755)?;
    let entries = fs::read_dir(from).with_context(|| format!("read dir {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("read dir {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .with_context(|| format!("stat {}", src.display()))?;
        if kind.is_dir() {
            copy_tree_readable(&src, &dst)?;
        } else if kind.is_symlink() {
            let target =
                fs::read_link(&src).with_context(|| format!("readlink {}", src.display()))?;
            symlink(&target, &dst).with_context(|| format!("symlink {}", dst.display()))?;
        } else if kind.is_file() {
            copy_readable(&src, &dst)?;
        }
    }
    Ok(())
}

/// The mode a staged copy gets: readable by all, executable by all when the
/// owner could execute it (or for directories).
pub fn world_readable(mode: u32, dir: bool) -> u32 {
    let perm = mode & 0o7777 & !0o6000; // never stage setuid/setgid copies
    if dir || perm & 0o100 != 0 {
        perm | 0o755
    } else {
        perm | 0o644
    }
}

/// Waits until the `vauban serve` `child` (its stderr piped) prints
/// `vauban serve: listening on URL`; the URL, without its last `/`. The rest
/// of its stderr then goes to `log` (or nowhere), so it never blocks on a
/// full pipe. Fails with what it said when it ends first.
pub fn serve_url(child: &mut Child, log: Option<&Path>) -> Result<String> {
    use std::io::BufRead as _;
    let mut stderr = std::io::BufReader::new(child.stderr.take().context("no stderr")?);
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            let _ = child.wait();
            bail!("vauban serve ended before listening:\n{}", said.trim_end());
        }
        if let Some(url) = line.trim().strip_prefix("vauban serve: listening on ") {
            break url.trim_end_matches('/').to_string();
        }
        said.push_str(&line);
    };
    let mut sink: Box<dyn std::io::Write + Send> = match log {
        Some(path) => {
            Box::new(fs::File::create(path).with_context(|| format!("create {}", path.display()))?)
        }
        None => Box::new(std::io::sink()),
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut sink));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_word(OsStr::new("--features=x")), "--features=x");
        assert_eq!(shell_word(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_word(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_word(OsStr::new("")), "''");
    }

    #[test]
    fn staged_modes_are_readable_and_never_setuid() {
        assert_eq!(world_readable(0o600, false), 0o644);
        assert_eq!(world_readable(0o700, false), 0o755);
        assert_eq!(world_readable(0o4755, false), 0o755);
        assert_eq!(world_readable(0o700, true), 0o755);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
