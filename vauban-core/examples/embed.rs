//! An embedder of vauban-core: imports a rootfs tarball into a store, applies
//! one Ansible stage to it for a host in the rootless sandbox, and reads the
//! events of the run.
//!
//! `embed STORE ROOTFS.tar ANSIBLE_DIR PLAYBOOK HOST`
//!
//! The program serves as its own sandbox helper: `run_helper_if_asked` comes
//! first in `main`.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use vauban_core::events::Collect;
use vauban_core::sandbox::{Helper, Network};
use vauban_core::stage::{apply_stages, AnsibleSource, Stage, StageSpec};
use vauban_core::vauban_oci::image::{self, ImportOptions};
use vauban_core::vauban_oci::store::Store;
use vauban_core::{Env, Event, Events};

fn main() -> Result<(), Box<dyn Error>> {
    vauban_core::sandbox::run_helper_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, rootfs, ansible, playbook, host] = args.as_slice() else {
        return Err("usage: embed STORE ROOTFS.tar ANSIBLE_DIR PLAYBOOK HOST".into());
    };
    let store = Store::open(store)?;
    let base = image::import(&store, rootfs.as_ref(), &ImportOptions::default(), &|_| {})?;
    println!("imported {}", base.manifest_digest);

    let events = Arc::new(Collect::default());
    let work = std::env::temp_dir().join(format!("embed-{}", std::process::id()));
    let env = Env {
        cache_dir: work.join("cache"),
        log_dir: work.join("logs"),
        helper: Some(Helper::current_exe()?),
        events: Events::to(events.clone()),
        network: Network::isolated(),
        hidden: Vec::new(),
    };
    let ansible = AnsibleSource::Dir(std::path::absolute(PathBuf::from(ansible))?);
    let spec = StageSpec::new(ansible, "embedded");
    let stages = [Stage::parse(playbook)?];
    let built = apply_stages(&store, &base, &stages, host, &spec, &env)?;
    println!("built {}", built.manifest_digest);

    let lines = events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::AnsibleLine { .. }))
        .count();
    for e in events.events() {
        match e {
            Event::StageStarted { stage, host, .. } => println!("started {stage} for {host}"),
            Event::StageFinished { stage, image, .. } => println!("finished {stage}: {image}"),
            _ => {}
        }
    }
    println!("{lines} lines of Ansible");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
