//! `vauban build --executor slurm` on a real Slurm (the one-node cluster
//! `cargo xtask test` starts: `munged`, `slurmctld`, `slurmd` of Debian's
//! `slurm-wlm`, found with `$SLURM_CONF`), rootless, as the unprivileged
//! test user, with a real `docker-registry` on 127.0.0.1 as the exchange and
//! the tasks on a store of their own: six hosts' conffs as a three-task
//! array whose archives hold what a local build's hold; a task killed
//! mid-build retried once; SIGINT to the coordinator cancelling the array
//! and leaving nothing running.

#![cfg(feature = "rootless-tests")]

mod build_support;
mod cli_support;

#[path = "../../vauban-oci/tests/registry_common/server.rs"]
#[allow(dead_code)]
mod registry_server;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use build_support::{events, World};

/// One build on the cluster at a time: it has two CPUs.
static CLUSTER: Mutex<()> = Mutex::new(());

const HOSTS: [&str; 6] = ["web01", "web02", "web03", "web04", "web05", "web06"];

/// `$SLURM_CONF`, which the test run must give.
fn slurm_conf() -> String {
    std::env::var("SLURM_CONF").unwrap_or_else(|_| {
        panic!(
            "$SLURM_CONF is not set: these tests need the Slurm cluster `cargo xtask test` \
             starts (slurm-wlm and munge, as root)"
        )
    })
}

/// A world of six web hosts whose tasks use a store of their own.
fn world() -> World {
    let w = World::new(&format!(
        "  executor:\n    store: {}\n",
        std::env::temp_dir()
            .join(format!("vauban-slurm-tasks-{}", std::process::id()))
            .display()
    ));
    let mut inventory = String::from("master-base\n\n[web]\nmaster-web\n");
    for h in HOSTS {
        inventory.push_str(h);
        inventory.push('\n');
        w.edit(
            &format!("host_vars/{h}.yml"),
            &format!("host_value: value-of-{h}\n"),
        );
    }
    w.edit("inventory", &inventory);
    w
}

/// The entries of `DIR/master-web/conffs-HOST.tgz` but `imginfo` (it
/// names the build's time): mode, uid and content by path.
fn archive(w: &World, out: &str, host: &str) -> BTreeMap<String, (u32, u32, Vec<u8>)> {
    let file = std::fs::File::open(w.path(&format!("{out}/master-web/conffs-{host}.tgz")))
        .unwrap_or_else(|e| panic!("{out}: conffs of {host}: {e}"));
    let mut entries = cli_support::tar_listing(flate2::read::GzDecoder::new(file), |e| {
        let mode = e.header().mode().unwrap();
        let uid = e.header().uid().unwrap() as u32;
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        (mode, uid, data)
    });
    entries.remove("imginfo");
    entries
}

/// `squeue` of the test user's jobs still pending or running.
fn queued() -> String {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--me",
            "--array",
            "--states=PENDING,RUNNING,COMPLETING",
        ])
        .args(["--format=%i %T %j"])
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every test user's process whose command line holds `text`.
fn processes_with(text: &str) -> Vec<String> {
    let me = nix_uid();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        if std::os::unix::fs::MetadataExt::uid(&meta) != me || pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
}

/// One build on the cluster at a time (the guard), a world of six hosts, a
/// registry and its `HOST/vauban`.
fn setup() -> (
    std::sync::MutexGuard<'static, ()>,
    World,
    registry_server::Registry,
    String,
) {
    let one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let _ = slurm_conf();
    let w = world();
    let registry = registry_server::Registry::open();
    let reg = format!("{}/vauban", registry.host());
    (one, w, registry, reg)
}

/// The masters' rootfs, built here (the conffs is what goes to Slurm).
fn masters(w: &World, reg: &str) {
    w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "rootfs",
        "--build-parents",
        "-1",
        "--registry",
        reg,
        "--tls-verify=false",
    ]);
}

