//! `cargo xtask demo`: the demo fleet of `testdata/demo/` built, pushed and
//! booted. Installs what is missing, builds `vauban`, starts a throwaway
//! `docker-registry` on loopback, runs `vauban build` of `master-web` (its whole
//! chain, its conffs, its boot files) as the unprivileged demo user, lists what
//! the registry holds, then starts `vauban serve --boot-only` over the store,
//! deploys the build, PXE-boots host `web01` from it under QEMU (its
//! firmware's iPXE asks the server by MAC) and prints its marker line and
//! `vauban hosts`. The registry and the server are stopped at the end, also
//! on error.
//!
//! The demo user must read `vauban` and the demo's config and Ansible
//! repository, and write its store, boot tree and HOME: from a clone under a
//! directory it cannot traverse (`/root` is 0700), what it reads is staged in a
//! world-traversable temp dir (as `cargo xtask test` stages its binaries:
//! [`stage`]) and what it writes goes to a directory of its own under the
//! system's temp dir, kept between runs (`target/demo-*` otherwise).
//!
//! The pieces are functions of their own for tests: [`build::command`] (the
//! command line), [`run_build`], [`show_registry`], [`boot_server`], and
//! [`crate::boot::boot_firmware`] with [`check_marker`].

pub mod boot_server;
pub mod build;
pub mod disk;
pub mod e2e;
pub mod stage;
pub mod user;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::registry::Registry;
use crate::rootless::stage::Runner;
use crate::{boot, deps, rootless, util};

/// The host the demo boots.
pub const HOST: &str = "web01";
/// Its MAC (`mac:` in the demo's `host_vars/web01.yml`).
pub const DEMO_MAC: &str = "52:54:00:12:34:01";
/// What the rootfs' `/etc/fleet-release` says (`testdata/demo/ansible/group_vars/all.yml`).
pub const ROOTFS_VALUE: &str = "from-rootfs";

/// Where the demo reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `testdata/demo/config.yml` (or its staged copy).
    pub config: PathBuf,
    /// `target/demo-store`, the demo user's store.
    pub store: PathBuf,
    /// `target/demo-out`, the boot tree.
    pub out: PathBuf,
    /// `target/demo-home`, the demo user's HOME (Ansible's temp files, and
    /// whatever the build keeps per user).
    pub home: PathBuf,
}

impl Paths {
    /// The demo's paths in the workspace (`$VAUBAN_TESTDATA` for `testdata/`).
    pub fn in_workspace() -> Paths {
        let testdata = std::env::var_os("VAUBAN_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| util::workspace_root().join("testdata"));
        Paths::under(testdata.join("demo/config.yml"), &util::target_dir())
    }

    /// The config `config`, the store, boot tree and HOME as `demo-*` in `dir`.
    pub fn under(config: PathBuf, dir: &Path) -> Paths {
        Paths {
            config,
            store: dir.join("demo-store"),
            out: dir.join("demo-out"),
            home: dir.join("demo-home"),
        }
    }
}

/// Runs the task.
pub fn task(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("unknown argument {arg:?}: usage: cargo xtask demo");
    }
    deps::ensure()?;
    let started = Instant::now();
    let runner = user::runner()?;
    let vauban = rootless::build_vauban(false)?;
    let workspace = Paths::in_workspace();
    // What the demo user reads, where it can read it; what it writes, where
    // it can write.
    let staged = stage::Staged::create(&runner, &vauban, &workspace.config)?;
    let work = stage::work_dir(&runner, &util::target_dir())?;
    if work != util::target_dir() {
        println!(
            "== demo: {} is out of reach of the demo user: its store and boot tree go to {}",
            util::target_dir().display(),
            work.display()
        );
    }
    let paths = Paths::under(staged.config(), &work);
    let vauban = staged.vauban();
    for path in [&vauban, &paths.config] {
        user::check_reachable(&runner, path.parent().unwrap_or(path))?;
    }
    for dir in [&paths.store, &paths.out, &paths.home] {
        user::own_dir(&runner, dir)?;
    }

    let registry = Registry::start_temp()?;
    println!("\n== demo: registry on {}", registry.addr);
    let build = build::Build {
        vauban,
        store: paths.store.clone(),
        config: paths.config.clone(),
        master: build::MASTER.into(),
        registry: registry.addr.clone(),
        out: paths.out.clone(),
    };
    println!(
        "\n== demo: vauban build of {} as {}",
        build.master,
        who(&runner)
    );
    run_build(&runner, &build, &paths.home)?;

    println!("\n== demo: what the registry holds");
    print!("{}", show_registry(&registry, &build.repository())?);
    drop(registry);
    println!("(registry stopped)");

    println!("\n== demo: the boot tree in {}", paths.out.display());
    print!("{}", show_tree(&paths.out)?);

    println!("\n== demo: vauban serve --boot-only over the store, the build deployed");
    let serve_dir = paths.home.join("serve");
    user::own_dir(&runner, &serve_dir)?;
    let serve = boot_server::BootServer::start(
        &runner,
        &boot_server::ServerSetup {
            vauban: &build.vauban,
            store: &paths.store,
            config: &paths.config,
            out: &paths.out,
            dir: &serve_dir,
            extra: vec!["--boot-only".into()],
        },
    )?;
    println!("listening on {} (log {})", serve.url, serve.log.display());
    print!("{}", serve.vauban(&["deploy", &build.master])?);

