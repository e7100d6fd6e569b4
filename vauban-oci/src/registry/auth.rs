//! Registry credentials: `--creds USER:PASS`, `--authfile`, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json` (the order of
//! skopeo/podman), and writing them for `vauban login` (atomically, mode 0600).
//!
//! The files use the `containers-auth.json(5)` / Docker format:
//! `{"auths": {"HOST[:PORT]": {"auth": base64("USER:PASS")}}}`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::{Error, IoContext, Result};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

impl Credentials {
    /// Parses `USER:PASS` as given to `--creds`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(Error::InvalidCredentials(
                "--creds expects USER:PASSWORD".to_string(),
            )),
        }
    }

    fn from_auth_field(encoded: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        Self::parse(std::str::from_utf8(&raw).ok()?).ok()
    }

    fn to_auth_field(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }
}

/// The environment the auth-file lookup depends on (so it can be tested).
#[derive(Debug, Clone, Default)]
pub struct AuthEnv {
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl AuthEnv {
    /// Reads the variables of the current process (empty values count as unset).
    pub fn from_process() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthEnv {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            home: var("HOME"),
        }
    }

    /// The files read for credentials, in order, when no `--authfile` is given.
    pub fn search_path(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(p) = &self.registry_auth_file {
            v.push(p.clone());
        }
        if let Some(d) = &self.xdg_runtime_dir {
            v.push(d.join("containers/auth.json"));
        }
        if let Some(h) = &self.home {
            v.push(h.join(".docker/config.json"));
        }
        v
    }

    /// The file `vauban login` writes when no `--authfile` is given.
    pub fn login_file(&self) -> Result<PathBuf> {
        self.search_path().into_iter().next().ok_or_else(|| {
            Error::InvalidCredentials(
                "no auth file location: set $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR or $HOME"
                    .to_string(),
            )
        })
    }
}

/// Normalises an `auths` key (`https://host/v1/`, `host`) to `HOST[:PORT]`.
fn normalise_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Reads the credentials for `registry` from one auth file; `Ok(None)` when the
/// file does not exist or has no entry for it.
pub fn read_auth_file(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read auth file", path, e)),
    };
    let doc: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })?;
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // An exact key wins over a normalised one (`https://host/v1/`).
    let entry = auths.get(registry).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| normalise_key(k) == registry)
            .map(|(_, v)| v)
    });
    let Some(entry) = entry else { return Ok(None) };
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        return Credentials::from_auth_field(auth).map(Some).ok_or_else(|| {
            Error::InvalidCredentials(format!(
                "{}: the entry for {registry} is not base64 of USER:PASSWORD",
                path.display()
            ))
        });
    }
    match (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })),
        _ => Ok(None),
    }
}

/// Where credentials come from for one command.
#[derive(Debug, Clone, Default)]
pub struct AuthSource {
    /// `--creds USER:PASS`: wins over every file.
    pub creds: Option<Credentials>,
    /// `--authfile PATH`: the only file read when given.
    pub authfile: Option<PathBuf>,
    /// The environment for the default search path.
    pub env: AuthEnv,
}

impl AuthSource {
    /// Resolves the credentials for `registry`, or `None` for anonymous access.
    pub fn resolve(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(c) = &self.creds {
            return Ok(Some(c.clone()));
        }
        let files = match &self.authfile {
            Some(f) => vec![f.clone()],
            None => self.env.search_path(),
        };
        for f in files {
            if let Some(c) = read_auth_file(&f, registry)? {
                tracing::debug!(registry, file = %f.display(), "credentials found");
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// Stores `creds` for `registry` in the auth file at `path`, keeping its other
/// entries; written to a temp file (mode 0600) then renamed over the original.
pub fn write_auth_file(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut doc = match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str::<Value>(&t).map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(Error::io("read auth file", path, e)),
    };
    let root = doc.as_object_mut().ok_or_else(|| {
        Error::InvalidCredentials(format!("{} is not a JSON object", path.display()))
    })?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let auths = auths.as_object_mut().ok_or_else(|| {
        Error::InvalidCredentials(format!("{}: \"auths\" is not an object", path.display()))
    })?;
    auths.insert(
        registry.to_string(),
        json!({ "auth": creds.to_auth_field() }),
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at("create directory", dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth.json.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .at("create temp file in", dir)?;
    let bytes = serde_json::to_vec_pretty(&doc).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })?;
    tmp.write_all(&bytes)
        .at("write", tmp.path().to_path_buf())?;
    tmp.as_file()
        .sync_all()
        .at("fsync", tmp.path().to_path_buf())?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename auth file to", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn parse_creds() {
        assert_eq!(Credentials::parse("a:b:c").unwrap(), creds("a", "b:c"));
        assert!(Credentials::parse("nopass").is_err());
        assert!(Credentials::parse(":x").is_err());
    }

    #[test]
    fn search_order() {
        let env = AuthEnv {
            registry_auth_file: Some("/a.json".into()),
            xdg_runtime_dir: Some("/run/user/1".into()),
            home: Some("/home/u".into()),
        };
        assert_eq!(
            env.search_path(),
            vec![
                PathBuf::from("/a.json"),
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json")
            ]
        );
    }

    #[test]
    fn write_then_read_keeps_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/auth.json");
        write_auth_file(&f, "other:1", &creds("o", "p")).unwrap();
        write_auth_file(&f, "127.0.0.1:5000", &creds("u", "s3cret")).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            read_auth_file(&f, "127.0.0.1:5000").unwrap(),
            Some(creds("u", "s3cret"))
        );
        assert_eq!(
            read_auth_file(&f, "other:1").unwrap(),
            Some(creds("o", "p"))
        );
        assert_eq!(read_auth_file(&f, "nope:1").unwrap(), None);
    }

    #[test]
    fn docker_style_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"https://reg.example/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        assert_eq!(
            read_auth_file(&f, "reg.example").unwrap(),
            Some(creds("u", "p"))
        );
    }
}
