//! The boot routes. For firmware (no API token: a booting host has none),
//! outside the API's authentication: `GET /boot/ipxe?mac=…` and
//! `/boot/{mac}.ipxe` (the script, by MAC), `GET|HEAD
//! /boot/blobs/{digest}[/{name}]?boot=TOKEN` (a file, by the boot's token,
//! or an operator's `Authorization: Bearer`). For operators, behind it:
//! `POST /masters/{name}/deploy`, `POST /masters/{name}/rollback`, `GET
//! /masters/{name}/deployments`, `GET /hosts`, `GET /hosts/{name}`.
//! Nothing of a request reaches a shell or a path but a validated digest.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vauban_core::export::normalize_mac;
use vauban_core::vauban_oci::Digest;

use super::artifact::FileKind;
use super::files::{self, plain};
use super::records::{Boot, Deployment, Fetch};
use super::{script, BootService, HostsView, Lookup};
use crate::app::App;
use crate::auth::Caller;
use crate::error::{Result, ServeError};

/// The boot service of the app, or 404 when it has none.
fn service(app: &App) -> Result<&Arc<BootService>> {
    app.boot
        .as_ref()
        .ok_or_else(|| ServeError::Missing("this server has no boot service".into()))
}

/// `?mac=` of the script route.
#[derive(Debug, Deserialize)]
pub struct MacQuery {
    mac: Option<String>,
}

/// `GET /boot/ipxe?mac=…`.
pub async fn ipxe(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<MacQuery>,
) -> Response {
    script_for(
        app,
        peer.ip(),
        &headers,
        q.mac.as_deref().unwrap_or_default(),
    )
    .await
}

/// `GET /boot/{mac}.ipxe`.
pub async fn ipxe_file(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    match file.strip_suffix(".ipxe") {
        Some(mac) => script_for(app, peer.ip(), &headers, mac).await,
        None => plain(
            StatusCode::NOT_FOUND,
            "no such boot file: /boot/MAC.ipxe, /boot/ipxe?mac=MAC",
        ),
    }
}

async fn script_for(app: Arc<App>, ip: IpAddr, headers: &HeaderMap, mac: &str) -> Response {
    let Some(mac) = normalize_mac(mac) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "mac: not a MAC address (six hex pairs); chain to /boot/ipxe?mac=${net0/mac}",
        );
    };
    let Some(base) = base_url(&app, headers) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Host: not a host name (or give --boot-url)",
        );
    };
    let answer = tokio::task::spawn_blocking(move || -> Result<String> {
        let boot = service(&app)?;
        boot.records.saw_mac(&mac, &ip.to_string())?;
        Ok(match boot.lookup(&mac)? {
            Lookup::Host(found) => {
                let (record, token) = boot.start_boot(&found, &mac, ip)?;
                tracing::info!(host = %found.host, %mac, %ip, boot = %record.id, master = %record.master,
                    deployment = record.deployment, "boot script");
                script::host_script(
                    &base,
                    &found.host,
                    &found.artifact,
                    found.deployment.id,
                    found.deployment.build_id.as_deref(),
                    &token,
                )?
            }
            Lookup::NotDeployed { host, master } => {
                tracing::warn!(%host, %mac, %master, "boot script: the master is not deployed");
                script::local_disk_script(&format!(
                    "{host} is a host of {master}, which is not deployed"
                ))
            }
            Lookup::Unknown => {
                tracing::warn!(%mac, %ip, "boot script: unknown MAC");
                script::local_disk_script(&format!("{mac} is no host's MAC"))
            }
        })
    })
    .await;
    match answer {
        Ok(Ok(text)) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    }
}

/// The base URL of the files: `--boot-url`, else `http://` and the
/// request's `Host` (checked to be a host name or address, and a port).
fn base_url(app: &App, headers: &HeaderMap) -> Option<String> {
    let boot = app.boot.as_ref()?;
    if let Some(u) = &boot.opts.boot_url {
        return Some(u.trim_end_matches('/').to_owned());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| format!("http://{host}"))
}

/// `?boot=` of the file routes.
#[derive(Debug, Deserialize)]
pub struct BootQuery {
    boot: Option<String>,
}

/// `GET|HEAD /boot/blobs/{digest}`.
pub async fn blob(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(digest): Path<String>,
    Query(q): Query<BootQuery>,
) -> Response {
    serve_blob(app, peer.ip(), method, headers, digest, None, q.boot).await
}

/// `GET|HEAD /boot/blobs/{digest}/{name}` (the name is for the client's
/// file name: iPXE names an image after it).
pub async fn blob_named(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path((digest, name)): Path<(String, String)>,
    Query(q): Query<BootQuery>,
) -> Response {
    serve_blob(app, peer.ip(), method, headers, digest, Some(name), q.boot).await
}

