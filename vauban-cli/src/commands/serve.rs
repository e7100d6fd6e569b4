//! `vauban serve`: runs vauban as a service ([`vauban_serve`]): each build a
//! `vauban build --events json` worker of this same binary, with the options
//! given here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use vauban_core::build::publish::Registry;
use vauban_oci::dirs::UserDir;
use vauban_serve::boot::BootOptions;
use vauban_serve::{ServeOptions, Server, WorkerCommand};

use super::network::{NetworkArgs, NetworkMode};
use crate::cli::Globals;

/// Arguments of `vauban serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the API and the page listen (loopback unless told otherwise).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The config file (re-read when it changes, and on SIGHUP).
    #[arg(long, value_name = "FILE", default_value = "config.yml")]
    pub config: PathBuf,

    /// The Ansible repository (a directory, or a git URL) [default: `ansible:`
    /// of the config's `configuration:`].
    #[arg(long, value_name = "DIR|URL", env = "VAUBAN_ANSIBLE")]
    pub ansible: Option<String>,

    /// The server's state: the history database and each build's log, events
    /// and Ansible logs [default: $XDG_STATE_HOME/vauban/serve].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// The callers' tokens: one `NAME TOKEN` a line (the name is who asked;
    /// tokens of 16 characters or more). Re-read when it changes.
    #[arg(long, value_name = "FILE", env = "VAUBAN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Behind a trusted proxy on this machine: take the user's name from this
    /// header (e.g. X-Authentik-Username). Only with a loopback --listen.
    #[arg(long, value_name = "HEADER")]
    pub user_header: Option<String>,

    /// Builds at once (one per master at a time).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,

    /// Hosts each build works on at once (its `vauban build --jobs`).
    #[arg(long, value_name = "N")]
    pub host_jobs: Option<usize>,

    /// Where each build's masters' stages and conffs hosts are built:
    /// `local`, `slurm` or `kubernetes` (its `vauban build --executor`; needs
    /// --registry)
    /// [default: `executor:` of the config].
    #[arg(long, value_name = "EXECUTOR", value_parser = ["local", "slurm", "kubernetes"])]
    pub executor: Option<String>,

    /// Hosts a task of the executor (its `vauban build --shard-size`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_size: Option<u64>,

    /// Push every image built to HOST[:PORT]/NAMESPACE.
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE")]
    pub registry: Option<String>,

    /// The registry's auth file (credentials are never put on a command line).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    /// Verify the registry's TLS certificates; `=false` also allows plain HTTP.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,

    /// The output tree (conffs archives, boot files) [default: STATE/out].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The sshd host-key store of the builds.
    #[arg(long, value_name = "FILE", env = "VAUBAN_KEYSTORE")]
    pub keystore: Option<PathBuf>,

    /// The file of the key store's secret.
    #[arg(long, value_name = "FILE")]
    pub keystore_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub network: NetworkArgs,

    /// POST a JSON notification to this URL when a build fails, and when a
    /// master builds again after a failure (repeatable). Slack's incoming
    /// webhooks (or a URL written `slack+https://...`) get Slack's payload.
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,

    /// Notify after every build, not only failures and fixes.
    #[arg(long)]
    pub notify_all: bool,

    /// The server's URL as people reach it, for links in notifications.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Send failed builds and the server's internal errors to Sentry.
    #[arg(long, value_name = "DSN", env = "SENTRY_DSN", hide_env_values = true)]
    pub sentry_dsn: Option<String>,

    /// Remove the files (logs, events) of builds finished this many days ago;
    /// the history keeps their record.
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u32>,

    /// A boot server only: the boot routes, deployments and hosts, no
    /// build API, no scheduler (deploy with `--from TAG`, pulled from
    /// --registry).
    #[arg(long)]
    pub boot_only: bool,

    /// The URL hosts reach this server at, written into their iPXE
    /// scripts and kernel command lines [default: http:// and the Host
    /// each script request names].
    #[arg(long, value_name = "URL")]
    pub boot_url: Option<String>,

    /// Hand a host's conffs (its sshd keys) only to its inventory address
    /// (host variable `ip`, or an `ansible_host` that is an address).
    #[arg(long)]
    pub conffs_from_known_ip: bool,

    /// How long the token of a boot opens its files, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub boot_token_ttl: u64,

    /// The largest drift a host may send (`vauban-drift`), in bytes (K, M,
    /// G or KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = super::drift::parse_size)]
    pub max_drift_size: u64,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let state = match &args.state {
        Some(s) => std::path::absolute(s)?,
        None => UserDir::State
            .path()
            .context("no $XDG_STATE_HOME nor $HOME: give --state")?
            .join("vauban/serve"),
    };
    let config = std::path::absolute(&args.config)?;
    let out = match &args.out {
        Some(o) => std::path::absolute(o)?,
        None => state.join("out"),
    };
    let mut build_args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ];
    let mut push = |flag: &str, value: String| {
        build_args.push(flag.into());
        build_args.push(value);
    };
    if let Some(a) = &args.ansible {
        push("--ansible", a.clone());
    }
    if let Some(r) = &args.registry {
        push("--registry", r.clone());
    }
    if let Some(a) = &args.authfile {
        push("--authfile", std::path::absolute(a)?.display().to_string());
    }
    if let Some(k) = &args.keystore {
        push("--keystore", std::path::absolute(k)?.display().to_string());
    }
    if let Some(k) = &args.keystore_key_file {
        push(
            "--keystore-key-file",
            std::path::absolute(k)?.display().to_string(),
        );
    }
    if let Some(j) = args.host_jobs {
        push("--jobs", j.to_string());
    }
    if let Some(e) = args.executor.as_ref().filter(|e| *e != "local") {
        if args.registry.is_none() {
            anyhow::bail!(
                "--executor {e} needs --registry HOST[:PORT]/NAMESPACE: the registry is where \
                 the builds' tasks find the image they start from and leave the images they make"
            );
        }
    }
    if let Some(e) = &args.executor {
        push("--executor", e.clone());
    }
    if let Some(n) = args.shard_size {
        push("--shard-size", n.to_string());
    }
    args.network.network()?;
    match args.network.network {
        Some(NetworkMode::Host) => push("--network", "host".into()),
        Some(NetworkMode::Isolated) => push("--network", "isolated".into()),
        None => {}
    }
    for a in &args.network.allow {
        push("--network-allow", a.clone());
    }
    if !args.tls_verify {
        build_args.push("--tls-verify=false".into());
    }
    let opts = ServeOptions {
        listen: args.listen,
        config,
        state,
        token_file: args
            .token_file
            .as_deref()
            .map(std::path::absolute)
            .transpose()?,
        user_header: args.user_header.clone(),
        jobs: args.jobs.max(1),
        worker: WorkerCommand {
            program: std::env::current_exe().context("cannot find this program's path")?,
            global_args: vec!["--store".into(), store.root().display().to_string()],
            build_args,
            env: Vec::new(),
        },
        notify: args.notify.clone(),
        notify_all: args.notify_all,
        public_url: args.public_url.clone(),
        sentry_dsn: args.sentry_dsn.clone(),
        keep_days: args.keep_days,
        store: store.root().to_path_buf(),
        boot: BootOptions {
            boot_url: match &args.boot_url {
                Some(u) => Some(check_boot_url(u)?),
                None => None,
            },
            token_ttl: std::time::Duration::from_secs(args.boot_token_ttl.max(60)),
            conffs_from_known_ip: args.conffs_from_known_ip,
            max_drift: args.max_drift_size,
            registry: match &args.registry {
                Some(r) => Some(Registry::parse(
                    r,
                    super::push::RegistryArgs {
                        tls_verify: args.tls_verify,
                        creds: None,
                        authfile: args.authfile.clone(),
                    }
                    .options()?,
                )?),
                None => None,
            },
        },
        boot_only: args.boot_only,
    };
    let runtime = super::push::runtime()?;
    runtime.block_on(async move {
        let server = Server::bind(opts).await?;
        let addr = server.local_addr()?;
        eprintln!("vauban serve: listening on http://{addr}/");
        server.run().await?;
        Ok(())
    })
}

/// `--boot-url`: an `http://` or `https://` URL with a host and no query.
fn check_boot_url(url: &str) -> Result<String> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("--boot-url {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host().is_none()
        || parsed.query().is_some()
        || url.contains(char::is_whitespace)
    {
        anyhow::bail!("--boot-url {url:?}: give http(s)://HOST[:PORT][/PATH], which hosts reach");
    }
    Ok(url.trim_end_matches('/').to_owned())
}
