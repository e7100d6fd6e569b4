//! The one `vauban build` the demo runs, as a pure function of its inputs so
//! the command line is unit-tested and easy to change in one place:
//!
//! ```text
//! vauban --store STORE build --config testdata/demo/config.yml --name master-web \
//!     --stage all --build-parents -1 --registry 127.0.0.1:PORT/vauban \
//!     --tls-verify=false --out OUT
//! ```

use std::path::PathBuf;
use std::process::Command;

/// The master the demo builds (with its whole chain).
pub const MASTER: &str = "master-web";
/// The repository prefix in the registry: images are pushed as `PREFIX/<name>`.
pub const REPOSITORY_PREFIX: &str = "vauban";

/// What the build is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The `vauban` binary.
    pub vauban: PathBuf,
    /// The store (owned by the user who runs the build).
    pub store: PathBuf,
    /// `testdata/demo/config.yml`.
    pub config: PathBuf,
    /// The master built.
    pub master: String,
    /// The registry, `127.0.0.1:PORT`.
    pub registry: String,
    /// The boot tree written (owned by the user who runs the build).
    pub out: PathBuf,
}

impl Build {
    /// Where the master's image is pushed: `ADDR/vauban/MASTER`.
    pub fn repository(&self) -> String {
        format!("{REPOSITORY_PREFIX}/{}", self.master)
    }
}

/// The `vauban build` command (program and arguments only; who runs it and
/// with which environment is [`super::user`]'s business).
pub fn command(b: &Build) -> Command {
    let mut cmd = Command::new(&b.vauban);
    cmd.arg("--store").arg(&b.store);
    cmd.arg("build");
    cmd.arg("--config").arg(&b.config);
    cmd.args(["--name", &b.master]);
    cmd.args(["--stage", "all"]);
    // -1: the whole chain, release first (bookworm, master-base, master-web).
    cmd.args(["--build-parents", "-1"]);
    cmd.arg("--registry")
        .arg(format!("{}/{REPOSITORY_PREFIX}", b.registry));
    cmd.arg("--tls-verify=false");
    cmd.arg("--out").arg(&b.out);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util;

    #[test]
    fn the_demo_builds_the_whole_chain_of_master_web_and_pushes_it() {
        let b = Build {
            vauban: "target/debug/vauban".into(),
            store: "target/demo-store".into(),
            config: "testdata/demo/config.yml".into(),
            master: MASTER.into(),
            registry: "127.0.0.1:5123".into(),
            out: "target/demo-out".into(),
        };
        assert_eq!(
            util::display(&command(&b)),
            "target/debug/vauban --store target/demo-store build --config \
             testdata/demo/config.yml --name master-web --stage all --build-parents -1 \
             --registry 127.0.0.1:5123/vauban --tls-verify=false --out target/demo-out"
        );
        assert_eq!(b.repository(), "vauban/master-web");
    }
}
