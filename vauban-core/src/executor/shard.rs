//! A conffs's hosts split into shards, one task each, and the command line
//! that names them all (`--conffs-shards a,b;c,d`): every task of a job runs
//! the same command and takes its own shard by its index.

use crate::error::{Error, Result};

/// The separator of shards in `--conffs-shards`.
pub const SHARD_SEPARATOR: char = ';';

/// The shard size when none is asked: hosts spread over `jobs` tasks, at
/// least 4 hosts a task (a task pays for its pull and its sandbox start-up),
/// at most 50 (a task's wall time stays a fraction of the build's).
pub fn default_size(hosts: usize, jobs: usize) -> usize {
    hosts.div_ceil(jobs.max(1)).clamp(4, 50)
}

/// `hosts` in order, cut into shards of at most `size` hosts, as even as
/// they can be (20 hosts by 8: 7, 7, 6, not 8, 8, 4).
pub fn split(hosts: &[String], size: usize) -> Vec<Vec<String>> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let count = hosts.len().div_ceil(size.max(1));
    let (base, extra) = (hosts.len() / count, hosts.len() % count);
    let mut shards = Vec::with_capacity(count);
    let mut rest = hosts;
    for i in 0..count {
        let n = base + usize::from(i < extra);
        let (shard, tail) = rest.split_at(n);
        shards.push(shard.to_vec());
        rest = tail;
    }
    shards
}

/// `--conffs-shards`'s value: hosts joined by `,`, shards by `;`.
pub fn encode(shards: &[Vec<String>]) -> String {
    shards
        .iter()
        .map(|s| s.join(","))
        .collect::<Vec<_>>()
        .join(&SHARD_SEPARATOR.to_string())
}

/// Shard `index` of an encoded list, as a `--conffs` pattern (`a,b`).
pub fn pick(encoded: &str, index: usize) -> Result<String> {
    let shards: Vec<&str> = encoded.split(SHARD_SEPARATOR).collect();
    let shard = shards.get(index).ok_or_else(|| Error::InvalidArgument {
        argument: "--conffs-shards".into(),
        reason: format!(
            "this task's index is {index}, but {} shard(s) are listed",
            shards.len()
        ),
    })?;
    if shard.is_empty() || shard.split(',').any(|h| !crate::export::is_plain_name(h)) {
        return Err(Error::InvalidArgument {
            argument: "--conffs-shards".into(),
            reason: format!("shard {index} is not a list of host names: {shard:?}"),
        });
    }
    Ok((*shard).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("web{i:02}")).collect()
    }

    #[test]
    fn shards_are_as_even_as_they_can_be() {
        let sizes = |n, size| {
            split(&hosts(n), size)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(20, 8), [7, 7, 6]);
        assert_eq!(sizes(6, 2), [2, 2, 2]);
        assert_eq!(sizes(1, 10), [1]);
        assert_eq!(sizes(0, 10), Vec::<usize>::new());
        let all: Vec<String> = split(&hosts(20), 8).concat();
        assert_eq!(all, hosts(20), "every host once, in order");
    }

    #[test]
    fn the_default_size_spreads_hosts_over_the_jobs() {
        assert_eq!(default_size(6, 2), 4);
        assert_eq!(default_size(60, 4), 15);
        assert_eq!(default_size(2000, 8), 50);
    }

    #[test]
    fn a_task_picks_its_own_shard() {
        let encoded = encode(&split(&hosts(6), 2));
        assert_eq!(encoded, "web01,web02;web03,web04;web05,web06");
        assert_eq!(pick(&encoded, 1).unwrap(), "web03,web04");
        assert!(pick(&encoded, 3)
            .unwrap_err()
            .to_string()
            .contains("3 shard(s)"));
        assert!(pick("web01,!web02", 0).is_err(), "a pattern is no shard");
        assert!(pick("", 0).is_err());
    }
}
