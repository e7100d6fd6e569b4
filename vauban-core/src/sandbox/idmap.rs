//! The id mapping of the rootless sandbox: the user's subordinate ranges from
//! `/etc/subuid` and `/etc/subgid`, and the `newuidmap`/`newgidmap` command lines
//! that give the user namespace a full mapping (0 -> own id, 1.. -> the range).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A subordinate id range: `count` ids starting at `start` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubIdRange {
    /// First host id of the range.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// Everything needed to map ids into a new user namespace for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMapping {
    /// The user's own uid (mapped to 0).
    pub uid: u32,
    /// The user's own gid (mapped to 0).
    pub gid: u32,
    /// The subordinate uid range (mapped from 1).
    pub subuid: SubIdRange,
    /// The subordinate gid range (mapped from 1).
    pub subgid: SubIdRange,
    /// Path of `newuidmap`.
    pub newuidmap: PathBuf,
    /// Path of `newgidmap`.
    pub newgidmap: PathBuf,
}

impl IdMapping {
    /// Finds the mapping of the current (unprivileged) user, checking every
    /// prerequisite and failing with an error that says how to fix the machine.
    pub fn for_current_user() -> Result<Self> {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let subuid = read_range(Path::new("/etc/subuid"), "uid", &name, uid)?;
        let subgid = read_range(Path::new("/etc/subgid"), "gid", &name, uid)?;
        Ok(IdMapping {
            uid,
            gid,
            subuid,
            subgid,
            newuidmap: find_tool("newuidmap")?,
            newgidmap: find_tool("newgidmap")?,
        })
    }

    /// Arguments of `newuidmap` for the process `pid`.
    pub fn uid_args(&self, pid: i32) -> Vec<String> {
        map_args(pid, self.uid, self.subuid)
    }

    /// Arguments of `newgidmap` for the process `pid`.
    pub fn gid_args(&self, pid: i32) -> Vec<String> {
        map_args(pid, self.gid, self.subgid)
    }
}

/// The argument list of `newuidmap`/`newgidmap`: `PID 0 OWN 1 1 START COUNT`.
pub(crate) fn map_args(pid: i32, own: u32, range: SubIdRange) -> Vec<String> {
    vec![
        pid.to_string(),
        "0".into(),
        own.to_string(),
        "1".into(),
        "1".into(),
        range.start.to_string(),
        range.count.to_string(),
    ]
}

fn read_range(file: &Path, kind: &'static str, user: &str, uid: u32) -> Result<SubIdRange> {
    let content = match std::fs::read_to_string(file) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", file, e)),
    };
    parse_subid(&content, file, user, uid)?.ok_or_else(|| Error::NoSubIdRange {
        kind,
        user: user.to_string(),
        file: file.to_path_buf(),
        free: first_free(&content),
    })
}

/// The first id after every range of a subid file, at least 100000: a range
/// starting there belongs to no other user.
pub(crate) fn first_free(content: &str) -> u64 {
    content
        .lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (_, start, count) = (f.next()?, f.next()?, f.next()?);
            Some(start.parse::<u64>().ok()? + count.parse::<u64>().ok()?)
        })
        .fold(100_000, u64::max)
}

/// Finds the range of `user` (by name or uid) in the content of a subid file.
///
/// The first range of at least 65536 ids wins, else the largest one.
pub fn parse_subid(content: &str, file: &Path, user: &str, uid: u32) -> Result<Option<SubIdRange>> {
    let mut best: Option<SubIdRange> = None;
    for (i, line) in content.lines().enumerate() {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let bad = || Error::BadSubIdLine {
            file: file.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        };
        let mut fields = text.split(':');
        let (Some(owner), Some(start), Some(count), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        if owner != user && owner.parse::<u32>().ok() != Some(uid) {
            continue;
        }
        let range = SubIdRange {
            start: start.parse().map_err(|_| bad())?,
            count: count.parse().map_err(|_| bad())?,
        };
        if range.count == 0 {
            continue;
        }
        if range.count >= 65536 {
            return Ok(Some(range));
        }
        if best.is_none_or(|b| b.count < range.count) {
            best = Some(range);
        }
    }
    Ok(best)
}

fn find_tool(name: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(Error::UidmapMissing { tool: name })
}

/// Says which sysctl keeps unprivileged user namespaces off on this machine, if any.
pub(crate) fn userns_hint() -> String {
    hint_from(|p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    })
}