    println!(
        "\n== demo: {HOST} PXE-boots under QEMU: its firmware's iPXE asks {}/boot/ipxe?mac=...",
        serve.url
    );
    let booted = boot::boot_firmware(
        serve.port,
        DEMO_MAC,
        HOST,
        boot::DEFAULT_MARKER,
        boot::DEFAULT_TIMEOUT,
    )?;
    check_marker(&booted.line, HOST)?;
    println!(
        "{HOST} booted, marker after {:.1} s:\n{}",
        booted.elapsed.as_secs_f64(),
        booted.line
    );
    println!("\n== demo: vauban hosts");
    print!("{}", serve.vauban(&["hosts"])?);
    drop(serve);
    println!(
        "\ndemo done in {:.0} s; store {}, boot tree {}",
        started.elapsed().as_secs_f64(),
        paths.store.display(),
        paths.out.display()
    );
    Ok(())
}

fn who(runner: &Runner) -> String {
    match &runner.switch_to {
        Some((name, uid, _)) => format!("{name} (uid {uid})"),
        None => "ourselves".into(),
    }
}

/// Runs the demo's `vauban build` as the demo user (see [`user::as_user`]),
/// in its HOME (the workspace may be out of its reach), with its output
/// shown; fails naming the command.
pub fn run_build(runner: &Runner, build: &build::Build, home: &Path) -> Result<()> {
    let mut cmd = user::as_user(runner, &build::command(build), home);
    cmd.current_dir(home);
    let started = Instant::now();
    util::run(&mut cmd).context("the demo's vauban build")?;
    println!("== build done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The registry's repositories and the tags of each (`skopeo list-tags`), as
/// text; fails when `expected` is not among them.
pub fn show_registry(registry: &Registry, expected: &str) -> Result<String> {
    let repositories = registry.repositories()?;
    if !repositories.iter().any(|r| r == expected) {
        bail!(
            "the registry {} holds no {expected}; it holds {repositories:?}",
            registry.addr
        );
    }
    let mut text = String::new();
    for repository in &repositories {
        let mut cmd = registry.list_tags(repository);
        text.push_str(&format!("$ {}\n", util::display(&cmd)));
        text.push_str(&util::output(&mut cmd)?);
    }
    Ok(text)
}

/// Every file of the tree, one line each: path relative to `root`, size.
pub fn show_tree(root: &Path) -> Result<String> {
    fn walk(root: &Path, dir: &Path, lines: &mut Vec<String>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("read dir {}", dir.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("read dir {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?;
            let name = path.strip_prefix(root).unwrap_or(&path).display();
            if meta.is_dir() {
                walk(root, &path, lines)?;
            } else if meta.is_symlink() {
                let target = std::fs::read_link(&path)?;
                lines.push(format!("  {name} -> {}", target.display()));
            } else {
                lines.push(format!("  {name}  {} bytes", meta.len()));
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines)?;
    if lines.is_empty() {
        bail!("the boot tree {} is empty", root.display());
    }
    Ok(lines.join("\n") + "\n")
}

/// Checks that a marker line proves each layer of the boot of `host`: its
/// conffs (the host's value), the rootfs (its value) and the live overlay as `/`.
pub fn check_marker(line: &str, host: &str) -> Result<()> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
    };
    let conffs = format!("conffs-of-{host}");
    if field("host") != host || field("conffs") != conffs || field("rootfs") != ROOTFS_VALUE {
        bail!("the marker line is not host={host} conffs={conffs} rootfs={ROOTFS_VALUE}: {line}");
    }
    if !field("root").contains("overlay") {
        bail!("the root is not the live overlay: {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_works_in_the_workspace_target() {
        let paths = Paths::in_workspace();
        let target = util::target_dir();
        assert_eq!(paths.store, target.join("demo-store"));
        assert_eq!(paths.out, target.join("demo-out"));
        assert!(paths.config.ends_with("testdata/demo/config.yml"));
        assert!(paths.config.is_file(), "{}", paths.config.display());
    }

    #[test]
    fn a_marker_proves_conffs_rootfs_and_the_live_root() {
        let good =
            "VAUBAN-BOOT-OK host=web01 conffs=conffs-of-web01 rootfs=from-rootfs root=LiveOS_rootfs(overlay)";
        check_marker(good, "web01").unwrap();
        for bad in [
            good.replace("conffs=conffs-of-web01", "conffs=none"),
            good.replace("host=web01", "host=web02"),
            good.replace("rootfs=from-rootfs", "rootfs=none"),
            good.replace("LiveOS_rootfs(overlay)", "/dev/sda1(ext4)"),
        ] {
            assert!(check_marker(&bad, "web01").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tree_is_listed_with_sizes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("linux")).unwrap();
        std::fs::write(dir.path().join("linux/vmlinuz-6.1"), b"kernel").unwrap();
        std::os::unix::fs::symlink("vmlinuz-6.1", dir.path().join("linux/vmlinuz-default"))
            .unwrap();
        assert_eq!(
            show_tree(dir.path()).unwrap(),
            "  linux/vmlinuz-6.1  6 bytes\n  linux/vmlinuz-default -> vmlinuz-6.1\n"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(show_tree(empty.path()).is_err());
    }
}
