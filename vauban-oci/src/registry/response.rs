//! A registry's answers: bodies read with a cap, its error envelope as one
//! line, and what a failed request means for the user, as a typed error.

use reqwest::{Response, Url};

use super::redirect::is_loopback_registry;
use super::retry::is_retryable_transport;
use super::session::Session;
use crate::error::{Error, Result, Unreachable};

/// Largest error body or token answer we read.
const MAX_SMALL_BODY: usize = 1 << 20;

/// The registry's error envelope `{"errors":[{"code","message"}]}` as one line.
pub(super) fn describe_body(body: &[u8]) -> String {
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

impl Session {
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
