//! A throwaway `docker-registry` (Debian's distribution 2.8) on a free
//! 127.0.0.1 port with its own storage dir, stopped when dropped; shared by the
//! bench and the demo. Also what a registry holds: its catalog (read over plain
//! HTTP on loopback) and the tags of a repository (`skopeo list-tags`).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The temp dir of [`Registry::start_temp`], removed after the registry stops.
    _dir: Option<tempfile::TempDir>,
}

/// The registry's config: plain HTTP on `addr`, filesystem storage in `dir`.
pub fn config(addr: &str, storage: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        storage.display()
    )
}

impl Registry {
    /// Starts one in `dir` (its storage and config live there) and waits until
    /// it accepts connections.
    pub fn start(dir: &Path) -> Result<Registry> {
        let port = crate::util::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).with_context(|| format!("mkdir {}", storage.display()))?;
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config(&addr, &storage))
            .with_context(|| format!("write {}", config_path.display()))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start docker-registry (package docker-registry: cargo xtask deps)")?;
        let mut registry = Registry {
            child,
            addr,
            _dir: None,
        };
        crate::util::wait_listening(
            &mut registry.child,
            port,
            "docker-registry",
            Duration::from_secs(15),
        )?;
        Ok(registry)
    }

    /// Starts one whose config and storage live in a fresh temp dir, removed
    /// when the registry is dropped.
    pub fn start_temp() -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("vauban-registry.")
            .tempdir()
            .context("create a temp dir for the registry")?;
        let mut registry = Registry::start(dir.path())?;
        registry._dir = Some(dir);
        Ok(registry)
    }

    /// The repositories the registry holds (`GET /v2/_catalog`), sorted.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let body = http_get(&self.addr, "/v2/_catalog?n=1000")?;
        parse_catalog(&body)
    }

    /// `skopeo list-tags` of one repository of this registry.
    pub fn list_tags(&self, repository: &str) -> Command {
        list_tags_command(&self.addr, repository)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo list-tags --tls-verify=false docker://ADDR/REPOSITORY`.
pub fn list_tags_command(addr: &str, repository: &str) -> Command {
    let mut cmd = Command::new("skopeo");
    cmd.args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{addr}/{repository}"));
    cmd
}

/// The repository names of a `/v2/_catalog` answer, sorted.
pub fn parse_catalog(body: &str) -> Result<Vec<String>> {
    let value: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("catalog is not JSON: {body}"))?;
    let list = value["repositories"]
        .as_array()
        .with_context(|| format!("catalog without `repositories`: {body}"))?;
    let mut names: Vec<String> = list
        .iter()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// The body of an HTTP/1.0 GET of `path` on `addr` (loopback, plain HTTP);
/// fails on a status other than 200.
fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .with_context(|| format!("send GET {path} to {addr}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .with_context(|| format!("read GET {path} from {addr}"))?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path}: no HTTP header in {answer:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        bail!("GET http://{addr}{path}: {status}");
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util;

    #[test]
    fn config_listens_on_loopback_with_local_storage() {
        let c = config("127.0.0.1:5999", Path::new("/s/storage"));
        assert!(c.contains("addr: 127.0.0.1:5999"));
        assert!(c.contains("rootdirectory: /s/storage"));
        assert!(!c.contains("auth"));
    }

    #[test]
    fn tags_are_listed_over_plain_http() {
        assert_eq!(
            util::display(&list_tags_command("127.0.0.1:5999", "vauban/master-web")),
            "skopeo list-tags --tls-verify=false docker://127.0.0.1:5999/vauban/master-web"
        );
    }

    #[test]
    fn a_temp_registry_answers_on_loopback_and_cleans_up() {
        let registry = Registry::start_temp().unwrap();
        assert!(registry.addr.starts_with("127.0.0.1:"), "{}", registry.addr);
        assert_eq!(registry.repositories().unwrap(), Vec::<String>::new());
        let dir = registry._dir.as_ref().unwrap().path().to_owned();
        assert!(dir.join("config.yml").is_file());
        let addr = registry.addr.clone();
        drop(registry);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(TcpStream::connect(&addr).is_err(), "{addr} still answers");
    }

    #[test]
    fn the_catalog_is_read_sorted() {
        let body = r#"{"repositories":["vauban/master-web","vauban/master-base"]}"#;
        assert_eq!(
            parse_catalog(body).unwrap(),
            ["vauban/master-base", "vauban/master-web"]
        );
        assert!(parse_catalog("{}").is_err());
        assert!(parse_catalog("<html>").is_err());
    }
}
