//! One HTTP session with one registry: scheme discovery (`--tls-verify=false`
//! falls back to plain HTTP), then every request sent through
//! [`Session::send`]: authorised (`registry::authorize`), retried with backoff,
//! under our redirect policy; failures become typed errors
//! (`registry::response`).
//!
//! Built directly on `reqwest`, the HTTP stack `oci-client` uses: `oci-client`
//! hides the status, `Retry-After`, `Content-Range` and redirect decisions this
//! module needs (see `registry/mod.rs`).

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::auth::Credentials;
use super::authorize::AuthMode;
use super::challenge::challenge_of;
use super::redirect::{check_redirect, is_loopback_registry};
use super::response::{describe_body, small_body};
use super::retry::{is_retryable_status, retry_after, RetryPolicy};
use crate::error::{Error, Result, Unreachable};

/// One registry session (cheap to share behind an `Arc`).
pub struct Session {
    pub(super) http: reqwest::Client,
    base: Url,
    pub(super) registry: String,
    pub(super) creds: Option<Credentials>,
    pub(super) auth: Mutex<AuthMode>,
    retry: RetryPolicy,
}

/// The error of a connect that tried every scheme: the most telling one (a
/// status or a plain-HTTP answer beats a refused connection), naming every URL
/// tried when they were all refused.
fn connect_error(registry: &str, mut errors: Vec<Error>) -> Error {
    let refused = |e: &Error| {
        matches!(
            e,
            Error::Unreachable {
                reason: Unreachable::Refused,
                ..
            }
        )
    };
    if !errors.is_empty() && errors.iter().all(refused) {
        let urls: Vec<String> = errors
            .iter()
            .filter_map(|e| match e {
                Error::Unreachable { url, .. } => Some(url.clone()),
                _ => None,
            })
            .collect();
        if let Some(Error::Unreachable {
            registry, source, ..
        }) = errors.pop()
        {
            return Error::Unreachable {
                registry,
                url: urls.join(" and "),
                reason: Unreachable::Refused,
                source,
            };
        }
    }
    match errors.iter().position(|e| !refused(e)) {
        Some(i) => errors.swap_remove(i),
        None => errors.pop().unwrap_or_else(|| Error::Registry {
            registry: registry.to_string(),
            message: "no scheme to try".into(),
        }),
    }
}

/// A `reqwest` client with our redirect policy and TLS setting.
fn http_client(tls_verify: bool) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("too many redirects");
        }
        let from = attempt.previous().last().cloned();
        match from.map(|f| check_redirect(&f, attempt.url())) {
            Some(Err(reason)) => {
                let msg = format!("redirect to {} refused: {reason}", attempt.url());
                attempt.error(msg)
            }
            _ => attempt.follow(),
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .tls_danger_accept_invalid_certs(!tls_verify)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("vauban/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Registry {
            registry: String::new(),
            message: format!("cannot build the HTTP client: {e}"),
        })
}

impl Session {
    /// Connects to `registry` (`HOST[:PORT]`): pings `/v2/` (HTTPS; with
    /// `tls_verify == false` HTTPS without verification, then plain HTTP) and
    /// learns how it authenticates.
    pub async fn connect(
        registry: &str,
        tls_verify: bool,
        creds: Option<Credentials>,
        retry: RetryPolicy,
    ) -> Result<Session> {
        let http = http_client(tls_verify)?;
        let schemes: &[&str] = match (tls_verify, is_loopback_registry(registry)) {
            (true, _) => &["https"],
            // A loopback registry without TLS verification is nearly always plain
            // HTTP: trying it first saves a failed TLS handshake.
            (false, true) => &["http", "https"],
            (false, false) => &["https", "http"],
        };
        let mut errors: Vec<Error> = Vec::new();
        for (i, scheme) in schemes.iter().enumerate() {
            let base =
                Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| Error::Registry {
                    registry: registry.to_string(),
                    message: format!("bad registry address: {e}"),
                })?;
            let session = Session {
                http: http.clone(),
                base,
                registry: registry.to_string(),
                creds: creds.clone(),
                auth: Mutex::new(AuthMode::Anonymous),
                retry: retry.clone(),
            };
            // The probe of a scheme we may fall back from is tried once.
            let probe_retry = if i + 1 < schemes.len() {
                RetryPolicy {
                    max_attempts: 1,
                    ..retry.clone()
                }
            } else {
                retry.clone()
            };
            match session.ping(&probe_retry).await {
                Ok(()) => return Ok(session),
                Err(e @ Error::Unauthorized { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(registry, scheme, error = %e, "ping failed");
                    errors.push(e);
                }
            }
        }
        Err(connect_error(registry, errors))
    }

