//! Checks around a stage's playbooks: before the first stage runs, every
//! playbook exists (else "did you mean") and parses (`ansible-playbook
//! --syntax-check`); after a stage, one whose plays matched no host is an error
//! that names the plays' host patterns and the host's groups.

use std::path::{Path, PathBuf};

use super::confined::{Confined, Tool};
use super::inventory;
use super::repo::Checkout;
use super::stage_name::Stage;
use crate::error::{Error, Result};

/// The playbooks of the Ansible root (`*.yml`, `*.yaml`, two levels deep), for
/// suggestions.
fn playbooks_in(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir()
                && depth < 1
                && !matches!(name.as_str(), "roles" | "group_vars" | "host_vars")
            {
                todo.push((p, depth + 1));
            } else if name.ends_with(".yml") || name.ends_with(".yaml") {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

/// The playbook of `root` closest to `wanted`, when close enough.
pub(crate) fn did_you_mean(root: &Path, wanted: &str) -> Option<String> {
    playbooks_in(root)
        .into_iter()
        .map(|p| (strsim::levenshtein(&p, wanted), p))
        .filter(|(d, p)| *d <= 3.max(p.len() / 4) && p != wanted)
        .min()
        .map(|(_, p)| p)
}

/// The stage's playbook must exist in the checkout.
pub(crate) fn check_exists(stage: &Stage, checkout: &Checkout) -> Result<()> {
    if checkout.root.join(&stage.playbook).is_file() {
        return Ok(());
    }
    Err(Error::NoPlaybook {
        playbook: stage.playbook.clone(),
        root: checkout.root.clone(),
        branch: checkout.branch.clone().unwrap_or_else(|| "-".into()),
        suggestion: did_you_mean(&checkout.root, &stage.playbook),
    })
}

/// The `ansible-playbook --syntax-check` command for `playbooks` of a
/// checkout, run confined.
pub(crate) fn syntax_check_command<'c>(
    confined: &'c Confined,
    ansible_playbook: &Path,
    root: &Path,
    inventories: &[PathBuf],
    playbooks: &[&str],
) -> Tool<'c> {
    let mut tool = confined
        .tool(ansible_playbook, root, inventories)
        .arg("--syntax-check");
    for p in playbooks {
        tool = tool.arg(p);
    }
    tool
}

/// Parses `playbooks` of `checkout` with Ansible itself; a syntax error is
/// [`Error::PlaybookSyntax`] with Ansible's message.
pub(crate) fn check_syntax(
    confined: &Confined,
    ansible_playbook: &Path,
    checkout: &Checkout,
    inventories: &[PathBuf],
    playbooks: &[&str],
) -> Result<()> {
    let out = syntax_check_command(
        confined,
        ansible_playbook,
        &checkout.root,
        inventories,
        playbooks,
    )
    .output()?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let message = text
        .lines()
        .skip_while(|l| !l.starts_with("ERROR!"))
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::PlaybookSyntax {
        playbooks: playbooks.join(" "),
        root: checkout.root.clone(),
        message: if message.is_empty() {
            text.lines().rev().take(8).collect::<Vec<_>>().join("\n")
        } else {
            message
        },
    })
}

/// Why a stage ran nothing for `host`: the host patterns of its plays (from
/// `ansible-playbook --list-hosts`) and the groups the host is in (from
/// `ansible-inventory --list`). Best effort: what cannot be found is left
/// empty.
pub(crate) fn no_host_matched(
    confined: &Confined,
    ansible_playbook: &Path,
    checkout: &Checkout,
    inventories: &[PathBuf],
    stage: &Stage,
    host: &str,
) -> Error {
    let patterns = confined
        .tool(ansible_playbook, &checkout.root, inventories)
        .arg("--list-hosts")
        .arg(&stage.playbook)
        .output()
        .map(|o| play_patterns(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default();
    let groups = confined
        .tool(
            &ansible_playbook.with_file_name("ansible-inventory"),
            &checkout.root,
            inventories,
        )
        .arg("--list")
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .map(|v| inventory::groups_of(&v, host))
        .unwrap_or_default();
    Error::NoHostMatched {
        stage: stage.to_string(),
        host: host.to_string(),
        patterns,
        groups,
    }
}

/// The `pattern: [...]` lines of `ansible-playbook --list-hosts`.
pub(crate) fn play_patterns(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pattern:"))
        .map(|p| {
            p.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|x| x.trim().trim_matches('\'').trim_matches('"'))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_playbooks() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "base.yml",
            "app.yml",
            "site.yaml",
            "roles/x.yml",
            "play/web.yml",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "- hosts: all\n").unwrap();
        }
        assert_eq!(
            did_you_mean(dir.path(), "appp.yml").as_deref(),
            Some("app.yml")
        );
        assert_eq!(
            did_you_mean(dir.path(), "play/wab.yml").as_deref(),
            Some("play/web.yml")
        );
        assert_eq!(did_you_mean(dir.path(), "completely-else.yml"), None);
        assert_eq!(
            did_you_mean(dir.path(), "roles/y.yml"),
            None,
            "roles/ is not searched"
        );
    }

    #[test]
    fn syntax_check_is_this_command() {
        let env = crate::Env {
            helper: Some(crate::sandbox::Helper::at("/usr/bin/vauban")),
            ..crate::Env::from_user_dirs().unwrap()
        };
        let tools = super::super::tools::Tools::find().unwrap();
        let confined = Confined::new(&env, &tools, Path::new("/store")).unwrap();
        let cmd = syntax_check_command(
            &confined,
            Path::new("/usr/bin/ansible-playbook"),
            Path::new("/r"),
            &["/r/inventory".into()],
            &["base.yml", "app.yml"],
        );
        assert_eq!(
            cmd.args(),
            [
                "-i",
                "/r/inventory",
                "--syntax-check",
                "base.yml",
                "app.yml"
            ]
        );
    }

    #[test]
    fn list_hosts_patterns_are_read() {
        let listing = "\nplaybook: base.yml\n\n  play #1 (webservers): Base\tTAGS: []\n    pattern: ['webservers']\n    hosts (0):\n\n  play #2 (db:&prod): Db\tTAGS: []\n    pattern: ['db', '&prod']\n    hosts (0):\n";
        assert_eq!(play_patterns(listing), ["webservers", "db,&prod"]);
    }
}
