//! What the boot service remembers, in the history database (its own
//! connection, its own tables): each master's deployments (what its hosts
//! boot next, who moved it and when, what it replaced), each boot (a host's
//! script fetch, its token's hash, the build, then how far its files went),
//! each file fetch (host, MAC, IP, file, bytes, complete or not), the MACs
//! seen, the MACs bound to `discoverable` hosts, and the drifts hosts sent
//! (see [`super::drift`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Result, ServeError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deployments(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    master TEXT NOT NULL,
    artifact TEXT NOT NULL,
    build_id TEXT,
    source TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    previous INTEGER
);
CREATE INDEX IF NOT EXISTS deployments_by_master ON deployments(master, id);
CREATE TABLE IF NOT EXISTS boots(
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    mac TEXT NOT NULL,
    ip TEXT NOT NULL,
    master TEXT NOT NULL,
    artifact TEXT NOT NULL,
    build_id TEXT,
    deployment INTEGER NOT NULL,
    started TEXT NOT NULL,
    expires TEXT NOT NULL,
    files_done TEXT NOT NULL DEFAULT '',
    last_file TEXT,
    last_at TEXT,
    conffs_spent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS boots_by_host ON boots(host, started);
CREATE TABLE IF NOT EXISTS fetches(
    boot_id TEXT,
    host TEXT,
    mac TEXT,
    ip TEXT NOT NULL,
    master TEXT,
    build_id TEXT,
    file TEXT NOT NULL,
    digest TEXT NOT NULL,
    at TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    complete INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fetches_by_boot ON fetches(boot_id);
CREATE TABLE IF NOT EXISTS drifts(
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    master TEXT NOT NULL,
    artifact TEXT NOT NULL,
    build_id TEXT,
    received TEXT NOT NULL,
    ip TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    entries INTEGER NOT NULL,
    signer TEXT,
    signed_at INTEGER
);
CREATE INDEX IF NOT EXISTS drifts_by_host ON drifts(host, received);
CREATE TABLE IF NOT EXISTS macs(
    mac TEXT PRIMARY KEY,
    host TEXT,
    bound TEXT,
    ip TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    asked INTEGER NOT NULL
);
";

/// The files of a complete boot, in the order a host fetches them.
pub const BOOT_SEQUENCE: [&str; 4] = ["kernel", "initramfs", "rootfs", "conffs"];

/// One deployment of a master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deployment {
    /// Its number (increasing over all masters).
    pub id: i64,
    /// The master.
    pub master: String,
    /// The boot artifact's manifest digest.
    pub artifact: String,
    /// The build that made it, when `vauban serve` built it.
    pub build_id: Option<String>,
    /// What was asked (`build ID`, `tag TAG`, `rollback of #N`, `auto after build ID`).
    pub source: String,
    /// Who asked.
    pub by: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The deployment it replaced.
    pub previous: Option<i64>,
    /// What the deployment answer warns about (not kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One boot of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Boot {
    /// Its id.
    pub id: String,
    /// The host.
    pub host: String,
    /// The MAC that asked for the script.
    pub mac: String,
    /// The address it asked from.
    pub ip: String,
    /// The master it booted.
    pub master: String,
    /// The boot artifact it was given.
    pub artifact: String,
    /// The build of that artifact, when known.
    pub build_id: Option<String>,
    /// The deployment it was given.
    pub deployment: i64,
    /// When it asked for its script.
    pub started: String,
    /// Its files fetched whole so far (`kernel`, `initramfs`, `rootfs`, `conffs`).
    pub files_done: Vec<String>,
    /// The last file it fetched, and when.
    pub last_file: Option<String>,
    /// When it last fetched anything.
    pub last_at: Option<String>,
    /// `complete` (every file fetched whole), `in progress` (a file
    /// fetched in the last 10 minutes) or `stalled after X`.
    pub state: String,
}

/// A MAC the service saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SeenMac {
    /// The MAC.
    pub mac: String,
    /// The host it is bound to by discovery, if any.
    pub host: Option<String>,
    /// When it was bound.
    pub bound: Option<String>,
    /// The last address it asked from.
    pub ip: String,
    /// First and last time it asked.
    pub first_seen: String,
    /// Last time it asked.
    pub last_seen: String,
    /// How many times it asked.
    pub asked: i64,
}

