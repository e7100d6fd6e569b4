//! `vauban serve` end to end, rootless, over real HTTP on 127.0.0.1: builds of
//! the build fixture (`master-base` → `master-web`, conffs `web01`, `web02`)
//! asked through `POST /builds` and the original's `POST /build`, followed
//! through `/log?follow=1`, `/events` (Server-Sent Events) and `/status`; the
//! images the server's build named are the ones the CLI reads from the same
//! store. A cancelled build and a server killed with SIGKILL mid-build leave
//! no process and nothing in the store's temp space. A failing host reaches a
//! webhook and a Sentry receiver on loopback, and `vauban remote build
//! --follow` exits non-zero. A schedule runs its master once in its minute,
//! and once when the server is back after missing two of its slots.
//! The page, in headless Chromium driven through chromedriver: sign in with
//! a token, watch a build's log arrive while it runs, its end, a screenshot.

#![cfg(feature = "rootless-tests")]

mod cli_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::{copy_dir, fixture, sha256_of, testdata, unprivileged, vauban_bin};
use serde_json::{json, Value};

const TOKEN: &str = "serve-tests-token-0123456789";

/// A server's world: config, Ansible copy, store, state, keys.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    /// The build fixture's config; `web_extra` is added to `master-web`.
    fn new(web_extra: &str) -> World {
        unprivileged();
        let dir = tempfile::tempdir().unwrap();
        let w = World { dir };
        copy_dir(&testdata().join("build/ansible"), &w.path("ansible"));
        let tar = fixture("debian.tar");
        let sha = sha256_of(&tar);
        std::fs::write(
            w.path("config.yml"),
            format!(
                "configuration:\n  ansible: ansible\n\
                 bookworm:\n  name: debian-12\n  tarball: {}\n  sha256: {sha}\n  \
                 master-base:\n    stages: [base.yml]\n    \
                 master-web:\n      stages: [web.yml]\n      conffs: 'web*'\n{web_extra}",
                tar.display()
            ),
        )
        .unwrap();
        std::fs::write(w.path("key.txt"), "a passphrase of the serve tests, long\n").unwrap();
        std::fs::write(w.path("tokens"), format!("ci {TOKEN}\n")).unwrap();
        for f in ["key.txt", "tokens"] {
            std::fs::set_permissions(w.path(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(vauban_bin());
        cmd.arg("--store")
            .arg(self.path("store"))
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("VAUBAN_STORE")
            .env_remove("VAUBAN_SERVER")
            .env_remove("VAUBAN_TOKEN")
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `vauban serve` on a free loopback port with `extra` options.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut cmd = self.cmd();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.path("config.yml"))
            .args(["--state", "state", "--token-file", "tokens"])
            .args(["--keystore", "keys/hostkeys.age", "--keystore-key-file"])
            .arg(self.path("key.txt"))
            .args(["--out", "out"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("vauban serve ended before listening:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("vauban serve: listening on ") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        let log = Arc::new(Mutex::new(seen));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Server {
            child,
            url,
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap(),
        }
    }

    /// The manifest digest the CLI reads for `name` in the store.
    fn digest(&self, name: &str) -> String {
        let out = self.cmd().args(["inspect", name]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["manifestDigest"].as_str().unwrap().to_string()
    }

    /// The processes of this user whose command line names this world.
    fn processes(&self, except: Option<u32>) -> Vec<String> {
        let me = self.dir.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if Some(pid) == except || pid == std::process::id() {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&me) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
        found
    }

    /// What is left in the store's temp space.
    fn store_tmp(&self) -> Vec<String> {
        match std::fs::read_dir(self.path("store/tmp")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A running `vauban serve`, killed when dropped.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
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
    fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (status, r.json().unwrap_or(Value::Null), location)
    }

    /// `DELETE /builds/{id}`: its status code.
    fn cancel(&self, id: &str) -> u16 {
        self.http
            .delete(format!("{}/builds/{id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Asks for a build; its id.
    fn submit(&self, body: Value) -> String {
        let (status, v, location) = self.post("/builds", &body);
        assert_eq!(status, 201, "POST /builds {body}: {v}");
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(location.as_deref(), Some(format!("/builds/{id}").as_str()));
        id
    }

    /// Waits until build `id` is over; its record.
    fn wait(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let b = self.json(&format!("/builds/{id}"));
            if !matches!(
                b["status"].as_str(),
                Some("queued" | "running" | "cancelling")
            ) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} still {}:\n{}",
                b["status"],
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until build `id`'s events name `what`.
    fn wait_for_event(&self, id: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let text = self.get(&format!("/builds/{id}/log")).text().unwrap();
            if text.contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("build {id} never showed {what:?}");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A loopback HTTP receiver recording each request's first line and body.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || {
                    if let Some(req) = read_request(&stream) {
                        record.lock().unwrap().push(req);
                    }
                    let mut s = &stream;
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    );
                });
            }
        });
        Receiver { url, seen }
    }

    /// Waits for a request whose first line holds `path`; its body.
    fn wait_for(&self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((_, body)) = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(l, _)| l.contains(path))
            {
                return body.clone();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("nothing came to {path}: {:?}", self.seen.lock().unwrap());
    }
}

/// One HTTP/1.1 request: its request line and its body (content-length).
fn read_request(stream: &std::net::TcpStream) -> Option<(String, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((
        first.trim().to_string(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

#[test]
fn builds_asked_over_http_are_followed_and_name_what_the_cli_reads() {
    let w = World::new("");
    let s = w.serve(&[]);

    // Open routes, and the rest closed without a token.
    let health = s.http.get(format!("{}/health", s.url)).send().unwrap();
    assert_eq!(health.text().unwrap(), "ok");
    let anonymous = s.http.get(format!("{}/builds", s.url)).send().unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = s
        .http
        .get(format!("{}/builds", s.url))
        .bearer_auth("serve-tests-token-9876543210")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // A master not in config.yml, a bad stage: 400 naming field and choices.
    let (status, v, _) = s.post("/builds", &json!({"name": "master-nope"}));
    assert_eq!(status, 400, "{v}");
    let text = v.to_string();
    assert!(
        text.contains("name") && text.contains("master-web"),
        "{text}"
    );
    let (status, v, _) = s.post("/builds", &json!({"name": "master-web", "stage": "kernel"}));
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("conffs"), "{v}");

    let id = s.submit(json!({"name": "master-web", "stage": "conffs", "build_parents": -1}));
    let followed = s.get(&format!("/builds/{id}/log?follow=1")).text().unwrap();
    assert!(followed.contains("conffs master-web"), "{followed}");
    let b = s.wait(&id);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    assert_eq!(b["requested_by"], "ci");
    assert_eq!(b["trigger"], "api");
    let steps = b["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {b:#}"))
    };
    for name in ["master-base", "master-web"] {
        assert_eq!(
            step(&format!("rootfs {name}"))["image"].as_str(),
            Some(w.digest(name).as_str()),
            "the server's {name} is not the store's"
        );
    }
    for host in ["web01", "web02"] {
        assert!(w
            .path(&format!("out/master-web/conffs-{host}.tgz"))
            .is_file());
    }

    // The events, replayed from the start for a late reader, then `end`.
    let events = s
        .http
        .get(format!("{}/builds/{id}/events", s.url))
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let first = events
        .find("\"step_started\"")
        .expect("no step_started event");
    assert!(events[..first].starts_with("id: 0\n"), "{events}");
    assert!(events.contains("\"step_finished\""), "{events}");
    assert!(
        events
            .trim_end()
            .ends_with("event: end\ndata: {\"status\":\"succeeded\"}"),
        "{events}"
    );

    // GET /builds lists it, newest first, filtered by master and status.
    let list = s.json("/builds?master=master-web&status=succeeded&limit=5");
    assert_eq!(list[0]["id"], id.as_str(), "{list}");

    // The original's routes: 400 for a missing field, then a cached build.
    let (status, v, _) = s.post("/build", &json!({"name": "master-web"}));
    assert_eq!((status, v["status"].as_str()), (400, Some("error")), "{v}");
    let (status, v, _) = s.post("/build", &json!({"name": "master-web", "stage": "conffs"}));
    assert_eq!(status, 200, "{v}");
    let ulid = v["job_ulid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    let (code, body) = loop {
        let r = s.get(&format!("/status/{ulid}"));
        let code = r.status().as_u16();
        let body: Value = r.json().unwrap();
        if code != 202 {
            break (code, body);
        }
        assert_eq!(body["status"], "in-progress");
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Job is done ! Build successful");
    assert_eq!(
        s.get("/status/01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .status()
            .as_u16(),
        404
    );
    // Nothing ran again: every stage row of the second build (its images)
    // came from the cache (its archives are written again), and the first
    // built what it made.
    let again = s.json(&format!("/builds/{ulid}"));
    let states = |b: &Value| -> Vec<String> {
        b["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"].as_str().unwrap().ends_with(".yml"))
            .map(|s| s["state"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        !states(&again).is_empty() && states(&again).iter().all(|s| s == "cached"),
        "{again:#}"
    );
    assert!(states(&b).iter().any(|s| s == "built"), "{b:#}");
}

#[test]
fn a_cancelled_build_leaves_no_process_and_no_temp_entry() {
    let w = World::new("");
    let s = w.serve(&[]);
    let id = s.submit(
        json!({"name": "master-web", "stage": "conffs", "build_parents": -1, "no_cache": true}),
    );
    s.wait_for_event(&id, "rootfs master-base");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.cancel(&id), 202);
    let b = s.wait(&id);
    assert_eq!(b["status"], "cancelled", "{b:#}");
    // The log says so last (not the killed step's "failed").
    let log = s.get(&format!("/builds/{id}/log")).text().unwrap();
    assert_eq!(log.lines().last(), Some("==> build cancelled"), "{log}");
    assert_eq!(w.processes(Some(s.pid())), Vec::<String>::new());
    assert_eq!(w.store_tmp(), Vec::<String>::new());
    // Cancelling again: it is over.
    assert_eq!(s.cancel(&id), 409);
}

#[test]
fn a_failing_host_reaches_the_webhook_sentry_and_remote_follow() {
    let w = World::new("");
    std::fs::write(
        w.path("ansible/host_vars/web02.yml"),
        "host_value: v2\nfail_here: true\n",
    )
    .unwrap();
    let hook = Receiver::start();
    // A second webhook named by config.yml's `notify:`.
    let configured = Receiver::start();
    let text = std::fs::read_to_string(w.path("config.yml")).unwrap();
    std::fs::write(
        w.path("config.yml"),
        text.replacen(
            "configuration:\n",
            &format!("configuration:\n  notify: {}/configured\n", configured.url),
            1,
        ),
    )
    .unwrap();
    let sentry = Receiver::start();
    let dsn = format!("{}/42", sentry.url.replace("http://", "http://publickey@"));
    let s = w.serve(&[
        "--notify",
        &format!("{}/hook", hook.url),
        "--sentry-dsn",
        &dsn,
    ]);
    let out = w
        .cmd()
        .args([
            "remote",
            "--server",
            &s.url,
            "build",
            "--name",
            "master-web",
        ])
        .args(["--stage", "conffs", "--build-parents=-1", "--follow"])
        .env("VAUBAN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("this host was asked to fail")
            || stderr.contains("this host was asked to fail"),
        "{stdout}\n{stderr}"
    );

    let list = s.json("/builds?master=master-web");
    let b = &list[0];
    assert_eq!(b["status"], "failed", "{b:#}");
    assert_eq!(b["failed_host"], "web02", "{b:#}");

    let body: Value = serde_json::from_str(&hook.wait_for("/hook")).unwrap();
    assert_eq!(body["event"], "build_failed", "{body}");
    assert_eq!(body["build"]["failed_host"], "web02", "{body}");
    assert_eq!(body["build"]["id"], b["id"], "{body}");
    let body: Value = serde_json::from_str(&configured.wait_for("/configured")).unwrap();
    assert_eq!(body["build"]["failed_host"], "web02", "{body}");

    let envelope = sentry.wait_for("/api/42/envelope/");
    assert!(
        envelope.contains("build of master-web failed") && envelope.contains("web02"),
        "{envelope}"
    );

    // A retry asks the same again, with trigger `retry`.
    let id = b["id"].as_str().unwrap();
    let out = w
        .cmd()
        .args(["remote", "--server", &s.url, "retry", id])
        .env("VAUBAN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(again, id);
    let r = s.wait(&again);
    assert_eq!(r["trigger"], "retry", "{r:#}");
    assert_eq!(r["request"], b["request"], "{r:#}");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["failed_host"], "web02", "{r:#}");
    let (status, body, _) = s.post("/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry", &json!({}));
    assert_eq!(status, 404, "{body}");
}

#[test]
fn a_server_killed_mid_build_marks_it_interrupted_and_stops_its_worker() {
    let w = World::new("");
    let id = {
        let s = w.serve(&[]);
        let id = s.submit(
            json!({"name": "master-web", "stage": "conffs", "build_parents": -1, "no_cache": true}),
        );
        s.wait_for_event(&id, "rootfs master-base");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.pid() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        id
    };
    // Its worker lives on in its own process group until the server is back.
    assert!(
        !w.processes(None).is_empty(),
        "the worker died with the server"
    );
    let s = w.serve(&[]);
    let b = s.json(&format!("/builds/{id}"));
    assert_eq!(b["status"], "failed", "{b:#}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{b:#}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w.processes(Some(s.pid())).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(w.processes(Some(s.pid())), Vec::<String>::new());
    assert_eq!(w.store_tmp(), Vec::<String>::new());
    assert_eq!(s.json("/builds?status=running"), json!([]));
}

#[test]
fn a_schedule_builds_its_master_once_in_its_minute() {
    let w = World::new(
        "      schedule: '* * * * *'\n      schedule_options:\n        stage: conffs\n        build_parents: -1\n",
    );
    let s = w.serve(&[]);
    // The first slot after the server starts: within two minutes.
    let deadline = Instant::now() + Duration::from_secs(150);
    let first = loop {
        let list = s.json("/builds?master=master-web");
        if let Some(b) = list.as_array().unwrap().first() {
            break b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled build:\n{}",
            s.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(first["trigger"], "schedule", "{first:#}");
    assert_eq!(first["request"]["stage"], "conffs");
    let id = first["id"].as_str().unwrap();
    let b = s.wait(id);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    // One build per slot: the builds' creation minutes are all different.
    let list = s.json("/builds?master=master-web&limit=100");
    let minutes: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["created"].as_str().unwrap()[..16].to_string())
        .collect();
    let mut unique = minutes.clone();
    unique.dedup();
    assert_eq!(minutes, unique, "two builds in one slot: {list:#}");

    // Down while two slots pass: one build when back, not one per slot.
    // Stopped well inside a minute, so that no slot fires between the
    // list read here and the server's end (a build it starts then would
    // count as a catch-up).
    let second = unix_now() % 60;
    if !(5..=45).contains(&second) {
        std::thread::sleep(Duration::from_secs((65 - second) % 60));
    }
    let list = s.json("/builds?master=master-web&limit=100");
    let known = ids_of(&list);
    drop(s);
    let back_at = (unix_now() / 60 + 2) * 60 + 2;
    std::thread::sleep(Duration::from_secs(back_at.saturating_sub(unix_now())));
    let s = w.serve(&[]);
    let catch_up = loop {
        let list = s.json("/builds?master=master-web&limit=100");
        let new: Vec<String> = ids_of(&list)
            .into_iter()
            .filter(|id| !known.contains(id))
            .collect();
        if let Some(id) = new.first() {
            break id.clone();
        }
        assert!(
            unix_now() < back_at + 40,
            "no build caught up:\n{}",
            s.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let b = s.wait(&catch_up);
    assert_eq!(b["trigger"], "schedule", "{b:#}");
    assert_eq!(b["status"], "succeeded", "{b:#}");
    // Nothing more until the next slot (checked just before it comes).
    let next_slot = (unix_now() / 60 + 1) * 60;
    std::thread::sleep(Duration::from_secs(
        next_slot.saturating_sub(unix_now() + 5),
    ));
    let list = s.json("/builds?master=master-web&limit=100");
    let new: Vec<String> = ids_of(&list)
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    assert_eq!(
        new,
        [catch_up],
        "missed slots built more than once: {list:#}"
    );
}

/// The ids of a `/builds` list.
fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// Seconds since the epoch (slots are whole minutes).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
    session: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session with a profile in `dir`.
    fn start(dir: &std::path::Path) -> Driver {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver) is installed by cargo xtask deps");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{url}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut driver = Driver {
            child,
            url,
            session: String::new(),
            http,
        };
        let profile = dir.join("chromium-profile");
        let created = driver.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())],
            }}}}),
        );
        driver.session = created["sessionId"].as_str().unwrap().to_string();
        driver
    }

    /// A WebDriver call; its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "POST" => self.http.post(url).json(&body),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let v: Value = req.send().unwrap().json().unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.session("POST", "/url", json!({ "url": url }));
    }

    /// The element `css` selects.
    fn find(&self, css: &str) -> String {
        let v = self.session(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What `script` returns in the page.
    fn eval(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.url, self.session))
                .send();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_logs_in_and_shows_a_build_live_in_chromium() {
    let w = World::new("");
    let s = w.serve(&[]);
    let id = s.submit(json!({"name": "master-web", "stage": "conffs", "build_parents": -1}));
    let browser = Driver::start(w.dir.path());

    // Not signed in: the build's page asks for the token.
    browser.go(&format!("{}/ui/builds/{id}", s.url));
    let token = browser.find("input[name=token]");
    browser.session(
        "POST",
        &format!("/element/{token}/value"),
        json!({ "text": TOKEN }),
    );
    let submit = browser.find("form[action='/login'] button[type=submit]");
    browser.session("POST", &format!("/element/{submit}/click"), json!({}));

    // Signed in, back on the build's page: its log arrives while it runs.
    let log = "var l = document.getElementById('log'); return l ? l.textContent : '';";
    let state = "var b = document.getElementById('state'); return b ? b.textContent : '';";
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen_live = false;
    loop {
        let text = browser.eval(log).as_str().unwrap_or_default().to_string();
        let running = s.json(&format!("/builds/{id}"))["status"] == "running";
        if running && text.contains("==> rootfs") {
            seen_live = true;
        }
        if browser.eval(state) == "succeeded" && text.contains("conffs master-web") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the build's end:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(seen_live, "the log never showed up while the build ran");

    // A second build, web01's value changed: its page links to what differs
    // from the one before; the master is the same, web01's image is not.
    std::fs::write(
        w.path("ansible/host_vars/web01.yml"),
        "host_value: value-of-web01-v2\n",
    )
    .unwrap();
    let second = s.submit(json!({"name": "master-web", "stage": "conffs"}));
    assert_eq!(s.wait(&second)["status"], "succeeded");
    browser.go(&format!("{}/ui/builds/{second}", s.url));
    let compare = browser.find("#compare");
    browser.session("POST", &format!("/element/{compare}/click"), json!({}));
    // The diff page loaded (a heading of its own).
    let loaded = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let h1 = browser
                .eval("var e = document.querySelector('h1'); return e ? e.textContent : document.body.textContent;")
                .as_str()
                .unwrap_or_default()
                .to_string();
            if h1.starts_with(what) {
                return h1;
            }
            assert!(Instant::now() < deadline, "no page {what:?}: {h1}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let text = |css: &str| {
        browser
            .eval(&format!(
                "var e = document.querySelector('{css}'); return e ? e.textContent : '';"
            ))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // The master (when the build made it: a conffs build may only have
    // used it), then web01's image, then web02's, which did not change.
    let heading = loaded("What differs: master-web");
    if heading != "What differs: master-web/web01" {
        assert!(
            !text("#changes").contains("host-value"),
            "{heading}: master-web's image changed with a host's value"
        );
        let web01 = browser.find("a.image[href$='image=master-web%2Fweb01']");
        browser.session("POST", &format!("/element/{web01}/click"), json!({}));
        loaded("What differs: master-web/web01");
    }
    let changes = text("#changes");
    assert!(
        changes.contains("/etc/vauban/host-value") && changes.contains("changed: content"),
        "web01's diff page: {changes}"
    );
    let patch = text("pre.patch");
    assert!(
        patch.contains("-value-of-web01") && patch.contains("+value-of-web01-v2"),
        "web01's text diff: {patch}"
    );
    let web02 = browser.find("a.image[href$='image=master-web%2Fweb02']");
    browser.session("POST", &format!("/element/{web02}/click"), json!({}));
    loaded("What differs: master-web/web02");
    let changes = text("#changes");
    assert!(
        !changes.contains("host-value"),
        "web02's image changed with web01's value: {changes}"
    );

    // A picture of it, for people reading the CI's artifacts.
    let png = browser.session("GET", "/screenshot", json!({}));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        png.as_str().unwrap(),
    )
    .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let shot = std::env::temp_dir().join("vauban-serve-build-page.png");
    std::fs::write(&shot, &png).unwrap();
    println!("screenshot of the build page: {}", shot.display());
}

#[test]
fn the_api_holds_against_schemathesis() {
    let w = World::new("");
    let s = w.serve(&[]);
    let st = std::env::var_os("VAUBAN_SCHEMATHESIS")
        .expect("VAUBAN_SCHEMATHESIS names schemathesis's `st` (cargo xtask test installs it)");
    // Bounded and seeded: the same cases on every run. Two checks are left
    // out, on purpose: `positive_data_acceptance` (a schema-valid `name` is
    // refused with 400 unless config.yml has that master) and
    // `use_after_free` (DELETE cancels a build; its record stays in the
    // history and is still served). One worker: schemathesis 4.32's coverage
    // phase is not thread-safe.
    let out = Command::new(st)
        .arg("run")
        .arg(format!("{}/openapi.json", s.url))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all"])
        .args([
            "--exclude-checks",
            "positive_data_acceptance,use_after_free",
        ])
        .args(["--max-examples", "10", "--workers", "1", "--seed", "2026"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(w.path("schemathesis.xml"))
        .current_dir(w.dir.path())
        .env("HOME", w.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    // It really ran every operation, and each of them with cases.
    let report = std::fs::read_to_string(w.path("schemathesis.xml")).unwrap();
    for operation in [
        "POST /builds",
        "GET /builds",
        "GET /builds/{id}",
        "DELETE /builds/{id}",
        "GET /builds/{id}/log",
        "GET /builds/{id}/events",
    ] {
        assert!(
            report.contains(&format!("name=\"{operation}\"")),
            "{operation} was not tested:\n{report}"
        );
    }
    assert!(
        !s.log.lock().unwrap().contains("panicked"),
        "{}",
        s.log.lock().unwrap()
    );

    // config.yml broken on disk: builds (which read it) are refused with
    // the reason, not started to fail.
    std::fs::write(w.path("config.yml"), "bookworm:\n  name: [unclosed\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body, _) =
            s.post("/builds", &json!({"name": "master-web", "stage": "conffs"}));
        if status != 201 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("config.yml cannot be used") && e.contains("YAML")),
        "{body}"
    );
}
