//! The server's state and its routes: the API (`api`), the original's routes
//! (`original`), the page (`page`), `/metrics` and `/openapi.json`, all but
//! the open ones behind [`crate::auth::require`]; request bodies are bounded.
//! Its background work ([`App::tick`]): the scheduler, re-reading config.yml
//! and the token file, pruning old builds' files.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;

use crate::auth::Auth;
use crate::boot::routes as boot;
use crate::config_file::ConfigFile;
use crate::model::Trigger;
use crate::runner::Runner;
use crate::scheduler::{self, Schedule};

/// The largest request body accepted (a build request is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// What every handler sees.
pub struct App {
    /// The queue and its workers.
    pub runner: Arc<Runner>,
    /// config.yml.
    pub config: Arc<ConfigFile>,
    /// Who may call.
    pub auth: Arc<Auth>,
    /// The URL people reach the server at (for links), if given.
    pub public_url: Option<String>,
    /// How long a finished build's files are kept.
    pub keep_days: Option<u32>,
    /// The schedules in use, and what is wrong with the others.
    pub schedules: RwLock<(Vec<Schedule>, Vec<String>)>,
    /// The boot service (hosts, deployments, boot files).
    pub boot: Option<Arc<crate::boot::BootService>>,
    /// Whether builds are off (`--boot-only`).
    pub boot_only: bool,
}

impl App {
    /// The link to build `id`, relative unless a public URL is known.
    pub fn build_url(&self, id: &str) -> String {
        match &self.public_url {
            Some(p) => format!("{}/builds/{id}", p.trim_end_matches('/')),
            None => format!("/builds/{id}"),
        }
    }

    /// The masters' names in the config in use.
    pub fn masters(&self) -> Vec<String> {
        self.config
            .get()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Re-reads the schedules from the config in use; logs what is wrong.
    pub fn reschedule(&self) {
        let (list, errors) = scheduler::schedules(&self.config.get());
        for e in &errors {
            tracing::error!("schedule left out: {e}");
        }
        for s in &list {
            tracing::info!(master = %s.master, schedule = %s.expr, stage = %s.request.stage, "scheduled");
            if let Some(note) = &s.note {
                tracing::warn!(master = %s.master, "schedule `{}`: {note}", s.expr);
            }
        }
        let names: Vec<&str> = list.iter().map(|s| s.master.as_str()).collect();
        if let Err(e) = self.runner.history.keep_slots(&names) {
            tracing::error!("{e:#}");
        }
        *self.schedules.write().unwrap_or_else(|e| e.into_inner()) = (list, errors);
    }

    /// The scheduler's look: queues the builds whose slot passed since the
    /// last look. Returns when the next slot comes.
    fn run_schedules(&self) -> Option<chrono::DateTime<Utc>> {
        let now = Utc::now();
        // Builds read config.yml from disk: while it is broken no slot is
        // used up, and the first look after the fix builds what was missed.
        if let Some(e) = self.config.error() {
            tracing::warn!("schedules wait: config.yml cannot be used: {e}");
            return Some(now + chrono::Duration::seconds(30));
        }
        let list = self
            .schedules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        let history = &self.runner.history;
        let mut next: Option<chrono::DateTime<Utc>> = None;
        for s in &list {
            let last = match history.last_slot(&s.master) {
                Ok(l) => l.and_then(|l| chrono::DateTime::parse_from_rfc3339(&l).ok()),
                Err(e) => {
                    tracing::error!("{e:#}");
                    continue;
                }
            };
            if let Some(last) = last {
                if s.due(last.to_utc(), now) {
                    match self
                        .runner
                        .submit(&s.request, "scheduler", Trigger::Schedule)
                    {
                        Ok(sub) => {
                            tracing::info!(master = %s.master, id = %sub.id, coalesced = sub.coalesced, "scheduled build queued")
                        }
                        Err(e) => tracing::error!(master = %s.master, "scheduled build: {e:#}"),
                    }
                }
            }
            if let Err(e) = history.set_last_slot(&s.master, &crate::runner::now_at(now)) {
                tracing::error!("{e:#}");
            }
            if let Some(n) = s.next_after(now) {
                next = Some(next.map_or(n, |m| m.min(n)));
            }
        }
        next
    }

    /// Removes the files of builds finished more than `--keep-days` ago.
    fn prune(&self) {
        let Some(days) = self.keep_days else {
            return;
        };
        let before = Utc::now() - chrono::Duration::days(i64::from(days));
        let ids = match self
            .runner
            .history
            .finished_before(&crate::runner::now_at(before))
        {
            Ok(ids) => ids,
            Err(e) => return tracing::error!("{e:#}"),
        };
        for id in ids {
            let dir = self.runner.dir_of(&id);
            if dir.exists() {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => tracing::info!(id, "pruned the build's files (--keep-days {days})"),
                    Err(e) => tracing::warn!(id, "pruning {}: {e}", dir.display()),
                }
            }
        }
    }

