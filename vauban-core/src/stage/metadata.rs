//! What a stage records inside the image, in the original's formats, so that what
//! read the original's images reads vauban's:
//!
//! - `/imginfo` is one YAML document: a head written when the image has none (the
//!   original's `kubernetes_create_parent_rootfs`: `debian_release`,
//!   `vauban_branch`, `vauban_sha1`, `date` as `%FT%H%M`, `stages:`), then one
//!   entry per stage under `stages:`, indented as the original indents them
//!   (`kubernetes_end_stage_for_host`: `date` in `--iso-8601=seconds`,
//!   `playbook`, `hostname`, `source` the name of the image the stage started
//!   from, `ansible-sha1`, `ansible-branch`, `build-engine`, `vauban-sha1`), and
//!   vauban's own fields after them (`source-digest`, the docker engine's
//!   `git-sha1` and `git-branch`, `vauban-version`).
//! - `/packages` is `packages:`, a list: when the image has none, the whole list
//!   of its packages first (the original's debootstrap entry: `source`,
//!   `hostname`, every package `+`), then per stage what it changed
//!   (`playbook`, `hostname`, `packages`), each line as `apt list --installed`
//!   prints it, `-` before and `+` after, indented as the original's `sed`
//!   indents them. Packages are compared by name, version and architecture: an
//!   `apt-get update` that only changes the suites a package is known in
//!   changes nothing.
//!
//! Values are written plain (as the original wrote them, for the readers that
//! `grep` and `cut`) when YAML reads them back as the same string, quoted
//! otherwise. The head records the build that first wrote it and each entry the
//! build that made its layer: a layer the cache serves keeps the names and date
//! of the build that made it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// What `/imginfo`'s `build-engine` says.
pub(crate) const BUILD_ENGINE: &str = "vauban";

/// The commit vauban was built from: `$VAUBAN_SHA1` at build time (as the
/// original took it from the environment when it was not a checkout), else its
/// version.
pub(crate) fn vauban_sha1() -> &'static str {
    option_env!("VAUBAN_SHA1").unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// The branch vauban was built from: `$VAUBAN_BRANCH` at build time, else its
/// version.
pub(crate) fn vauban_branch() -> &'static str {
    option_env!("VAUBAN_BRANCH").unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// The program run in the image for its package list: `apt list --installed`
/// (no cache file written), exit 127 without apt. Run with `LC_ALL=C`.
pub(crate) fn package_list_argv() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "command -v apt >/dev/null 2>&1 || exit 127\n\
         exec apt list --installed -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= 2>/dev/null"
            .into(),
    ]
}

/// A YAML scalar: plain when YAML 1.1 and 1.2 read it back as this string (a
/// name, a path, a hex commit with a letter), else double-quoted (JSON's
/// strings are valid YAML).
fn scalar(s: &str) -> String {
    let safe_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/@+-".contains(c));
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/');
    let has_letter = s.chars().any(|c| c.is_ascii_alphabetic());
    let special = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "nan",
    ]
    .contains(&s.to_ascii_lowercase().as_str());
    let numeric = {
        // 1e5, 0x1f, 0o17, 0b101: numbers in one YAML version or the other.
        let lower = s.to_ascii_lowercase();
        let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.');
        lower
            .split_once('e')
            .is_some_and(|(a, b)| digits(a) && digits(b.trim_start_matches(['+', '-'])))
            || ["0x", "0o", "0b"].iter().any(|p| lower.starts_with(p))
    };
    if safe_chars && first_ok && has_letter && !special && !numeric {
        s.to_owned()
    } else {
        serde_json::Value::from(s).to_string()
    }
}

fn optional(s: Option<&str>) -> String {
    s.map(scalar).unwrap_or_else(|| "null".into())
}

/// The head of an `/imginfo` written where the image has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImgInfoHead {
    /// The release the image descends from (the original's `--debian-release`:
    /// the release's key), if known.
    pub debian_release: Option<String>,
    /// When it was written.
    pub date: DateTime<Utc>,
}

