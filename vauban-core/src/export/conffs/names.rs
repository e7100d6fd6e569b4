//! Entry names of the conffs: tar names normalised to relative paths, the
//! `/toslash` mapping (`toslash/X` is written as `X`) and the subtrees left
//! out of every archive.

use vauban_oci::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// The directory whose content is copied onto `/` (the Docker-era workaround
/// for `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`).
pub(super) const TOSLASH: &[u8] = b"toslash";

/// Subtrees never shipped in a conffs (the directories themselves included).
pub(super) const LEFT_OUT: [&[u8]; 5] = [
    b"var/log",
    b"var/cache",
    b"root/ansible",
    b"root/.ansible",
    b"var/lib/apt/lists",
];

/// Whether `name` is a directory the sandbox itself puts in every layer: a
/// mount point of its own (`dev`, `proc`...) or a parent of one (`usr/sbin`
/// of `policy-rc.d`, `usr/lib/lsb/init-functions.d` of the init-functions
/// hook, `etc` of `resolv.conf`), which the overlay copies up when the mount
/// point is made. Empty in a conffs it only repeats the master's directory
/// (dracut `mkdir -p`s each directory and keeps no mode), so it is shipped
/// only with something under it (see [`super::plan`]).
pub(super) fn sandbox_dir(name: &[u8]) -> bool {
    use crate::sandbox::rootfs::{PLACEHOLDER_DIRS, PLACEHOLDER_FILES, PLACEHOLDER_LINKS};
    let mount_points = PLACEHOLDER_FILES
        .iter()
        .chain(PLACEHOLDER_LINKS.iter().map(|(l, _)| l))
        .chain(PLACEHOLDER_DIRS.iter());
    for point in mount_points {
        let point = point.as_bytes();
        if point == name && PLACEHOLDER_DIRS.iter().any(|d| d.as_bytes() == name) {
            return true;
        }
        if ancestors(point).any(|a| a == name) {
            return true;
        }
    }
    false
}

/// What a layer entry's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// The root itself (`./`): not shipped.
    Root,
    /// An ordinary entry at this path.
    Entry(Vec<u8>),
    /// `.wh.NAME`: the path it deletes from the layers below.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq`: the directory whose lower content it hides.
    Opaque(Vec<u8>),
}

/// Normalises a tar name (leading `/` and `./`, `.` and empty components
/// dropped) and says what it is; `None` for a `..` component or a NUL byte.
pub(crate) fn classify(raw: &[u8]) -> Option<Named> {
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            _ if c.contains(&0) => return None,
            _ => comps.push(c),
        }
    }
    let Some((last, parent)) = comps.split_last() else {
        return Some(Named::Root);
    };
    let join = |last: Option<&[u8]>| {
        let mut v: Vec<&[u8]> = parent.to_vec();
        v.extend(last);
        v.join(&b'/')
    };
    Some(if *last == OPAQUE_WHITEOUT.as_bytes() {
        Named::Opaque(join(None))
    } else if let Some(name) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        Named::Whiteout(join(Some(name)))
    } else {
        Named::Entry(join(Some(last)))
    })
}

/// Whether `path` is `prefix` or under it.
pub(crate) fn is_at_or_under(path: &[u8], prefix: &[u8]) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

/// The proper ancestors of `path`, nearest first (`a/b/c` → `a/b`, `a`).
pub(crate) fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let i = cur.iter().rposition(|&b| b == b'/')?;
        cur = &cur[..i];
        Some(cur)
    })
}

/// Where a layer path lands in the archive: `toslash/X` as `X` (second field
/// true), `toslash` itself nowhere, anything else as it is.
pub(super) fn final_name(path: &[u8]) -> Option<(&[u8], bool)> {
    if path == TOSLASH {
        None
    } else if let Some(rest) = path
        .strip_prefix(TOSLASH)
        .and_then(|r| r.strip_prefix(b"/"))
    {
        Some((rest, true))
    } else {
        Some((path, false))
    }
}

/// Whether a final name is left out of the archive.
pub(super) fn left_out(name: &[u8]) -> bool {
    LEFT_OUT.iter().any(|p| is_at_or_under(name, p))
}

/// A name for messages (warnings, errors, the report's deletions): a layer's
/// names are the image's, escaped as [`crate::printable`] says.
pub(super) fn show(name: &[u8]) -> String {
    crate::printable::escape_bytes(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_classified() {
        let entry = |s: &str| Some(Named::Entry(s.as_bytes().to_vec()));
        assert_eq!(classify(b"./etc//passwd"), entry("etc/passwd"));
        assert_eq!(classify(b"/usr/lib/"), entry("usr/lib"));
        assert_eq!(classify(b"./"), Some(Named::Root));
        assert_eq!(
            classify(b"etc/.wh.motd"),
            Some(Named::Whiteout(b"etc/motd".to_vec()))
        );
        assert_eq!(
            classify(b"./opt/.wh..wh..opq"),
            Some(Named::Opaque(b"opt".to_vec()))
        );
        assert_eq!(classify(b"a/../../b"), None);
        assert_eq!(classify(b".wh.."), None);
    }

    #[test]
    fn names_for_messages_are_escaped() {
        assert_eq!(show(b"etc/motd"), "etc/motd");
        assert_eq!(
            show(b"etc/\x1b]0;pwned\x07\xff"),
            "etc/\\x1b]0;pwned\\x07\\xff"
        );
    }

    #[test]
    fn toslash_and_left_out_subtrees() {
        assert_eq!(final_name(b"toslash"), None);
        assert_eq!(
            final_name(b"toslash/etc/hosts"),
            Some((&b"etc/hosts"[..], true))
        );
        assert_eq!(final_name(b"toslashes"), Some((&b"toslashes"[..], false)));
        assert!(sandbox_dir(b"usr") && sandbox_dir(b"usr/sbin") && sandbox_dir(b"dev"));
        assert!(sandbox_dir(b"usr/lib/lsb/init-functions.d") && sandbox_dir(b"etc"));
        assert!(
            !sandbox_dir(b"usr/sbin/policy-rc.d"),
            "a file, not a directory"
        );
        assert!(!sandbox_dir(b"usr/share") && !sandbox_dir(b"etc/vauban"));
        assert!(left_out(b"var/log"));
        assert!(left_out(b"var/lib/apt/lists/lock"));
        assert!(!left_out(b"var/logs"));
        assert!(!left_out(b"var/lib/apt"));
        let a: Vec<&[u8]> = ancestors(b"a/b/c").collect();
        assert_eq!(a, [&b"a/b"[..], b"a"]);
    }
}
