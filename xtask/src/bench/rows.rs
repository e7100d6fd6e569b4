//! The benchmark rows and the resources they share (the imported image, the
//! umoci layout and bundle, the registries), each prepared on first use so a
//! row can run alone. Adding a row: one function and one [`ROWS`] entry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::{measure, measure_all, remove_all, Bench, Comparison, Ctx, Sample};
use crate::registry::Registry;
use crate::util;

/// The image every row works on.
pub const IMAGE: &str = "bench-debian:latest";
/// The same small change for `vauban run` and `buildah run`: write a file,
/// add a user, remove `/usr/share/doc`.
pub const CHANGE: &str =
    "echo bench > /etc/bench-file && useradd -m -u 2001 bench && rm -rf /usr/share/doc";

/// Every row, in the order they run.
pub const ROWS: &[Bench] = &[
    Bench {
        name: "import (tarball)",
        needs: &["import"],
        max_ratio: 0.7,
        max_rss_mib: Some(64),
        run: import_tarball,
    },
    Bench {
        name: "import (tree)",
        needs: &["import"],
        max_ratio: 0.7,
        max_rss_mib: Some(64),
        run: import_tree,
    },
    Bench {
        name: "unpack",
        needs: &["import", "unpack"],
        max_ratio: 0.7,
        max_rss_mib: Some(64),
        run: unpack,
    },
    Bench {
        name: "push",
        needs: &["import", "push"],
        max_ratio: 0.8,
        max_rss_mib: None,
        run: push,
    },
    Bench {
        name: "pull",
        needs: &["import", "push", "pull"],
        max_ratio: 0.8,
        max_rss_mib: None,
        run: pull,
    },
    Bench {
        name: "run --commit",
        needs: &["import", "run"],
        max_ratio: 0.3,
        max_rss_mib: None,
        run: run_commit,
    },
    Bench {
        name: "cost: own network",
        needs: &["import", "run"],
        max_ratio: 1.5,
        max_rss_mib: None,
        run: run_network,
    },
    Bench {
        name: "diff: two 216 MB images",
        needs: &["import", "run", "unpack", "diff"],
        max_ratio: 0.5,
        max_rss_mib: Some(64),
        run: super::diff::two_images,
    },
    Bench {
        name: "build: conffs x20",
        needs: &["build"],
        max_ratio: 5.0,
        max_rss_mib: None,
        run: super::build::conffs_hosts,
    },
    Bench {
        name: "build: conffs x60 on Slurm",
        needs: &["build"],
        max_ratio: 1.3,
        max_rss_mib: None,
        run: super::slurm::conffs_on_slurm,
    },
    Bench {
        name: "build: 1 host_vars",
        needs: &["build"],
        max_ratio: 1.5,
        max_rss_mib: None,
        run: super::build::host_vars_change,
    },
    Bench {
        name: "build: no change",
        needs: &["build"],
        max_ratio: 1.0,
        max_rss_mib: None,
        run: super::build::no_change,
    },
    Bench {
        name: "build: boot files",
        needs: &["build"],
        max_ratio: 1.1,
        max_rss_mib: None,
        run: super::build::boot_files,
    },
    Bench {
        name: "build: disk image",
        needs: &["build"],
        // A disk is a copy of files already made: a tenth of their build.
        max_ratio: 0.1,
        max_rss_mib: None,
        run: super::disk::host_disk,
    },
    Bench {
        name: "boot: rootfs.img to 20 clients",
        needs: &["build", "serve"],
        // Throughput at least 0.9 of nginx's: wall time at most 1/0.9 of it.
        max_ratio: 1.0 / 0.9,
        max_rss_mib: None,
        run: super::boot::rootfs_to_clients,
    },
    Bench {
        name: "serve: cached build",
        needs: &["build", "serve"],
        max_ratio: 1.0,
        max_rss_mib: None,
        run: super::serve::api_overhead,
    },
    Bench {
        name: "serve: read latency",
        needs: &["build", "serve"],
        max_ratio: 1.0,
        max_rss_mib: None,
        run: super::serve::read_latency,
    },
];