impl ImgInfoHead {
    /// The head as YAML text: `/imginfo`'s beginning, up to `stages:`.
    pub(crate) fn to_yaml(&self) -> String {
        format!(
            "---\n\ndebian_release: {}\nvauban_branch: {}\nvauban_sha1: {}\ndate: {}\nstages:\n",
            optional(self.debian_release.as_deref()),
            scalar(vauban_branch()),
            scalar(vauban_sha1()),
            self.date.format("%Y-%m-%dT%H%M"),
        )
    }
}

/// One entry of `/imginfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImgInfo {
    /// When the stage ran.
    pub date: DateTime<Utc>,
    /// The playbook.
    pub playbook: String,
    /// The host it was built for.
    pub hostname: String,
    /// The name of the image the stage started from (`master-base`,
    /// `master-web/web01/base.yml`), if it has one.
    pub source: Option<String>,
    /// The manifest digest of that image.
    pub source_digest: String,
    /// The commit of the Ansible repository, when known.
    pub git_sha1: Option<String>,
    /// The branch of the Ansible repository, when known.
    pub git_branch: Option<String>,
}

impl ImgInfo {
    /// The entry as YAML text, to be appended to `/imginfo` (under `stages:`).
    pub(crate) fn to_yaml(&self) -> String {
        let sha1 = optional(self.git_sha1.as_deref());
        let branch = optional(self.git_branch.as_deref());
        let source_digest = scalar(&self.source_digest);
        let fields = [
            ("playbook", scalar(&self.playbook)),
            ("hostname", scalar(&self.hostname)),
            (
                "source",
                self.source
                    .as_deref()
                    .map_or_else(|| source_digest.clone(), scalar),
            ),
            ("ansible-sha1", sha1.clone()),
            ("ansible-branch", branch.clone()),
            ("build-engine", scalar(BUILD_ENGINE)),
            ("vauban-sha1", scalar(vauban_sha1())),
            ("source-digest", source_digest),
            ("git-sha1", sha1),
            ("git-branch", branch),
            ("vauban-version", scalar(env!("CARGO_PKG_VERSION"))),
        ];
        let mut text = format!(
            "\n    - date: {}\n",
            self.date.to_rfc3339_opts(SecondsFormat::Secs, false)
        );
        for (key, value) in fields {
            text.push_str(&format!("      {key}: {value}\n"));
        }
        text
    }
}

/// The packages of an `apt list --installed` listing, by name, version and
/// architecture (not the suites nor the flags), each with its line as apt
/// printed it (the original's `stable,stable` folded).
fn packages(listing: &str) -> BTreeMap<String, String> {
    listing
        .lines()
        .filter_map(|line| {
            let line = line.trim().replace("stable,stable", "stable");
            let (name, rest) = line.split_once('/')?;
            let mut words = rest.split_whitespace();
            let (_suites, version, arch) = (words.next()?, words.next()?, words.next()?);
            Some((format!("{name} {version} {arch}"), line.clone()))
        })
        .collect()
}

/// The package changes between two listings: `- line` for a package only in
/// `before`, `+ line` for one only in `after` (an upgrade is both), ordered by
/// package then sign.
pub(crate) fn package_diff(before: &str, after: &str) -> Vec<String> {
    let (before, after) = (packages(before), packages(after));
    let mut lines: Vec<(&String, char, &String)> = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(k, l)| (k, '-', l))
        .chain(
            after
                .iter()
                .filter(|(k, _)| !before.contains_key(*k))
                .map(|(k, l)| (k, '+', l)),
        )
        .collect();
    lines.sort_by(|(a, sa, _), (b, sb, _)| a.cmp(b).then(sa.cmp(sb)));
    lines
        .into_iter()
        .map(|(_, sign, line)| format!("{sign} {line}"))
        .collect()
}

