//! The `vauban serve` rows, on the build rows' fleet: the API's overhead
//! (`POST /builds` of a fully cached build until it has succeeded, against
//! the same `vauban build` on the command line plus the 0.5 s target), and
//! the p99 latency of 200 concurrent `GET /builds/{id}` with the server idle
//! and with two builds running.
//!
//! The client is a few lines of HTTP/1.1 over `TcpStream` rather than an HTTP
//! crate: xtask is built before every task, and reqwest would add its own
//! build of hyper and rustls to each fresh `cargo xtask`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{measure, Comparison, Ctx, Sample};

/// The bench's bearer token (`bench TOKEN` in the token file).
pub const TOKEN: &str = "bench-token-0123456789abcdef";
/// Concurrent readers in the latency rows.
const READERS: usize = 200;

/// A `vauban serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Server {
    /// `vauban serve` on the fleet: its store, config, keys and boot tree.
    fn start(ctx: &Ctx, fleet: &Path) -> Result<Server> {
        let mut cmd = ctx.vauban(&fleet.join("store"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--jobs", "2"])
            .arg("--config")
            .arg(fleet.join("config.yml"))
            .arg("--keystore")
            .arg(fleet.join("hostkeys.age"))
            .arg("--out")
            .arg(fleet.join("out"))
            .env("XDG_CONFIG_HOME", fleet.join("config-home"))
            .env_remove("VAUBAN_KEYSTORE_KEY")
            .current_dir(fleet);
        Server::spawn(ctx, cmd)
    }

    /// Starts `cmd` (a `vauban … serve …` listening on `127.0.0.1:0`) with a
    /// fresh `--state` dir and a `--token-file` holding [`TOKEN`]; returns
    /// once it says where it listens, or fails with what it printed.
    pub fn spawn(ctx: &Ctx, mut cmd: Command) -> Result<Server> {
        let state = ctx.fresh_dir("serve-state")?;
        let tokens = state.join("tokens");
        std::fs::write(&tokens, format!("bench {TOKEN}\n"))?;
        crate::util::chmod(&tokens, 0o600)?;
        cmd.arg("--state")
            .arg(&state)
            .arg("--token-file")
            .arg(&tokens)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        eprintln!("  $ {}", crate::util::display(&cmd));
        let mut child = cmd.spawn().context("start vauban serve")?;
        let addr = crate::util::serve_url(&mut child, None)?
            .trim_start_matches("http://")
            .to_string();
        Ok(Server { child, addr })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One request; its status and body.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        let mut s = TcpStream::connect(&self.addr)?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut response = String::new();
        s.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no status line: {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Asks for a build; its id.
    fn submit(&self, request: &str) -> Result<String> {
        let (status, body) = self.call("POST", "/builds", Some(request))?;
        if status != 201 {
            bail!("POST /builds {request}: {status} {body}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no id in {body}"))
    }

    /// Polls build `id` every 10 ms until it is over; its final state.
    fn wait(&self, id: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let (_, body) = self.call("GET", &format!("/builds/{id}"), None)?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            match v["status"].as_str() {
                Some("queued" | "running" | "cancelling") if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Some(s) => return Ok(s.to_string()),
                None => bail!("no status in {body}"),
            }
        }
    }

    /// The p99 latency of `READERS` concurrent `GET /builds/{id}`.
    fn p99(&self, id: &str) -> Result<Duration> {
        let path = format!("/builds/{id}");
        let mut times: Vec<Duration> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS)
                .map(|_| {
                    s.spawn(|| -> Result<Duration> {
                        let started = Instant::now();
                        let (status, body) = self.call("GET", &path, None)?;
                        if status != 200 {
                            bail!("GET {path}: {status} {body}");
                        }
                        Ok(started.elapsed())
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|r| r.join().expect("a reader panicked"))
                .collect::<Result<Vec<_>>>()
        })?;
        times.sort();
        Ok(times[(times.len() * 99).div_ceil(100) - 1])
    }
}

const CACHED: &str = r#"{"name": "master-web", "stage": "conffs"}"#;

/// A fully cached build through the API against the same on the command line.
pub fn api_overhead(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let vauban = ctx.vauban.clone();
    let fleet = super::build::fleet(ctx)?;
    let cli = fleet.build(&vauban, &["--stage", "conffs"]);
    let dir = fleet.dir().to_path_buf();
    let cli = measure(ctx, &cli)?;
    let server = Server::start(ctx, &dir)?;
    let started = Instant::now();
    let id = server.submit(CACHED)?;
    let state = server.wait(&id)?;
    let api = started.elapsed();
    if state != "succeeded" {
        bail!("the cached build through the API ended {state}");
    }
    eprintln!(
        "    API {:.2}s, CLI {:.2}s: overhead {:+.2}s",
        api.as_secs_f64(),
        cli.wall.as_secs_f64(),
        api.as_secs_f64() - cli.wall.as_secs_f64()
    );
    Ok(vec![Comparison::new(
        "serve: cached build",
        Sample::wall_only(api),
        "CLI + 0.5 s",
        Sample::wall_only(cli.wall + Duration::from_millis(500)),
    )])
}

/// p99 of 200 concurrent reads, idle and with two builds running.
pub fn read_latency(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let dir = super::build::fleet(ctx)?.dir().to_path_buf();
    let server = Server::start(ctx, &dir)?;
    let id = server.submit(CACHED)?;
    server.wait(&id)?;
    let idle = server.p99(&id)?;
    // Two builds that run every stage of every host (one per master: the
    // second is the base's rootfs).
    let busy: Vec<String> = [
        r#"{"name": "master-web", "stage": "conffs", "no_cache": true}"#,
        r#"{"name": "master-base", "stage": "rootfs", "no_cache": true}"#,
    ]
    .iter()
    .map(|r| server.submit(r))
    .collect::<Result<_>>()?;
    // Measured once both run.
    std::thread::sleep(Duration::from_secs(3));
    let loaded = server.p99(&id)?;
    for id in &busy {
        let _ = server.call("DELETE", &format!("/builds/{id}"), None);
    }
    for id in &busy {
        server.wait(id)?;
    }
    eprintln!(
        "    p99 of {READERS} GET /builds/ID: {:.1} ms idle, {:.1} ms with two builds",
        idle.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3
    );
    let mut idle_row = Comparison::new(
        &format!("serve: {READERS} GET p99"),
        Sample::wall_only(idle),
        "(reported)",
        Sample::wall_only(Duration::from_millis(100)),
    );
    idle_row.checked = false;
    let mut loaded_row = Comparison::new(
        "p99, two builds",
        Sample::wall_only(loaded),
        "p99 idle",
        Sample::wall_only(idle),
    );
    loaded_row.checked = false;
    Ok(vec![idle_row, loaded_row])
}
