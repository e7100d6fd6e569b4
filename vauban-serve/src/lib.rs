//! `vauban serve`: vauban as a service. Builds on request (a JSON API, and
//! the original's routes) and on schedule (config.yml's `schedule:`), one
//! worker process per build (`vauban build --events json`, rootless, in its
//! own process group), a history in an embedded SQLite database, live logs
//! (plain text and Server-Sent Events), notifications (webhooks, Slack,
//! Sentry), Prometheus metrics and a page. Nothing to deploy but the binary.
//!
//! The modules: [`model`] (what a build is), [`db`] (the history),
//! [`runner`] (the queue and the workers' lives), [`worker`] (one worker's
//! command and output), [`live`] (followers of a build's lines),
//! [`scheduler`], [`notify`], [`auth`], and the routes: [`api`],
//! [`original`], [`page`], [`metrics`], [`openapi`], put together in
//! [`app`].

pub mod api;
pub mod app;
pub mod auth;
pub mod boot;
pub mod client;
pub mod config_file;
pub mod db;
pub mod diffs;
pub mod error;
pub mod live;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod openapi;
pub mod original;
pub mod page;
pub mod runner;
pub mod scheduler;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use error::{Result, ServeError};
pub use worker::WorkerCommand;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where it listens.
    pub listen: SocketAddr,
    /// config.yml.
    pub config: PathBuf,
    /// Its state: `history.db`, `builds/ID/` (logs, events, worker logs).
    pub state: PathBuf,
    /// The token file (`NAME TOKEN` a line).
    pub token_file: Option<PathBuf>,
    /// The header a trusted proxy names the user in.
    pub user_header: Option<String>,
    /// Builds at once.
    pub jobs: usize,
    /// How workers are started.
    pub worker: WorkerCommand,
    /// Webhooks told about failures and fixes.
    pub notify: Vec<String>,
    /// Tell the webhooks about every build.
    pub notify_all: bool,
    /// The URL people reach the server at (for links in notifications).
    pub public_url: Option<String>,
    /// Sentry's DSN.
    pub sentry_dsn: Option<String>,
    /// Days a finished build's files are kept.
    pub keep_days: Option<u32>,
    /// The image store the builds write into (the boot service serves its
    /// blobs).
    pub store: PathBuf,
    /// The boot service's options.
    pub boot: boot::BootOptions,
    /// No build API, no scheduler: a boot server only.
    pub boot_only: bool,
}

/// A server set up and listening, not yet serving.
pub struct Server {
    app: Arc<app::App>,
    listener: tokio::net::TcpListener,
    _lock: std::fs::File,
}

