//! The client of `vauban serve` (`vauban remote`): asks for builds, shows
//! them, follows their log, cancels them. Every answer that is not a
//! success becomes an error carrying the server's message.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;

use crate::api::{CancelReply, Submitted};
use crate::model::{Build, BuildRequest};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server's URL is not one.
    #[error("--server {0:?}: expected http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    /// A master or host name that cannot be one (never sent).
    #[error("{0:?} is not a master or host name (letters, digits, `.`, `_`, `-`)")]
    BadName(String),
    /// The server cannot be reached (its error follows in the chain).
    #[error("cannot reach {url}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the token, or asked for one none was given.
    #[error(
        "{url}: {}",
        if *given {
            "the server refused the token (a line of its --token-file?)"
        } else {
            "the server wants a token: give --token-file or set $VAUBAN_TOKEN"
        }
    )]
    Unauthorized {
        /// The URL.
        url: String,
        /// Whether a token was shown.
        given: bool,
    },
    /// The server answered with an error.
    #[error("{url}: {status}: {message}")]
    Refused {
        /// The URL.
        url: String,
        /// Its status.
        status: StatusCode,
        /// Its message.
        message: String,
    },
}

/// A connection to a server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `server` (`http://HOST:PORT`), showing
    /// `token`.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(server).map_err(|_| ClientError::BadUrl(server.into()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ClientError::BadUrl(server.into()));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !loopback && token.is_some() {
            tracing::warn!("{server}: the token goes in clear over http; use https");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: server.into(),
                source: e.without_url(),
            })?;
        Ok(Client {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: url.into(),
            source: e.without_url(),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                url: url.into(),
                given: self.token.is_some(),
            });
        }
        let text = resp.text().await.unwrap_or_default();
        let mut message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        if status == StatusCode::NOT_FOUND && message.trim().is_empty() {
            message = "the server has no such route (a `vauban serve --boot-only` has no \
                       builds: no build routes, no diff of builds)"
                .into();
        }
        Err(ClientError::Refused {
            url: url.into(),
            status,
            message,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        self.send(req, url)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.into(),
                source: e.without_url(),
            })
    }

    /// Asks for a build.
    pub async fn submit(&self, req: &BuildRequest) -> Result<Submitted, ClientError> {
        let url = self.url("/builds");
        self.json(self.http.post(&url).json(req), &url).await
    }

    /// Deploys `master`'s boot files of build `build`, or of tag `from`
    /// (neither: `latest`); the deployment.
    pub async fn deploy(
        &self,
        master: &str,
        build: Option<&str>,
        from: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self.url(&format!("/masters/{}/deploy", segment(master)?));
        let body = serde_json::json!({"build": build, "from": from});
        self.json(self.http.post(&url).json(&body), &url).await
    }

    /// Goes back to `master`'s deployment before the current one.
    pub async fn rollback(&self, master: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.url(&format!("/masters/{}/rollback", segment(master)?));
        self.json(self.http.post(&url), &url).await
    }

    /// `master`'s deployments, newest first.
    pub async fn deployments(&self, master: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.url(&format!("/masters/{}/deployments", segment(master)?));
        self.json(self.http.get(&url), &url).await
    }

    /// The hosts and their boots (`/hosts`), or one host's history.
    pub async fn hosts(&self, host: Option<&str>) -> Result<serde_json::Value, ClientError> {
        let url = match host {
            Some(h) => self.url(&format!("/hosts/{}", segment(h)?)),
            None => self.url("/hosts"),
        };
        self.json(self.http.get(&url), &url).await
    }

    /// A diff the server computes: `host`'s drift against what it booted
    /// (`GET /hosts/{host}/drift/diff`), or two builds (`GET /diff`, when
    /// `host` is `None`), with `query` (`format`, `exclude`, `path`,
    /// `drift`, `a`, `b`, `image`, keys repeated as needed); its text and
    /// whether the sides differ.
    pub async fn diff(
        &self,
        host: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<(Vec<u8>, bool), ClientError> {
        let url = match host {
            Some(h) => self.url(&format!("/hosts/{}/drift/diff", segment(h)?)),
            None => self.url("/diff"),
        };
        let resp = self.send(self.http.get(&url).query(query), &url).await?;
        let differs = resp
            .headers()
            .get("x-vauban-differs")
            .is_some_and(|v| v.as_bytes() == b"true");
        let body = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            source: e.without_url(),
        })?;
        Ok((body.to_vec(), differs))
    }

    /// Asks again for what failed or cancelled build `id` asked.
    pub async fn retry(&self, id: &str) -> Result<Submitted, ClientError> {
        let url = self.url(&format!("/builds/{id}/retry"));
        self.json(self.http.post(&url), &url).await
    }

    /// A build.
    pub async fn get(&self, id: &str) -> Result<Build, ClientError> {
        let url = self.url(&format!("/builds/{id}"));
        self.json(self.http.get(&url), &url).await
    }

    /// Builds, newest first.
    pub async fn list(
        &self,
        master: Option<&str>,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Build>, ClientError> {
        let url = self.url("/builds");
        let mut query = vec![("limit", limit.to_string())];
        if let Some(m) = master {
            query.push(("master", m.into()));
        }
        if let Some(s) = status {
            query.push(("status", s.into()));
        }
        self.json(self.http.get(&url).query(&query), &url).await
    }

    /// Cancels a build; what the server says it did.
    pub async fn cancel(&self, id: &str) -> Result<CancelReply, ClientError> {
        let url = self.url(&format!("/builds/{id}"));
        self.json(self.http.delete(&url), &url).await
    }

    /// A build's log, each line to `line`; with `follow`, until the build
    /// ends.
    pub async fn log(
        &self,
        id: &str,
        follow: bool,
        mut line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let url = self.url(&format!("/builds/{id}/log"));
        let query = [("follow", if follow { "1" } else { "0" })];
        let resp = self.send(self.http.get(&url).query(&query), &url).await?;
        let mut body = resp.bytes_stream();
        let mut pending = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                source: e.without_url(),
            })?;
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let rest = pending.split_off(i + 1);
                line(String::from_utf8_lossy(&pending[..i]).as_ref());
                pending = rest;
            }
        }
        if !pending.is_empty() {
            line(String::from_utf8_lossy(&pending).as_ref());
        }
        Ok(())
    }
}

/// A master or host name as one path segment (nothing that would change
/// the path: `/`, `?`, `#`, `%`, `..`).
fn segment(name: &str) -> Result<&str, ClientError> {
    if vauban_core::export::is_plain_name(name) {
        Ok(name)
    } else {
        Err(ClientError::BadName(name.into()))
    }
}