/// The `packages: |` block of an entry; `null` without a listing.
fn packages_block(lines: Option<&[String]>) -> String {
    match lines {
        None => "  packages: null # no apt in the image\n".into(),
        Some([]) => "  packages: \"\"\n".into(),
        Some(lines) => {
            let mut block = String::from("  packages: |\n");
            for line in lines {
                block.push_str("          ");
                block.push_str(line);
                block.push('\n');
            }
            block
        }
    }
}

/// The beginning of a `/packages` written where the image has none: every
/// package of `listing` (the image the first stage starts from, `source`), as
/// the original's debootstrap entry listed the release's.
pub(crate) fn packages_head(source: &str, hostname: &str, listing: Option<&str>) -> String {
    let all: Option<Vec<String>> = listing.map(|l| {
        packages(l)
            .into_values()
            .map(|l| format!("+ {l}"))
            .collect()
    });
    format!(
        "---\npackages:\n\n- source: {}\n  hostname: {}\n{}",
        scalar(source),
        scalar(hostname),
        packages_block(all.as_deref())
    )
}

/// One entry of `/packages`: what the stage changed.
pub(crate) fn packages_entry(playbook: &str, hostname: &str, diff: Option<&[String]>) -> String {
    format!(
        "\n- playbook: {}\n  hostname: {}\n{}",
        scalar(playbook),
        scalar(hostname),
        packages_block(diff)
    )
}

/// What a stage writes into its image, run with `/bin/sh` in the image.
#[derive(Debug, Clone)]
pub(crate) struct MetadataWrite {
    /// `/imginfo`'s head, written when the image has no `/imginfo`.
    pub imginfo_head: String,
    /// The stage's `/imginfo` entry.
    pub imginfo_entry: String,
    /// `/packages`' head, written when the image has no `/packages`.
    pub packages_head: String,
    /// The stage's `/packages` entry.
    pub packages_entry: String,
    /// `/etc/hostname`, when the image's differs (put in `/toslash`: the
    /// sandbox mounts its own `/etc/hostname`, the commit moves it onto `/`).
    pub hostname: Option<String>,
}

/// The longest argument passed (the kernel refuses one over 128 KiB).
const CHUNK: usize = 64 << 10;

/// `text` in pieces of at most [`CHUNK`] bytes, cut at line ends where it can.
fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > CHUNK {
        let mut cut = rest[..CHUNK].rfind('\n').map_or(CHUNK, |i| i + 1);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    out.push(rest.to_owned());
    out
}

impl MetadataWrite {
    /// The argv (`/bin/sh -ec SCRIPT ...`) that writes it; long texts go in
    /// pieces, each under the kernel's limit of one argument.
    pub(crate) fn argv(&self) -> Vec<String> {
        let script = "umask 022\n\
             [ -s /imginfo ] || printf '%s' \"$1\" >/imginfo\n\
             printf '%s' \"$2\" >>/imginfo\n\
             if [ -n \"$3\" ]; then mkdir -p /toslash/etc && printf '%s' \"$3\" >/toslash/etc/hostname; fi\n\
             head=$4; shift 4\n\
             new=no; [ -s /packages ] || new=yes\n\
             i=0\n\
             for piece in \"$@\"; do\n\
               i=$((i+1))\n\
               if [ \"$i\" -gt \"$head\" ] || [ \"$new\" = yes ]; then printf '%s' \"$piece\" >>/packages; fi\n\
             done\n";
        let head = chunks(&self.packages_head);
        let mut argv = vec![
            "/bin/sh".into(),
            "-ec".into(),
            script.into(),
            "vauban-metadata".into(),
            self.imginfo_head.clone(),
            self.imginfo_entry.clone(),
            self.hostname.clone().unwrap_or_default(),
            head.len().to_string(),
        ];
        argv.extend(head);
        argv.extend(chunks(&self.packages_entry));
        argv
    }
}

#[cfg(test)]
#[path = "metadata/tests.rs"]
mod tests;
