//! `vauban build --name MASTER [--stage rootfs|conffs|initramfs|all] ...`:
//! builds masters and their hosts' conffs and boot files from `config.yml`
//! (the original's meaning of every option), or with `--check` prints the plan.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::build::{BuildOptions, Builder, Outcome, Part, Registry};
use vauban_core::config::Config;
use vauban_core::keys::KeySecret;
use vauban_core::stage::Hooks;
use vauban_oci::dirs::UserDir;

use super::push::RegistryArgs;
use super::stage::ansible_source;
use crate::cli::Globals;

/// Arguments of `vauban build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The master to build (as `--name` names it: `name:`, else its key).
    #[arg(long, value_name = "MASTER")]
    pub name: String,

    /// What to build: the master's image, its hosts' conffs, its boot files, or all.
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

    /// The config file (`--config-path`, the original's spelling, works too).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config.yml",
        alias = "config-path"
    )]
    pub config: PathBuf,

    /// The Ansible repository (a directory, or a git URL) [default: `ansible:` of
    /// the config's `configuration:`].
    #[arg(long, value_name = "DIR|URL", env = "VAUBAN_ANSIBLE")]
    pub ansible: Option<String>,

    /// The hosts' pattern instead of the master's `conffs:` (Ansible `--limit` syntax).
    #[arg(long, value_name = "PATTERN")]
    pub conffs: Option<String>,

    /// Take every stage from this branch of the Ansible repository.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// Print the plan (steps, images, hosts, what the cache serves) and build nothing.
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

    /// An extra argument for ansible-playbook (repeatable).
    #[arg(long = "ansible-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub ansible_args: Vec<String>,

    /// A shell snippet run before ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_PRE_ANSIBLE")]
    pub hook_pre: Option<String>,

    /// A shell snippet run after ansible-playbook, in the Ansible root.
    #[arg(long, value_name = "SHELL", env = "HOOK_POST_ANSIBLE")]
    pub hook_post: Option<String>,

    /// Where git clones of Ansible repositories are cached
    /// [default: $XDG_CACHE_HOME/vauban/ansible].
    #[arg(long, value_name = "DIR", env = "VAUBAN_CACHE")]
    pub cache_dir: Option<PathBuf>,

    /// Where the logs are saved [default: $XDG_STATE_HOME/vauban/logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Do not print Ansible's output (the logs keep it).
    #[arg(long, short)]
    pub quiet: bool,

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
        None => UserDir::Data
            .path()
            .context("no $XDG_DATA_HOME nor $HOME: give --keystore")?
            .join("vauban-keys/hostkeys.age"),
    };
    let mut opts = BuildOptions::new(&args.name, args.stage, keystore);
    opts.build_parents = args.build_parents;
    opts.conffs = args.conffs.clone();
    opts.branch = args.branch.clone();
    opts.ansible = args.ansible.as_deref().map(ansible_source).transpose()?;
    opts.ansible_args = args.ansible_args.clone();
    opts.hooks = Hooks {
        pre: args.hook_pre.clone(),
        post: args.hook_post.clone(),
    };
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

    let (renderer, events) = globals.renderer(args.quiet);
    let mut env = super::stage::env(args.cache_dir.as_deref(), args.log_dir.as_deref(), events)?;
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

    if needs_keys(&config, &opts) {
        let (secret, made) = key_secret(&args)?;
        if let Some(path) = made {
            renderer.note(&format!(
                "made the key store secret {} (an age identity): keep it, the hosts' sshd \
                 keys cannot be read without it",
                path.display()
            ));
        }
        opts.keys = Some(secret);
    }
    let name = opts.name.clone();
    let out = opts.out.clone();
    let mut builder = Builder::new(config, &store, env, opts)?;
    let result = builder.run();
    renderer.finish();
    recap(builder.report(), globals);
    result.with_context(|| format!("building {name}"))?;
    renderer.result(&format!("{name}: output in {}", out.display()));
    Ok(())
}

/// Whether the build has a conffs step (which needs the key store).
fn needs_keys(config: &Config, opts: &BuildOptions) -> bool {
    matches!(opts.part, Part::All | Part::Conffs)
        && (opts.conffs.is_some() || config.get(&opts.name).is_some_and(|m| m.conffs.is_some()))
}

/// The key store's secret: `--keystore-key-file`, `$VAUBAN_KEYSTORE_KEY`, else
/// the default identity file (made when missing; its path is returned then).
fn key_secret(args: &Args) -> Result<(KeySecret, Option<PathBuf>)> {
    if let Some(file) = &args.keystore_key_file {
        return Ok((KeySecret::from_file(file)?, None));
    }
    if let Some(secret) = KeySecret::from_env()? {
        return Ok((secret, None));
    }
    let path = UserDir::Config
        .vauban()
        .context("no $XDG_CONFIG_HOME nor $HOME: give --keystore-key-file")?
        .join("keystore-key.txt");
    let (secret, made) = KeySecret::load_or_create_identity(&path)?;
    Ok((secret, made.then_some(path)))
}

/// The recap table on stderr (stdout stays for the result and JSON).
fn recap(report: &vauban_core::build::BuildReport, globals: &Globals) {
    if globals.events == crate::render::EventsMode::Json || report.steps.is_empty() {
        return;
    }
    eprintln!();
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