#[test]
fn six_hosts_run_as_a_three_task_array_and_hold_what_a_local_build_holds() {
    let (_one, w, _registry, reg) = setup();
    masters(&w, &reg);

    let out = w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--registry",
        &reg,
        "--tls-verify=false",
        "--executor",
        "slurm",
        "--shard-size",
        "2",
        "--out",
        "out",
    ]);
    let ev = events(&out);
    let jobs: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "job_submitted")
        .collect();
    assert_eq!(jobs.len(), 1, "one array, no retry: {jobs:?}");
    assert_eq!(jobs[0]["executor"], "slurm");
    assert_eq!(jobs[0]["tasks"], 3);
    // The tasks' own events came through: each host's stages.
    for h in HOSTS {
        assert!(
            ev.iter().any(|e| e["event"] == "step_result"
                && e["step"] == format!("conffs master-web/{h}: web.yml")),
            "no row of {h}"
        );
    }
    // The tasks ran on their own store, which the build's never was.
    let task_store =
        std::env::temp_dir().join(format!("vauban-slurm-tasks-{}", std::process::id()));
    assert!(task_store.join("index.json").exists(), "the tasks' store");

    // A local build of the same hosts: the same archives, file for file
    // (`/etc/vauban/facts` included: the local build's hosts are given the
    // first one's facts, the tasks' two hosts each gather their own).
    let local = w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--no-cache",
        "--out",
        "out-local",
    ]);
    let gathered: Vec<String> = events(&local)
        .iter()
        .filter(|e| e["event"] == "ansible_task" && e["task"] == "Gathering Facts")
        .flat_map(|e| e["results"].as_array().cloned().unwrap_or_default())
        .map(|r| r["host"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        gathered,
        [HOSTS[0]],
        "the local build gathers facts once, on its first host"
    );
    for h in HOSTS {
        let (slurm, local) = (archive(&w, "out", h), archive(&w, "out-local", h));
        assert!(
            slurm.contains_key("etc/vauban/host-value")
                && slurm.contains_key("etc/ssh/ssh_host_ed25519_key"),
            "{h}: {:?}",
            slurm.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            slurm["etc/vauban/host-value"].2,
            format!("value-of-{h}\n").as_bytes()
        );
        assert_eq!(
            slurm, local,
            "{h}: the Slurm build's archive differs from the local one's"
        );
    }
    assert!(queued().trim().is_empty(), "still queued: {}", queued());
    // The other tests of this process share the tasks' store: renamed
    // aside first, so none of them ever sees it half removed (its layer
    // dirs hold files of the subordinate ids, which this user cannot
    // remove: a half-removed layer dir, missing /bin/sh, failed the next
    // test's stages).
    let aside = task_store.with_extension("removed");
    std::fs::rename(&task_store, &aside).unwrap();
    std::fs::remove_dir_all(&aside).ok();
}

