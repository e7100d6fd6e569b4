//! Ansible stages: one playbook applied to an image gives one new layer.
//!
//! Users keep their playbooks and inventory; the only thing a playbook may know is
//! that it runs in vauban (`in_vauban`, `in_conffs_build`). The host's
//! `ansible-playbook` runs inside the sandbox's namespaces and reaches the image
//! through the `community.general.chroot` connection; the connection variables of
//! the host being built override whatever the inventory says about the real machine.
//!
//! Code map: `stage_name` (what a stage is: `branch@playbook.yml`), `spec`
//! (what a build of stages depends on besides the image: [`StageSpec`]), `repo`
//! (the Ansible repository and its checkouts), `inventory` and `command` (the
//! `ansible-playbook` command line, pure), `hooks` (the shell wrapper and the pre/post hooks), `output` (log
//! following and failure parsing), `metadata` (`/imginfo`, `/packages`), and
//! [`apply_stages`] which puts them together on a [`crate::sandbox::Sandbox`].

pub(crate) mod check;
pub(crate) mod command;
pub(crate) mod confined;
pub(crate) mod hooks;
mod hosts;
pub(crate) mod inventory;
pub(crate) mod metadata;
pub(crate) mod output;
pub(crate) mod repo;
mod run;
pub(crate) mod spec;
pub(crate) mod stage_name;
pub(crate) mod tools;

pub use hooks::Hooks;
pub use hosts::Target;
pub use repo::{AnsibleRepo, AnsibleSource, Checkout};
pub use run::{apply_stages, intermediate, StageRunner};
pub use spec::StageSpec;
pub use stage_name::Stage;
