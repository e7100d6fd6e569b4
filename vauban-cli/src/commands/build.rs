//! `vauban build --name MASTER [--stage rootfs|conffs|initramfs|all|disk] ...`:
//! builds masters and their hosts' conffs and boot files from `config.yml`
//! (the original's meaning of every option), or with `--check` prints the plan.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::build::{key_secret, BuildOptions, Builder, Outcome, Part, Registry};
use vauban_core::config::Config;

use super::ansible::AnsibleArgs;
use super::push::RegistryArgs;
use crate::cli::Globals;

/// Arguments of `vauban build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The master to build (as `--name` names it: `name:`, else its key).
    #[arg(long, value_name = "MASTER")]
    pub name: String,

    /// What to build: the master's image, its hosts' conffs, its boot files, all, or
    /// all and each host's disk image (`OUT/disks/MASTER/HOST.raw`, made or updated):
    /// `rootfs`, `conffs`, `initramfs`, `all` or `disk`.
    #[arg(long, value_name = "STAGE", default_value = "all", value_parser = parse_part)]
    pub stage: Part,

    /// How many parents to build first (`-1`: the whole chain). The parent of a
    /// conffs or initramfs is the master's rootfs; of a rootfs, the parent master's.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub build_parents: i64,

    /// Rebuild first a master this build starts from when it is out of date
    /// (a playbook or variable it reads changed since it was built), with its
    /// out-of-date parents [default: warn, and build on it as it is].
    #[arg(long)]
    pub rebuild_stale: bool,

    /// The config file (`--config-path`, the original's spelling, works too).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config.yml",
        alias = "config-path"
    )]
    pub config: PathBuf,

    /// The hosts' pattern instead of the master's `conffs:` (Ansible `--limit` syntax;
    /// hosts named `master-*` are never part of a conffs). Not empty: an empty
    /// pattern would be every host.
    #[arg(long, value_name = "PATTERN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub conffs: Option<String>,

    /// Print the plan (each stage, each host: cached, or runs and why) and build nothing.
    #[arg(long)]
    pub check: bool,

    /// Push every image built to HOST[:PORT]/NAMESPACE (tags `latest` and the UTC
    /// date), and look there for parents the store lacks.
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE")]
    pub registry: Option<String>,

    #[command(flatten)]
    pub registry_args: RegistryArgs,

    /// The output tree (conffs archives, boot files).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,

    /// Hosts worked on at once [default: twice the CPUs].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Run every stage, even those the cache has.
    #[arg(long)]
    pub no_cache: bool,

    /// The sshd host-key store [default: $XDG_DATA_HOME/vauban-keys/hostkeys.age].
    #[arg(long, value_name = "FILE", env = "VAUBAN_KEYSTORE")]
    pub keystore: Option<PathBuf>,

    /// The file of the key store's secret (an age identity or a passphrase)
    /// [default: $VAUBAN_KEYSTORE_KEY, else $XDG_CONFIG_HOME/vauban/keystore-key.txt,
    /// made on first use].
    #[arg(long, value_name = "FILE")]
    pub keystore_key_file: Option<PathBuf>,

    /// The base URL the output tree is served from, for the hosts' kernel command
    /// lines [default: `boot_url:` of the config].
    #[arg(long, value_name = "URL")]
    pub boot_url: Option<String>,

    #[command(flatten)]
    pub executor: super::executor::ExecutorArgs,

    #[command(flatten)]
    pub ansible: AnsibleArgs,

    #[command(flatten)]
    pub network: super::network::NetworkArgs,
}

