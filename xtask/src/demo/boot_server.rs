//! A `vauban serve` of the demo user over a store (the demo's boot-only
//! server, the boot test's build and boot server), killed when dropped, and
//! what is asked of it: `vauban remote build`, `deploy`, `hosts` as the demo
//! user with the server's token, and plain `curl` of its boot routes (no
//! token, as a booting host or a stranger).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{build::MASTER, user};
use crate::rootless::stage::Runner;
use crate::util;

/// The token shown to the server.
const TOKEN: &str = "demo-boot-token-0123456789";

/// What the server is started with.
pub struct ServerSetup<'a> {
    /// The `vauban` the demo user runs.
    pub vauban: &'a Path,
    /// The store.
    pub store: &'a Path,
    /// config.yml.
    pub config: &'a Path,
    /// The boot tree the builds write.
    pub out: &'a Path,
    /// The server's own dir (state, token file, log), the demo user's.
    pub dir: &'a Path,
    /// More `vauban serve` arguments (`--boot-only`, `--registry R`).
    pub extra: Vec<String>,
}

/// A running server.
pub struct BootServer {
    child: std::process::Child,
    /// Its loopback port.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its log.
    pub log: PathBuf,
    tokens: PathBuf,
    vauban: PathBuf,
    home: PathBuf,
    runner: Runner,
}

impl Drop for BootServer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl BootServer {
    /// Starts the server as the demo user and waits until it listens.
    pub fn start(runner: &Runner, setup: &ServerSetup<'_>) -> Result<BootServer> {
        let dir = setup.dir;
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, format!("demo {TOKEN}\n"))?;
        util::chmod(&tokens, 0o600)?;
        if let Some((_, uid, gid)) = &runner.switch_to {
            nix::unistd::chown(
                &tokens,
                Some(nix::unistd::Uid::from_raw(*uid)),
                Some(nix::unistd::Gid::from_raw(*gid)),
            )?;
        }
        let mut inner = Command::new(setup.vauban);
        inner
            .arg("--store")
            .arg(setup.store)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(setup.config)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--token-file")
            .arg(&tokens)
            .arg("--out")
            .arg(setup.out)
            .args(&setup.extra)
            .current_dir(dir);
        let mut cmd = user::as_user(runner, &inner, dir);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().context("start vauban serve")?;
        let log = dir.join("serve.log");
        let url = util::serve_url(&mut child, Some(&log))?;
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {url}"))?;
        Ok(BootServer {
            child,
            port,
            url,
            log,
            tokens,
            vauban: setup.vauban.to_owned(),
            home: dir.to_owned(),
            runner: runner.clone(),
        })
    }

    /// Runs `vauban ARGS` as the demo user in its home, without the
    /// server's arguments; its standard output.
    pub fn vauban_here(&self, args: &[&str]) -> Result<String> {
        let mut inner = Command::new(&self.vauban);
        inner.args(args).current_dir(&self.home);
        let mut cmd = user::as_user(&self.runner, &inner, &self.home);
        util::stdout_of(&mut cmd)
    }

    /// Runs `vauban ARGS --server URL --token-file F` as the demo user (the
    /// server's options before a `--` of ARGS); its standard output.
    pub fn vauban(&self, args: &[&str]) -> Result<String> {
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let mut inner = Command::new(&self.vauban);
        inner
            .args(&args[..split])
            .arg("--server")
            .arg(&self.url)
            .arg("--token-file")
            .arg(&self.tokens)
            .args(&args[split..])
            .current_dir(&self.home);
        let mut cmd = user::as_user(&self.runner, &inner, &self.home);
        util::stdout_of(&mut cmd)
    }

    /// A build of the demo's master on the server (`--deploy`: deployed
    /// when it succeeds), followed to its end; its id.
    pub fn build(&self, deploy: bool) -> Result<String> {
        let mut args = vec![
            "remote",
            "build",
            "--name",
            MASTER,
            "--stage",
            "all",
            "--build-parents",
            "-1",
        ];
        if deploy {
            args.push("--deploy");
        }
        let id = self.vauban(&args)?.trim().to_string();
        if id.len() != 26 {
            bail!("vauban remote build printed no build id: {id:?}");
        }
        self.vauban(&["remote", "log", &id, "--follow"])
            .with_context(|| format!("build {id} on the server"))?;
        Ok(id)
    }

    /// `curl` of `url` (no token): status and body.
    pub fn get(&self, url: &str) -> Result<(u16, String)> {
        let out = util::output(
            Command::new("curl")
                .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--"])
                .arg(url),
        )?;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    }

    /// `curl -X POST` of `body` to `url` with `Authorization: Bearer
    /// TOKEN`: status and body.
    pub fn post(&self, url: &str, token: &str, body: &[u8]) -> Result<(u16, String)> {
        let file = self.home.join("post-body");
        std::fs::write(&file, body).with_context(|| format!("write {}", file.display()))?;
        let out = util::output(
            Command::new("curl")
                .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
                .arg("-H")
                .arg(format!("Authorization: Bearer {token}"))
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg("--")
                .arg(url),
        )?;
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    }
}