async fn serve_blob(
    app: Arc<App>,
    ip: IpAddr,
    method: Method,
    headers: HeaderMap,
    digest: String,
    name: Option<String>,
    token: Option<String>,
) -> Response {
    let Ok(digest) = Digest::parse(&digest) else {
        return plain(StatusCode::NOT_FOUND, "not a sha256 digest");
    };
    let operator = token.is_none().then(|| app.auth.caller(&headers)).flatten();
    let claim = method == Method::GET;
    let boot_app = app.clone();
    let d = digest.clone();
    let checked =
        tokio::task::spawn_blocking(move || -> Result<(Option<Boot>, FileKind, std::fs::File)> {
            let boot = service(&boot_app)?;
            let (record, kind) = match (&token, &operator) {
                (Some(t), _) => {
                    let (b, k) = boot.authorize_boot_fetch(t, &d, ip, claim)?;
                    (Some(b), k)
                }
                (None, Some(_)) => (None, boot.authorize_operator_fetch(&d)?),
                (None, None) => return Err(ServeError::Unauthorized),
            };
            let file = boot.store.open_blob(&d)?;
            Ok((record, kind, file))
        })
        .await;
    let (record, kind, file) = match checked {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if !matches!(e, ServeError::Unauthorized) {
                tracing::warn!(%digest, %ip, "boot file refused: {e}");
            }
            return e.into_response();
        }
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
    };
    let boot = service(&app).cloned().expect("checked above");
    let fetch = Fetch {
        boot_id: record.as_ref().map(|b| b.id.clone()),
        host: record.as_ref().map(|b| b.host.clone()),
        mac: record.as_ref().map(|b| b.mac.clone()),
        ip: ip.to_string(),
        master: record.as_ref().map(|b| b.master.clone()),
        build_id: record.as_ref().and_then(|b| b.build_id.clone()),
        file: kind.as_str().to_owned(),
        digest: digest.to_string(),
        bytes: 0,
        complete: false,
    };
    let done: files::Done = Box::new(move |bytes, complete| {
        let mut fetch = fetch;
        fetch.bytes = bytes;
        fetch.complete = complete;
        let record = move || {
            // A conffs fetch that broke off gives the conffs back (the
            // host's curl retries); a whole one keeps it spent.
            if !complete && kind == FileKind::Conffs {
                if let Some(id) = &fetch.boot_id {
                    if let Err(e) = boot.records.release_conffs(id) {
                        tracing::error!("giving a conffs back: {e:#}");
                    }
                }
            }
            if let Err(e) = boot.records.fetched(&fetch) {
                tracing::error!("recording a boot file fetch: {e:#}");
            }
            tracing::info!(host = fetch.host.as_deref().unwrap_or("-"), ip = %fetch.ip, file = %fetch.file,
                bytes = fetch.bytes, complete = fetch.complete, "boot file sent");
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(record);
            }
            Err(_) => record(),
        }
    });
    let shown_name = name
        .filter(|n| vauban_core::export::is_plain_name(n))
        .unwrap_or_else(|| digest.hex().to_owned());
    let asked = if kind == FileKind::Conffs {
        files::Asked::WholeOnly
    } else {
        files::Asked::AsFile
    };
    files::respond(
        &method,
        &headers,
        file,
        &digest.to_string(),
        &shown_name,
        asked,
        done,
    )
}

/// The body of `POST /masters/{name}/deploy`: a build of the history, or
/// a tag of the store (`latest`, a date tag; pulled from `--registry` when
/// the store lacks it). Neither: the master's latest build that made boot
/// files.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The build whose boot files to deploy.
    pub build: Option<String>,
    /// The tag of `<master>/boot` to deploy.
    pub from: Option<String>,
}

/// What a deployment answer holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentsReply {
    /// The master.
    pub master: String,
    /// Its deployments, newest (the current one) first.
    pub deployments: Vec<Deployment>,
}

fn check_master(app: &App, master: &str) -> Result<()> {
    let masters = app.masters();
    if masters.iter().any(|m| m == master) || app.config.get().find(master).is_ok() {
        return Ok(());
    }
    Err(ServeError::Missing(format!(
        "no master {master:?} in config.yml; masters: {}",
        masters.join(", ")
    )))
}

