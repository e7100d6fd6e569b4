//! The JSON API: builds asked for, listed, shown, followed (their log as
//! text or Server-Sent Events, their event stream as SSE) and cancelled;
//! the masters with their schedules. Every input is checked and named when
//! wrong; a build request becomes worker arguments, never a shell line.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::auth::Caller;
use crate::db::Filter;
use crate::error::{Result, ServeError};
use crate::live::{self, Feed};
use crate::model::{Build, BuildRequest, Status, Trigger};
use crate::runner::Cancelled;

/// How many log lines a failed build shows.
pub const FAILED_TAIL: usize = 30;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// The answer to `POST /builds`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The build's id (a ULID).
    pub id: String,
    /// Where it is shown.
    pub url: String,
    /// `queued` (or the state of the build it joined).
    pub status: Status,
    /// Whether it joined an identical queued build.
    pub coalesced: bool,
}

/// Checks a build id (a ULID, 26 characters of Crockford's base 32, in
/// either case); the id as the history writes it.
pub fn check_id(id: &str) -> Result<String> {
    match ulid::Ulid::from_string(id) {
        Ok(u) => Ok(u.to_string()),
        Err(_) => Err(ServeError::NotFound(id.chars().take(64).collect())),
    }
}

/// Queues a build, as `caller` asked it with `trigger`.
pub fn queue(app: &App, req: &BuildRequest, caller: &str, trigger: Trigger) -> Result<Submitted> {
    // A worker reads config.yml from disk: a broken one would fail it.
    if let Some(e) = app.config.error() {
        return Err(ServeError::BrokenConfig(e));
    }
    req.validate(&app.masters())?;
    let sub = app.runner.submit(req, caller, trigger)?;
    let status = match sub.coalesced {
        true => app
            .runner
            .history
            .get(&sub.id)?
            .map_or(Status::Queued, |b| b.status),
        false => Status::Queued,
    };
    tracing::info!(id = %sub.id, master = %req.name, stage = %req.stage, by = caller, coalesced = sub.coalesced, "build asked");
    Ok(Submitted {
        url: app.build_url(&sub.id),
        id: sub.id,
        status,
        coalesced: sub.coalesced,
    })
}

/// Asks for a build.
#[utoipa::path(post, path = "/builds", request_body = BuildRequest,
    responses(
        (status = 201, description = "Queued (or joined an identical queued build)", body = Submitted),
        (status = 400, description = "A field is wrong: named, with the choices", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "config.yml on disk cannot be used: fix it", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn submit(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    body: std::result::Result<Json<BuildRequest>, JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| ServeError::BadRequest {
        field: "body",
        message: e.body_text(),
    })?;
    Ok(created(queue(&app, &req, &caller.0, Trigger::Api)?))
}

/// 201 with the queued build and its `Location`.
fn created(sub: Submitted) -> Response {
    let location = sub.url.clone();
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(sub),
    )
        .into_response()
}

/// The filters of `GET /builds`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this master's builds.
    pub master: Option<String>,
    /// Only builds in this state (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    /// At most this many (1 to 1000; 50 when absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Builds, newest first.
#[utoipa::path(get, path = "/builds", params(ListQuery),
    responses(
        (status = 200, body = Vec<Build>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    query: std::result::Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Build>>> {
    let Query(q) = query.map_err(|e| ServeError::BadRequest {
        field: "query",
        message: e.body_text(),
    })?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| ServeError::BadRequest {
            field: "status",
            message: format!(
                "{s:?} is not a state; one of queued, running, succeeded, failed, cancelled"
            ),
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ServeError::BadRequest {
            field: "limit",
            message: format!("{limit} is not from 1 to 1000"),
        });
    }
    let builds = app.runner.history.list(&Filter {
        master: q.master,
        status,
        limit,
    })?;
    Ok(Json(builds))
}

/// A build with its steps (and, when it failed, its last log lines).
pub fn load(app: &App, id: &str) -> Result<Build> {
    let id = check_id(id)?;
    let mut build = app
        .runner
        .history
        .get(&id)?
        .ok_or_else(|| ServeError::NotFound(id.clone()))?;
    if build.status == Status::Failed {
        build.tail = live::tail_of_file(&Feed::Log.file(&app.runner.dir_of(&id)), FAILED_TAIL);
    }
    Ok(build)
}

/// One build.
#[utoipa::path(get, path = "/builds/{id}", params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, body = Build),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Build>> {
    Ok(Json(load(&app, &id)?))
}

