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
//! Code map: `plan` (steps of `--stage`/`--build-parents`, each with its
//! base), `inputs` (what a stage reads: the Ansible tree, the inventory),
//! `cache` (keys, records, locks, the one lookup → lock → look-again),
//! `release` (a release's base), `builder` ([`Builder`]), `options`
//! ([`BuildOptions`]), `analysis` (the checkouts read once, the playbooks
//! checked, each step's spec and inputs), `naming` (the names given at the end
//! and pushed), `resolve` (what a
//! build starts from: bases found once, stale masters), `walk` (what the
//! cache holds, without running), `stages` (a stage for some hosts through
//! the cache), `rootfs`, `conffs` and `boot` (the three kinds of step), `out`
//! (`--out` left consistent), [`publish`] (registry), `artifact` (the boot
//! files as an OCI artifact), `check` (`--check`), `report`. Errors are the crate's
//! [`Error`](crate::Error), in its section for builds, with the config's, the
//! key store's, the exports' and the stages' beside it.

mod analysis;
pub(crate) mod artifact;
mod boot;
mod builder;
pub(crate) mod cache;
pub(crate) mod check;
mod conffs;
pub mod drift_signature;
pub mod drift_tool;
mod facts;
pub(crate) mod inputs;
mod keystore;
mod naming;
mod options;
mod out;
pub(crate) mod plan;
pub mod publish;
pub(crate) mod release;
mod remote;
pub(crate) mod report;
mod resolve;
mod rootfs;
mod stages;
mod walk;

pub use artifact::write_boot_artifact;
pub use builder::Builder;
pub use check::{CheckedStep, StepStatus};
pub use keystore::{default_key_file, default_keystore, key_secret, FoundSecret};
pub use options::{BuildOptions, LOCAL_TAG};
pub use plan::{Base, Part, Planned, Step, StepKind};
pub use publish::Registry;
pub use release::describe;
pub use remote::{job_name, Executor, TaskCommand};
pub use report::{AnsibleCheckout, BuildReport, Exported, Outcome, StepReport};