/// Resources shared by rows, prepared on first use.
#[derive(Default)]
pub struct State {
    /// A vauban store holding [`IMAGE`].
    store: Option<PathBuf>,
    /// umoci's layout (image `debian`) and bundle, with the timed repack.
    umoci: Option<Umoci>,
    /// Two fresh registries: ours and skopeo's (so neither reuses the other's blobs).
    registries: Option<(Registry, Registry)>,
    /// `--root` and `--runroot` of buildah, for cleanup.
    buildah: Option<(PathBuf, PathBuf)>,
    /// The `vauban build` rows' fleet.
    pub fleet: Option<super::build::Fleet>,
    /// The boot fixture's build (boot files, the boot route).
    pub boot: Option<super::build::BootBuild>,
    /// The `--executor slurm` row's fleet, cluster and registry.
    pub slurm: Option<super::slurm::SlurmFleet>,
}

struct Umoci {
    layout: PathBuf,
    bundle: PathBuf,
    repack: Sample,
}

impl State {
    /// Stops the registries and releases buildah's containers and mounts.
    pub fn shutdown(&mut self, scratch: &Path) {
        self.registries = None;
        if let Some((root, runroot)) = self.buildah.take() {
            let _ = util::run(&mut buildah(&root, &runroot, ["rm", "--all"]));
            let _ = util::run(&mut buildah(&root, &runroot, ["rmi", "--all", "--force"]));
        }
        if util::is_root() {
            for mount in mounts_under(scratch) {
                let _ = util::run(Command::new("umount").arg("--lazy").arg(&mount));
            }
        }
    }
}

/// Mount points under `dir` in our mount namespace, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// A store with [`IMAGE`] imported (untimed when no import row ran first).
fn store(ctx: &mut Ctx) -> Result<PathBuf> {
    if let Some(store) = &ctx.state.store {
        return Ok(store.clone());
    }
    let store = ctx.fresh_dir("store")?;
    util::run(
        ctx.vauban(&store)
            .arg("import")
            .arg(&ctx.fixture)
            .args(["--tag", IMAGE]),
    )?;
    ctx.state.store = Some(store.clone());
    Ok(store)
}

/// `umoci init/new/unpack`, the fixture extracted into the bundle, then the
/// timed `umoci repack` of that tree (cached for the rows that compare to it).
fn umoci(ctx: &mut Ctx) -> Result<&Umoci> {
    if ctx.state.umoci.is_none() {
        let layout = ctx.fresh_path("umoci-layout")?;
        let bundle = ctx.fresh_path("umoci-bundle")?;
        let image = format!("{}:debian", layout.display());
        util::run(
            Command::new("umoci")
                .args(["init", "--layout"])
                .arg(&layout),
        )?;
        util::run(Command::new("umoci").args(["new", "--image", &image]))?;
        util::run(&mut umoci_unpack(ctx.root, &image, &bundle))?;
        let mut tar = Command::new("tar");
        tar.arg("-xf")
            .arg(&ctx.fixture)
            .arg("-C")
            .arg(bundle.join("rootfs"));
        if ctx.root {
            tar.args(["--same-owner", "--same-permissions", "--numeric-owner"]);
        } else {
            tar.arg("--exclude=./dev/*"); // device nodes cannot be made unprivileged
        }
        util::run(&mut tar)?;
        let mut repack = Command::new("umoci");
        repack.args(["repack", "--image", &image]).arg(&bundle);
        let repack = measure(ctx, &repack)?;
        ctx.state.umoci = Some(Umoci {
            layout,
            bundle,
            repack,
        });
    }
    ctx.state.umoci.as_ref().context("umoci state")
}

/// `umoci unpack [--rootless] --image IMAGE DIR`.
fn umoci_unpack(root: bool, image: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !root {
        cmd.arg("--rootless");
    }
    cmd.args(["--image", image]).arg(dir);
    cmd
}

fn import_tarball(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let theirs = umoci(ctx)?.repack;
    let store = ctx.fresh_dir("store")?;
    let ours = measure(
        ctx,
        ctx.vauban(&store)
            .arg("import")
            .arg(&ctx.fixture)
            .args(["--tag", IMAGE]),
    )?;
    ctx.state.store = Some(store);
    Ok(vec![Comparison::new(
        "import (tarball)",
        ours,
        "umoci repack",
        theirs,
    )])
}

fn import_tree(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let (theirs, tree) = {
        let u = umoci(ctx)?;
        (u.repack, u.bundle.join("rootfs"))
    };
    let store = ctx.fresh_dir("store-tree")?;
    let ours = measure(
        ctx,
        ctx.vauban(&store)
            .arg("import")
            .arg(&tree)
            .args(["--tag", IMAGE]),
    )?;
    remove_all(&store)?;
    Ok(vec![Comparison::new(
        "import (tree)",
        ours,
        "umoci repack",
        theirs,
    )])
}