    async fn ping(&self, retry: &RetryPolicy) -> Result<()> {
        let url = self.url("v2/")?;
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match self.http.get(url.clone()).send().await {
                Ok(r) if is_retryable_status(r.status()) && attempt < retry.max_attempts => {
                    tokio::time::sleep(retry.delay(attempt, retry_after(r.headers()))).await;
                }
                Ok(r) => break r,
                Err(e) if self.worth_retry(&e) && attempt < retry.max_attempts => {
                    tokio::time::sleep(retry.delay(attempt, None)).await;
                }
                Err(e) => return Err(self.transport_error(&url, e)),
            }
        };
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let Some(mode) = AuthMode::asked_by(challenge_of(resp.headers())) else {
                    return Err(Error::Registry {
                        registry: self.registry.clone(),
                        message: "answered 401 without a usable WWW-Authenticate challenge"
                            .to_string(),
                    });
                };
                *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = mode;
                Ok(())
            }
            _ => Err(self.status_error("GET /v2/", resp).await),
        }
    }

    /// `HOST[:PORT]` of this registry.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The retry policy of this session.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// A URL under the registry root (`path` without a leading `/`).
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Registry {
            registry: self.registry.clone(),
            message: format!("bad URL path {path:?}: {e}"),
        })
    }

    /// Resolves an upload `Location` against `base`; refused unless it stays on
    /// this registry's scheme, host and port.
    pub fn resolve_location(&self, base: &Url, location: &str) -> Result<Url> {
        let url = base.join(location).map_err(|e| Error::Registry {
            registry: self.registry.clone(),
            message: format!("bad Location {location:?}: {e}"),
        })?;
        if url.scheme() != self.base.scheme()
            || url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(Error::RefusedRedirect {
                registry: self.registry.clone(),
                location: location.to_string(),
                reason: "an upload location must stay on the registry's host".to_string(),
            });
        }
        Ok(url)
    }

    /// Sends the request made by `build` (called again for each attempt),
    /// authorised for `scope`, retrying on transport errors and retryable
    /// statuses. A 401 that a fresh token cannot cure becomes
    /// [`Error::Unauthorized`]; any other status is returned to the caller.
    pub async fn send<F>(&self, scope: &[String], build: F) -> Result<Response>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder>,
    {
        let mut attempt = 0;
        let mut auth_retried = false;
        loop {
            attempt += 1;
            let (rb, used_token) = self.authorize(build(&self.http)?, scope).await?;
            let req = rb.build().map_err(|e| Error::Registry {
                registry: self.registry.clone(),
                message: format!("cannot build request: {e}"),
            })?;
            let url = req.url().clone();
            let method = req.method().clone();
            match self.http.execute(req).await {
                Err(e) if self.worth_retry(&e) && attempt < self.retry.max_attempts => {
                    let d = self.retry.delay(attempt, None);
                    tracing::warn!(registry = %self.registry, %method, path = url.path(), error = %e, "retrying in {d:?}");
                    tokio::time::sleep(d).await;
                }
                Err(e) => return Err(self.transport_error(&url, e)),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if !auth_retried
                        && self.on_unauthorized(resp.headers(), scope, used_token.as_deref())
                    {
                        auth_retried = true;
                        attempt -= 1;
                        continue;
                    }
                    let body = describe_body(&small_body(resp).await);
                    let sep = if body.is_empty() { "" } else { ": " };
                    return Err(self
                        .unauthorized(format!("{method} {} answered 401{sep}{body}", url.path())));
                }
                Ok(resp)
                    if is_retryable_status(resp.status()) && attempt < self.retry.max_attempts =>
                {
                    let d = self.retry.delay(attempt, retry_after(resp.headers()));
                    tracing::warn!(registry = %self.registry, %method, path = url.path(), status = %resp.status(), "retrying in {d:?}");
                    tokio::time::sleep(d).await;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }
}

/// `repository:REPO:pull` or `repository:REPO:pull,push`.
pub fn repo_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}
