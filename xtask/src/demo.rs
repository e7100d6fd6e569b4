//! `cargo xtask demo`: deps, fixtures, then a list of steps run with the real
//! `vauban` binary against a demo store in `target/demo-store`: import the
//! Debian fixture and show it, apply the two Ansible stages of
//! `testdata/ansible` for host `web01`, and run a command in the result.
//! Later steps (push, rootfs, conffs) are one more entry in [`steps`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{deps, fixtures, rootless, util};

/// The image name the demo imports the Debian base as.
pub const BASE: &str = "debian:bookworm";
/// The image the Ansible stages produce.
pub const BUILT: &str = "web01:demo";

/// What every step gets.
pub struct Demo {
    /// The `vauban` binary.
    pub vauban: PathBuf,
    /// The demo store.
    pub store: PathBuf,
    /// The fixtures directory.
    pub fixtures: PathBuf,
    /// The test inputs (`testdata/`, with the Ansible repository).
    pub testdata: PathBuf,
}

impl Demo {
    /// `vauban --store STORE ARGS…`.
    pub fn vauban<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.vauban);
        cmd.arg("--store").arg(&self.store).args(args);
        cmd
    }
}

/// One demo step: a title and what it runs.
pub struct Step {
    /// Shown before the step runs.
    pub title: &'static str,
    /// Builds the commands of the step (pure: unit-tested without running them).
    pub commands: fn(&Demo) -> Vec<Command>,
}

/// The demo, in order.
pub fn steps() -> Vec<Step> {
    vec![
        Step {
            title: "import the Debian base into the store",
            commands: |d| {
                let mut import = d.vauban(["import"]);
                import
                    .arg(d.fixtures.join("debian.tar"))
                    .args(["--tag", BASE]);
                vec![import]
            },
        },
        Step {
            title: "list the images",
            commands: |d| vec![d.vauban(["images"])],
        },
        Step {
            title: "inspect the base image",
            commands: |d| vec![d.vauban(["inspect", BASE])],
        },
        Step {
            title: "apply two Ansible stages for host web01 (one layer each)",
            commands: |d| {
                let mut stage = d.vauban(["stage", BASE, "--ansible"]);
                stage.arg(d.testdata.join("ansible"));
                stage.args([
                    "--host",
                    "web01",
                    "--commit",
                    BUILT,
                    "base.yml",
                    "second.yml",
                ]);
                vec![stage, d.vauban(["images"])]
            },
        },
        Step {
            title: "run a command in the built image",
            commands: |d| {
                let script = "cat /etc/vauban-greeting && hello && id deploy";
                vec![d.vauban(["run", BUILT, "--", "sh", "-c", script])]
            },
        },
    ]
}

/// Runs the task.
pub fn task(_args: &[String]) -> Result<()> {
    deps::ensure()?;
    fixtures::ensure()?;
    let demo = Demo {
        vauban: rootless::build_vauban(false)?,
        store: util::target_dir().join("demo-store"),
        fixtures: fixtures::dir(),
        testdata: std::env::var_os("VAUBAN_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| util::workspace_root().join("testdata")),
    };
    std::fs::create_dir_all(&demo.store)
        .with_context(|| format!("mkdir {}", demo.store.display()))?;
    let all = steps();
    for (i, step) in all.iter().enumerate() {
        println!("\n== demo {}/{}: {}", i + 1, all.len(), step.title);
        let started = Instant::now();
        for mut cmd in (step.commands)(&demo) {
            util::run(&mut cmd).with_context(|| format!("demo step `{}`", step.title))?;
        }
        println!("== done in {:.2}s", started.elapsed().as_secs_f64());
    }
    println!("\ndemo store: {}", demo.store.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_use_the_demo_store() {
        let demo = Demo {
            vauban: "/b/vauban".into(),
            store: "/s".into(),
            fixtures: "/f".into(),
            testdata: "/t".into(),
        };
        let lines: Vec<String> = steps()
            .iter()
            .flat_map(|s| (s.commands)(&demo))
            .map(|c| util::display(&c))
            .collect();
        assert_eq!(
            lines,
            [
                "/b/vauban --store /s import /f/debian.tar --tag debian:bookworm",
                "/b/vauban --store /s images",
                "/b/vauban --store /s inspect debian:bookworm",
                "/b/vauban --store /s stage debian:bookworm --ansible /t/ansible --host web01 \
                 --commit web01:demo base.yml second.yml",
                "/b/vauban --store /s images",
                "/b/vauban --store /s run web01:demo -- sh -c \
                 'cat /etc/vauban-greeting && hello && id deploy'",
            ]
        );
    }
}
