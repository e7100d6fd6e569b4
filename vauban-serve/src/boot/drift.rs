//! Drifts: what a live host changed since it booted, as it sends it
//! (`vauban-drift` in images of a master with `drift_report:`): its
//! overlay's upper dir as one OCI layer, `POST /hosts/{name}/drift` with
//! `Authorization: Bearer BOOT_TOKEN`, the token of the boot it runs (on
//! its kernel command line, which any local user can read), and signed
//! with the host's sshd ed25519 key (root's alone) when the conffs of the
//! boot has one ([`drift_signature`]: a token alone sends no drift of such
//! a host, and a boot's signed times only increase: no replay). A token
//! opens the drift route of its own host only, and only while its boot is
//! the host's last (a later boot ends it; the 30 minutes of file fetches
//! do not apply: drift comes hours later). The body is streamed to a file
//! of the state dir, bounded (`--max-drift-size`, idle 60 s and 10 minutes
//! in all at most, a few at a time, one per boot), and read whole as a
//! diff would (within [`drift_limits`] once decompressed) before it is
//! kept (temp name, fsync, rename); one a minute per boot (and a minute's
//! wait after a signature that failed), the last [`DRIFTS_KEPT`] of each
//! host kept; what a stopped server left is removed when it starts.
//!
//! Operators read them: `GET /hosts/{name}/drifts`, and `GET
//! /hosts/{name}/drift/diff` (`vauban diff --drift HOST`): the drift over
//! the exact tree the boot got, the image its artifact's `rootfs.img` was
//! made from with the host's conffs from the same artifact on top.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use vauban_core::build::drift_signature;
use vauban_core::diff::{self, DiffOptions, Format, Report, Side, SideKind};

use super::records::{Boot, Records};
use super::{token_hash, BootService};
use crate::app::App;
use crate::error::{Result, ServeError};

/// Drifts kept per host (older ones are removed with their files).
pub const DRIFTS_KEPT: usize = 10;

/// A drift a host sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// Its id (a ULID).
    pub id: String,
    /// The host.
    pub host: String,
    /// The boot it is the drift of.
    pub boot_id: String,
    /// That boot's master.
    pub master: String,
    /// That boot's artifact.
    pub artifact: String,
    /// That artifact's build, when known.
    pub build_id: Option<String>,
    /// When it came (RFC 3339, UTC).
    pub received: String,
    /// The address it came from.
    pub ip: String,
    /// Its size (tar+gzip).
    pub bytes: u64,
    /// Its sha256.
    pub sha256: String,
    /// Its tar entries (paths, whiteouts included).
    pub paths: u64,
    /// The fingerprint of the host's sshd key that signed it; none when the
    /// conffs of its boot has no ed25519 key, and its token alone sent it.
    pub signer: Option<String>,
    /// When the host signed it (Unix seconds, the host's clock): a boot's
    /// signed drifts are taken with increasing times only.
    pub signed_at: Option<i64>,
}

const DRIFT_COLUMNS: &str =
    "id, host, boot_id, master, artifact, build_id, received, ip, bytes, sha256, entries, signer, \
     signed_at";

fn drift_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Drift> {
    Ok(Drift {
        id: r.get(0)?,
        host: r.get(1)?,
        boot_id: r.get(2)?,
        master: r.get(3)?,
        artifact: r.get(4)?,
        build_id: r.get(5)?,
        received: r.get(6)?,
        ip: r.get(7)?,
        bytes: r.get::<_, i64>(8)? as u64,
        sha256: r.get(9)?,
        paths: r.get::<_, i64>(10)? as u64,
        signer: r.get(11)?,
        signed_at: r.get(12)?,
    })
}