/// [`userns_hint`] given a reader of `/proc/sys` files.
fn hint_from(read: impl Fn(&str) -> Option<String>) -> String {
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "unprivileged user namespaces are disabled: \
                `sysctl -w kernel.unprivileged_userns_clone=1`"
            .into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user namespaces are disabled: `sysctl -w user.max_user_namespaces=15000`".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces: \
                `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
            .into();
    }
    "check that unprivileged user namespaces are enabled \
     (`kernel.unprivileged_userns_clone`, `user.max_user_namespaces`)"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/subuid";

    #[test]
    fn args_map_root_to_own_id_and_the_rest_to_the_range() {
        let r = SubIdRange {
            start: 100000,
            count: 65536,
        };
        assert_eq!(
            map_args(4242, 1001, r),
            ["4242", "0", "1001", "1", "1", "100000", "65536"]
        );
    }

    #[test]
    fn finds_range_by_name_or_uid() {
        let c = "# comment\nalice:200000:65536\nvauban-test:100000:65536\n";
        let f = Path::new(FILE);
        let r = parse_subid(c, f, "vauban-test", 1001).unwrap().unwrap();
        assert_eq!(r.start, 100000);
        let r = parse_subid("1001:300000:65536\n", f, "bob", 1001)
            .unwrap()
            .unwrap();
        assert_eq!(r.start, 300000);
        assert_eq!(parse_subid(c, f, "bob", 1002).unwrap(), None);
    }

    #[test]
    fn prefers_a_full_range_then_the_largest() {
        let c = "u:10:5\nu:20:100\nu:1000:65536\n";
        let r = parse_subid(c, Path::new(FILE), "u", 9).unwrap().unwrap();
        assert_eq!(r.start, 1000);
        let c = "u:10:5\nu:20:100\nu:500:7\n";
        let r = parse_subid(c, Path::new(FILE), "u", 9).unwrap().unwrap();
        assert_eq!((r.start, r.count), (20, 100));
    }

    #[test]
    fn userns_hint_names_the_sysctl_to_change() {
        let only = |file: &'static str, value: &'static str| {
            move |p: &str| (p == file).then(|| value.to_string())
        };
        let h = hint_from(only("/proc/sys/kernel/unprivileged_userns_clone", "0"));
        assert!(
            h.contains("sysctl -w kernel.unprivileged_userns_clone=1"),
            "{h}"
        );
        let h = hint_from(only("/proc/sys/user/max_user_namespaces", "0"));
        assert!(h.contains("sysctl -w user.max_user_namespaces="), "{h}");
        let h = hint_from(only(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
        ));
        assert!(h.contains("apparmor_restrict_unprivileged_userns=0"), "{h}");
        let h = hint_from(|_| None);
        assert!(h.contains("user.max_user_namespaces"), "{h}");
        let err = Error::UserNamespacesDisabled {
            hint: hint_from(only("/proc/sys/user/max_user_namespaces", "0")),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        }
        .to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn missing_tools_name_the_package() {
        let err = Error::UidmapMissing { tool: "newuidmap" }.to_string();
        assert!(err.contains("apt-get install uidmap"), "{err}");
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = parse_subid("ok:1:2\nu:x:3\n", Path::new(FILE), "u", 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/subuid:2: malformed subordinate id range \"u:x:3\""
        );
    }

    #[test]
    fn missing_range_says_which_line_to_add() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "other:1:65536\n").unwrap();
        let err = read_range(&f, "uid", "me", 5).unwrap_err().to_string();
        assert!(err.contains("me:100000:65536"), "{err}");
        assert!(err.contains("subuid"), "{err}");
    }

    /// The hint never suggests a range another user owns.
    #[test]
    fn the_suggested_range_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(&f, "barsuser:100000:65536\nfoo:165536:1000\n").unwrap();
        let err = read_range(&f, "uid", "nosubuser", 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nosubuser:166536:65536"), "{err}");
        assert!(
            err.contains("--add-subuids 166536-232071 nosubuser"),
            "{err}"
        );
        assert_eq!(first_free(""), 100_000);
    }
}