/// One Server-Sent Event of `/builds/{id}/events` (and of `/log` asked for
/// `text/event-stream`): `data` is one JSON event line (or log line), an
/// `end` event carries the build's final state.
#[derive(Debug, ToSchema)]
pub struct SseEvent {
    /// The line's number, for `Last-Event-ID`.
    pub id: Option<String>,
    /// `message`, or `end` for the last one.
    pub event: Option<String>,
    /// The line.
    pub data: String,
}

/// How a log is read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// `1` (or `true`): stream the log until the build ends.
    pub follow: Option<String>,
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "yes"))
}

/// A build's log: plain text (`?follow=1` streams it to the build's end),
/// or Server-Sent Events when asked with `Accept: text/event-stream`.
#[utoipa::path(get, path = "/builds/{id}/log",
    params(("id" = String, Path, description = "The build's id"), LogQuery),
    responses(
        (status = 200, description = "The log", content_type = "text/plain", body = String),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn log(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: std::result::Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = query.map_err(|e| ServeError::BadRequest {
        field: "query",
        message: e.body_text(),
    })?;
    let id = load(&app, &id)?.id;
    if wants_sse(&headers) {
        return Ok(sse(&app, id, Feed::Log, &headers).into_response());
    }
    let lines = follow(&app, id, Feed::Log, 0, truthy(q.follow.as_deref()));
    let body = lines.map(|(_, l)| Ok::<_, Infallible>(bytes::Bytes::from(l + "\n")));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A build's event stream (vauban's `--events json` lines) as Server-Sent
/// Events: from the start for a late reader (or after `Last-Event-ID`),
/// then live; an `end` event with the build's state closes it.
#[utoipa::path(get, path = "/builds/{id}/events",
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "Server-Sent Events", content_type = "text/event-stream", body = SseEvent),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = load(&app, &id)?.id;
    Ok(sse(&app, id, Feed::Events, &headers).into_response())
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

fn follow(
    app: &Arc<App>,
    id: String,
    feed: Feed,
    from: usize,
    follow: bool,
) -> impl futures_util::Stream<Item = (usize, String)> + Send + use<> {
    let dir = app.runner.dir_of(&id);
    live::lines(
        app.runner.hub.clone(),
        app.runner.clone(),
        id,
        dir,
        feed,
        from,
        follow,
    )
}

fn sse(app: &Arc<App>, id: String, feed: Feed, headers: &HeaderMap) -> impl IntoResponse + use<> {
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    let end_app = app.clone();
    let end_id = id.clone();
    let lines = follow(app, id, feed, from, true)
        .map(|(i, line)| Ok::<_, Infallible>(Event::default().id(i.to_string()).data(line)));
    let end = futures_util::stream::once(async move {
        let status = end_app
            .runner
            .history
            .get(&end_id)
            .ok()
            .flatten()
            .map_or("unknown", |b| b.status.as_str());
        Ok(Event::default()
            .event("end")
            .data(serde_json::json!({"status": status}).to_string()))
    });
    Sse::new(lines.chain(end)).keep_alive(KeepAlive::default())
}

/// The answer to a cancellation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelReply {
    /// The build.
    pub id: String,
    /// `cancelled` (it was queued) or `cancelling` (its worker is stopping).
    pub status: String,
}

/// Cancels a build: a queued one never runs; a running one's worker gets
/// SIGTERM (it stops its sandboxes and leaves no mount, process or temp
/// dir), SIGKILL if it lingers.
#[utoipa::path(delete, path = "/builds/{id}",
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "Cancelled before it ran", body = CancelReply),
        (status = 202, description = "Its worker is stopping", body = CancelReply),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The build is over", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = check_id(&id)?;
    let done = app.runner.cancel(&id)?;
    tracing::info!(id, by = caller.0, ?done, "cancel asked");
    let (code, status) = match done {
        Cancelled::Dequeued => (StatusCode::OK, "cancelled"),
        Cancelled::Stopping => (StatusCode::ACCEPTED, "cancelling"),
        Cancelled::AlreadyOver => return Err(ServeError::Over(id)),
    };
    Ok((
        code,
        Json(CancelReply {
            id,
            status: status.into(),
        }),
    )
        .into_response())
}