impl Records {
    /// Records `d`; the ids of the drifts of its host no longer kept.
    pub fn add_drift(&self, d: &Drift) -> Result<Vec<String>> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                &format!(
                    "INSERT INTO drifts({DRIFT_COLUMNS}) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"
                ),
                params![
                    d.id,
                    d.host,
                    d.boot_id,
                    d.master,
                    d.artifact,
                    d.build_id,
                    d.received,
                    d.ip,
                    d.bytes as i64,
                    d.sha256,
                    d.paths as i64,
                    d.signer,
                    d.signed_at
                ],
            )?;
            let old: Vec<String> = {
                let mut s = tx.prepare(
                    "SELECT id FROM drifts WHERE host=?1 AND id NOT IN
                     (SELECT id FROM drifts WHERE host=?1 ORDER BY received DESC, id DESC LIMIT ?2)",
                )?;
                let rows = s.query_map(params![d.host, DRIFTS_KEPT as i64], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for id in &old {
                tx.execute("DELETE FROM drifts WHERE id=?1", params![id])?;
            }
            tx.commit()?;
            Ok(old)
        })
    }

    /// The drifts of `host`, newest first.
    pub fn drifts(&self, host: &str) -> Result<Vec<Drift>> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {DRIFT_COLUMNS} FROM drifts WHERE host=?1 ORDER BY received DESC, id DESC"
            ))?;
            let rows = s.query_map(params![host], drift_row)?;
            rows.collect()
        })
    }

    /// Every drift's id.
    pub fn drift_ids(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut s = c.prepare("SELECT id FROM drifts")?;
            let rows = s.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// The last drift of each host.
    pub fn last_drifts(&self) -> Result<Vec<Drift>> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {DRIFT_COLUMNS} FROM drifts d WHERE id = (SELECT id FROM drifts
                 WHERE host=d.host ORDER BY received DESC, id DESC LIMIT 1) ORDER BY host"
            ))?;
            let rows = s.query_map([], drift_row)?;
            rows.collect()
        })
    }

    /// The drift `id` of `host`.
    pub fn drift(&self, host: &str, id: &str) -> Result<Option<Drift>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE host=?1 AND id=?2"),
                params![host, id],
                drift_row,
            )
            .optional()
        })
    }
}

impl BootService {
    /// The boot whose token is `token`, if it may send `host`'s drift: its
    /// own host's, and still the host's last boot (then its signature,
    /// [`Self::drift_key`], and its rate, [`Self::check_drift_rate`]).
    pub fn authorize_drift(&self, token: &str, host: &str) -> Result<Boot> {
        let refused =
            || ServeError::Forbidden("this boot token sends no drift of this host".into());
        let Some(tb) = self.records.boot_of_token(&token_hash(token))? else {
            return Err(refused());
        };
        if tb.boot.host != host {
            tracing::warn!(token_host = %tb.boot.host, host, "a drift refused: another host's token");
            return Err(refused());
        }
        let last = self.records.boots(Some(host), 1)?.into_iter().next();
        if last.is_some_and(|l| l.id != tb.boot.id) {
            return Err(ServeError::Gone(format!(
                "{host} booted again since this token's boot: send the drift of the boot it runs"
            )));
        }
        Ok(tb.boot)
    }

    /// One drift a minute for a boot, and none for a minute after one
    /// failed its signature check: what any local user of a host without
    /// an sshd key can send (its token on `/proc/cmdline`), or anyone who
    /// saw a signed drift on the wire, never pushes the drifts kept out in
    /// a burst. A host that reboots gets a new token and sends at once. A
    /// drift signed at `signed_at` must be signed after the boot's last
    /// one: a drift seen on the wire is not taken again.
    pub fn check_drift_rate(&self, boot: &Boot, signed_at: Option<i64>) -> Result<()> {
        let host = &boot.host;
        let of_boot: Vec<Drift> = self
            .records
            .drifts(host)?
            .into_iter()
            .filter(|d| d.boot_id == boot.id)
            .collect();
        let last = of_boot.iter().filter_map(|d| d.signed_at).max();
        if let (Some(at), Some(last)) = (signed_at, last) {
            if at <= last {
                return Err(ServeError::Forbidden(format!(
                    "signed at {at}, not after the last drift this boot of {host} sent \
                     (signed at {last}): a drift is taken once"
                )));
            }
        }
        let recent = of_boot.first().is_some_and(|d| {
            chrono::DateTime::parse_from_rfc3339(&d.received)
                .is_ok_and(|t| chrono::Utc::now() - t.to_utc() < chrono::Duration::seconds(60))
        });
        if recent {
            return Err(ServeError::TooSoon(format!(
                "this boot of {host} sent a drift less than a minute ago: one a minute"
            )));
        }
        if self.drift_attempts.failed_recently(&boot.id) {
            return Err(ServeError::TooSoon(format!(
                "a drift of this boot of {host} failed its signature check less than a minute \
                 ago: one try a minute"
            )));
        }
        Ok(())
    }

