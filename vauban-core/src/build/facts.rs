//! Facts gathered once per tree: every host of a conffs starts from the
//! master's image, so what Ansible's setup module finds there is the same
//! for all of them but their name (the sandbox's host name: `hostname`,
//! `nodename`, `fqdn`, and wherever else it shows). The first stage runs on
//! the first host alone; its facts, in the build's `jsonfile` fact cache,
//! are then given to every other host with the first one's name replaced by
//! theirs, and the stage runs on them with nothing left to gather (a play's
//! implicit gathering reads the cache: `gathering = smart`).
//!
//! The cache is the controller's to write (it runs what the playbooks say,
//! `delegate_to: localhost` included): its file is opened without following
//! a link (a link there could name any file of the user), must be a regular
//! file, is read bounded, as JSON; the other hosts' files are removed and
//! made anew (`O_EXCL`: a link put there in between is not followed either).
//! Only the facts the setup module gathers (`ansible_*`, and the marks
//! saying they were gathered, [`SETUP_MARKS`]) are given: a
//! `set_fact: cacheable: true` of the first host's tasks stays its own.
//! Without `_ansible_facts_gathered`, `gathering = smart` gathers again.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What the setup module leaves in the cache beside the `ansible_*` facts:
/// `_ansible_facts_gathered` is what `gathering = smart` reads to skip a
/// host's gathering.
const SETUP_MARKS: [&str; 3] = ["_ansible_facts_gathered", "gather_subset", "module_setup"];

/// The largest fact file read (a host's facts are some tens of KiB).
const MAX_FACTS: u64 = 16 << 20;

/// Whether the build's fact cache is the one Ansible uses: the user set
/// none of the variables that would make it another.
pub(super) fn cache_in_use() -> bool {
    [
        "ANSIBLE_GATHERING",
        "ANSIBLE_CACHE_PLUGIN",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION",
        "ANSIBLE_CACHE_PLUGIN_PREFIX",
    ]
    .iter()
    .all(|v| std::env::var_os(v).is_none())
}

/// Gives `first`'s cached facts in `dir` to each of `others`, the name
/// replaced; how many were given (0 when `first` has none: its stage came
/// from the cache of stages and gathered nothing).
pub(super) fn share(dir: &Path, first: &str, others: &[String]) -> Result<usize> {
    let path = dir.join(first);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        // None, or a link (ELOOP): nothing to give, every host gathers.
        Err(_) => return Ok(0),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(0);
    }
    let mut text = String::new();
    if file.take(MAX_FACTS).read_to_string(&mut text).is_err() {
        return Ok(0);
    }
    let Ok(serde_json::Value::Object(all)) = serde_json::from_str::<serde_json::Value>(&text)
    else {
        // Not facts as the jsonfile cache writes them: every host gathers.
        return Ok(0);
    };
    let facts: serde_json::Map<String, serde_json::Value> = all
        .into_iter()
        .filter(|(k, _)| k.starts_with("ansible_") || SETUP_MARKS.contains(&k.as_str()))
        .collect();
    for other in others {
        let theirs = renamed(&serde_json::Value::Object(facts.clone()), first, other);
        let dest = dir.join(other);
        match std::fs::remove_file(&dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dest, e)),
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .map_err(|e| Error::io("create", &dest, e))?;
        out.write_all(theirs.to_string().as_bytes())
            .map_err(|e| Error::io("write", &dest, e))?;
    }
    Ok(others.len())
}

/// `facts` with every string that is `from`, or starts with `from.` (a
/// domain name), written with `to` instead.
fn renamed(facts: &serde_json::Value, from: &str, to: &str) -> serde_json::Value {
    use serde_json::Value;
    match facts {
        Value::String(s) if s == from => Value::String(to.to_owned()),
        Value::String(s) => match s.strip_prefix(from).filter(|rest| rest.starts_with('.')) {
            Some(rest) => Value::String(format!("{to}{rest}")),
            None => facts.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| renamed(v, from, to)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), renamed(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_facts_are_given_to_the_others_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let facts = serde_json::json!({
            "ansible_hostname": "web01",
            "ansible_fqdn": "web01.example.org",
            "ansible_nodename": "web01",
            "ansible_distribution": "Debian",
            "ansible_env": {"HOSTNAME": "web01", "PATH": "/usr/bin"},
            "ansible_all_ipv4_addresses": ["127.0.0.1"],
            "web010": "web010",
            "db_password": "of web01 only",
            "_ansible_facts_gathered": true,
            "gather_subset": ["all"],
            "module_setup": true,
        });
        std::fs::write(dir.path().join("web01"), facts.to_string()).unwrap();
        let given = share(dir.path(), "web01", &["web02".into(), "db1".into()]).unwrap();
        assert_eq!(given, 2);
        let web02: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("web02")).unwrap()).unwrap();
        assert_eq!(web02["ansible_hostname"], "web02");
        assert_eq!(web02["ansible_fqdn"], "web02.example.org");
        assert_eq!(web02["ansible_env"]["HOSTNAME"], "web02");
        assert_eq!(web02["ansible_distribution"], "Debian");
        assert_eq!(
            web02["_ansible_facts_gathered"], true,
            "what makes `gathering = smart` skip the host"
        );
        assert_eq!(web02["module_setup"], true);
        assert_eq!(
            web02["web010"],
            serde_json::Value::Null,
            "setup's facts only"
        );
        assert_eq!(
            web02["db_password"],
            serde_json::Value::Null,
            "a cacheable set_fact stays"
        );
        assert_eq!(
            renamed(&"web010".into(), "web01", "web02"),
            "web010",
            "another name"
        );
        assert_eq!(share(dir.path(), "nobody", &["web02".into()]).unwrap(), 0);

        // A link as the first host's file is not read; one as another's is
        // replaced, not written through.
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("auth.json");
        std::fs::write(&secret, r#"{"ansible_x": "secret"}"#).unwrap();
        std::fs::remove_file(dir.path().join("web01")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("web01")).unwrap();
        assert_eq!(share(dir.path(), "web01", &["web03".into()]).unwrap(), 0);
        std::fs::remove_file(dir.path().join("web01")).unwrap();
        std::fs::write(dir.path().join("web01"), facts.to_string()).unwrap();
        let target = outside.path().join("bashrc");
        std::fs::write(&target, "kept\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("web04")).unwrap();
        share(dir.path(), "web01", &["web04".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
        assert!(!dir.path().join("web04").is_symlink());
    }
}
