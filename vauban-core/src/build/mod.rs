//! `vauban build`: a `config.yml`, an Ansible repository and a store in;
//! masters' images, per-host conffs archives and boot files out, every stage
//! through a cache that is keyed by everything it reads.
//!
//! ```no_run
//! use vauban_core::build::{Builder, BuildOptions, Part};
//! use vauban_core::config::Config;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("config.yml")?;
//! let store = vauban_core::vauban_oci::store::Store::open("store")?;
//! let mut opts = BuildOptions::new("master-web", Part::Rootfs, "hostkeys.age");
//! opts.build_parents = -1;
//! let mut builder = Builder::new(config, &store, vauban_core::Env::from_user_dirs()?, opts)?;
//! for step in builder.plan()? {
//!     println!("{step}");
//! }
//! builder.run()?;
//! println!("{} step(s) built", builder.report().built());
//! # Ok(()) }
//! ```
//!
//! Code map: [`plan`] (steps of `--stage`/`--build-parents`), [`inputs`]
//! (what a stage reads: the Ansible tree, the inventory), [`cache`] (keys,
//! records, locks), [`release`] (a release's base), `builder` ([`Builder`]),
//! `rootfs`, `conffs` and `boot` (the three kinds of step), [`publish`]
//! (registry), [`artifact`] (the boot files as an OCI artifact), [`check`] (`--check`), [`report`], [`error`].

pub mod artifact;
mod boot;
mod builder;
pub mod cache;
pub mod check;
mod conffs;
pub mod error;
pub mod inputs;
pub mod plan;
pub mod publish;
pub mod release;
pub mod report;
mod rootfs;

pub use builder::{BuildOptions, Builder, LOCAL_TAG};
pub use check::{CheckedStep, StepStatus};
pub use error::BuildError;
pub use plan::{Part, Step, StepKind};
pub use publish::Registry;
pub use report::{BuildReport, Exported, Outcome, StepReport};