    /// The public key `boot`'s drift must be signed with: the ed25519 key
    /// of the conffs its artifact gave the host (see
    /// [`drift_signature`]). None when that conffs has none: the host has
    /// no sshd key to sign with, and its token alone sends a drift.
    pub fn drift_key(&self, boot: &Boot) -> Result<Option<String>> {
        let artifact = self.artifact(&boot.artifact, Some(&boot.master))?;
        let Some(conffs) = artifact
            .info
            .hosts
            .get(&boot.host)
            .and_then(|h| artifact.file(&h.conffs))
        else {
            // Never so for a boot the service started: refused all the same.
            return Err(ServeError::Conflict(format!(
                "the boot artifact of this boot has no conffs of {}: it sends no drift",
                boot.host
            )));
        };
        drift_signature::host_key_of_conffs(&self.store.blob_path(&conffs.digest)).map_err(|e| {
            tracing::warn!(host = %boot.host, conffs = %conffs.digest, "a drift refused: {e}");
            ServeError::Conflict(format!(
                "the sshd key of {}'s conffs cannot be read: the server's log says why",
                boot.host
            ))
        })
    }

    /// Removes what a server that stopped midway left in the drift dir:
    /// bodies being received, files no record names.
    pub fn clean_drift_dir(&self) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.drift_dir) else {
            return Ok(());
        };
        let kept: std::collections::HashSet<String> =
            self.records.drift_ids()?.into_iter().collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let recorded = name
                .strip_suffix(".tar.gz")
                .is_some_and(|id| kept.contains(id));
            if !recorded {
                tracing::info!(file = %name, "drift dir: removing what no record names");
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Where drift `id` is kept.
    pub fn drift_path(&self, id: &str) -> PathBuf {
        self.drift_dir.join(format!("{id}.tar.gz"))
    }

    /// The tree `drift`'s boot got: the image its artifact's `rootfs.img`
    /// was made from, the host's conffs of that artifact on top.
    pub fn booted_side(&self, drift: &Drift) -> Result<Side> {
        let artifact = self.artifact(&drift.artifact, Some(&drift.master))?;
        let image = artifact.rootfs_image.clone().ok_or_else(|| {
            ServeError::Conflict(format!(
                "the boot artifact {} names no image for its rootfs.img (a build by a vauban \
                 before drift reports): build {} again to compare its hosts' drifts",
                drift.artifact, drift.master
            ))
        })?;
        let conffs = artifact
            .info
            .hosts
            .get(&drift.host)
            .and_then(|h| artifact.file(&h.conffs))
            .ok_or_else(|| {
                ServeError::Missing(format!(
                    "the boot artifact {} has no conffs of {}",
                    drift.artifact, drift.host
                ))
            })?;
        let built = match &drift.build_id {
            Some(b) => format!("build {b}"),
            None => format!("artifact {}", drift.artifact),
        };
        let name = format!("{} as booted ({built})", drift.host);
        let side = Side::of_digest(&self.store, &name, &image)
            .map_err(|e| ServeError::Conflict(e.to_string()))?;
        let mut side = side.stacked(&name, &self.store.blob_path(&conffs.digest));
        side.what = SideKind::Served {
            image: image.to_string(),
            stacked: vec![format!("conffs of {} ({})", drift.host, conffs.digest)],
        };
        Ok(side)
    }

    /// The report of `drift` over the tree its boot got.
    pub fn drift_report(&self, drift: &Drift, opts: &DiffOptions) -> Result<Report> {
        let a = self.booted_side(drift)?;
        let name = format!(
            "{} now (drift {}, {})",
            drift.host, drift.id, drift.received
        );
        let mut b = self
            .booted_side(drift)?
            .stacked(&name, &self.drift_path(&drift.id));
        if let SideKind::Served { image, stacked } = &a.what {
            let mut stacked = stacked.clone();
            stacked.push(format!("drift {} ({})", drift.id, drift.sha256));
            b.what = SideKind::Served {
                image: image.clone(),
                stacked,
            };
        }
        compare(&self.store, &a, &b, opts)
    }

    /// The drift `id` of `host`, or its last; a clear error when none.
    pub fn find_drift(&self, host: &str, id: Option<&str>) -> Result<Drift> {
        match id {
            Some(id) => self.records.drift(host, id)?,
            None => self.records.drifts(host)?.into_iter().next(),
        }
        .ok_or_else(|| {
            ServeError::Missing(match id {
                Some(id) => format!("{host} has no drift {id}"),
                None => format!(
                    "{host} sent no drift (its image needs `drift_report:` on its master, \
                     and the host runs vauban-drift)"
                ),
            })
        })
    }
}

