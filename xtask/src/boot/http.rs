//! The boot tree's HTTP server: `busybox httpd` (from `busybox-static`) in
//! the foreground on a free loopback port, stopped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::util;

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
        let port = util::free_port()?;
        let argv = httpd_argv(root, port);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start busybox httpd (apt-get install busybox-static)")?;
        let mut server = Server { child, port };
        util::wait_listening(
            &mut server.child,
            port,
            "busybox httpd",
            Duration::from_secs(10),
        )?;
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
