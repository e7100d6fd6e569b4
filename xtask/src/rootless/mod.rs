//! The build half of `cargo xtask test`: find the `rootless_*` test targets
//! of the workspace, then build every test target, the `vauban` binary they
//! drive and the examples in one `cargo test --no-run` with the
//! `rootless-tests` features on ([`build_all`]). [`stage`] then stages and
//! runs the rootless ones as the test user.
//!
//! The clone itself is never made readable to anyone: it may live under
//! `/root` (mode 700), so everything the test user runs or reads is copied (or
//! hard-linked when already world-readable) into the staging dir.

pub mod stage;
pub mod userns;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::util;

/// The cargo feature that turns the rootless test targets on.
pub const FEATURE: &str = "rootless-tests";
/// The prefix of rootless test target names.
pub const PREFIX: &str = "rootless_";

/// One crate's rootless test targets.
#[derive(Debug, PartialEq, Eq)]
pub struct Targets {
    /// The package name (for `-p`).
    pub package: String,
    /// Its `rootless_*` test target names.
    pub tests: Vec<String>,
}

/// What [`discover`] found: the crates to build, and manifest mistakes (a
/// `rootless_*` target in a crate without the `rootless-tests` feature), which
/// fail the run but do not stop the other crates' tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Crates with rootless targets and the feature.
    pub crates: Vec<Targets>,
    /// One message per misdeclared crate.
    pub problems: Vec<String>,
}

/// A built test binary: `(target name, executable path)`.
pub type TestBinary = (String, PathBuf);

/// Finds the workspace crates with `rootless_*` test targets from
/// `cargo metadata --no-deps` output.
pub fn discover(metadata: &Value) -> Result<Discovery> {
    let mut found = Discovery::default();
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata: no packages")?;
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default().to_string();
        let tests: Vec<String> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "test"))
            })
            .filter_map(|t| t["name"].as_str())
            .filter(|n| n.starts_with(PREFIX))
            .map(String::from)
            .collect();
        if tests.is_empty() {
            continue;
        }
        if package["features"].get(FEATURE).is_none() {
            found.problems.push(format!(
                "crate {name} has tests {tests:?} but no `{FEATURE}` feature in its Cargo.toml"
            ));
            continue;
        }
        found.crates.push(Targets {
            package: name,
            tests,
        });
    }
    Ok(found)
}

/// The `(target name, executable)` of every rootless test binary in cargo's
/// JSON messages.
pub fn executables(messages: &str) -> Vec<TestBinary> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?;
            let exe = m["executable"].as_str()?;
            name.starts_with(PREFIX)
                .then(|| (name.to_string(), PathBuf::from(exe)))
        })
        .collect()
}

/// Everything `cargo xtask test` runs, from one `cargo test --no-run` with
/// one feature set: every later cargo call of the run (the workspace's own
/// tests, the doc tests) selects the same features and builds nothing again.
/// Separate `-p` builds resolve features differently and rebuilt most of the
/// dependency graph several times on a fresh clone.
#[derive(Debug)]
pub struct Built {
    /// `--features` for every cargo call of the run.
    pub features: String,
    /// The rootless test binaries.
    pub rootless: Vec<TestBinary>,
    /// The workspace's other integration test targets (run by cargo as we are).
    pub other_tests: Vec<String>,
    /// The `vauban` binary.
    pub vauban: PathBuf,
    /// vauban-core's examples (embedders' programs a rootless test runs).
    pub examples: Vec<TestBinary>,
    /// Manifest mistakes (see [`Discovery::problems`]).
    pub problems: Vec<String>,
}

/// Builds every test target, the `vauban` binary and the examples.
pub fn build_all() -> Result<Built> {
    let metadata =
        util::output(util::cargo().args(["metadata", "--no-deps", "--format-version=1"]))?;
    let metadata: Value = serde_json::from_str(&metadata).context("parse cargo metadata")?;
    let found = discover(&metadata)?;
    for problem in &found.problems {
        eprintln!("error: {problem}");
    }
    let features = features_of(&found);
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace", "--no-run", "--features", &features])
        .arg("--message-format=json-render-diagnostics");
    let messages = util::stdout_of(&mut cmd)?;
    let rootless = executables(&messages);
    if rootless.is_empty() {
        bail!("no rootless test binary found (test targets named `{PREFIX}*` with feature `{FEATURE}`)");
    }
    let vauban = artifacts(&messages, "bin")
        .into_iter()
        .find_map(|(name, exe)| (name == "vauban").then_some(exe))
        .context("cargo built no `vauban` executable")?;
    Ok(Built {
        features,
        rootless,
        other_tests: other_tests(&metadata),
        vauban,
        examples: artifacts(&messages, "example"),
        problems: found.problems,
    })
}