/// A boot token's boot, as the file routes check it.
#[derive(Debug, Clone)]
pub struct TokenBoot {
    /// The boot.
    pub boot: Boot,
    /// When the token expires (RFC 3339).
    pub expires: String,
    /// Whether the host's conffs was already handed over whole.
    pub conffs_spent: bool,
}

/// One file fetch to record.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// The boot it belongs to (none for an operator's fetch).
    pub boot_id: Option<String>,
    /// The host, MAC, master and build of that boot.
    pub host: Option<String>,
    /// The boot's MAC.
    pub mac: Option<String>,
    /// Who fetched.
    pub ip: String,
    /// The boot's master.
    pub master: Option<String>,
    /// The boot's build.
    pub build_id: Option<String>,
    /// `kernel`, `initramfs`, `rootfs`, `conffs` or `other`.
    pub file: String,
    /// The blob.
    pub digest: String,
    /// Bytes sent.
    pub bytes: u64,
    /// Whether the file's last byte was sent.
    pub complete: bool,
}

/// The boot service's tables.
pub struct Records {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Records {
    /// Opens (creating) the tables in the database at `path`.
    pub fn open(path: &Path) -> Result<Records> {
        let db = |e| ServeError::Db {
            path: path.to_owned(),
            source: e,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // Records made before drifts were signed get the columns.
        crate::db::add_missing_columns(
            &conn,
            "drifts",
            &[("signer", "TEXT"), ("signed_at", "INTEGER")],
        )
        .map_err(db)?;
        Ok(Records {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` on the connection.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|e| ServeError::Db {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Records a deployment; returns it.
    pub fn deploy(
        &self,
        master: &str,
        artifact: &str,
        build_id: Option<&str>,
        source: &str,
        by: &str,
        previous: Option<i64>,
    ) -> Result<Deployment> {
        let at = crate::runner::now();
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO deployments(master, artifact, build_id, source, by, at, previous)
                 VALUES(?1,?2,?3,?4,?5,?6,?7)",
                params![master, artifact, build_id, source, by, at, previous],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(Deployment {
            id,
            master: master.to_owned(),
            artifact: artifact.to_owned(),
            build_id: build_id.map(str::to_owned),
            source: source.to_owned(),
            by: by.to_owned(),
            at,
            previous,
            warnings: Vec::new(),
        })
    }

    /// The deployments of `master`, newest first (at most `limit`).
    pub fn deployments(&self, master: &str, limit: usize) -> Result<Vec<Deployment>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT id, master, artifact, build_id, source, by, at, previous FROM deployments
                 WHERE master=?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = s.query_map(params![master, limit as i64], deployment_row)?;
            rows.collect()
        })
    }

    /// The deployment `id`.
    pub fn deployment(&self, id: i64) -> Result<Option<Deployment>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, master, artifact, build_id, source, by, at, previous FROM deployments
                 WHERE id=?1",
                params![id],
                deployment_row,
            )
            .optional()
        })
    }

    /// The current deployment of each master that has one.
    pub fn current_deployments(&self) -> Result<Vec<Deployment>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT id, master, artifact, build_id, source, by, at, previous FROM deployments
                 WHERE id IN (SELECT MAX(id) FROM deployments GROUP BY master) ORDER BY master",
            )?;
            let rows = s.query_map([], deployment_row)?;
            rows.collect()
        })
    }

    /// Every artifact a deployment of `master` named, newest first.
    pub fn deployed_artifacts(&self, master: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT artifact FROM deployments WHERE master=?1 GROUP BY artifact ORDER BY MAX(id) DESC",
            )?;
            let rows = s.query_map(params![master], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Starts a boot of `boot.host` with the token whose hash is `token_hash`.
    pub fn start_boot(&self, boot: &Boot, token_hash: &str, expires: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO boots(id, token_hash, host, mac, ip, master, artifact, build_id,
                 deployment, started, expires) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![
                    boot.id,
                    token_hash,
                    boot.host,
                    boot.mac,
                    boot.ip,
                    boot.master,
                    boot.artifact,
                    boot.build_id,
                    boot.deployment,
                    boot.started,
                    expires
                ],
            )?;
            let old = "SELECT id FROM boots WHERE host=?1 AND id NOT IN
                 (SELECT id FROM boots WHERE host=?1 ORDER BY started DESC, id DESC LIMIT ?2)";
            c.execute(
                &format!("DELETE FROM fetches WHERE boot_id IN ({old})"),
                params![boot.host, BOOTS_KEPT as i64],
            )?;
            c.execute(
                &format!("DELETE FROM boots WHERE id IN ({old})"),
                params![boot.host, BOOTS_KEPT as i64],
            )?;
            Ok(())
        })
    }

    /// The boot of the token whose hash is `token_hash`.
    pub fn boot_of_token(&self, token_hash: &str) -> Result<Option<TokenBoot>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {BOOT_COLUMNS}, expires, conffs_spent FROM boots WHERE token_hash=?1"
                ),
                params![token_hash],
                |r| {
                    Ok(TokenBoot {
                        boot: boot_row(r)?,
                        expires: r.get(12)?,
                        conffs_spent: r.get::<_, i64>(13)? != 0,
                    })
                },
            )
            .optional()
        })
    }

    /// Gives the conffs of boot `id` back after a fetch that ended
    /// incomplete (a retry may take it).
    pub fn release_conffs(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE boots SET conffs_spent=0 WHERE id=?1", params![id])
                .map(drop)
        })
    }

    /// Marks the conffs of boot `id` handed over, unless it already was:
    /// whether this call did (one fetch of a conffs wins, whatever races).
    pub fn claim_conffs(&self, id: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE boots SET conffs_spent=1 WHERE id=?1 AND conffs_spent=0",
                params![id],
            )? == 1)
        })
    }

    /// Records a fetch, and its boot's progress.
    pub fn fetched(&self, f: &Fetch) -> Result<()> {
        let at = crate::runner::now();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO fetches(boot_id, host, mac, ip, master, build_id, file, digest, at,
                 bytes, complete) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![
                    f.boot_id,
                    f.host,
                    f.mac,
                    f.ip,
                    f.master,
                    f.build_id,
                    f.file,
                    f.digest,
                    at,
                    f.bytes as i64,
                    f.complete
                ],
            )?;
            if let Some(id) = &f.boot_id {
                tx.execute(
                    "UPDATE boots SET last_file=?2, last_at=?3 WHERE id=?1",
                    params![id, f.file, at],
                )?;
                if f.complete {
                    let done: String = tx.query_row(
                        "SELECT files_done FROM boots WHERE id=?1",
                        params![id],
                        |r| r.get(0),
                    )?;
                    let mut list: Vec<&str> = done.split(',').filter(|s| !s.is_empty()).collect();
                    if !list.contains(&f.file.as_str()) {
                        list.push(&f.file);
                    }
                    tx.execute(
                        "UPDATE boots SET files_done=?2 WHERE id=?1",
                        params![id, list.join(",")],
                    )?;
                }
            }
            tx.commit()
        })
    }

    /// The boots of `host` (every host when `None`), newest first.
    pub fn boots(&self, host: Option<&str>, limit: usize) -> Result<Vec<Boot>> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {BOOT_COLUMNS} FROM boots WHERE (?1 IS NULL OR host=?1)
                 ORDER BY started DESC, id DESC LIMIT ?2"
            ))?;
            let rows = s.query_map(params![host, limit as i64], boot_row)?;
            rows.collect()
        })
    }

    /// The last boot of each host (`complete`: the last that fetched its
    /// four files whole: a script asked for proves nothing of a boot).
    pub fn last_boots(&self, complete: bool) -> Result<Vec<Boot>> {
        let only = if complete { COMPLETE } else { "1" };
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {BOOT_COLUMNS} FROM boots b WHERE id = (SELECT id FROM boots
                 WHERE host=b.host AND {only} ORDER BY started DESC, id DESC LIMIT 1)
                 ORDER BY host"
            ))?;
            let rows = s.query_map([], boot_row)?;
            rows.collect()
        })
    }

    /// The fetches of boot `id`, in order.
    pub fn fetches(&self, id: &str) -> Result<Vec<serde_json::Value>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT file, digest, ip, at, bytes, complete FROM fetches WHERE boot_id=?1 ORDER BY rowid",
            )?;
            let rows = s.query_map(params![id], |r| {
                Ok(serde_json::json!({
                    "file": r.get::<_, String>(0)?,
                    "digest": r.get::<_, String>(1)?,
                    "ip": r.get::<_, String>(2)?,
                    "at": r.get::<_, String>(3)?,
                    "bytes": r.get::<_, i64>(4)?,
                    "complete": r.get::<_, bool>(5)?,
                }))
            })?;
            rows.collect()
        })
    }

    /// Records that `mac` asked from `ip`.
    pub fn saw_mac(&self, mac: &str, ip: &str) -> Result<()> {
        let now = crate::runner::now();
        self.with(|c| {
            c.execute(
                "INSERT INTO macs(mac, ip, first_seen, last_seen, asked) VALUES(?1,?2,?3,?3,1)
                 ON CONFLICT(mac) DO UPDATE SET ip=?2, last_seen=?3, asked=asked+1",
                params![mac, ip, now],
            )?;
            c.execute(
                "DELETE FROM macs WHERE host IS NULL AND mac NOT IN
                 (SELECT mac FROM macs WHERE host IS NULL ORDER BY last_seen DESC LIMIT ?1)",
                params![UNKNOWN_MACS_KEPT as i64],
            )?;
            Ok(())
        })
    }

    /// Binds `mac` to `host` unless the host already has a MAC bound or
    /// the MAC a host: whether it did.
    pub fn bind(&self, mac: &str, host: &str) -> Result<bool> {
        let now = crate::runner::now();
        self.with(|c| {
            let tx = c.transaction()?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM macs WHERE host=?1 OR (mac=?2 AND host IS NOT NULL))",
                params![host, mac],
                |r| r.get(0),
            )?;
            if taken {
                return Ok(false);
            }
            tx.execute(
                "UPDATE macs SET host=?2, bound=?3 WHERE mac=?1",
                params![mac, host, now],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// The MACs seen: bound to a host by discovery, or unknown.
    pub fn macs(&self) -> Result<Vec<SeenMac>> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT mac, host, bound, ip, first_seen, last_seen, asked FROM macs ORDER BY mac",
            )?;
            let rows = s.query_map([], |r| {
                Ok(SeenMac {
                    mac: r.get(0)?,
                    host: r.get(1)?,
                    bound: r.get(2)?,
                    ip: r.get(3)?,
                    first_seen: r.get(4)?,
                    last_seen: r.get(5)?,
                    asked: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// The SQL test of a boot whose four files came whole.
const COMPLETE: &str = "instr(files_done,'kernel')>0 AND instr(files_done,'initramfs')>0 \
     AND instr(files_done,'rootfs')>0 AND instr(files_done,'conffs')>0";

/// Unknown MACs kept (the most recent): anyone may ask with any MAC.
const UNKNOWN_MACS_KEPT: usize = 1000;
/// Boots kept per host (the most recent): anyone may ask for a known
/// host's script.
const BOOTS_KEPT: usize = 200;

const BOOT_COLUMNS: &str =
    "id, host, mac, ip, master, artifact, build_id, deployment, started, files_done, last_file, last_at";

fn boot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Boot> {
    let files_done: String = r.get(9)?;
    let files_done: Vec<String> = files_done
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let last_file: Option<String> = r.get(10)?;
    let last_at: Option<String> = r.get(11)?;
    let started: String = r.get(8)?;
    let state = boot_state(
        &files_done,
        last_file.as_deref(),
        last_at.as_deref().unwrap_or(&started),
    );
    Ok(Boot {
        id: r.get(0)?,
        host: r.get(1)?,
        mac: r.get(2)?,
        ip: r.get(3)?,
        master: r.get(4)?,
        artifact: r.get(5)?,
        build_id: r.get(6)?,
        deployment: r.get(7)?,
        started,
        files_done,
        last_file,
        last_at,
        state,
    })
}

/// `complete`, `in progress` or `stalled after X` (nothing for 10 minutes).
fn boot_state(done: &[String], last_file: Option<&str>, last_at: &str) -> String {
    if BOOT_SEQUENCE.iter().all(|f| done.iter().any(|d| d == f)) {
        return "complete".into();
    }
    let recent = chrono::DateTime::parse_from_rfc3339(last_at)
        .map(|t| chrono::Utc::now() - t.to_utc() < chrono::Duration::minutes(10))
        .unwrap_or(false);
    if recent {
        return "in progress".into();
    }
    let after = BOOT_SEQUENCE
        .iter()
        .rev()
        .find(|f| done.iter().any(|d| d == *f))
        .copied()
        .or(last_file.map(|_| "a partial download"))
        .unwrap_or("the script");
    format!("stalled after {after}")
}

fn deployment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: r.get(0)?,
        master: r.get(1)?,
        artifact: r.get(2)?,
        build_id: r.get(3)?,
        source: r.get(4)?,
        by: r.get(5)?,
        at: r.get(6)?,
        previous: r.get(7)?,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_is_complete_when_its_four_files_came_whole() {
        let all: Vec<String> = BOOT_SEQUENCE.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            boot_state(&all, Some("conffs"), "2000-01-01T00:00:00Z"),
            "complete"
        );
        let two = all[..2].to_vec();
        assert_eq!(
            boot_state(&two, Some("rootfs"), "2000-01-01T00:00:00Z"),
            "stalled after initramfs"
        );
        assert_eq!(
            boot_state(&[], None, "2000-01-01T00:00:00Z"),
            "stalled after the script"
        );
        assert_eq!(
            boot_state(&two, Some("rootfs"), &crate::runner::now()),
            "in progress"
        );
    }

    #[test]
    fn a_conffs_is_handed_over_once_and_a_mac_bound_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = Records::open(&dir.path().join("h.db")).unwrap();
        let boot = Boot {
            id: "b1".into(),
            host: "web01".into(),
            mac: "52:54:00:00:00:01".into(),
            ip: "127.0.0.1".into(),
            master: "m".into(),
            artifact: "sha256:aa".into(),
            build_id: None,
            deployment: 1,
            started: crate::runner::now(),
            files_done: vec![],
            last_file: None,
            last_at: None,
            state: String::new(),
        };
        r.start_boot(&boot, "hash", "2999-01-01T00:00:00Z").unwrap();
        assert!(r.claim_conffs("b1").unwrap());
        assert!(!r.claim_conffs("b1").unwrap());
        r.release_conffs("b1").unwrap();
        assert!(r.claim_conffs("b1").unwrap());
        assert!(r.boot_of_token("hash").unwrap().unwrap().conffs_spent);
        assert!(r.boot_of_token("other").unwrap().is_none());

        r.saw_mac("52:54:00:00:00:09", "127.0.0.1").unwrap();
        r.saw_mac("52:54:00:00:00:0a", "127.0.0.1").unwrap();
        assert!(r.bind("52:54:00:00:00:09", "new01").unwrap());
        assert!(
            !r.bind("52:54:00:00:00:0a", "new01").unwrap(),
            "a host gets one MAC"
        );
        assert!(
            !r.bind("52:54:00:00:00:09", "new02").unwrap(),
            "a MAC one host"
        );
        let macs = r.macs().unwrap();
        assert_eq!(macs[0].host.as_deref(), Some("new01"));
        assert_eq!(macs[1].host, None);
    }

    /// Records from before drifts were signed get the columns and keep
    /// their drifts (unsigned).
    #[test]
    fn records_from_before_signed_drifts_get_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE drifts(id TEXT PRIMARY KEY, host TEXT NOT NULL, \
                 boot_id TEXT NOT NULL, master TEXT NOT NULL, artifact TEXT NOT NULL, \
                 build_id TEXT, received TEXT NOT NULL, ip TEXT NOT NULL, \
                 bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, entries INTEGER NOT NULL);
                 INSERT INTO drifts VALUES('01OLD', 'web01', 'b1', 'm', 'sha256:a', NULL, \
                 '2026-01-01T00:00:00Z', '127.0.0.1', 10, 'sha256:b', 1);",
            )
            .unwrap();
        }
        let records = Records::open(&path).unwrap();
        let old = records.drift("web01", "01OLD").unwrap().unwrap();
        assert_eq!((old.signer, old.signed_at), (None, None));
        // Opened again: nothing added twice.
        drop(records);
        Records::open(&path).unwrap();
    }
}
