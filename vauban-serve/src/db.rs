//! The history: an embedded SQLite database (`STATE/history.db`, WAL) of
//! builds, their steps, and the scheduler's last slot per master. Each
//! build's event stream and log are files of its own under
//! `STATE/builds/ID/` (see [`crate::worker`]); the database says where a
//! build is and what it did, so a restarted server knows both.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Result, ServeError};
use crate::model::{Build, BuildRequest, Status, Step, Trigger};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS builds(
    id TEXT PRIMARY KEY,
    master TEXT NOT NULL,
    stage TEXT NOT NULL,
    build_parents INTEGER NOT NULL,
    conffs TEXT,
    branch TEXT,
    no_cache INTEGER NOT NULL,
    rebuild_stale INTEGER NOT NULL DEFAULT 0,
    deploy INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    error TEXT,
    failed_step TEXT,
    failed_host TEXT,
    worker_pid INTEGER,
    worker_start TEXT
);
CREATE INDEX IF NOT EXISTS builds_by_master ON builds(master, created);
CREATE INDEX IF NOT EXISTS builds_by_status ON builds(status);
CREATE TABLE IF NOT EXISTS steps(
    build_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    image TEXT,
    seconds REAL,
    PRIMARY KEY(build_id, seq)
);
CREATE TABLE IF NOT EXISTS schedules(
    master TEXT PRIMARY KEY,
    last_slot TEXT NOT NULL
);
";

/// A build the history marks running: its worker's pid and the kernel's
/// start time of that process (so a reused pid is not taken for it).
#[derive(Debug, Clone)]
pub struct Marked {
    /// The build's id.
    pub id: String,
    /// The worker's pid, once started.
    pub pid: Option<u32>,
    /// The worker's start time (`/proc/PID/stat` field 22).
    pub start: Option<String>,
}