/// `PKG/rootless-tests,…` for every crate [`discover`] found.
pub fn features_of(found: &Discovery) -> String {
    found
        .crates
        .iter()
        .map(|t| format!("{}/{FEATURE}", t.package))
        .collect::<Vec<_>>()
        .join(",")
}

/// The integration test targets of the workspace that are not rootless.
pub fn other_tests(metadata: &Value) -> Vec<String> {
    let mut names: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        })
        .filter_map(|t| t["name"].as_str())
        .filter(|n| !n.starts_with(PREFIX))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `(name, executable)` of the non-test artifacts of `kind` (`bin`, `example`).
fn artifacts(messages: &str, kind: &str) -> Vec<TestBinary> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["profile"]["test"] == false
                && m["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == kind))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?;
            Some((name.to_string(), PathBuf::from(m["executable"].as_str()?)))
        })
        .collect()
}

/// Builds the `vauban` binary (debug, like the tests) and returns its path.
pub fn build_vauban(release: bool) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "vauban-cli", "--bin", "vauban"]);
    cmd.arg("--message-format=json-render-diagnostics");
    if release {
        cmd.arg("--release");
    }
    let messages = util::stdout_of(&mut cmd)?;
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "vauban")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no `vauban` executable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userns_remove_runs_rm_as_root_of_a_mapped_namespace() {
        let cmd = userns::remove_command(std::path::Path::new("/tmp/x y"));
        assert_eq!(
            util::display(&cmd),
            "unshare --user --map-root-user --map-auto -- rm -rf -- '/tmp/x y'"
        );
    }

    #[test]
    fn discovery_reads_targets_and_requires_the_feature() {
        let meta = serde_json::json!({"packages": [
            {"name": "vauban-core", "features": {"rootless-tests": []}, "targets": [
                {"name": "vauban_core", "kind": ["lib"]},
                {"name": "rootless_sandbox", "kind": ["test"]},
                {"name": "sandbox_args", "kind": ["test"]}]},
            {"name": "vauban-oci", "features": {}, "targets": [{"name": "tidy", "kind": ["test"]}]}
        ]});
        let found = discover(&meta).unwrap();
        assert_eq!(
            found.crates,
            [Targets {
                package: "vauban-core".into(),
                tests: vec!["rootless_sandbox".into()]
            }]
        );
        assert!(found.problems.is_empty());
        assert_eq!(features_of(&found), "vauban-core/rootless-tests");
        assert_eq!(other_tests(&meta), ["sandbox_args", "tidy"]);
        let bad = serde_json::json!({"packages": [
            {"name": "x", "features": {}, "targets": [{"name": "rootless_a", "kind": ["test"]}]}]});
        let found = discover(&bad).unwrap();
        assert!(found.crates.is_empty());
        assert!(
            found.problems[0].contains("rootless-tests"),
            "{:?}",
            found.problems
        );
    }

    #[test]
    fn the_vauban_binary_and_examples_are_found_among_test_builds() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"vauban","kind":["bin"]},"profile":{"test":true},"executable":"/t/vauban-unittests"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"vauban","kind":["bin"]},"profile":{"test":false},"executable":"/t/vauban"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"embed","kind":["example"]},"profile":{"test":false},"executable":"/t/examples/embed"}"#,
        ]
        .join("\n");
        assert_eq!(
            artifacts(&messages, "bin"),
            [("vauban".into(), PathBuf::from("/t/vauban"))]
        );
        assert_eq!(
            artifacts(&messages, "example"),
            [("embed".into(), PathBuf::from("/t/examples/embed"))]
        );
    }

    #[test]
    fn executables_keep_only_rootless_test_binaries() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"rootless_run","kind":["test"]},"profile":{"test":true},"executable":"/t/rootless_run-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"cli_import","kind":["test"]},"profile":{"test":true},"executable":"/t/cli_import-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"vauban","kind":["bin"]},"profile":{"test":false},"executable":"/t/vauban"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            executables(&messages),
            [("rootless_run".into(), PathBuf::from("/t/rootless_run-1"))]
        );
    }
}