/// The report of `a` against `b`.
pub fn compare(
    store: &vauban_core::vauban_oci::store::Store,
    a: &Side,
    b: &Side,
    opts: &DiffOptions,
) -> Result<Report> {
    diff::diff(store, a, b, opts).map_err(|e| match e {
        vauban_core::Error::Diff { .. } => ServeError::Conflict(e.to_string()),
        e => ServeError::Config(e),
    })
}

/// `report` written as `format`.
pub fn rendered(report: &Report, format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    diff::write_report(&mut out, report, format)
        .map_err(|e| ServeError::io("write a diff", "memory", e))?;
    Ok(out)
}

/// The answer of a diff: its text (or JSON), and `X-Vauban-Differs`.
pub fn diff_response(body: Vec<u8>, differs: bool, format: Format) -> Response {
    let kind = if format == Format::Json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (
                header::HeaderName::from_static("x-vauban-differs"),
                if differs { "true" } else { "false" },
            ),
        ],
        body,
    )
        .into_response()
}

/// The query of a diff route: the form, `exclude` and `path` (repeatable,
/// as `vauban diff`'s).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// `full` (default), `stat`, `name-only`, `name-status`, `json`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub format: Format,
    /// Globs of paths left out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only these paths.
    #[serde(default)]
    pub path: Vec<String>,
    /// A drift's id (else the host's last).
    pub drift: Option<String>,
}

impl DiffQuery {
    /// The diff's options.
    pub fn options(&self) -> DiffOptions {
        DiffOptions {
            paths: self.path.clone(),
            exclude: self.exclude.clone(),
            text: self.format.shows_text(),
            ..DiffOptions::default()
        }
    }
}

/// Reads a diff route's query (`exclude` and `path` repeated).
pub fn diff_query(raw: Option<&str>) -> Result<DiffQuery> {
    serde_html_form::from_str(raw.unwrap_or_default()).map_err(|e| ServeError::BadRequest {
        field: "query",
        message: format!("{e} (format: full, stat, name-only, name-status or json)"),
    })
}

fn service(app: &App) -> Result<&Arc<BootService>> {
    app.boot
        .as_ref()
        .ok_or_else(|| ServeError::Missing("this server has no boot service".into()))
}

