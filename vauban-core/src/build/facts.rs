//! Facts gathered once per tree: every host of a conffs starts from the
//! master's image, so what Ansible's setup module finds there is the same
//! for all of them but their name (the sandbox's host name: `hostname`,
//! `nodename`, `fqdn`, and wherever else it shows). The first stage runs on
//! the first host alone; its facts, in the build's `jsonfile` fact cache,
//! are then given to every other host with the first one's name replaced by
//! theirs, and the stage runs on them with nothing left to gather (a play's
//! implicit gathering reads the cache: `gathering = smart`).
//!
//! The cache is the controller's to write (it runs what the playbooks say):
//! its file is read bounded, as JSON, and only ever goes back to the same
//! build's controller.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

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
    let mut text = String::new();
    match std::fs::File::open(&path) {
        Ok(f) => f
            .take(MAX_FACTS)
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read", &path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let Ok(facts) = serde_json::from_str::<serde_json::Value>(&text) else {
        // Not facts as the jsonfile cache writes them: every host gathers.
        return Ok(0);
    };
    for other in others {
        let theirs = renamed(&facts, first, other);
        let dest = dir.join(other);
        std::fs::write(&dest, theirs.to_string()).map_err(|e| Error::io("write", &dest, e))?;
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
        assert_eq!(web02["web010"], "web010", "another name is left alone");
        assert_eq!(share(dir.path(), "nobody", &["web02".into()]).unwrap(), 0);
    }
}
