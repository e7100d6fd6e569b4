//! The command line: global options (declared once, `global = true`) and one
//! variant per subcommand; each subcommand lives in `commands/<name>.rs`.

use std::path::PathBuf;

use std::sync::Arc;

use clap::{ArgAction, Parser, Subcommand};
use vauban_core::Events;

use crate::commands;
use crate::render::{AnsibleOutput, EventsMode, Renderer};

/// vauban: build bootable Linux images with Ansible, rootless, as OCI images.
#[derive(Debug, Parser)]
#[command(name = "vauban", version, about, propagate_version = true)]
pub struct Cli {
    /// The image store (an OCI image layout) [default: $XDG_DATA_HOME/vauban or ~/.local/share/vauban].
    #[arg(
        long,
        global = true,
        env = "VAUBAN_STORE",
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub store: Option<PathBuf>,

    /// More output: -v Ansible's own lines (with their `--diff`) and info
    /// logs, -vv debug, -vvv trace (RUST_LOG overrides the logs).
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// Show every command vauban runs, Ansible's command line included (the
    /// original's `--debug`): debug logs, as -vv. Ansible's own verbosity stays
    /// `-v` (it is part of what a stage's cache key reads: give
    /// `--ansible-arg -vvv` for more); its full output is in the stage logs.
    #[arg(long, global = true, help_heading = "Global options")]
    pub debug: bool,

    /// How progress is shown: for people, or as JSON lines on stdout (one event
    /// per line; see ARCHITECTURE.md, "Events").
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        help_heading = "Global options"
    )]
    pub events: EventsMode,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a rootfs tarball (plain, .gz, .xz, .zst) or a directory as a one-layer image.
    Import(commands::import::Args),
    /// List the images of the store.
    Images(commands::images::Args),
    /// Show an image as JSON: manifest digest, config, layers with sizes.
    Inspect(commands::inspect::Args),
    /// Show what differs between two images, hosts (MASTER/HOST), trees or archives.
    Diff(commands::diff::Args),
    /// Pack what a live host changed since boot (its overlay's upper dir) as a layer.
    Drift(commands::drift::Args),
    /// Make, update or roll back a host's disk image that boots live with no network.
    Disk(commands::disk::Args),
    /// Extract an image's filesystem (all layers applied) into a directory.
    Unpack(commands::unpack::Args),
    /// Give an image another name.
    Tag(commands::tag::Args),
    /// Remove an image name (its blobs go at the next `vauban gc`).
    Rm(commands::rm::Args),
    /// Remove blobs and cached layer directories no image refers to.
    Gc(commands::gc::Args),
    /// Re-verify every blob and reference of the store.
    Fsck(commands::fsck::Args),
    /// Run a command in a sandbox over an image (rootless), optionally committing its changes.
    ///
    /// On a terminal the command gets a pty of its own that vauban relays raw, as an
    /// interactive program needs (its escape sequences reach the terminal): run only
    /// images you trust that way.
    Run(commands::run::Args),
    /// Push an image of the store to a registry.
    Push(commands::push::Args),
    /// Pull an image from a registry (or, through skopeo, an archive or layout) into the store.
    Pull(commands::pull::Args),
    /// Check credentials against a registry and store them in the auth file.
    Login(commands::login::Args),
    /// Apply Ansible playbooks to an image for one host: one layer per playbook.
    Stage(commands::stage::Args),
    /// Build masters, their hosts' conffs and boot files from config.yml.
    Build(commands::build::Args),
    /// Move what a master's hosts boot next (on a `vauban serve`), or tag
    /// an image of the registry `deployed`.
    Deploy(commands::deploy::Args),
    /// Go back to a master's deployment before the current one (on a `vauban serve`).
    Rollback(commands::rollback::Args),
    /// List a master's deployments (on a `vauban serve`).
    Deployments(commands::deployments::Args),
    /// Each host's last boot and whether it runs the deployed build (on a `vauban serve`).
    Hosts(commands::hosts::Args),
    /// Print the JSON Schema of config.yml, or check a config.
    Config(commands::config::Args),
    /// The hosts' sshd keys: import a site's existing ones, list, show, remove.
    Keys(commands::keys::Args),
    /// Run as a service: builds on request (HTTP API) and on schedule, with
    /// history, live logs, notifications and a page.
    Serve(commands::serve::Args),
    /// Talk to a `vauban serve`: ask for a build, follow it, list, cancel.
    Remote(commands::remote::Args),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub struct Globals {
    /// `--store` / `$VAUBAN_STORE`, if given.
    pub store: Option<PathBuf>,
    /// `--events`.
    pub events: EventsMode,
    /// `-v`s given.
    pub verbose: u8,
}