fn unpack(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let store = store(ctx)?;
    let image = format!("{}:debian", umoci(ctx)?.layout.display());
    let ours_dir = ctx.fresh_path("unpack-vauban")?;
    let ours = measure(
        ctx,
        ctx.vauban(&store).args(["unpack", IMAGE]).arg(&ours_dir),
    )?;
    let theirs_dir = ctx.fresh_path("unpack-umoci")?;
    let theirs = measure(ctx, &umoci_unpack(ctx.root, &image, &theirs_dir))?;
    remove_all(&ours_dir)?;
    remove_all(&theirs_dir)?;
    let peer = if ctx.root {
        "umoci unpack"
    } else {
        "umoci unpack --rootless"
    };
    Ok(vec![Comparison::new("unpack", ours, peer, theirs)])
}

/// The two registries, started on first use.
fn registries(ctx: &mut Ctx) -> Result<(String, String)> {
    if ctx.state.registries.is_none() {
        let ours = Registry::start(&ctx.fresh_dir("registry-vauban")?)?;
        let theirs = Registry::start(&ctx.fresh_dir("registry-skopeo")?)?;
        ctx.state.registries = Some((ours, theirs));
    }
    let (ours, theirs) = ctx.state.registries.as_ref().context("registries")?;
    Ok((ours.addr.clone(), theirs.addr.clone()))
}

fn push(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let store = store(ctx)?;
    let (ours_addr, theirs_addr) = registries(ctx)?;
    let ours = measure(
        ctx,
        ctx.vauban(&store).args([
            "push",
            IMAGE,
            &format!("{ours_addr}/bench/debian:latest"),
            "--tls-verify=false",
        ]),
    )?;
    let mut skopeo = Command::new("skopeo");
    skopeo.args(["copy", "--dest-tls-verify=false"]);
    skopeo.arg(format!("oci:{}:{IMAGE}", store.display()));
    skopeo.arg(format!("docker://{theirs_addr}/bench/debian:latest"));
    let theirs = measure(ctx, &skopeo)?;
    Ok(vec![Comparison::new(
        "push",
        ours,
        "skopeo copy oci: docker://",
        theirs,
    )])
}

fn pull(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let (ours_addr, theirs_addr) = registries(ctx)?;
    let store = ctx.fresh_dir("store-pull")?;
    let ours = measure(
        ctx,
        ctx.vauban(&store).args([
            "pull",
            &format!("{ours_addr}/bench/debian:latest"),
            "--tls-verify=false",
        ]),
    )?;
    let layout = ctx.fresh_dir("skopeo-pull")?;
    let mut skopeo = Command::new("skopeo");
    skopeo.args(["copy", "--src-tls-verify=false"]);
    skopeo.arg(format!("docker://{theirs_addr}/bench/debian:latest"));
    skopeo.arg(format!("oci:{}:debian", layout.display()));
    let theirs = measure(ctx, &skopeo)?;
    remove_all(&store)?;
    remove_all(&layout)?;
    Ok(vec![Comparison::new(
        "pull",
        ours,
        "skopeo copy docker:// oci:",
        theirs,
    )])
}

/// `buildah --root R --runroot RR ARGS…`.
fn buildah<I, S>(root: &Path, runroot: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("buildah");
    cmd.arg("--root")
        .arg(root)
        .arg("--runroot")
        .arg(runroot)
        .args(args);
    cmd
}

/// `buildah from` + `run --isolation chroot` + `commit`, as one sample.
fn buildah_change(
    ctx: &Ctx,
    root: &Path,
    runroot: &Path,
    source: &str,
    name: &str,
) -> Result<Sample> {
    measure_all(
        ctx,
        &[
            buildah(root, runroot, ["from", "--name", name, source]),
            buildah(
                root,
                runroot,
                [
                    "run",
                    "--isolation",
                    "chroot",
                    name,
                    "--",
                    "sh",
                    "-c",
                    CHANGE,
                ],
            ),
            buildah(
                root,
                runroot,
                ["commit", "--quiet", name, &format!("bench-changed-{name}")],
            ),
        ],
    )
}

/// How many warm runs each tool gets in the `run --commit (warm)` row.
const WARM_RUNS: usize = 3;

/// The best of several runs (see [`Sample::best`]).
fn fastest(samples: &[Sample]) -> Sample {
    samples
        .iter()
        .copied()
        .reduce(Sample::best)
        .unwrap_or_default()
}

