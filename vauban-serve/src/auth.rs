//! Who is asking. A caller shows a bearer token of `--token-file` (one
//! `NAME TOKEN` a line; the name is who asked), in `Authorization: Bearer`
//! or in the `vauban_token` cookie the login form sets; or, behind a trusted
//! proxy, `--user-header` names the user. Tokens are compared in constant
//! time over their SHA-256 (one comparison per known token, whatever
//! matches). Every route needs a caller but `/health`, `/readiness`,
//! `/metrics` and the login form itself.
//!
//! A state-changing request authenticated by the cookie must come from the
//! page itself: its `Origin` (when sent) names this server, and the cookie
//! is `SameSite=Strict`, so another site cannot make a browser cancel or
//! start a build.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Result, ServeError};

/// The cookie the login form sets.
pub const COOKIE: &str = "vauban_token";

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Routes anyone may call.
const OPEN: [&str; 5] = [
    "/health",
    "/readiness",
    "/metrics",
    "/login",
    "/ui/style.css",
];

/// One caller's token.
#[derive(Clone)]
struct Token {
    name: String,
    hash: [u8; 32],
}

/// The known tokens, re-read when their file changes.
#[derive(Default)]
pub struct Tokens {
    path: Option<PathBuf>,
    loaded: RwLock<(Option<SystemTime>, Vec<Token>)>,
}

impl Tokens {
    /// The tokens of `path` (none: only `--user-header` callers).
    pub fn load(path: Option<&Path>) -> Result<Tokens> {
        let tokens = Tokens {
            path: path.map(Path::to_owned),
            loaded: RwLock::default(),
        };
        tokens.reload()?;
        Ok(tokens)
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .len()
    }

    /// Whether no token is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file when it changed; a malformed file keeps the tokens
    /// read before (the error says why).
    pub fn reload(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let meta = std::fs::metadata(path).map_err(|e| ServeError::io("read", path, e))?;
        let mtime = meta.modified().ok();
        if mtime.is_some() && self.loaded.read().unwrap_or_else(|e| e.into_inner()).0 == mtime {
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{}: readable by others (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::io("read", path, e))?;
        let tokens = parse(&text, path)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = (mtime, tokens);
        Ok(())
    }

    /// The name of the caller holding `token`.
    pub fn check(&self, token: &str) -> Option<String> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for t in &loaded.1 {
            if bool::from(t.hash.ct_eq(&hash)) && found.is_none() {
                found = Some(t.name.clone());
            }
        }
        found
    }
}

fn parse(text: &str, path: &Path) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || ServeError::TokenFile {
            path: path.to_owned(),
            line: i + 1,
        };
        let mut words = line.split_whitespace();
        let (Some(name), Some(token), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        if token.len() < MIN_TOKEN_LEN || !is_name(name) {
            return Err(bad());
        }
        tokens.push(Token {
            name: name.to_string(),
            hash: Sha256::digest(token.as_bytes()).into(),
        });
    }
    Ok(tokens)
}

/// Whether `name` may name a caller (printable, no spaces, 1 to 128 bytes).
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_graphic())
}

/// How callers are recognised.
pub struct Auth {
    /// The tokens.
    pub tokens: Tokens,
    /// The header a trusted proxy names the user in.
    pub user_header: Option<header::HeaderName>,
}

/// The caller of a request (an extension set by [`require`]).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Auth {
    /// The caller of a request with these headers, and whether the cookie
    /// said so.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Option<(String, bool)> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return self.tokens.check(token).map(|n| (n, false));
        }
        if let Some(h) = &self.user_header {
            if let Some(user) = headers.get(h).and_then(|v| v.to_str().ok()) {
                return is_name(user).then(|| (user.to_string(), false));
            }
        }
        let token = from_cookie_value(&cookie(headers, COOKIE)?)?;
        self.tokens.check(&token).map(|n| (n, true))
    }
}

/// A token as the cookie holds it (hex: any token fits a cookie).
pub fn cookie_value(token: &str) -> String {
    token.bytes().map(|b| format!("{b:02x}")).collect()
}

fn from_cookie_value(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The middleware: lets open routes through, names the caller of the
/// others, or answers 401 (the login page for a browser).
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    if OPEN.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some((name, by_cookie)) = auth.caller(req.headers()) else {
        let wants_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if wants_html && req.method() == Method::GET {
            return crate::page::login(
                req.uri().path(),
                None,
                axum::http::StatusCode::UNAUTHORIZED,
            );
        }
        return ServeError::Unauthorized.into_response();
    };
    if by_cookie
        && !matches!(*req.method(), Method::GET | Method::HEAD)
        && !same_origin(req.headers())
    {
        return ServeError::Forbidden("a request from another site".into()).into_response();
    }
    req.extensions_mut().insert(Caller(name));
    next.run(req).await
}

/// Whether the request's `Origin`, if any, is this server (its `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_names_callers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# ci and people\nci 0123456789abcdef0123\n\nalice  s3cr3t-s3cr3t-s3cr3t\n",
        )
        .unwrap();
        let tokens = Tokens::load(Some(&path)).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.check("0123456789abcdef0123").as_deref(), Some("ci"));
        assert_eq!(
            tokens.check("s3cr3t-s3cr3t-s3cr3t").as_deref(),
            Some("alice")
        );
        assert_eq!(tokens.check("0123456789abcdef012"), None);
        assert_eq!(tokens.check(""), None);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let path = Path::new("/etc/vauban/tokens");
        for text in ["ci short", "ci", "ci a b c", "c\u{e9} 0123456789abcdef"] {
            match parse(&format!("# x\n{text}\n"), path) {
                Err(ServeError::TokenFile { line, .. }) => assert_eq!(line, 2, "{text}"),
                Err(other) => panic!("{text}: {other}"),
                Ok(_) => panic!("{text} accepted"),
            }
        }
    }

    #[test]
    fn cookies_and_origins_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; vauban_token=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("tok"));
        assert_eq!(
            from_cookie_value(&cookie_value("a;b=c d")).as_deref(),
            Some("a;b=c d")
        );
        assert_eq!(from_cookie_value("zz"), None);
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
