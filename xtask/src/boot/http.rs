//! The boot tree's HTTP server: `busybox httpd` (from `busybox-static`) in
//! the foreground on a free loopback port, stopped on drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running server.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The `busybox httpd` argv serving `root` on `127.0.0.1:port`.
pub fn httpd_argv(root: &Path, port: u16) -> Vec<String> {
    vec![
        "busybox".into(),
        "httpd".into(),
        "-f".into(),
        "-p".into(),
        format!("127.0.0.1:{port}"),
        "-h".into(),
        root.display().to_string(),
    ]
}

impl Server {
    /// Serves `root` on a free port; returns once the port accepts connections.
    pub fn start(root: &Path) -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let argv = httpd_argv(root, port);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start busybox httpd (apt-get install busybox-static)")?;
        let mut server = Server { child, port };
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("busybox httpd exited at start ({status})");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("busybox httpd does not listen on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn httpd_serves_the_tree_in_the_foreground_on_loopback() {
        assert_eq!(
            httpd_argv(Path::new("/out"), 8080).join(" "),
            "busybox httpd -f -p 127.0.0.1:8080 -h /out"
        );
    }
}
