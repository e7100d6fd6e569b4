//! Tests of the config loader on the sample configs of `testdata/config/`, on the
//! demo's `testdata/demo/config.yml`, and on small texts written for one error each.

mod demo;
mod errors;
mod parse;
mod playbooks;
mod schema;
mod warnings;
mod yaml;

use std::error::Error as _;
use std::path::PathBuf;

use super::Config;
use crate::Error;

/// The path the inline test texts pretend to be read from.
const FILE: &str = "/t/config.yml";

/// `testdata/` (`$VAUBAN_TESTDATA` when set).
fn testdata() -> PathBuf {
    std::env::var_os("VAUBAN_TESTDATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata"),
        PathBuf::from,
    )
}

/// `testdata/config/` (under `$VAUBAN_TESTDATA` when set).
fn samples() -> PathBuf {
    testdata()
        .join("config")
        .canonicalize()
        .expect("testdata/config exists")
}

/// Every sample config.
fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples())
        .expect("testdata/config is readable")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "sample configs missing: {files:?}");
    files
}

fn load(name: &str) -> Config {
    let path = samples().join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), chain(&e)))
}

/// An error and its sources, as the CLI prints them.
fn chain(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The error `text` gives, with its sources.
fn error_of(text: &str) -> String {
    match Config::parse(text, FILE) {
        Ok(config) => panic!("expected an error, parsed {config:#?}"),
        Err(e) => chain(&e),
    }
}
