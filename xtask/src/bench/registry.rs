//! A throwaway `docker-registry` (Debian's distribution 2.8) on a free
//! 127.0.0.1 port with its own storage dir, stopped when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("find a free loopback port")?
            .port();
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
        let mut registry = Registry { child, addr };
        let started = Instant::now();
        while TcpStream::connect(&registry.addr).is_err() {
            if let Some(status) = registry.child.try_wait()? {
                bail!("docker-registry exited early: {status}");
            }
            if started.elapsed() > Duration::from_secs(15) {
                bail!(
                    "docker-registry did not listen on {} within 15s",
                    registry.addr
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_loopback_with_local_storage() {
        let c = config("127.0.0.1:5999", Path::new("/s/storage"));
        assert!(c.contains("addr: 127.0.0.1:5999"));
        assert!(c.contains("rootdirectory: /s/storage"));
        assert!(!c.contains("auth"));
    }
}