    /// The background work, until the process ends: the scheduler at each
    /// slot, config.yml and the token file re-read when they change (every
    /// few seconds, and at once on SIGHUP), old files pruned hourly.
    pub async fn tick(self: Arc<Self>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last_prune = None::<std::time::Instant>;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                self.prune();
                last_prune = Some(std::time::Instant::now());
            }
            let next = self.run_schedules();
            let wait = next
                .and_then(|n| (n - Utc::now()).to_std().ok())
                .map_or(Duration::from_secs(5), |d| d.min(Duration::from_secs(5)))
                // Past the slot, not just before it.
                + Duration::from_millis(20);
            let forced = match &mut hangup {
                Some(h) => tokio::select! {
                    _ = h.recv() => true,
                    () = tokio::time::sleep(wait) => false,
                },
                None => {
                    tokio::time::sleep(wait).await;
                    false
                }
            };
            if forced {
                tracing::info!("SIGHUP: re-reading config.yml and the token file");
            }
            if self.config.reload(forced) {
                self.reschedule();
            }
            if let Err(e) = self.auth.tokens.reload() {
                tracing::error!("token file not re-read (the tokens read before stay): {e}");
            }
        }
    }
}

/// Every route: the boot routes firmware calls (their own checks), then
/// the others behind the API's authentication; with `--boot-only`, no
/// build route.
pub fn router(app: Arc<App>) -> Router {
    let auth = app.auth.clone();
    let firmware = Router::new()
        .route("/boot/ipxe", get(boot::ipxe))
        .route("/boot/{file}", get(boot::ipxe_file))
        .route("/boot/blobs/{digest}", get(boot::blob).head(boot::blob))
        .route(
            "/boot/blobs/{digest}/{name}",
            get(boot::blob_named).head(boot::blob_named),
        )
        .route("/hosts/{name}/drift", post(crate::boot::drift::post))
        .with_state(app.clone());
    let operators = Router::new()
        .route("/masters/{name}/deploy", post(boot::deploy))
        .route("/masters/{name}/rollback", post(boot::rollback))
        .route("/masters/{name}/deployments", get(boot::deployments))
        .route("/hosts", get(boot::hosts))
        .route("/hosts/{name}", get(boot::host))
        .route("/hosts/{name}/drifts", get(crate::boot::drift::list))
        .route("/hosts/{name}/drift/diff", get(crate::boot::drift::diff))
        .route("/ui/hosts", get(crate::page::hosts))
        .route("/ui/hosts/{name}/drift", get(crate::boot::drift::page))
        .route("/ui/style.css", get(crate::page::style))
        .route(
            "/login",
            get(crate::page::login_form).post(crate::page::login_submit),
        )
        .route("/logout", post(crate::page::logout));
    let api = if app.boot_only {
        operators.route(
            "/",
            get(|| async { axum::response::Redirect::to("/ui/hosts") }),
        )
    } else {
        operators.merge(build_routes())
    };
    api.route("/health", get(|| async { "ok" }))
        .route("/readiness", get(|| async { "ok" }))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/openapi.json", get(crate::openapi::document))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::require,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
        .merge(firmware)
        .layer(axum::middleware::map_response(security_headers))
}

/// The routes of builds, the original's and the page.
fn build_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/builds", post(crate::api::submit).get(crate::api::list))
        .route(
            "/builds/{id}",
            get(crate::api::get).delete(crate::api::cancel),
        )
        .route("/builds/{id}/log", get(crate::api::log))
        .route("/builds/{id}/events", get(crate::api::events))
        .route("/builds/{id}/retry", post(crate::api::retry))
        .route("/masters", get(crate::api::masters))
        .route("/build", post(crate::original::build))
        .route("/status/{id}", get(crate::original::status))
        .route(
            "/delete/{id}",
            post(crate::original::delete).delete(crate::original::delete),
        )
        .route("/", get(crate::page::builds))
        .route("/ui/builds/{id}", get(crate::page::build))
        .route("/ui/masters", get(crate::page::masters))
        .route("/ui/app.js", get(crate::page::script))
        .route("/diff", get(crate::diffs::api))
        .route("/ui/diff", get(crate::diffs::page))
}

async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    resp
}