impl Globals {
    /// Opens (creating if needed) the store chosen by `--store`, `$VAUBAN_STORE`,
    /// `$XDG_DATA_HOME/vauban` or `~/.local/share/vauban`.
    pub fn open_store(&self) -> anyhow::Result<vauban_oci::store::Store> {
        let root = match &self.store {
            Some(dir) => dir.clone(),
            None => vauban_oci::store::Store::default_root()?,
        };
        Ok(vauban_oci::store::Store::open(&root)?)
    }
}

impl Globals {
    /// The renderer of the event stream (`quiet`: no Ansible output; `-v`:
    /// Ansible's own lines; else a line per task), and the handle libraries
    /// report into.
    pub fn renderer(&self, quiet: bool) -> (Arc<Renderer>, Events) {
        let ansible = match (quiet, self.ansible_lines(quiet)) {
            (true, _) => AnsibleOutput::Nothing,
            (false, true) => AnsibleOutput::Lines,
            (false, false) => AnsibleOutput::Tasks,
        };
        let renderer = Arc::new(Renderer::new(self.events, ansible));
        let events = Events::to(renderer.clone());
        (renderer, events)
    }

    /// Whether Ansible's own lines are shown (`-v`, not `--quiet`).
    pub fn ansible_lines(&self, quiet: bool) -> bool {
        !quiet && self.verbose > 0
    }
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        let globals = Globals {
            store: self.store,
            events: self.events,
            verbose: self.verbose,
        };
        match self.command {
            Command::Import(args) => commands::import::run(&globals, args),
            Command::Images(args) => commands::images::run(&globals, args),
            Command::Inspect(args) => commands::inspect::run(&globals, args),
            Command::Diff(args) => commands::diff::run(&globals, args),
            Command::Drift(args) => commands::drift::run(args),
            Command::Disk(args) => commands::disk::run(&globals, args),
            Command::Unpack(args) => commands::unpack::run(&globals, args),
            Command::Tag(args) => commands::tag::run(&globals, args),
            Command::Rm(args) => commands::rm::run(&globals, args),
            Command::Gc(args) => commands::gc::run(&globals, args),
            Command::Fsck(args) => commands::fsck::run(&globals, args),
            Command::Run(args) => commands::run::run(&globals, args),
            Command::Push(args) => commands::push::run(&globals, args),
            Command::Pull(args) => commands::pull::run(&globals, args),
            Command::Login(args) => commands::login::run(&globals, args),
            Command::Stage(args) => commands::stage::run(&globals, args),
            Command::Build(args) => commands::build::run(&globals, args),
            Command::Deploy(args) => commands::deploy::run(&globals, args),
            Command::Rollback(args) => commands::rollback::run(&globals, args),
            Command::Deployments(args) => commands::deployments::run(&globals, args),
            Command::Hosts(args) => commands::hosts::run(&globals, args),
            Command::Config(args) => commands::config::run(&globals, args),
            Command::Keys(args) => commands::keys::run(&globals, args),
            Command::Serve(args) => commands::serve::run(&globals, args),
            Command::Remote(args) => commands::remote::run(&globals, args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
