//! The service's one error type, and how each becomes an HTTP answer: a
//! status and a JSON body `{"error": "...", "field": "..."}` that names what
//! is at fault. Internal details (paths, SQL) are logged, not sent.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Result alias of this crate.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// Everything that can go wrong in the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A request field is wrong.
    #[error("{field}: {message}")]
    BadRequest {
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// No such build.
    #[error("no build {0}")]
    NotFound(String),
    /// No such thing (a master, a host, a deployment, a file).
    #[error("{0}")]
    Missing(String),
    /// It was there, and is no more (a spent or expired boot token).
    #[error("{0}")]
    Gone(String),
    /// Nothing to go back to, or a state that forbids the request.
    #[error("{0}")]
    Conflict(String),
    /// The image store failed.
    #[error("the image store")]
    Store(#[from] vauban_core::vauban_oci::Error),
    /// No valid token (or user header).
    #[error("authentication needed: a bearer token (Authorization: Bearer TOKEN)")]
    Unauthorized,
    /// Too many requests of this kind at once: later.
    #[error("{0}")]
    Busy(String),
    /// Too soon after the last request of this kind.
    #[error("{0}")]
    TooSoon(String),
    /// The body is larger than the route takes.
    #[error("{0}")]
    TooLarge(String),
    /// The request is refused whoever makes it.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The build is over: it cannot be cancelled.
    #[error("build {0} is over: there is nothing to cancel")]
    Over(String),
    /// Only a build that failed or was cancelled is retried.
    #[error("build {id} {status}: only a failed or cancelled build is retried")]
    NotRetriable {
        /// The build.
        id: String,
        /// Its state.
        status: String,
    },
    /// config.yml on disk cannot be used: builds (which read it) are
    /// refused until it is fixed.
    #[error(
        "config.yml cannot be used, so no build is started until it is fixed (the schedules \
         wait too): {0}"
    )]
    BrokenConfig(String),
    /// The history database failed.
    #[error("history database {path}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file of the service's state.
    #[error("{op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// config.yml cannot be read (the core's error of loading it).
    #[error(transparent)]
    Config(#[from] vauban_core::Error),
    /// The token file is malformed.
    #[error(
        "{path}:{line}: expected `NAME TOKEN` (a name, a space, a token of 16 characters or more)"
    )]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A schedule of config.yml is not a cron expression.
    #[error("master {master}: schedule {schedule:?}: {message}")]
    Schedule {
        /// The master.
        master: String,
        /// Its schedule.
        schedule: String,
        /// Why.
        message: String,
    },
    /// The server cannot start as asked.
    #[error("{0}")]
    Setup(String),
    /// The listen address cannot be used.
    #[error("listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ServeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ServeError::NotFound(_) | ServeError::Missing(_) => StatusCode::NOT_FOUND,
            ServeError::Gone(_) => StatusCode::GONE,
            ServeError::Conflict(_) => StatusCode::CONFLICT,
            ServeError::Unauthorized => StatusCode::UNAUTHORIZED,
            ServeError::Over(_) | ServeError::NotRetriable { .. } => StatusCode::CONFLICT,
            ServeError::BrokenConfig(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::TooSoon(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ServeError::BadRequest { field, message } => {
                serde_json::json!({"error": message, "field": field})
            }
            e if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!("{e:#}");
                serde_json::json!({"error": "internal error: see the server's log"})
            }
            e => serde_json::json!({"error": e.to_string()}),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"vauban\""),
            );
        }
        resp
    }
}
