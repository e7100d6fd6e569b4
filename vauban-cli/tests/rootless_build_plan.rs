//! `vauban build` as a new user meets it, rootless, with real Ansible and
//! git: one commit of a branch from start to end of a build (a push during it
//! changes nothing) and one fetch; `--check` per host, and no log left by it;
//! a stale master warned about, or rebuilt with `--rebuild-stale`; `--out`
//! left consistent (a failed host's old archive, an archive of a host that
//! left the inventory, their command lines, `SHA256SUMS`); the default
//! output a line per task, `-v` Ansible's own lines.

#![cfg(feature = "rootless-tests")]

mod build_support;
mod cli_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use build_support::{events, git, pairs, ran, warnings, World};

/// The directories of `dir` (none when it is missing).
fn dirs_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `--check` of the world with `extra`, as JSON rows.
fn check(w: &World, extra: &[&str]) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut args = w.build_args(extra);
    args.push("--check".into());
    let out = w
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--check {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.as_array().cloned())
        .expect("the rows of --check");
    (rows, warnings(&out))
}

/// A row's name and status text (`cached`, `run: inventory variables`).
fn row(r: &serde_json::Value) -> (String, String) {
    let status = match r["status"]["status"].as_str().unwrap() {
        "run" => format!(
            "run: {}",
            r["status"]["changed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_owned(),
    };
    (r["name"].as_str().unwrap().to_owned(), status)
}

const CONFFS_ALL: &[&str] = &[
    "--name",
    "master-web",
    "--stage",
    "conffs",
    "--build-parents",
    "-1",
];

/// The default output shows each task and each host's result, not Ansible's
/// `--diff` nor its JSON; `-v` brings Ansible's lines back. `--check` says
/// per host whether it is cached, leaves no log directory, and sees a stale
/// master, which the build warns about (naming the fix) or, with
/// `--rebuild-stale`, rebuilds first.
#[test]
fn check_per_host_a_stale_master_and_the_default_output() {
    let w = World::new("");
    // A build as a person runs it (no --events): a line per task.
    let mut args = w.build_args(CONFFS_ALL);
    args.drain(..2); // --events json
    let out = w
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("[base.yml] Fleet file from a template: changed master-base"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.starts_with("[web.yml] The host's own value: changed ")
                && l.contains("web01")
                && l.contains("web02")
        ),
        "{stdout}"
    );
    for detail in ["--- before", "+++ after", "=> {", "PLAY RECAP"] {
        assert!(!stdout.contains(detail), "{detail:?} in:\n{stdout}");
    }
    assert!(
        stderr.contains("==> stage web.yml for web02: built"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Ansible: "),
        "no checkout in the recap: {stderr}"
    );
    // The first build makes the hosts' keys, and says so.
    assert!(
        stderr.contains("warning: new sshd host keys made for web01, web02 (none in "),
        "{stderr}"
    );
    eprintln!(
        "default output of the first build: {} lines ({} on stdout)",
        stdout.lines().count() + stderr.lines().count(),
        stdout.lines().count()
    );
    let logs_before = dirs_in(&w.path("logs"));
    assert_eq!(
        logs_before.len(),
        1,
        "one log directory per build: {logs_before:?}"
    );

    // --check of the whole chain: everything cached, each host on its row.
    let (rows, warned) = check(&w, CONFFS_ALL);
    assert!(warned.is_empty(), "{warned:?}");
    let rows: Vec<(String, String)> = rows.iter().map(row).collect();
    for wanted in [
        "debian-12",
        "master-base/base.yml:latest",
        "master-web/web.yml:latest",
        "master-web/web01",
        "master-web/web02",
    ] {
        assert!(
            rows.contains(&(wanted.to_owned(), "cached".to_owned())),
            "{wanted} not cached in {rows:?}"
        );
    }
    assert_eq!(
        dirs_in(&w.path("logs")),
        logs_before,
        "--check left a log dir"
    );

    // A variable the master reads changes: the master is stale.
    w.edit("group_vars/web.yml", "web_port: 9090\n");
    let conffs_only = ["--name", "master-web", "--stage", "conffs"];
    let (rows, warned) = check(&w, &conffs_only);
    assert!(
        warned
            .iter()
            .any(|m| m.contains("master-web") && m.contains("--build-parents 1")),
        "{warned:?}"
    );
    let rows: Vec<(String, String)> = rows.iter().map(row).collect();
    for host in ["master-web/web01", "master-web/web02"] {
        assert!(
            rows.iter()
                .any(|(n, s)| n == host && s.contains("inventory variables")),
            "{host} in {rows:?}"
        );
    }
    let (rows, _) = check(
        &w,
        &[
            "--name",
            "master-web",
            "--stage",
            "conffs",
            "--rebuild-stale",
        ],
    );
    assert!(
        rows.iter()
            .map(row)
            .any(|(n, s)| n == "master-web/web.yml:latest" && s.contains("inventory variables")),
        "{rows:?}"
    );

    // Built as it is, with the warning; then rebuilt first on request.
    let out = w.build_succeeds(&conffs_only);
    assert!(
        warnings(&out)
            .iter()
            .any(|m| m.contains("--build-parents 1")),
        "{:?}",
        warnings(&out)
    );
    assert!(
        w.conffs("web01").contains_key("etc/web.conf"),
        "on the stale master, its own file lands in every conffs"
    );
    let out = w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--rebuild-stale",
    ]);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    assert_eq!(
        ran(&out),
        pairs(&[
            ("web.yml", "master-web"),
            ("base.yml", "web01"),
            ("base.yml", "web02"),
            ("web.yml", "web01"),
            ("web.yml", "web02"),
        ])
    );
    assert!(
        !w.conffs("web01").contains_key("etc/web.conf"),
        "the rebuilt master has it"
    );

    // -v: Ansible's own lines.
    let out = w
        .cmd(&[
            "-v",
            "build",
            "--config",
            "config.yml",
            "--log-dir",
            "logs",
            "--name",
            "master-base",
            "--stage",
            "rootfs",
            "--no-cache",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[stage base.yml] TASK [Fleet file from a template]"),
        "{stdout}"
    );
}

/// After a build, `--out` holds what it made or what is still current: a
/// failed host's archive of an earlier build is removed, and so is the
/// archive of a host that left the inventory, with its command line; a
/// conffs-only build writes `SHA256SUMS`, listing what is there.
#[test]
fn out_keeps_only_what_is_current() {
    let w = World::new("");
    w.build_ok(CONFFS_ALL);
    let sums = || std::fs::read_to_string(w.path("out/SHA256SUMS")).unwrap();
    let listed = |sums: &str| -> Vec<String> {
        let mut v: Vec<String> = sums.lines().map(|l| l[66..].to_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(
        listed(&sums()),
        ["master-web/conffs-web01.tgz", "master-web/conffs-web02.tgz"]
    );

    // An archive left by an earlier build for a host the inventory no longer
    // has, with its command line and iPXE script.
    for (file, from) in [
        ("conffs-old01.tgz", "conffs-web01.tgz"),
        ("cmdline-old01", "conffs-web01.tgz"),
        ("boot-old01.ipxe", "conffs-web01.tgz"),
    ] {
        std::fs::copy(
            w.path(&format!("out/master-web/{from}")),
            w.path(&format!("out/master-web/{file}")),
        )
        .unwrap();
    }
    // web02 fails now.
    w.edit("host_vars/web02.yml", "host_value: v2\nfail_here: true\n");
    let out = w.build_fails(&["--name", "master-web", "--stage", "conffs"]);
    for gone in [
        "conffs-web02.tgz",
        "conffs-old01.tgz",
        "cmdline-old01",
        "boot-old01.ipxe",
    ] {
        assert!(
            !w.path(&format!("out/master-web/{gone}")).exists(),
            "{gone} left"
        );
    }
    assert!(w.path("out/master-web/conffs-web01.tgz").is_file());
    let warned = warnings(&out);
    assert!(
        warned
            .iter()
            .any(|m| m.contains("conffs-web02.tgz") && m.contains("failed")),
        "{warned:?}"
    );
    assert!(
        warned
            .iter()
            .any(|m| m.contains("conffs-old01.tgz") && m.contains("no longer")),
        "{warned:?}"
    );
    assert_eq!(listed(&sums()), ["master-web/conffs-web01.tgz"]);

    // web02 is fixed: its archive is back, and listed.
    w.edit("host_vars/web02.yml", "host_value: v2\n");
    w.build_ok(&["--name", "master-web", "--stage", "conffs"]);
    assert_eq!(
        listed(&sums()),
        ["master-web/conffs-web01.tgz", "master-web/conffs-web02.tgz"]
    );
}

/// A build checks each branch out once and runs every stage from that
/// commit: a push to the branch while it runs changes nothing (the hook
/// holds the first stage until the test has pushed). One fetch, one
/// worktree per branch; a rebuild with nothing changed runs nothing.
#[test]
fn a_push_during_a_build_changes_nothing() {
    let w = World::new("");
    let origin = w.path("ansible");
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-qm", "the commit the build sees"]);
    let first = git(&origin, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", origin.display());
    let trace = w.path("git-trace");
    let mut args = w.build_args(CONFFS_ALL);
    args.extend([
        "--ansible".into(),
        url.clone(),
        "--hook-pre".into(),
        "while [ ! -e go ]; do sleep 0.1; done".into(),
    ]);
    let mut child = w
        .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("GIT_TRACE", &trace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the build ended early"
        );
        let started = line.contains("\"stage_started\"");
        lines.push(line);
        if started {
            break;
        }
    }
    // The first stage waits for `go`: push a change every later stage would
    // see, were it to fetch again.
    std::fs::write(
        origin.join("group_vars/all.yml"),
        "fleet: pushed-during-the-build\n",
    )
    .unwrap();
    std::fs::write(origin.join("files/motd"), "pushed during the build\n").unwrap();
    git(&origin, &["commit", "-qam", "pushed during the build"]);
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        // Lets every checkout of the build go (there is one).
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                for wt in dirs_in(&w.path("git-cache/worktrees")) {
                    let _ =
                        std::fs::write(w.path(&format!("git-cache/worktrees/{wt}/repo/go")), "");
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let rest: Vec<String> = stdout.lines().map(|l| l.unwrap() + "\n").collect();
        let out = child.wait_with_output().unwrap();
        done.store(true, Ordering::Relaxed);
        (rest, out)
    });
    let (rest, output) = out;
    lines.extend(rest);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checkouts: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "checkout")
        .collect();
    assert_eq!(checkouts.len(), 1, "{checkouts:?}");
    assert_eq!(checkouts[0]["commit"], first.as_str());
    assert_eq!(checkouts[0]["branch"], "main");

    // Every stage of every image ran from the first commit.
    let a = w.conffs("web01");
    let imginfo = String::from_utf8_lossy(&a["imginfo"].2).into_owned();
    let pushed = git(&origin, &["rev-parse", "HEAD"]);
    assert!(imginfo.matches(first.as_str()).count() >= 4, "{imginfo}");
    assert!(!imginfo.contains(&pushed), "{imginfo}");
    assert!(
        !a.contains_key("etc/motd"),
        "the master's motd is the first commit's"
    );
    // One clone, no other fetch; one worktree.
    let count = |what: &str| {
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("built-in: git {what}")))
            .count()
    };
    assert_eq!(
        (count("clone"), count("fetch"), count("worktree add")),
        (1, 0, 1)
    );

    // The next build sees the push: one fetch, one worktree; then a build
    // with nothing changed runs no stage and again fetches once.
    std::fs::remove_file(&trace).unwrap();
    let mut again = w.build_args(CONFFS_ALL);
    again.extend(["--ansible".into(), url.clone()]);
    let run = |args: &[String]| {
        let out = w
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("GIT_TRACE", &trace)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = run(&again);
    assert!(!ran(&out).is_empty());
    assert_eq!((count("fetch"), count("worktree add")), (1, 1));
    std::fs::remove_file(&trace).unwrap();
    let out = run(&again);
    assert!(ran(&out).is_empty(), "{:?}", ran(&out));
    assert_eq!((count("fetch"), count("worktree add")), (1, 1));
    let commits: Vec<serde_json::Value> = events(&out)
        .into_iter()
        .filter(|v| v["event"] == "checkout")
        .collect();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0]["commit"], pushed.as_str());
}
