//! One HTTP session with one registry: scheme discovery (`--tls-verify=false`
//! falls back to plain HTTP), Basic and Bearer auth from the `WWW-Authenticate`
//! challenge (tokens cached per scope, refreshed on a 401), retries with backoff,
//! the redirect policy and error envelopes turned into typed errors.
//!
//! Built directly on `reqwest`, the HTTP stack `oci-client` uses: `oci-client`
//! hides the status, `Retry-After`, `Content-Range` and redirect decisions this
//! module needs (see `registry/mod.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::auth::Credentials;
use super::challenge::{challenge_of, Challenge};
use super::redirect::{check_redirect, is_loopback_registry};
use super::retry::{is_retryable_status, is_retryable_transport, retry_after, RetryPolicy};
use crate::error::{Error, Result, Unreachable};

/// Largest error body or token answer we read.
const MAX_SMALL_BODY: usize = 1 << 20;

/// How requests are authorised, learned from the registry's challenge.
#[derive(Debug, Clone)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// Token per space-joined scope list.
        tokens: HashMap<String, String>,
    },
}

/// The registry's error envelope `{"errors":[{"code","message"}]}` as one line.
fn describe_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.trim().to_string()
}

/// Reads at most [`MAX_SMALL_BODY`] bytes of a response.
pub(crate) async fn small_body(resp: Response) -> Vec<u8> {
    let mut out = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() >= MAX_SMALL_BODY {
            break;
        }
    }
    out
}

/// Reads a whole body of at most `limit` bytes (a manifest), failing on a
/// transport error or an oversized body.
pub(crate) async fn read_capped(
    session: &Session,
    what: &str,
    resp: Response,
    limit: u64,
) -> Result<Vec<u8>> {
    let url = resp.url().clone();
    if let Some(n) = resp.content_length().filter(|n| *n > limit) {
        return Err(Error::TooLarge {
            what: what.to_string(),
            size: n,
            limit,
        });
    }
    let mut out = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| session.transport_error(&url, e))?
    {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                size: out.len() as u64,
                limit,
            });
        }
    }
    Ok(out)
}