/// What the service remembers of drifts being sent (in memory: a restart
/// forgets it): the boots whose drift is being received, one at a time
/// each, and the boots whose last drift failed its signature check, when.
#[derive(Debug, Default)]
pub struct DriftAttempts {
    receiving: std::sync::Mutex<std::collections::HashSet<String>>,
    failed: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a boot whose drift failed its signature check waits.
const FAILED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl DriftAttempts {
    /// Marks a drift of `boot` being received, until the guard drops;
    /// None when one is already.
    fn begin(self: &Arc<Self>, boot: &str) -> Option<Receiving> {
        let mut receiving = self.receiving.lock().unwrap_or_else(|e| e.into_inner());
        receiving.insert(boot.to_owned()).then(|| Receiving {
            attempts: self.clone(),
            boot: boot.to_owned(),
        })
    }

    /// A drift of `boot` failed its signature check.
    fn failed(&self, boot: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.retain(|_, at| at.elapsed() < FAILED_WAIT);
        failed.insert(boot.to_owned(), std::time::Instant::now());
    }

    /// Whether a drift of `boot` failed its signature check within the
    /// minute.
    fn failed_recently(&self, boot: &str) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed
            .get(boot)
            .is_some_and(|at| at.elapsed() < FAILED_WAIT)
    }
}

/// A drift of a boot being received (see [`DriftAttempts::begin`]).
struct Receiving {
    attempts: Arc<DriftAttempts>,
    boot: String,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        let mut receiving = self
            .attempts
            .receiving
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        receiving.remove(&self.boot);
    }
}

/// Removes a file when dropped, unless kept: a body cut off midway leaves
/// nothing behind.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `POST /hosts/{name}/drift` (a host, by its boot token).
pub async fn post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(host): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Drift>)> {
    let result = receive_drift(&app, peer, &host, &headers, body).await;
    if let Err(e) = &result {
        tracing::warn!(host, ip = %peer.ip(), "a drift refused: {e}");
    }
    result
}