fn parse_part(s: &str) -> Result<Part, String> {
    Part::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Part::NAMES.iter().map(|(n, _)| *n).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// Builds, or prints the plan.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let config = Config::load(&args.config)?;
    let keystore = match &args.keystore {
        Some(k) => std::path::absolute(k)?,
        None => vauban_core::build::default_keystore()?,
    };
    let mut opts = BuildOptions::new(&args.name, args.stage, keystore);
    opts.build_parents = args.build_parents;
    opts.rebuild_stale = args.rebuild_stale;
    opts.conffs = args.conffs.clone();
    if let Some(shards) = &args.executor.conffs_shards {
        opts.conffs = Some(args.executor.own_shard(shards)?);
    }
    opts.images_only = args.executor.images_only;
    opts.base_digest = args.executor.base_digest()?;
    opts.branch = args.ansible.branch.clone();
    opts.ansible = args.ansible.source()?;
    opts.ansible_args = args.ansible.ansible_args.clone();
    opts.hooks = args.ansible.hooks();
    opts.no_cache = args.no_cache;
    if let Some(j) = args.jobs {
        opts.jobs = j.max(1);
    }
    opts.out = std::path::absolute(&args.out)?;
    opts.boot_url = args.boot_url.clone();
    opts.network = args.network.network()?;
    if let Some(r) = &args.registry {
        opts.registry = Some(Registry::parse(r, args.registry_args.options()?)?);
    }

    let (renderer, events) = globals.renderer(args.ansible.quiet);
    let mut env = args.ansible.env(events)?;
    if let Some(key_file) = &args.keystore_key_file {
        env.hidden.push(std::path::absolute(key_file)?);
    }
    let store = globals.open_store()?;

    if args.check {
        let mut builder = Builder::new(config, &store, env, opts)?;
        let steps = builder.check()?;
        renderer.finish();
        if globals.events == crate::render::EventsMode::Json {
            println!("{}", serde_json::to_string(&steps)?);
            return Ok(());
        }
        println!(
            "{:<28} {:<18} {:<40} {:<20} STATUS",
            "STEP", "STAGE", "IMAGE", "HOSTS"
        );
        for s in &steps {
            println!(
                "{:<28} {:<18} {:<40} {:<20} {}",
                s.step,
                s.stage.as_deref().unwrap_or("-"),
                s.name,
                s.hosts.join(","),
                s.status
            );
        }
        return Ok(());
    }

    let name = args.name.clone();
    let out = opts.out.clone();
    let log_dir = env.log_dir.clone();
    let executor =
        args.executor
            .executor(&config, &args.config, &log_dir, opts.registry.is_some())?;
    let mut builder = Builder::new(config, &store, env, opts)?;
    if let Some(executor) = executor {
        builder.set_executor(executor);
    }
    if args.executor.dry_run {
        let jobs = builder.executor_jobs()?;
        renderer.finish();
        let kube = super::executor::kube_options(&builder.config().configuration.executor)?;
        print!("{}", vauban_kube::dry_run(&jobs, &kube)?);
        return Ok(());
    }
    if builder.needs_keys()? {
        let found = key_secret(args.keystore_key_file.as_deref())?;
        if let Some(path) = &found.made {
            renderer.note(&format!(
                "made the key store secret {} (an age identity): keep it, the hosts' sshd \
                 keys cannot be read without it",
                path.display()
            ));
        }
        builder.set_keys(found.secret);
    }
    let result = builder.run();
    renderer.finish();
    recap(builder.report(), globals);
    result.with_context(|| format!("building {name}"))?;
    renderer.result(&format!("{name}: output in {}", out.display()));
    Ok(())
}

/// The recap table on stderr (stdout stays for the result and JSON).
fn recap(report: &vauban_core::build::BuildReport, globals: &Globals) {
    if globals.events == crate::render::EventsMode::Json || report.steps.is_empty() {
        return;
    }
    eprintln!();
    for a in &report.ansible {
        eprintln!(
            "Ansible: {}",
            vauban_core::printable::escape(&a.to_string())
        );
    }
    eprintln!(
        "{:<56} {:<7} {:>10} {:>8}  IMAGE",
        "STEP", "", "SIZE", "TIME"
    );
    for s in &report.steps {
        let digest = s
            .image
            .as_ref()
            .map(|d| d.to_string().chars().take(19).collect::<String>())
            .unwrap_or_default();
        eprintln!(
            "{:<56} {:<7} {:>10} {:>7.1}s  {digest}",
            s.step,
            s.outcome.to_string(),
            bytesize::ByteSize(s.size).to_string(),
            s.seconds
        );
    }
    let cached = report
        .steps
        .iter()
        .filter(|s| s.outcome == Outcome::Cached)
        .count();
    eprintln!(
        "{} step(s): {} built, {} cached; {} file(s) exported, {} pushed",
        report.steps.len(),
        report.built(),
        cached,
        report.exported.len(),
        report.pushed.len()
    );
    for w in &report.warnings {
        eprintln!("warning: {}", vauban_core::printable::escape(w));
    }
}
