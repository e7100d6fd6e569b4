//! The original's routes, kept so its clients (`vauban-client`) and scripts
//! keep working: `POST /build`, `GET /status/<ulid>`, `DELETE|POST
//! /delete/<ulid>`, with its status codes and payloads (`{"status": "ok" |
//! "in-progress" | "error", "message": ...}`). Its `extra-args` (free-form
//! arguments for the build) is refused: no caller's text reaches a build's
//! command line but as the value of a checked field. Its Kubernetes-only
//! fields (`vauban-image`, `no-cleanup`) are accepted and ignored.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::api::{check_id, queue};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ServeError;
use crate::live::{self, Feed, TAIL};
use crate::model::{BuildRequest, Status, Trigger};
use crate::runner::Cancelled;

fn answer(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    answer(code, json!({"status": "error", "message": message.into()}))
}

/// `POST /build`: the original's build request.
pub async fn build(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    body: bytes::Bytes,
) -> Response {
    // The original read the body as JSON whatever its content type.
    let args: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body is not a JSON object: give name, stage and optionally build-parents, branch, conffs",
            )
        }
    };
    match request_of(&args) {
        Ok(req) => match queue(&app, &req, &caller.0, Trigger::Api) {
            Ok(sub) => answer(StatusCode::OK, json!({"status": "ok", "job_ulid": sub.id})),
            Err(e @ ServeError::BadRequest { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
            Err(e) => e.into_response(),
        },
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// The request the original's fields ask for, or the message of its 400.
fn request_of(args: &serde_json::Map<String, Value>) -> Result<BuildRequest, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{key}: a string")),
        }
    };
    let required = |key: &str| -> Result<String, String> {
        text(key)?.ok_or_else(|| format!("Need some more arguments. missing: '{key}'"))
    };
    if args.contains_key("extra-args") {
        return Err(
            "extra-args is not accepted: vauban serve passes no free-form arguments to a build; \
             use the fields build-parents, branch, conffs (or POST /builds, which also takes no_cache)"
                .into(),
        );
    }
    for key in args.keys() {
        if ![
            "name",
            "stage",
            "build-parents",
            "build_parents",
            "branch",
            "conffs",
            "vauban-image",
            "no-cleanup",
        ]
        .contains(&key.as_str())
        {
            tracing::warn!("POST /build: field {key:?} ignored");
        }
    }
    // `build_parents` as `POST /builds` spells it is taken too: a caller
    // moving between the two routes must not lose it silently.
    let parents = match text("build-parents")? {
        Some(n) => Some(n),
        None => text("build_parents")?,
    };
    let build_parents = match parents {
        None => 0,
        Some(n) => n
            .trim()
            .parse()
            .map_err(|_| format!("build-parents: {n:?} is not a whole number (-1 for all)"))?,
    };
    Ok(BuildRequest {
        name: required("name")?,
        stage: required("stage")?,
        build_parents,
        conffs: text("conffs")?,
        branch: text("branch")?,
        no_cache: false,
        rebuild_stale: false,
        deploy: false,
    })
}

/// The original's `logs` object: the last lines of the log.
fn logs(app: &App, id: &str) -> Value {
    let lines = app
        .runner
        .hub
        .tail(id, TAIL)
        .unwrap_or_else(|| live::tail_of_file(&Feed::Log.file(&app.runner.dir_of(id)), TAIL));
    json!({"status": "ok", "logs": lines.join("\n")})
}

/// `GET /status/<ulid>`: 202 while queued or running, 200 when it
/// succeeded, 500 when it failed, 404 when unknown (or cancelled: the
/// original's deleted job).
pub async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let not_found = || error(StatusCode::NOT_FOUND, "Cannot find such job");
    let Ok(id) = check_id(&id) else {
        return not_found();
    };
    let build = match app.runner.history.get(&id) {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(),
        Err(e) => return e.into_response(),
    };
    let with_logs = |status: &str, message: &str| {
        json!({
            "status": status,
            "message": message,
            "logs": logs(&app, &id),
            "previous_pods_logs": [],
            "build": build,
        })
    };
    match build.status {
        Status::Queued => answer(
            StatusCode::ACCEPTED,
            json!({"status": "in-progress", "message": "Job is waiting for a free slot (queued)", "build": build}),
        ),
        Status::Running => answer(
            StatusCode::ACCEPTED,
            with_logs("in-progress", "Job is currently running"),
        ),
        Status::Succeeded => answer(
            StatusCode::OK,
            with_logs("ok", "Job is done ! Build successful"),
        ),
        Status::Failed => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            with_logs("error", "Job failed !"),
        ),
        Status::Cancelled => error(
            StatusCode::NOT_FOUND,
            "Cannot find such job (it was cancelled)",
        ),
    }
}

/// `DELETE /delete/<ulid>` (or `POST`): cancels the build; 201 when it was
/// queued or running, 200 when it was already over or unknown.
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let already = || {
        answer(
            StatusCode::OK,
            json!({"status": "ok", "message": "Already deleted !"}),
        )
    };
    let Ok(id) = check_id(&id) else {
        return already();
    };
    match app.runner.cancel(&id) {
        Ok(Cancelled::Dequeued | Cancelled::Stopping) => {
            tracing::info!(id, by = caller.0, "cancel asked (/delete)");
            answer(
                StatusCode::CREATED,
                json!({"status": "ok", "message": "Deleted !"}),
            )
        }
        Ok(Cancelled::AlreadyOver) | Err(ServeError::NotFound(_)) => already(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_originals_fields_become_a_request() {
        let r = request_of(&args(json!({"name": "web", "stage": "conffs", "build-parents": "2", "conffs": "web01", "vauban-image": "x"}))).unwrap();
        assert_eq!(
            (r.name.as_str(), r.stage.as_str(), r.build_parents),
            ("web", "conffs", 2)
        );
        assert_eq!(r.conffs.as_deref(), Some("web01"));
        let r = request_of(&args(
            json!({"name": "web", "stage": "all", "build-parents": -1}),
        ))
        .unwrap();
        assert_eq!(r.build_parents, -1);
        let r = request_of(&args(
            json!({"name": "web", "stage": "all", "build_parents": 1}),
        ))
        .unwrap();
        assert_eq!(r.build_parents, 1);
        assert_eq!(
            request_of(&args(json!({"stage": "all"}))).unwrap_err(),
            "Need some more arguments. missing: 'name'"
        );
        assert!(request_of(&args(
            json!({"name": "w", "stage": "all", "extra-args": "--no-cache; rm -rf /"})
        ))
        .unwrap_err()
        .contains("extra-args is not accepted"));
        assert!(request_of(&args(
            json!({"name": "w", "stage": "all", "build-parents": "x"})
        ))
        .unwrap_err()
        .contains("build-parents"));
    }
}