/// `POST /masters/{name}/deploy`.
#[utoipa::path(post, path = "/masters/{name}/deploy",
    params(("name" = String, Path, description = "The master")),
    request_body = DeployRequest,
    responses((status = 201, body = Deployment), (status = 400, body = crate::api::ErrorBody),
        (status = 401, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody),
        (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn deploy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(master): Path<String>,
    body: std::result::Result<Json<DeployRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| ServeError::BadRequest {
        field: "body",
        message: e.body_text(),
    })?;
    check_master(&app, &master)?;
    if req.build.is_some() && req.from.is_some() {
        return Err(ServeError::BadRequest {
            field: "from",
            message: "give a build or a tag, not both".into(),
        });
    }
    let d = tokio::task::spawn_blocking(move || -> Result<Deployment> {
        let boot = service(&app)?;
        match (&req.build, &req.from) {
            (Some(b), _) => boot.deploy_build(&master, b, &caller.0, &format!("build {b}")),
            (None, Some(tag)) => boot.deploy_tag(&master, tag, &caller.0),
            (None, None) => boot.deploy_tag(&master, "latest", &caller.0),
        }
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// `POST /masters/{name}/rollback`.
#[utoipa::path(post, path = "/masters/{name}/rollback",
    params(("name" = String, Path, description = "The master")),
    responses((status = 201, body = Deployment), (status = 401, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(master): Path<String>,
) -> Result<Response> {
    check_master(&app, &master)?;
    let d = tokio::task::spawn_blocking(move || service(&app)?.rollback(&master, &caller.0))
        .await
        .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// `?limit=` of the list routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// At most this many (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// `GET /masters/{name}/deployments`.
#[utoipa::path(get, path = "/masters/{name}/deployments",
    params(("name" = String, Path, description = "The master"), LimitQuery),
    responses((status = 200, body = DeploymentsReply), (status = 400, body = crate::api::ErrorBody),
        (status = 401, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn deployments(
    State(app): State<Arc<App>>,
    Path(master): Path<String>,
    q: std::result::Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeploymentsReply>> {
    let Query(q) = q.map_err(|e| ServeError::BadRequest {
        field: "query",
        message: e.body_text(),
    })?;
    check_master(&app, &master)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let deployments = service(&app)?.records.deployments(&master, limit)?;
    Ok(Json(DeploymentsReply {
        master,
        deployments,
    }))
}

/// `GET /hosts`.
#[utoipa::path(get, path = "/hosts",
    responses((status = 200, body = HostsView), (status = 401, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn hosts(State(app): State<Arc<App>>) -> Result<Json<HostsView>> {
    let view = tokio::task::spawn_blocking(move || service(&app)?.hosts())
        .await
        .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(Json(view))
}

/// `GET /hosts/{name}`: the host's boots, newest first, each with its
/// fetches.
#[utoipa::path(get, path = "/hosts/{name}",
    params(("name" = String, Path, description = "The host"), LimitQuery),
    responses((status = 200, body = HostHistory), (status = 400, body = crate::api::ErrorBody),
        (status = 401, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn host(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    q: std::result::Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HostHistory>> {
    let Query(q) = q.map_err(|e| ServeError::BadRequest {
        field: "query",
        message: e.body_text(),
    })?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let history = tokio::task::spawn_blocking(move || -> Result<HostHistory> {
        let boot = service(&app)?;
        let view = boot.hosts()?;
        let current = view.hosts.into_iter().find(|h| h.host == name);
        let boots = boot.records.boots(Some(&name), limit)?;
        if current.is_none() && boots.is_empty() {
            return Err(ServeError::Missing(format!(
                "no host {name:?}: it is in no deployed build and never booted here"
            )));
        }
        let boots = boots
            .into_iter()
            .map(|b| {
                let fetches = boot.records.fetches(&b.id)?;
                Ok(BootWithFetches { boot: b, fetches })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HostHistory {
            drifts: boot.records.drifts(&name)?,
            host: name,
            current,
            boots,
        })
    })
    .await
    .map_err(|e| ServeError::Setup(e.to_string()))??;
    Ok(Json(history))
}

/// `GET /hosts/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostHistory {
    /// The host.
    pub host: String,
    /// Where it stands (as in `/hosts`), when a deployed build has it.
    pub current: Option<super::HostView>,
    /// Its boots, newest first.
    pub boots: Vec<BootWithFetches>,
    /// The drifts it sent, newest first (`vauban diff --drift HOST
    /// [--drift-id ID]`).
    pub drifts: Vec<super::drift::Drift>,
}

/// A boot and its fetches.
#[derive(Debug, Serialize, ToSchema)]
pub struct BootWithFetches {
    /// The boot.
    #[serde(flatten)]
    pub boot: Boot,
    /// Its file fetches, in order (`file`, `digest`, `ip`, `at`, `bytes`, `complete`).
    pub fetches: Vec<serde_json::Value>,
}
