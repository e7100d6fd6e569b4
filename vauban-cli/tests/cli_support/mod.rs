//! Helpers of the CLI tests: the `vauban` binary, fixtures, external tools and
//! a tree snapshot to compare two extracted root filesystems.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../vauban-core/tests/sandbox_common/prelude.rs"]
mod prelude;

// Each test target uses some of these: the rest are not unused code.
#[allow(unused_imports)]
pub use prelude::{copy_dir, fixture, sandbox_leftovers, tar_listing, testdata, unprivileged};

/// The `vauban` binary under test: `$VAUBAN_BIN`, else the one cargo built.
pub fn vauban_bin() -> PathBuf {
    std::env::var_os("VAUBAN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vauban")))
}

/// `vauban --store STORE ARGS...`, run to completion, with a clean environment
/// for the variables that change its behaviour.
pub fn vauban(store: &Path, args: &[&str]) -> Output {
    Command::new(vauban_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("VAUBAN_STORE")
        .output()
        .expect("run the vauban binary")
}

/// Runs `vauban` and panics with its stderr unless it succeeds; returns stdout.
pub fn vauban_ok(store: &Path, args: &[&str]) -> String {
    let out = vauban(store, args);
    assert!(
        out.status.success(),
        "vauban {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Panics with both outputs of `vauban ARGS` unless it succeeded; returns stdout.
pub fn stdout_if_ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "vauban {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `git ARGS` in `dir` (as a test author), panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@127.0.0.1"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The sha256 of a file, as `sha256sum` prints it.
pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Panics with the install hint when `tool` is not on the PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "{tool} is not installed: run `cargo xtask deps`");
}

/// Runs an external command and panics with its stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// One file of a tree, as compared between two extractions.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    /// `d`, `f`, `l`, `c`, `b`, `p` or `s`.
    pub kind: char,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Size of a regular file.
    pub size: u64,
    /// sha256 of a regular file's content.
    pub hash: Option<String>,
    /// A symlink's target.
    pub target: Option<PathBuf>,
    /// A device's number.
    pub rdev: u64,
    /// Owner, when compared.
    pub owner: Option<(u32, u32)>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:04o} {}", self.kind, self.mode, self.size)?;
        if let Some(t) = &self.target {
            write!(f, " -> {}", t.display())?;
        }
        if self.kind == 'c' || self.kind == 'b' {
            write!(f, " dev {:#x}", self.rdev)?;
        }
        if let Some((u, g)) = self.owner {
            write!(f, " {u}:{g}")?;
        }
        if let Some(h) = &self.hash {
            write!(f, " {}", &h[..12])?;
        }
        Ok(())
    }
}

/// Every file under `root` (the root itself excluded), by relative path.
pub fn snapshot(root: &Path, owners: bool) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, owners, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, owners: bool, out: &mut BTreeMap<PathBuf, Node>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let hash = (kind == 'f').then(|| {
            let f = std::fs::File::open(&path).unwrap();
            let (d, _) = vauban_oci::digest::HashingReader::new(f)
                .drain_and_finish()
                .unwrap();
            d.to_string()
        });
        let node = Node {
            kind,
            mode: meta.mode() & 0o7777,
            size: if kind == 'f' { meta.len() } else { 0 },
            hash,
            target: (kind == 'l').then(|| std::fs::read_link(&path).unwrap()),
            rdev: meta.rdev(),
            owner: owners.then(|| (meta.uid(), meta.gid())),
        };
        out.insert(path.strip_prefix(root).unwrap().to_path_buf(), node);
        if kind == 'd' {
            walk(root, &path, owners, out);
        }
    }
}

/// Panics listing (up to 30) differences between two snapshots.
pub fn assert_same_tree(
    ours: &BTreeMap<PathBuf, Node>,
    theirs: &BTreeMap<PathBuf, Node>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (p, a) in ours {
        match theirs.get(p) {
            None => diffs.push(format!("only in ours: {} {a:?}", p.display())),
            Some(b) if a != b => diffs.push(format!("{}: ours {a:?}, theirs {b:?}", p.display())),
            Some(_) => {}
        }
    }
    for (p, b) in theirs {
        if !ours.contains_key(p) {
            diffs.push(format!("only in theirs: {} {b:?}", p.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences (of {} / {} entries):\n{}",
        diffs.len(),
        ours.len(),
        theirs.len(),
        diffs
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