/// [`post`], its refusals logged by the caller.
async fn receive_drift(
    app: &Arc<App>,
    peer: SocketAddr,
    host: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Drift>)> {
    let host = host.to_owned();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ServeError::Unauthorized)?;
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServeError::Forbidden(
            "this route takes the boot token of the host's current boot (boot= on its kernel \
             command line, as vauban-drift sends it), not an API token"
                .into(),
        ));
    }
    let token = token.to_owned();
    let svc = service(app)?.clone();
    // A few at once: each holds a file of the state dir and, once received,
    // a core for its check.
    let Ok(_permit) = svc.drift_uploads.clone().try_acquire_owned() else {
        return Err(ServeError::Busy(
            "the server takes a few drifts at a time: send it again in a minute".into(),
        ));
    };
    let (s, h, t) = (svc.clone(), host.clone(), token.clone());
    let boot = blocking(move || s.authorize_drift(&t, &h)).await?;
    // Signed by the host's sshd key when its conffs has one: a signature
    // missing, malformed, by another key or replayed is refused before the
    // body is read.
    let (s, b) = (svc.clone(), boot.clone());
    let host_key = blocking(move || s.drift_key(&b)).await?;
    let signed = match &host_key {
        None => None,
        Some(key) => {
            let header = |name: &str| {
                headers
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            let (Some(signature), Some(at)) = (
                header(drift_signature::HEADER),
                header(drift_signature::TIME_HEADER),
            ) else {
                return Err(ServeError::Forbidden(format!(
                    "{host}'s conffs has an sshd ed25519 key: its drift must be signed with it \
                     (vauban-drift, run as root, signs it with ssh-keygen -Y sign and sends {} \
                     and {}); a boot token alone sends none",
                    drift_signature::HEADER,
                    drift_signature::TIME_HEADER
                )));
            };
            let at = at
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&t| i64::try_from(t).is_ok())
                .ok_or_else(|| ServeError::BadRequest {
                    field: "X-Vauban-Signed-At",
                    message: "the time the drift was signed at, in Unix seconds".into(),
                })?;
            let prechecked = drift_signature::precheck(key, &signature)
                .map_err(|e| ServeError::Forbidden(format!("the drift's signature: {e}")))?;
            Some((prechecked, at))
        }
    };
    // One at a time for a boot, then its rate and replay checked: a second
    // sent at once sees the first recorded.
    let Some(_receiving) = svc.drift_attempts.begin(&boot.id) else {
        return Err(ServeError::TooSoon(format!(
            "a drift of this boot of {host} is being received: one at a time"
        )));
    };
    let signed_at = signed.as_ref().and_then(|(_, at)| i64::try_from(*at).ok());
    let (s, b) = (svc.clone(), boot.clone());
    blocking(move || s.check_drift_rate(&b, signed_at)).await?;
    let id = ulid::Ulid::new().to_string();
    let tmp_path = svc.drift_dir.join(format!(".tmp-{id}"));
    let tmp = TempFile(Some(tmp_path.clone()));
    let (bytes, sha256) = receive(body, &svc.drift_dir, &tmp_path, svc.opts.max_drift).await?;
    let signer = match &signed {
        Some((prechecked, at)) => {
            let hex = sha256.trim_start_matches("sha256:");
            let message = drift_signature::signed_message(&host, &token, *at, hex);
            let fingerprint = prechecked.verify(&message).map_err(|e| {
                svc.drift_attempts.failed(&boot.id);
                ServeError::Forbidden(format!("the drift's signature: {e}"))
            })?;
            Some(fingerprint)
        }
        None => None,
    };
    let checked = tmp_path.clone();
    let limits = drift_limits(svc.opts.max_drift);
    let entries = blocking(move || {
        diff::check_archive(&checked, &limits).map_err(|e| ServeError::BadRequest {
            field: "body",
            // The file's name is the server's business.
            message: format!(
                "not a drift (a tar layer, gzip-compressed): {}",
                match e {
                    vauban_core::Error::Diff { reason, .. } => reason,
                    e => e.to_string(),
                }
                .replace(&checked.display().to_string(), "the body")
            ),
        })
    })
    .await?;
    let drift = Drift {
        id: id.clone(),
        host: host.clone(),
        boot_id: boot.id.clone(),
        master: boot.master.clone(),
        artifact: boot.artifact.clone(),
        build_id: boot.build_id.clone(),
        received: crate::runner::now_at(chrono::Utc::now()),
        ip: peer.ip().to_string(),
        bytes,
        sha256,
        paths: entries as u64,
        signer,
        signed_at,
    };
    let (s, d) = (svc.clone(), drift.clone());
    blocking(move || {
        let kept = s.drift_path(&d.id);
        std::fs::rename(&tmp_path, &kept).map_err(|e| ServeError::io("rename", &kept, e))?;
        tmp.keep();
        match s.records.add_drift(&d) {
            Ok(old) => {
                for o in old {
                    let _ = std::fs::remove_file(s.drift_path(&o));
                }
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&kept);
                Err(e)
            }
        }
    })
    .await?;
    tracing::info!(host, id, boot = %boot.id, bytes, paths = entries, signer = drift.signer.as_deref().unwrap_or("none"), "drift received");
    Ok((StatusCode::CREATED, Json(drift)))
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServeError::Setup(e.to_string()))?
}

/// What a drift of at most `max` bytes may hold once decompressed: 16
/// times as many bytes (a drift is mostly text), half a million entries,
/// long names and PAX records of 64 KiB.
pub fn drift_limits(max: u64) -> diff::ArchiveLimits {
    diff::ArchiveLimits {
        bytes: max.saturating_mul(16),
        entries: 500_000,
        record: 64 << 10,
    }
}

