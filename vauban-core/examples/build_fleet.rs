//! An embedder of `vauban build`: loads a `config.yml`, prints the plan of
//! the conffs of one host of master `master-web` (its whole chain first),
//! runs it with the events counted, and prints the report.
//!
//! `build_fleet CONFIG STORE OUT HOST`
//!
//! The key store and its secret are where `vauban build` finds them
//! (`$XDG_DATA_HOME/vauban-keys/hostkeys.age`; `$VAUBAN_KEYSTORE_KEY`, else
//! an identity made on first use), asked for only when the plan makes a
//! conffs. The program serves as its own sandbox helper:
//! `run_helper_if_asked` comes first in `main`.

use std::error::Error;
use std::sync::Arc;

use vauban_core::build::{default_keystore, key_secret, BuildOptions, Builder, Part};
use vauban_core::config::Config;
use vauban_core::events::Collect;
use vauban_core::sandbox::Helper;
use vauban_core::vauban_oci::store::Store;
use vauban_core::{Env, Event, Events};

fn main() -> Result<(), Box<dyn Error>> {
    vauban_core::sandbox::run_helper_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, store, out, host] = args.as_slice() else {
        return Err("usage: build_fleet CONFIG STORE OUT HOST".into());
    };
    let config = Config::load(config)?;
    let store = Store::open(store)?;
    let events = Arc::new(Collect::default());
    let mut env = Env::from_user_dirs()?;
    env.helper = Some(Helper::current_exe()?);
    env.events = Events::to(events.clone());

    let mut opts = BuildOptions::new("master-web", Part::Conffs, default_keystore()?);
    opts.build_parents = -1;
    opts.conffs = Some(host.clone());
    opts.out = out.into();
    let mut builder = Builder::new(config, &store, env, opts)?;
    for step in builder.plan()? {
        println!("plan: {step}");
    }
    if builder.needs_keys()? {
        let found = key_secret(None)?;
        if let Some(made) = &found.made {
            println!("made the key store secret {}", made.display());
        }
        builder.set_keys(found.secret);
    }
    builder.run()?;
    for a in &builder.report().ansible {
        println!("ansible: {a}");
    }
    for s in &builder.report().steps {
        println!("step: {} {}", s.step, s.outcome);
    }
    for e in &builder.report().exported {
        println!("exported: {}", e.path.display());
    }
    let stages = events
        .events()
        .iter()
        .filter(|e| matches!(e, Event::StageFinished { .. }))
        .count();
    println!("{stages} stage(s) finished");
    Ok(())
}