/// The history database.
pub struct History {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// What `list` filters on.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this master's builds.
    pub master: Option<String>,
    /// Only builds in this state.
    pub status: Option<Status>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// Adds to `table` each of `columns` (name, declaration) it lacks: a
/// database made by an older vauban gets the columns added since.
pub(crate) fn add_missing_columns(
    conn: &Connection,
    table: &str,
    columns: &[(&str, &str)],
) -> rusqlite::Result<()> {
    for (column, declaration) in columns {
        let has_column = conn
            .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name=?2")
            .and_then(|mut s| s.exists([table, column]))?;
        if !has_column {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    Ok(())
}

impl History {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<History> {
        let db = |e| ServeError::Db {
            path: path.to_owned(),
            source: e,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // A history made before a column existed gets it.
        add_missing_columns(
            &conn,
            "builds",
            &[
                ("rebuild_stale", "INTEGER NOT NULL DEFAULT 0"),
                ("deploy", "INTEGER NOT NULL DEFAULT 0"),
            ],
        )
        .map_err(db)?;
        Ok(History {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| ServeError::Db {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Records a new queued build.
    pub fn insert(
        &self,
        id: &str,
        req: &BuildRequest,
        by: &str,
        trigger: Trigger,
        now: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO builds(id, master, stage, build_parents, conffs, branch, no_cache,
                 requested_by, trigger, status, created, rebuild_stale, deploy)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,'queued',?10,?11,?12)",
                params![
                    id,
                    req.name,
                    req.stage,
                    req.build_parents,
                    req.conffs,
                    req.branch,
                    req.no_cache,
                    by,
                    trigger.as_str(),
                    now,
                    req.rebuild_stale,
                    req.deploy
                ],
            )
            .map(drop)
        })
    }

    /// A queued build asking for exactly `req`, if any (to coalesce with).
    pub fn queued_like(&self, req: &BuildRequest) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT id FROM builds WHERE status='queued' AND master=?1 AND stage=?2
                 AND build_parents=?3 AND conffs IS ?4 AND branch IS ?5 AND no_cache=?6
                 AND rebuild_stale=?7 AND deploy=?8
                 ORDER BY created LIMIT 1",
                params![
                    req.name,
                    req.stage,
                    req.build_parents,
                    req.conffs,
                    req.branch,
                    req.no_cache,
                    req.rebuild_stale,
                    req.deploy
                ],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Marks a queued build running; `false` when it is no longer queued
    /// (cancelled meanwhile).
    pub fn claim(&self, id: &str, now: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE builds SET status='running', started=?2 WHERE id=?1 AND status='queued'",
                params![id, now],
            )
            .map(|n| n == 1)
        })
    }

    /// Records the worker of a running build: its `pid` and its start time
    /// as `/proc/PID/stat` says (to tell it from a later process of that pid).
    pub fn set_worker(&self, id: &str, pid: u32, start: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE builds SET worker_pid=?2, worker_start=?3 WHERE id=?1",
                params![id, pid, start],
            )
            .map(drop)
        })
    }

    /// Forgets the scheduler's slots of masters no longer scheduled.
    pub fn keep_slots(&self, masters: &[&str]) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let known: Vec<String> = {
                let mut st = tx.prepare("SELECT master FROM schedules")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for m in known.iter().filter(|m| !masters.contains(&m.as_str())) {
                tx.execute("DELETE FROM schedules WHERE master=?1", params![m])?;
            }
            tx.commit()
        })
    }

    /// Ends a build.
    pub fn finish(
        &self,
        id: &str,
        status: Status,
        now: &str,
        error: Option<&str>,
        failed_step: Option<&str>,
        failed_host: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE builds SET status=?2, finished=?3, error=?4, failed_step=?5, failed_host=?6,
                 worker_pid=NULL WHERE id=?1",
                params![id, status.as_str(), now, error, failed_step, failed_host],
            )
            .map(drop)
        })
    }

    /// Replaces the steps of a build.
    pub fn set_steps(&self, id: &str, steps: &[Step]) -> Result<()> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM steps WHERE build_id=?1", params![id])?;
            for (seq, step) in steps.iter().enumerate() {
                tx.execute(
                    "INSERT INTO steps(build_id, seq, step, state, image, seconds) VALUES(?1,?2,?3,?4,?5,?6)",
                    params![id, seq as i64, step.step, step.state, step.image, step.seconds],
                )?;
            }
            tx.commit()
        })
    }

    /// A build, with its steps.
    pub fn get(&self, id: &str) -> Result<Option<Build>> {
        let build = self.with(|c| {
            c.query_row(&format!("{SELECT} WHERE id=?1"), params![id], row_to_build)
                .optional()
        })?;
        let Some(mut build) = build else {
            return Ok(None);
        };
        build.steps = self.steps(id)?;
        Ok(Some(build))
    }

    fn steps(&self, id: &str) -> Result<Vec<Step>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT step, state, image, seconds FROM steps WHERE build_id=?1 ORDER BY seq",
            )?;
            let rows = st.query_map(params![id], |r| {
                Ok(Step {
                    step: r.get(0)?,
                    state: r.get(1)?,
                    image: r.get(2)?,
                    seconds: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Builds, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<Build>> {
        let limit = if f.limit == 0 { 50 } else { f.limit.min(1000) } as i64;
        let mut builds = self.with(|c| {
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE (?1 IS NULL OR master=?1) AND (?2 IS NULL OR status=?2)
                 ORDER BY created DESC, id DESC LIMIT ?3"
            ))?;
            let rows = st.query_map(
                params![f.master, f.status.map(Status::as_str), limit],
                row_to_build,
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        for b in &mut builds {
            b.steps = self.steps(&b.id)?;
        }
        Ok(builds)
    }

    /// The queued builds, oldest first.
    pub fn queued(&self) -> Result<Vec<Build>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE status='queued' ORDER BY created, id"
            ))?;
            let rows = st.query_map([], row_to_build)?;
            rows.collect()
        })
    }

    /// The builds marked running, with their worker's pid and start time.
    pub fn running(&self) -> Result<Vec<Marked>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, worker_pid, worker_start FROM builds WHERE status='running'",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Marked {
                    id: r.get(0)?,
                    pid: r.get(1)?,
                    start: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The status of the last finished build of `master`, if any.
    pub fn last_done(&self, master: &str) -> Result<Option<(String, Status)>> {
        self.with(|c| {
            c.query_row(
                "SELECT id, status FROM builds WHERE master=?1 AND finished IS NOT NULL
                 ORDER BY finished DESC LIMIT 1",
                params![master],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
        })
        .map(|o| o.and_then(|(id, s)| Status::parse(&s).map(|s| (id, s))))
    }

    /// The status of the last finished build of `master` before `id`.
    pub fn previous_done(&self, master: &str, id: &str) -> Result<Option<Status>> {
        self.with(|c| {
            c.query_row(
                "SELECT status FROM builds WHERE master=?1 AND finished IS NOT NULL AND id<>?2
                 AND status IN ('succeeded','failed') ORDER BY finished DESC LIMIT 1",
                params![master, id],
                |r| r.get::<_, String>(0),
            )
            .optional()
        })
        .map(|o| o.and_then(|s| Status::parse(&s)))
    }

    /// Counts by status, for the metrics.
    pub fn counts(&self) -> Result<Vec<(String, i64, f64)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT status, COUNT(*), COALESCE(SUM(julianday(finished)-julianday(started)),0)*86400
                 FROM builds GROUP BY status",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Step outcomes (`built`, `cached`...) and how many, for the metrics.
    pub fn step_outcomes(&self) -> Result<Vec<(String, i64)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM steps GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// The scheduler's last slot of `master` (RFC 3339).
    pub fn last_slot(&self, master: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT last_slot FROM schedules WHERE master=?1",
                params![master],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records the scheduler's last slot of `master`.
    pub fn set_last_slot(&self, master: &str, slot: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO schedules(master, last_slot) VALUES(?1,?2)
                 ON CONFLICT(master) DO UPDATE SET last_slot=?2",
                params![master, slot],
            )
            .map(drop)
        })
    }

    /// The ids of the builds finished before `before` (RFC 3339), to prune.
    pub fn finished_before(&self, before: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT id FROM builds WHERE finished IS NOT NULL AND finished < ?1")?;
            let rows = st.query_map(params![before], |r| r.get(0))?;
            rows.collect()
        })
    }
}