fn run_commit(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    // A store of its own, so the cold run really extracts the base layer.
    let store = ctx.fresh_dir("store-run")?;
    util::run(
        ctx.vauban(&store)
            .arg("import")
            .arg(&ctx.fixture)
            .args(["--tag", IMAGE]),
    )?;
    let vauban_run = |ctx: &Ctx, tag: &str| {
        let mut cmd = ctx.vauban(&store);
        cmd.args([
            "run",
            "--commit",
            &format!("bench-changed:{tag}"),
            IMAGE,
            "--",
            "sh",
            "-c",
            CHANGE,
        ]);
        measure(ctx, &cmd)
    };
    let ours_cold = vauban_run(ctx, "cold")?;
    // Warm: the base is cached. Best of a few runs for both tools alike, so the
    // write-back the cold run left behind does not land on one side only.
    let ours_warm = (0..WARM_RUNS)
        .map(|i| vauban_run(ctx, &format!("warm{i}")))
        .collect::<Result<Vec<_>>>()?;
    let (root, runroot) = (
        ctx.fresh_dir("buildah-root")?,
        ctx.fresh_dir("buildah-runroot")?,
    );
    ctx.state.buildah = Some((root.clone(), runroot.clone()));
    let source = format!("oci:{}:{IMAGE}", store.display());
    let theirs_cold = buildah_change(ctx, &root, &runroot, &source, "cold")?;
    let theirs_warm = (0..WARM_RUNS)
        .map(|i| buildah_change(ctx, &root, &runroot, &source, &format!("warm{i}")))
        .collect::<Result<Vec<_>>>()?;
    let (ours_warm, theirs_warm) = (fastest(&ours_warm), fastest(&theirs_warm));
    let peer = "buildah from+run+commit";
    Ok(vec![
        Comparison {
            checked: false,
            ..Comparison::new("run --commit (cold)", ours_cold, peer, theirs_cold)
        },
        Comparison::new("run --commit (warm)", ours_warm, peer, theirs_warm),
    ])
}

/// What a sandbox's own network costs a run: `vauban run` (a network
/// namespace, the egress proxy) against `vauban run --network host`, warm,
/// the same small command.
fn run_network(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let store = ctx.fresh_dir("store-net")?;
    util::run(
        ctx.vauban(&store)
            .arg("import")
            .arg(&ctx.fixture)
            .args(["--tag", IMAGE]),
    )?;
    let run = |ctx: &Ctx, network: &str| {
        let mut cmd = ctx.vauban(&store);
        cmd.args(["run", "--network", network, IMAGE, "--", "true"]);
        measure(ctx, &cmd)
    };
    // The first run extracts the layer: not counted.
    run(ctx, "host")?;
    let ours = (0..WARM_RUNS * 2)
        .map(|_| run(ctx, "isolated"))
        .collect::<Result<Vec<_>>>()?;
    let theirs = (0..WARM_RUNS * 2)
        .map(|_| run(ctx, "host"))
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![Comparison {
        checked: false,
        ..Comparison::new(
            "cost: own network",
            fastest(&ours),
            "vauban run --network host",
            fastest(&theirs),
        )
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_commands_are_built_as_documented() {
        let line = util::display(&umoci_unpack(false, "/l:debian", Path::new("/b")));
        assert_eq!(line, "umoci unpack --rootless --image /l:debian /b");
        let line = util::display(&buildah(
            Path::new("/r"),
            Path::new("/rr"),
            ["from", "--name", "cold", "oci:/s:x"],
        ));
        assert_eq!(
            line,
            "buildah --root /r --runroot /rr from --name cold oci:/s:x"
        );
    }

    #[test]
    fn rows_have_distinct_names_and_sane_targets() {
        let mut names: Vec<_> = ROWS.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ROWS.len());
        // Against a peer tool we must be faster; the build rows compare two
        // builds of ours (20 hosts against 1, ...) or a fixed target, the
        // cost rows one run of ours with and without a feature, the serve
        // rows the server against the CLI plus its target, the boot row a
        // share of nginx's throughput.
        for r in ROWS {
            if ["build: ", "cost: ", "serve: ", "boot: "]
                .iter()
                .any(|p| r.name.starts_with(p))
            {
                assert!(r.max_ratio > 0.0 && r.max_ratio <= 8.0, "{}", r.name);
            } else {
                assert!(r.max_ratio > 0.0 && r.max_ratio < 1.0, "{}", r.name);
            }
        }
    }
}
