//! How a session's requests are authorised, learned from the registry's
//! `WWW-Authenticate` challenge: anonymously, with Basic auth, or with Bearer
//! tokens fetched from the realm with the credentials ([`super::auth`]) and
//! cached per scope, dropped and fetched again on a 401.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{RequestBuilder, StatusCode, Url};

use super::challenge::{challenge_of, Challenge};
use super::response::{describe_body, small_body};
use super::session::Session;
use crate::error::{Error, Result};

/// How requests are authorised, learned from the registry's challenge.
#[derive(Debug, Clone)]
pub(super) enum AuthMode {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// Token per space-joined scope list.
        tokens: HashMap<String, String>,
    },
}

impl AuthMode {
    /// The mode a 401's challenge asks for; None without a usable one.
    pub(super) fn asked_by(challenge: Option<Challenge>) -> Option<AuthMode> {
        match challenge? {
            Challenge::Basic => Some(AuthMode::Basic),
            Challenge::Bearer { realm, service } => Some(AuthMode::Bearer {
                realm,
                service,
                tokens: HashMap::new(),
            }),
        }
    }
}

impl Session {
    pub(super) fn unauthorized(&self, message: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            user: self.creds.as_ref().map(|c| c.username.clone()),
            message,
        }
    }

    /// Adds the `Authorization` header for `scope`, fetching a token if needed.
    /// Returns the request and the bearer token it carries, if any.
    pub(super) async fn authorize(
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
    pub(super) fn on_unauthorized(
        &self,
        headers: &HeaderMap,
        scope: &[String],
        used: Option<&str>,
    ) -> bool {
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
}