/// How long a drift's body may pause before it is given up.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a drift's body may take in all.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Streams `body` into `path` (0600, in `dir`), at most `limit` bytes,
/// synced; its size and sha256.
async fn receive(body: Body, dir: &FsPath, path: &FsPath, limit: u64) -> Result<(u64, String)> {
    use tokio::io::AsyncWriteExt;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| ServeError::io("create", dir, e))?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| ServeError::io("create", path, e))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + BODY_DEADLINE;
    loop {
        let idle = tokio::time::Instant::now() + BODY_IDLE;
        let next = tokio::time::timeout_at(idle.min(deadline), stream.next())
            .await
            .map_err(|_| ServeError::BadRequest {
                field: "body",
                message: if idle < deadline {
                    format!("nothing came for {} s: given up", BODY_IDLE.as_secs())
                } else {
                    format!("not over in {} s: given up", BODY_DEADLINE.as_secs())
                },
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ServeError::BadRequest {
            field: "body",
            message: format!("the body was cut off: {e}"),
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ServeError::TooLarge(format!(
                "a drift of more than {limit} bytes (--max-drift-size): exclude what grows \
                 in the master's drift_report:"
            )));
        }
        hash.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| ServeError::io("write", path, e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ServeError::io("sync", path, e))?;
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, format!("sha256:{hex}")))
}

/// `GET /hosts/{name}/drifts` (operators): the drifts kept, newest first.
#[utoipa::path(get, path = "/hosts/{name}/drifts", operation_id = "host_drifts",
    params(("name" = String, Path, description = "The host")),
    responses((status = 200, body = Vec<Drift>), (status = 401, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Path(host): Path<String>,
) -> Result<Json<Vec<Drift>>> {
    let list = blocking(move || service(&app)?.records.drifts(&host)).await?;
    Ok(Json(list))
}

/// `/ui/hosts/{name}/drift` (the page): the host's last drift (or
/// `?drift=ID`) against the tree its boot got, and the drifts kept.
pub async fn page(
    State(app): State<Arc<App>>,
    Path(host): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<maud::Markup> {
    let q = diff_query(raw.as_deref())?;
    let (drift, report, all) = tokio::task::spawn_blocking(move || -> Result<_> {
        let svc = service(&app)?;
        let drift = svc.find_drift(&host, q.drift.as_deref())?;
        let report = svc.drift_report(&drift, &q.options())?;
        Ok((drift, report, svc.records.drifts(&host)?))
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(crate::page::drift_page(&drift, &report, &all))
}

/// `GET /hosts/{name}/drift/diff` (operators): the host's last drift (or
/// `?drift=ID`) against the tree its boot got.
#[utoipa::path(get, path = "/hosts/{name}/drift/diff", operation_id = "host_drift_diff",
    params(("name" = String, Path, description = "The host"), DiffQuery),
    responses((status = 200, description = "The diff in the form asked for (text, or JSON of schema vauban.diff/1); header X-Vauban-Differs: true or false", body = String),
        (status = 400, body = crate::api::ErrorBody), (status = 401, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn diff(
    State(app): State<Arc<App>>,
    Path(host): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response> {
    let q = diff_query(raw.as_deref())?;
    let format = q.format;
    let (body, differs) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, bool)> {
        let svc = service(&app)?;
        let drift = svc.find_drift(&host, q.drift.as_deref())?;
        let report = svc.drift_report(&drift, &q.options())?;
        Ok((rendered(&report, format)?, report.differs()))
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(diff_response(body, differs, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_drift_of_a_boot_at_a_time_and_a_failed_signature_waits() {
        let attempts = Arc::new(DriftAttempts::default());
        let first = attempts.begin("boot-1").expect("none being received");
        assert!(attempts.begin("boot-1").is_none(), "a second at once");
        let other = attempts.begin("boot-2").expect("another boot's");
        drop(first);
        assert!(attempts.begin("boot-1").is_some(), "once the first is over");
        drop(other);
        assert!(!attempts.failed_recently("boot-1"));
        attempts.failed("boot-1");
        assert!(attempts.failed_recently("boot-1"));
        assert!(!attempts.failed_recently("boot-2"));
    }
}