impl Server {
    /// Checks the options, opens the state (one server per state dir),
    /// recovers the builds a previous server left running, and binds.
    pub async fn bind(opts: ServeOptions) -> Result<Server> {
        if opts.token_file.is_none() && opts.user_header.is_none() {
            return Err(ServeError::Setup(
                "every route but /health, /readiness and /metrics needs a caller: give --token-file FILE (lines `NAME TOKEN`), or --user-header behind a proxy that sets it".into(),
            ));
        }
        if opts.user_header.is_some() && !opts.listen.ip().is_loopback() {
            return Err(ServeError::Setup(format!(
                "--user-header trusts whoever connects to name the user: listen on loopback (not {}) behind the proxy that sets it",
                opts.listen
            )));
        }
        let user_header = match &opts.user_header {
            None => None,
            Some(h) => Some(axum::http::HeaderName::try_from(h.as_str()).map_err(|_| {
                ServeError::Setup(format!("--user-header {h:?} is not a header name"))
            })?),
        };
        let builds = opts.state.join("builds");
        std::fs::create_dir_all(&builds).map_err(|e| ServeError::io("create", &builds, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&opts.state, std::fs::Permissions::from_mode(0o700));
        }
        let lock_path = opts.state.join("serve.lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| ServeError::io("create", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(ServeError::Setup(format!(
                "another vauban serve uses {} (its lock {} is held)",
                opts.state.display(),
                lock_path.display()
            )));
        }
        let history = Arc::new(db::History::open(&opts.state.join("history.db"))?);
        let config = Arc::new(config_file::ConfigFile::load(&opts.config)?);
        let tokens = auth::Tokens::load(opts.token_file.as_deref())?;
        if let Some(file) = opts.token_file.as_deref().filter(|_| tokens.is_empty()) {
            if opts.user_header.is_none() {
                return Err(ServeError::Setup(format!(
                    "the token file {} has no token (lines `NAME TOKEN`) and there is no \
                     --user-header: nobody could get in",
                    file.display()
                )));
            }
            tracing::warn!("the token file has no token: only --user-header callers get in");
        }
        let notifier = Arc::new(notify::Notifier::new(
            opts.notify.clone(),
            Some(config.clone()),
            opts.notify_all,
            opts.public_url.clone(),
            opts.sentry_dsn.as_deref(),
        ));
        let runner = Arc::new(runner::Runner::new(
            history,
            opts.worker.clone(),
            builds,
            opts.jobs,
            notifier,
        ));
        let interrupted = runner.recover()?;
        if interrupted > 0 {
            clean_store_tmp(&opts.worker).await;
        }
        let store = vauban_core::vauban_oci::store::Store::open(&opts.store)?;
        let boot = Arc::new(boot::BootService::open(
            store,
            &opts.state.join("history.db"),
            runner.history.clone(),
            opts.boot.clone(),
        )?);
        {
            let boot = boot.clone();
            let config = config.clone();
            let _ = runner.after_success.set(Box::new(move |build| {
                let auto: Vec<String> = config
                    .get()
                    .masters()
                    .filter(|m| {
                        m.deploy
                            .as_ref()
                            .is_some_and(|d| d.value == vauban_core::config::DeployPolicy::Auto)
                    })
                    .map(|m| m.name.clone())
                    .collect();
                boot.after_build(build, &auto);
            }));
        }
        let app = Arc::new(app::App {
            runner,
            config,
            auth: Arc::new(auth::Auth {
                tokens,
                user_header,
            }),
            public_url: opts.public_url.clone(),
            keep_days: opts.keep_days,
            schedules: RwLock::default(),
            boot: Some(boot),
            boot_only: opts.boot_only,
        });
        app.reschedule();
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ServeError::Listen {
                addr: opts.listen.to_string(),
                source: e,
            })?;
        Ok(Server {
            app,
            listener,
            _lock: lock,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| ServeError::Listen {
            addr: "the bound socket".into(),
            source: e,
        })
    }

    /// Serves until SIGTERM or SIGINT; then stops the running builds (their
    /// workers clean up) and marks them interrupted.
    pub async fn run(self) -> Result<()> {
        let Server {
            app,
            listener,
            _lock,
        } = self;
        if !app.boot_only {
            tokio::spawn(app.runner.clone().dispatch());
            tokio::spawn(app.clone().tick());
        }
        let router = app::router(app.clone());
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| ServeError::io("serve", "the listening socket", e))?;
        tracing::info!("stopping: builds still running are interrupted");
        app.runner.stop_all(Duration::from_secs(30)).await;
        Ok(())
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let int = tokio::signal::ctrl_c();
    match &mut term {
        Some(t) => tokio::select! {
            _ = t.recv() => {}
            _ = int => {}
        },
        None => {
            let _ = int.await;
        }
    }
}

/// Empties the store's temp space of what interrupted workers left, with
/// `vauban gc --temp-only` (it holds the store's lock, and removes trees
/// owned by subordinate ids inside a user namespace).
async fn clean_store_tmp(cmd: &WorkerCommand) {
    let out = tokio::process::Command::new(&cmd.program)
        .args(&cmd.global_args)
        .args(["gc", "--temp-only"])
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => tracing::info!(
            "store temp space emptied: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        ),
        Ok(o) => tracing::error!(
            "emptying the store's temp space failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => tracing::error!("cannot run {} gc --temp-only: {e}", cmd.program.display()),
    }
}
