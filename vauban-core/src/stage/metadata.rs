//! What a stage records inside the image, as the original did: `/imginfo` gets one
//! YAML list entry per stage (date, playbook, host name, source image, Ansible commit
//! and branch, vauban version) and `/packages` the stage's package changes, computed
//! from `dpkg-query -W` before and after the playbook (`+` added, `-` removed; an
//! upgrade is both).

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};

/// The `dpkg-query` format vauban records: one `package:arch version` per line.
pub const DPKG_FORMAT: &str = "${binary:Package} ${Version}\\n";

/// The argv of the package listing run in the image.
pub fn dpkg_query_argv() -> Vec<String> {
    vec![
        "dpkg-query".into(),
        "-W".into(),
        format!("--showformat={DPKG_FORMAT}"),
    ]
}

/// One entry of `/imginfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImgInfo {
    /// When the stage ran.
    pub date: DateTime<Utc>,
    /// The playbook.
    pub playbook: String,
    /// The host it was built for.
    pub hostname: String,
    /// The image the stage started from (its manifest digest).
    pub source: String,
    /// The commit of the Ansible repository, when known.
    pub git_sha1: Option<String>,
    /// The branch of the Ansible repository, when known.
    pub git_branch: Option<String>,
    /// The version of vauban that built it.
    pub vauban_version: String,
}

/// A YAML scalar: JSON's double-quoted strings are valid YAML.
fn scalar(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn optional(s: Option<&str>) -> String {
    s.map(scalar).unwrap_or_else(|| "null".into())
}

impl ImgInfo {
    /// The entry as YAML text, to be appended to `/imginfo`.
    pub fn to_yaml(&self) -> String {
        format!(
            "- date: {}\n  playbook: {}\n  hostname: {}\n  source: {}\n  git-sha1: {}\n  git-branch: {}\n  vauban-version: {}\n",
            self.date.to_rfc3339_opts(SecondsFormat::Secs, true),
            scalar(&self.playbook),
            scalar(&self.hostname),
            scalar(&self.source),
            optional(self.git_sha1.as_deref()),
            optional(self.git_branch.as_deref()),
            scalar(&self.vauban_version),
        )
    }
}

/// The package changes between two `dpkg-query` listings: `+line` for each line only in
/// `after`, `-line` for each only in `before`, ordered by package then sign.
pub fn package_diff(before: &str, after: &str) -> Vec<String> {
    let set = |text: &str| -> BTreeSet<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (before, after) = (set(before), set(after));
    let mut lines: Vec<(String, char)> = before
        .difference(&after)
        .map(|l| (l.clone(), '-'))
        .chain(after.difference(&before).map(|l| (l.clone(), '+')))
        .collect();
    lines.sort_by(|(a, sa), (b, sb)| a.cmp(b).then(sa.cmp(sb)));
    lines
        .into_iter()
        .map(|(l, sign)| format!("{sign}{l}"))
        .collect()
}

/// One entry of `/packages`.
pub fn packages_entry(playbook: &str, hostname: &str, diff: Option<&[String]>) -> String {
    let mut entry = format!(
        "- playbook: {}\n  hostname: {}\n",
        scalar(playbook),
        scalar(hostname)
    );
    match diff {
        None => entry.push_str("  packages: null # no dpkg-query in the image\n"),
        Some([]) => entry.push_str("  packages: \"\"\n"),
        Some(lines) => {
            entry.push_str("  packages: |\n");
            for line in lines {
                entry.push_str("    ");
                entry.push_str(line);
                entry.push('\n');
            }
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn imginfo_entry() {
        let info = ImgInfo {
            date: Utc.with_ymd_and_hms(2026, 11, 25, 22, 30, 5).unwrap(),
            playbook: "base.yml".into(),
            hostname: "web01".into(),
            source: "sha256:abcd".into(),
            git_sha1: Some("0123abc".into()),
            git_branch: None,
            vauban_version: "0.1.0".into(),
        };
        assert_eq!(
            info.to_yaml(),
            "- date: 2026-11-25T22:30:05Z\n  playbook: \"base.yml\"\n  hostname: \"web01\"\n  \
             source: \"sha256:abcd\"\n  git-sha1: \"0123abc\"\n  git-branch: null\n  vauban-version: \"0.1.0\"\n"
        );
    }

    #[test]
    fn quoting_is_safe() {
        let info = ImgInfo {
            date: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            playbook: "a: b\n- c\"".into(),
            hostname: "h".into(),
            source: "s".into(),
            git_sha1: None,
            git_branch: None,
            vauban_version: "v".into(),
        };
        assert!(info.to_yaml().contains("playbook: \"a: b\\n- c\\\"\"\n"));
    }

    #[test]
    fn diff_of_listings() {
        let before = "base-files:amd64 12.4\nlibc6:amd64 2.36-9\nold:amd64 1\n";
        let after = "base-files:amd64 12.4\nhello:amd64 2.10-3\nlibc6:amd64 2.36-9+deb12u1\n\n";
        assert_eq!(
            package_diff(before, after),
            [
                "+hello:amd64 2.10-3",
                "-libc6:amd64 2.36-9",
                "+libc6:amd64 2.36-9+deb12u1",
                "-old:amd64 1"
            ]
        );
        assert!(package_diff(before, before).is_empty());
    }

    #[test]
    fn packages_entries() {
        let diff = vec!["+hello:amd64 2.10-3".to_owned()];
        assert_eq!(
            packages_entry("base.yml", "web01", Some(&diff)),
            "- playbook: \"base.yml\"\n  hostname: \"web01\"\n  packages: |\n    +hello:amd64 2.10-3\n"
        );
        assert!(packages_entry("b", "h", Some(&[])).ends_with("packages: \"\"\n"));
        assert!(packages_entry("b", "h", None).contains("packages: null"));
    }

    #[test]
    fn dpkg_argv() {
        assert_eq!(
            dpkg_query_argv(),
            [
                "dpkg-query",
                "-W",
                "--showformat=${binary:Package} ${Version}\\n"
            ]
        );
    }
}