/// One registry session (cheap to share behind an `Arc`).
pub struct Session {
    http: reqwest::Client,
    base: Url,
    registry: String,
    creds: Option<Credentials>,
    auth: Mutex<AuthMode>,
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

/// What a transport error means for the user, read from its causes.
pub(crate) fn classify(e: &reqwest::Error) -> Unreachable {
    if e.is_timeout() {
        return Unreachable::Timeout;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut texts = String::new();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Unreachable::Refused,
                std::io::ErrorKind::TimedOut => return Unreachable::Timeout,
                _ => {}
            }
        }
        texts.push_str(&err.to_string());
        texts.push('\n');
        cur = err.source();
    }
    if texts.contains("InvalidContentType") || texts.contains("corrupt message") {
        Unreachable::PlainHttp
    } else if texts.contains("dns error") || texts.contains("failed to lookup address") {
        Unreachable::Dns
    } else if texts.contains("certificate") || texts.contains("tls") || texts.contains("TLS") {
        Unreachable::Tls
    } else {
        Unreachable::Other
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
                let challenge = challenge_of(resp.headers());
                let mode = match challenge {
                    Some(Challenge::Basic) => AuthMode::Basic,
                    Some(Challenge::Bearer { realm, service }) => AuthMode::Bearer {
                        realm,
                        service,
                        tokens: HashMap::new(),
                    },
                    None => {
                        return Err(Error::Registry {
                            registry: self.registry.clone(),
                            message: "answered 401 without a usable WWW-Authenticate challenge"
                                .to_string(),
                        })
                    }
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

    /// An error for a transport failure on `url`.
    pub fn transport_error(&self, url: &Url, e: reqwest::Error) -> Error {
        if e.is_redirect() {
            return Error::RefusedRedirect {
                registry: self.registry.clone(),
                location: e.url().map(|u| u.to_string()).unwrap_or_default(),
                reason: std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string()),
            };
        }
        Error::Unreachable {
            registry: self.registry.clone(),
            url: url.to_string(),
            reason: classify(&e),
            source: Box::new(e),
        }
    }

    /// Whether a transport error is worth another try: not a refused
    /// connection to this machine (nothing listens there; waiting will not
    /// change it), nor a plain-HTTP answer to HTTPS.
    pub(crate) fn worth_retry(&self, e: &reqwest::Error) -> bool {
        if !is_retryable_transport(e) {
            return false;
        }
        match classify(e) {
            Unreachable::Refused => !is_loopback_registry(&self.registry),
            Unreachable::PlainHttp | Unreachable::Dns => false,
            _ => true,
        }
    }

    /// An error for an unexpected status, with the registry's own explanation.
    pub async fn status_error(&self, what: &str, resp: Response) -> Error {
        let status = resp.status();
        let body = small_body(resp).await;
        Error::RegistryStatus {
            registry: self.registry.clone(),
            request: what.to_string(),
            status: status.as_u16(),
            detail: describe_body(&body),
        }
    }

    fn unauthorized(&self, message: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            user: self.creds.as_ref().map(|c| c.username.clone()),
            message,
        }
    }

    /// Adds the `Authorization` header for `scope`, fetching a token if needed.
    /// Returns the request and the bearer token it carries, if any.
    async fn authorize(
        &self,
        rb: RequestBuilder,
        scope: &[String],
    ) -> Result<(RequestBuilder, Option<String>)> {
        let mode = self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match mode {
            AuthMode::Anonymous => Ok((rb, None)),
            AuthMode::Basic => Ok((
                match &self.creds {
                    Some(c) => rb.basic_auth(&c.username, Some(&c.password)),
                    None => rb,
                },
                None,
            )),
            AuthMode::Bearer {
                realm,
                service,
                tokens,
            } => {
                let key = scope.join(" ");
                let token = match tokens.get(&key) {
                    Some(t) => t.clone(),
                    None => {
                        let t = self.fetch_token(&realm, service.as_deref(), scope).await?;
                        if let AuthMode::Bearer { tokens, .. } =
                            &mut *self.auth.lock().unwrap_or_else(|p| p.into_inner())
                        {
                            tokens.insert(key, t.clone());
                        }
                        t
                    }
                };
                Ok((
                    rb.header(AUTHORIZATION, format!("Bearer {token}")),
                    Some(token),
                ))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &[String],
    ) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| Error::Registry {
            registry: self.registry.clone(),
            message: format!("bad token realm {realm:?}: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope {
                q.append_pair("scope", s);
            }
        }
        let mut rb = self.http.get(url.clone());
        if let Some(c) = &self.creds {
            rb = rb.basic_auth(&c.username, Some(&c.password));
        }
        let resp = rb.send().await.map_err(|e| self.transport_error(&url, e))?;
        let status = resp.status();
        let body = small_body(resp).await;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(format!(
                "token endpoint answered {status}: {}",
                describe_body(&body)
            )));
        }
        if !status.is_success() {
            return Err(Error::RegistryStatus {
                registry: self.registry.clone(),
                request: format!("GET token from {realm}"),
                status: status.as_u16(),
                detail: describe_body(&body),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: TokenAnswer = serde_json::from_slice(&body).map_err(|source| Error::Json {
            what: format!("token from {realm}"),
            source,
        })?;
        t.token.or(t.access_token).ok_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            message: format!("token endpoint {realm} sent no token"),
        })
    }

    /// Reacts to a 401: learns a new challenge or drops an expired token.
    /// Returns whether the request is worth sending again.
    fn on_unauthorized(&self, headers: &HeaderMap, scope: &[String], used: Option<&str>) -> bool {
        let challenge = challenge_of(headers);
        let mut auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        match (&mut *auth, challenge) {
            (AuthMode::Bearer { tokens, .. }, Some(Challenge::Bearer { .. })) => {
                // An expired or too narrow token: drop it (unless a parallel
                // request already replaced it) and try once with a fresh one.
                let key = scope.join(" ");
                if tokens.get(&key).map(String::as_str) == used {
                    tokens.remove(&key);
                }
                true
            }
            (AuthMode::Anonymous, Some(Challenge::Bearer { realm, service })) => {
                *auth = AuthMode::Bearer {
                    realm,
                    service,
                    tokens: HashMap::new(),
                };
                true
            }
            (AuthMode::Anonymous, Some(Challenge::Basic)) if self.creds.is_some() => {
                *auth = AuthMode::Basic;
                true
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        assert_eq!(describe_body(body), "BLOB_UNKNOWN blob unknown to registry");
        assert_eq!(describe_body(b"plain text"), "plain text");
    }
}
