//! Git plumbing of the Ansible repository: the argv of each git operation (pure, so
//! they are unit-tested), running git with errors that name the repository, and the
//! lock that serialises concurrent builds sharing a clone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// The git argv (after `git`) of each operation.
pub(crate) mod args {
    use std::ffi::OsString;
    use std::path::Path;

    /// Clones without checking out: worktrees are made per build.
    pub(crate) fn clone(url: &str, dest: &Path) -> Vec<OsString> {
        vec![
            "clone".into(),
            "--no-checkout".into(),
            "--quiet".into(),
            "--".into(),
            url.into(),
            dest.into(),
        ]
    }

    /// Updates every remote branch (`origin/*`), dropping deleted ones.
    pub(crate) fn fetch(clone: &Path) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["fetch", "--prune", "--quiet", "origin"].map(OsString::from));
        v
    }

    /// The remote's default branch, as `origin/<name>`.
    pub(crate) fn default_branch(clone: &Path) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["symbolic-ref", "--short", "refs/remotes/origin/HEAD"].map(OsString::from));
        v
    }

    /// The commit of `origin/<branch>`.
    pub(crate) fn remote_commit(clone: &Path, branch: &str) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["rev-parse", "--verify", "--quiet", "--end-of-options"].map(OsString::from));
        v.push(format!("refs/remotes/origin/{branch}^{{commit}}").into());
        v
    }

    /// A detached worktree of `commit` at `path`.
    pub(crate) fn worktree_add(clone: &Path, path: &Path, commit: &str) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["worktree", "add", "--detach", "--force", "--quiet"].map(OsString::from));
        v.push(path.into());
        v.push(commit.into());
        v
    }

    /// Removes the worktree at `path`.
    pub(crate) fn worktree_remove(clone: &Path, path: &Path) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["worktree", "remove", "--force"].map(OsString::from));
        v.push(path.into());
        v
    }

    /// Forgets worktrees whose directory is gone.
    pub(crate) fn worktree_prune(clone: &Path) -> Vec<OsString> {
        let mut v = at(clone);
        v.extend(["worktree", "prune"].map(OsString::from));
        v
    }

    /// `HEAD`'s commit / current branch of a work tree.
    pub(crate) fn head(dir: &Path, branch: bool) -> Vec<OsString> {
        let mut v = at(dir);
        if branch {
            v.extend(["symbolic-ref", "--short", "--quiet", "HEAD"].map(OsString::from));
        } else {
            v.extend(["rev-parse", "--verify", "--quiet", "HEAD"].map(OsString::from));
        }
        v
    }

    fn at(dir: &Path) -> Vec<OsString> {
        vec!["-C".into(), dir.into()]
    }
}

/// An exclusive lock on `<clone>.lock`, held while the clone is cloned, fetched or
/// given a worktree, so that concurrent builds sharing the cache do not collide.
pub(super) fn lock(clone: &Path) -> Result<std::fs::File> {
    let mut path = clone.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at("open", &path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &path, e.into()))?;
    Ok(file)
}

fn git_command(args: &[OsString]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs git, returns its trimmed stdout; errors name the repository.
pub(super) fn git(repo: &str, args: &[OsString]) -> Result<String> {
    let display = || {
        std::iter::once("git".to_owned())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let command_line = display();
    tracing::debug!(repo, "running {command_line}");
    let out = git_command(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::ToolMissing {
            tool: "git".into(),
            hint: "install git (`apt-get install git`)",
        },
        _ => Error::io("run git for", repo, e),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        return Err(Error::Git {
            repo: repo.to_owned(),
            command: display(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs git for a probe whose failure is an answer, not an error worth detail.
pub(super) fn git_quiet(args: &[OsString]) -> Result<String> {
    git("", args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn argv() {
        let c = Path::new("/c/repo");
        assert_eq!(
            strs(args::clone("file:///x", c)),
            [
                "clone",
                "--no-checkout",
                "--quiet",
                "--",
                "file:///x",
                "/c/repo"
            ]
        );
        assert_eq!(
            strs(args::fetch(c)),
            ["-C", "/c/repo", "fetch", "--prune", "--quiet", "origin"]
        );
        assert_eq!(
            strs(args::remote_commit(c, "dev")),
            [
                "-C",
                "/c/repo",
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                "refs/remotes/origin/dev^{commit}"
            ]
        );
        assert_eq!(
            strs(args::worktree_add(c, Path::new("/w"), "abc")),
            ["-C", "/c/repo", "worktree", "add", "--detach", "--force", "--quiet", "/w", "abc"]
        );
        assert_eq!(
            strs(args::worktree_remove(c, Path::new("/w"))),
            ["-C", "/c/repo", "worktree", "remove", "--force", "/w"]
        );
    }
}