const SELECT: &str =
    "SELECT id, master, stage, build_parents, conffs, branch, no_cache, requested_by,
    trigger, status, created, started, finished, error, failed_step, failed_host, rebuild_stale,
    deploy FROM builds";

fn row_to_build(r: &rusqlite::Row<'_>) -> rusqlite::Result<Build> {
    let started: Option<String> = r.get(11)?;
    let finished: Option<String> = r.get(12)?;
    let seconds = started.as_deref().and_then(|s| {
        let s = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        let end = match finished.as_deref() {
            Some(f) => chrono::DateTime::parse_from_rfc3339(f).ok()?.to_utc(),
            None => chrono::Utc::now(),
        };
        Some((end - s.to_utc()).num_milliseconds() as f64 / 1000.0)
    });
    let status: String = r.get(9)?;
    Ok(Build {
        id: r.get(0)?,
        request: BuildRequest {
            name: r.get(1)?,
            stage: r.get(2)?,
            build_parents: r.get(3)?,
            conffs: r.get(4)?,
            branch: r.get(5)?,
            no_cache: r.get(6)?,
            rebuild_stale: r.get(16)?,
            deploy: r.get(17)?,
        },
        requested_by: r.get(7)?,
        trigger: Trigger::parse(&r.get::<_, String>(8)?),
        status: Status::parse(&status).unwrap_or(Status::Failed),
        created: r.get(10)?,
        started,
        finished,
        seconds,
        error: r.get(13)?,
        failed_step: r.get(14)?,
        failed_host: r.get(15)?,
        steps: Vec::new(),
        tail: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> BuildRequest {
        BuildRequest {
            name: name.into(),
            stage: "all".into(),
            build_parents: 0,
            conffs: None,
            branch: None,
            no_cache: false,
            rebuild_stale: false,
            deploy: false,
        }
    }

    #[test]
    fn a_history_from_before_rebuild_stale_gets_the_column_and_keeps_its_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&SCHEMA.replace("    rebuild_stale INTEGER NOT NULL DEFAULT 0,\n", ""))
                .unwrap();
            c.execute(
                "INSERT INTO builds(id, master, stage, build_parents, no_cache, requested_by,
                 trigger, status, created) VALUES('01OLD','m','all',0,0,'alice','api','succeeded',
                 '2026-01-01T00:00:00Z')",
                [],
            )
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        assert!(!h.get("01OLD").unwrap().unwrap().request.rebuild_stale);
        let mut stale = req("m");
        stale.rebuild_stale = true;
        h.insert("01NEW", &stale, "bob", Trigger::Api, "2026-01-01T00:00:01Z")
            .unwrap();
        assert!(h.get("01NEW").unwrap().unwrap().request.rebuild_stale);
        // Not coalesced with an equal request that does not rebuild.
        assert_eq!(h.queued_like(&req("m")).unwrap(), None);
        assert_eq!(h.queued_like(&stale).unwrap().as_deref(), Some("01NEW"));
    }

    #[test]
    fn builds_live_through_their_states_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let h = History::open(&path).unwrap();
            h.insert(
                "01A",
                &req("m"),
                "alice",
                Trigger::Api,
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
            h.insert(
                "01B",
                &req("m"),
                "bob",
                Trigger::Schedule,
                "2026-01-01T00:00:01Z",
            )
            .unwrap();
            assert_eq!(h.queued_like(&req("m")).unwrap().as_deref(), Some("01A"));
            assert_eq!(h.queued_like(&req("other")).unwrap(), None);
            assert!(h.claim("01A", "2026-01-01T00:00:02Z").unwrap());
            assert!(!h.claim("01A", "2026-01-01T00:00:02Z").unwrap());
            h.set_worker("01A", 42, "123").unwrap();
            let step = |state: &str| Step {
                step: "rootfs m: a.yml".into(),
                state: state.into(),
                image: None,
                seconds: None,
            };
            h.set_steps("01A", &[step("running")]).unwrap();
            h.set_steps("01A", &[step("cached")]).unwrap();
            h.finish(
                "01A",
                Status::Failed,
                "2026-01-01T00:01:00Z",
                Some("boom"),
                Some("conffs m"),
                Some("web01"),
            )
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        let b = h.get("01A").unwrap().unwrap();
        assert_eq!(b.status, Status::Failed);
        assert_eq!(b.failed_host.as_deref(), Some("web01"));
        assert_eq!(b.steps.len(), 1);
        assert_eq!(b.steps[0].state, "cached");
        assert_eq!(b.seconds, Some(58.0));
        let newest = h.list(&Filter::default()).unwrap();
        assert_eq!(
            newest.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["01B", "01A"]
        );
        let failed = h
            .list(&Filter {
                status: Some(Status::Failed),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(h.running().unwrap().len(), 0);
        assert_eq!(
            h.last_done("m").unwrap().map(|(_, s)| s),
            Some(Status::Failed)
        );
        h.set_last_slot("m", "2026-01-01T00:00:00Z").unwrap();
        h.set_last_slot("m", "2026-01-01T00:01:00Z").unwrap();
        assert_eq!(
            h.last_slot("m").unwrap().as_deref(),
            Some("2026-01-01T00:01:00Z")
        );
        h.keep_slots(&["other"]).unwrap();
        assert_eq!(h.last_slot("m").unwrap(), None);
    }
}