/// Asks again for what a failed or cancelled build asked (trigger
/// `retry`); the new build's id.
#[utoipa::path(post, path = "/builds/{id}/retry",
    params(("id" = String, Path, description = "The failed or cancelled build's id")),
    responses(
        (status = 201, description = "Queued (or joined an identical queued build)", body = Submitted),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The build did not fail and was not cancelled", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "config.yml on disk cannot be used: fix it", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn retry(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response> {
    let build = load(&app, &id)?;
    if !matches!(build.status, Status::Failed | Status::Cancelled) {
        return Err(ServeError::NotRetriable {
            id: build.id,
            status: build.status.as_str().into(),
        });
    }
    let sub = queue(&app, &build.request, &caller.0, Trigger::Retry)?;
    tracing::info!(of = %build.id, id = %sub.id, "retry asked");
    Ok(created(sub))
}

/// A master as `/masters` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MasterView {
    /// Its name (`--name`).
    pub name: String,
    /// Its parent master (none for a release).
    pub parent: Option<String>,
    /// Its release.
    pub release: String,
    /// Its stages (playbooks), in order.
    pub stages: Vec<String>,
    /// Its hosts' pattern.
    pub conffs: Option<String>,
    /// Its schedule (five cron fields), if any.
    pub schedule: Option<String>,
    /// The schedule in words.
    pub schedule_description: Option<String>,
    /// How the original's scheduler read the schedule differently, if it did.
    pub schedule_note: Option<String>,
    /// What a scheduled build asks for.
    pub scheduled_request: Option<BuildRequest>,
    /// The next scheduled build (RFC 3339).
    pub next_run: Option<String>,
    /// Its last finished build.
    pub last_build: Option<LastBuild>,
    /// Whether a build of it runs.
    pub running: bool,
}

/// A master's last finished build.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastBuild {
    /// Its id.
    pub id: String,
    /// How it ended.
    pub status: Status,
}

/// The masters (`GET /masters`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MastersReply {
    /// config.yml.
    pub config: String,
    /// Why config.yml on disk is not the config in use, if it is not.
    pub config_error: Option<String>,
    /// Schedules left out, and why.
    pub schedule_errors: Vec<String>,
    /// The masters, depth first in file order.
    pub masters: Vec<MasterView>,
}

/// What `/masters` shows, also for the page.
pub fn masters_view(app: &App) -> Result<MastersReply> {
    let config = app.config.get();
    let (schedules, schedule_errors) = app
        .schedules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let now = chrono::Utc::now();
    let mut masters = Vec::new();
    for m in config.masters() {
        let schedule = schedules.iter().find(|s| s.master == m.name);
        masters.push(MasterView {
            name: m.name.clone(),
            parent: m.parent.clone(),
            release: m.release.clone(),
            stages: m.stage_list().map(|s| s.to_string()).collect(),
            conffs: m.conffs.as_ref().map(|c| c.value.clone()),
            schedule: m.schedule.as_ref().map(|s| s.value.clone()),
            schedule_description: schedule.map(|s| s.describe()),
            schedule_note: schedule.and_then(|s| s.note.clone()),
            scheduled_request: schedule.map(|s| s.request.clone()),
            next_run: schedule
                .and_then(|s| s.next_after(now))
                .map(crate::runner::now_at),
            last_build: app
                .runner
                .history
                .last_done(&m.name)?
                .map(|(id, status)| LastBuild { id, status }),
            running: app.runner.is_running(&m.name),
        });
    }
    Ok(MastersReply {
        config: app.config.path().display().to_string(),
        config_error: app.config.error(),
        schedule_errors,
        masters,
    })
}

/// The config's masters, their schedules, next runs and last results.
#[utoipa::path(get, path = "/masters",
    responses((status = 200, body = MastersReply), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn masters(State(app): State<Arc<App>>) -> Result<Json<MastersReply>> {
    Ok(Json(masters_view(&app)?))
}