/// Starts a Slurm conffs build of `w` in the background; its stdout lines,
/// and its stderr lines after `stderr: `.
fn spawn_build(
    w: &World,
    reg: &str,
    extra: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut args = w.build_args(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--registry",
        reg,
        "--tls-verify=false",
        "--executor",
        "slurm",
        "--no-cache",
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = w
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Its standard error too (read, so it never fills its pipe), for what
    // a failure says.
    let stderr = child.stderr.take().unwrap();
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx_err.send(format!("stderr: {line}")).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a line with all of `wanted`; every line read so far.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, wanted: &[&str], seen: &mut Vec<String>) {
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                let hit = wanted.iter().all(|w| line.contains(w));
                seen.push(line);
                if hit {
                    return;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!(
                "the build ended before {wanted:?}: {e}; it said:\n{}",
                seen.join("\n")
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no {wanted:?} in 600 s:\n{}",
            seen.join("\n")
        );
    }
}

#[test]
fn a_task_killed_mid_build_is_retried_once() {
    let (_one, w, _registry, reg) = setup();
    masters(&w, &reg);
    let (mut child, rx) = spawn_build(&w, &reg, &["--shard-size", "3"]);
    let mut seen = Vec::new();
    // A task's stage is running: its Ansible speaks.
    wait_for(&rx, &["\"ansible_line\"", "web04"], &mut seen);
    // The task of web04-06 (index 1): its `vauban build`, killed outright.
    let victims: Vec<String> = processes_with("--conffs-shards")
        .into_iter()
        .filter(|p| p.contains(&w.path("config.yml").display().to_string()))
        .collect();
    assert!(!victims.is_empty(), "no task process found");
    let mut killed = 0;
    for v in &victims {
        let pid = v.split(':').next().unwrap();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if String::from_utf8_lossy(&env).contains("SLURM_ARRAY_TASK_ID=1\0") {
            let _ = Command::new("kill").args(["-9", pid]).status();
            killed += 1;
        }
    }
    assert!(killed > 0, "task 1's process not found among {victims:?}");
    let mut rest: Vec<String> = rx.iter().collect();
    seen.append(&mut rest);
    let status = child.wait().unwrap();
    let stderr: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("stderr: "))
        .collect();
    assert!(status.success(), "the build failed:\n{}", stderr.join("\n"));
    let submitted: Vec<serde_json::Value> = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "job_submitted")
        .collect();
    assert_eq!(submitted.len(), 2, "the array and one retry: {submitted:?}");
    assert_eq!(submitted[1]["retry_of"], 1);
    for h in HOSTS {
        assert_eq!(
            archive(&w, "out", h)["etc/vauban/host-value"].2,
            format!("value-of-{h}\n").as_bytes()
        );
    }
}

#[test]
fn sigint_cancels_the_array_and_leaves_nothing_running() {
    let (_one, w, _registry, reg) = setup();
    masters(&w, &reg);
    let (mut child, rx) = spawn_build(&w, &reg, &["--shard-size", "2"]);
    let mut seen = Vec::new();
    wait_for(&rx, &["\"ansible_line\""], &mut seen);
    assert!(
        !queued().trim().is_empty(),
        "nothing queued while tasks run"
    );
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    // The cleaned-up process ends the way the signal asks (a shell sees 130).
    assert!(
        status.code() == Some(130)
            || std::os::unix::process::ExitStatusExt::signal(&status) == Some(2),
        "{status}"
    );
    // Nothing of the array pending or running, no process of its tasks left.
    let config = w.path("config.yml").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = processes_with("--conffs-shards")
            .into_iter()
            .filter(|p| p.contains(&config))
            .collect();
        let queue = queued();
        if left.is_empty() && queue.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "60 s after SIGINT: queued {queue:?}, processes {left:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        cli_support::sandbox_leftovers(&w.path("store")),
        Vec::<String>::new()
    );
}

#[test]
fn a_master_and_its_child_run_in_order_then_their_conffs() {
    let (_one, w, _registry, reg) = setup();
    let out = w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
        "--registry",
        &reg,
        "--tls-verify=false",
        "--executor",
        "slurm",
        "--shard-size",
        "3",
    ]);
    let ev = events(&out);
    // Each job's name and where in the stream it was submitted; each master's
    // last row and where.
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| ev.iter().position(pred);
    let submitted = |suffix: &str| {
        at(&|e| e["event"] == "job_submitted" && e["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no job {suffix}"))
    };
    let row = |step: &str| {
        at(&|e| e["event"] == "step_result" && e["step"] == step)
            .unwrap_or_else(|| panic!("no row {step}"))
    };
    let (base_job, web_job, conffs_job) = (
        submitted("-master-base-rootfs"),
        submitted("-master-web-rootfs"),
        submitted("-master-web-conffs"),
    );
    assert!(base_job < row("rootfs master-base: base.yml"));
    assert!(
        row("rootfs master-base: base.yml") < web_job,
        "the child started before its parent ended"
    );
    assert!(row("rootfs master-web: web.yml") < conffs_job);
    // The masters came back into the build's store, and the hosts' archives.
    assert!(w.digest("master-web").starts_with("sha256:"));
    for h in HOSTS {
        assert_eq!(
            archive(&w, "out", h)["etc/vauban/host-value"].2,
            format!("value-of-{h}\n").as_bytes()
        );
    }
}
