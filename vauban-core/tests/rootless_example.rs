//! The embedder's example (`examples/embed.rs`) runs for real as an
//! unprivileged user: it imports the Debian fixture, applies a stage of the
//! test repository in the sandbox (serving as its own helper) and reads the
//! events. `cargo xtask test` builds and stages it (`$VAUBAN_EXAMPLES`).

#[path = "sandbox_common/prelude.rs"]
mod prelude;

use std::process::Command;

#[test]
fn rootless_embedder_example_imports_stages_and_reads_events() {
    prelude::unprivileged();
    let examples = std::env::var_os("VAUBAN_EXAMPLES")
        .map(std::path::PathBuf::from)
        .expect("VAUBAN_EXAMPLES names the staged examples: run through `cargo xtask test`");
    let exe = examples.join("embed");
    assert!(exe.is_file(), "{} missing", exe.display());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = Command::new(&exe)
        .arg(&store)
        .arg(prelude::fixture("debian.tar"))
        .arg(prelude::testdata().join("ansible"))
        .arg("second.yml")
        .arg("web01")
        .env_remove("VAUBAN_HELPER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "embed failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported sha256:"), "{stdout}");
    assert!(stdout.contains("started second.yml for web01"), "{stdout}");
    let built = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .unwrap();
    assert!(
        stdout.contains(&format!("finished second.yml: {built}")),
        "{stdout}"
    );
    let lines: u32 = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" lines of Ansible"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(lines > 3, "{stdout}");
    let helper = vauban_core::sandbox::Helper::at(exe);
    vauban_core::sandbox::remove_dir_all(&store, &helper).unwrap();
}

/// The `vauban build` embedder (`examples/build_fleet.rs`) builds the chain
/// and one host's conffs of the build tests' repository, rootless.
#[test]
fn rootless_build_example_plans_and_builds_one_hosts_conffs() {
    prelude::unprivileged();
    let examples = std::env::var_os("VAUBAN_EXAMPLES")
        .map(std::path::PathBuf::from)
        .expect("VAUBAN_EXAMPLES names the staged examples: run through `cargo xtask test`");
    let exe = examples.join("build_fleet");
    assert!(exe.is_file(), "{} missing", exe.display());
    let dir = tempfile::tempdir().unwrap();
    prelude::copy_dir(
        &prelude::testdata().join("build/ansible"),
        &dir.path().join("ansible"),
    );
    let tar = prelude::fixture("debian.tar");
    let sha = String::from_utf8(Command::new("sha256sum").arg(&tar).output().unwrap().stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        dir.path().join("config.yml"),
        format!(
            "configuration:\n  ansible: ansible\nbookworm:\n  name: debian-12\n  tarball: {}\n  sha256: {sha}\n  master-base:\n    stages: [base.yml]\n    master-web:\n      stages: [web.yml]\n      conffs: 'web*'\n",
            tar.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let out = Command::new(&exe)
        .arg(dir.path().join("config.yml"))
        .arg(&store)
        .arg(dir.path().join("out"))
        .arg("web02")
        .env("VAUBAN_KEYSTORE_KEY", "the example's passphrase")
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env_remove("VAUBAN_HELPER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "build_fleet failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "plan: rootfs debian-12",
        "plan: rootfs master-base",
        "plan: rootfs master-web",
        "plan: conffs master-web",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    assert!(stdout.contains("conffs-web02.tgz"), "{stdout}");
    assert!(
        dir.path().join("data/vauban-keys/hostkeys.age").is_file(),
        "the key store at its default place"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ansible: /") && l.ends_with("(not a git checkout)")),
        "{stdout}"
    );
    assert!(!stdout.contains("conffs-web01.tgz"), "{stdout}");
    assert!(stdout.contains("4 stage(s) finished"), "{stdout}");
    let helper = vauban_core::sandbox::Helper::at(exe);
    vauban_core::sandbox::remove_dir_all(&store, &helper).unwrap();
}
