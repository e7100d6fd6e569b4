//! `vauban remote build|status|log|cancel|retry|list`: the client of `vauban
//! serve` ([`vauban_serve::client`]). `build --follow` prints the live log
//! and exits with the build's result; Ctrl-C asks whether to cancel the
//! build on the server (as the original's vauban-client did).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vauban_serve::client::Client;
use vauban_serve::model::{Build, BuildRequest, Status};

use crate::cli::Globals;

/// Arguments of `vauban remote`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is and the token to show it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server (`http://HOST:PORT`).
    #[arg(long, value_name = "URL", env = "VAUBAN_SERVER", global = true)]
    pub server: Option<String>,

    /// A file holding the token, alone or as one `NAME TOKEN` line (a file
    /// of several lines is refused: say which token). Without it, the token
    /// is `$VAUBAN_TOKEN` itself.
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// A client of the server.
    pub fn client(&self) -> Result<Client> {
        let server = self
            .server
            .clone()
            .context("which server? give --server URL or $VAUBAN_SERVER")?;
        let token = token(self.token_file.as_deref())?;
        Ok(Client::new(&server, token)?)
    }
}

/// The subcommands of `vauban remote`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Ask for a build (the options of `vauban build`).
    Build(BuildArgs),
    /// Show a build: its state, steps, and why it failed.
    Status {
        /// The build's id.
        id: String,
    },
    /// Print a build's log.
    Log {
        /// The build's id.
        id: String,
        /// Follow it until the build ends (exit status: the build's).
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a build.
    Cancel {
        /// The build's id.
        id: String,
    },
    /// Ask again for what a failed or cancelled build asked (trigger `retry`).
    Retry {
        /// The failed or cancelled build's id.
        id: String,
        /// Print the live log and exit with the new build's result.
        #[arg(long, short)]
        follow: bool,
    },
    /// List builds, newest first.
    List {
        /// Only this master's.
        #[arg(long, value_name = "MASTER")]
        master: Option<String>,
        /// Only builds in this state (queued, running, succeeded, failed, cancelled).
        #[arg(long, value_name = "STATE")]
        status: Option<String>,
        /// At most this many.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
}

/// `vauban remote build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The master to build.
    #[arg(long, value_name = "MASTER")]
    pub name: String,
    /// rootfs, conffs, initramfs or all.
    #[arg(long, value_name = "STAGE", default_value = "all")]
    pub stage: String,
    /// How many parents to build first (`-1`: the whole chain).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub build_parents: i64,
    /// The hosts' pattern instead of the master's `conffs:`.
    #[arg(long, value_name = "PATTERN", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub conffs: Option<String>,
    /// Take every stage from this branch.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Run every stage, even those the cache has.
    #[arg(long)]
    pub no_cache: bool,
    /// Rebuild first a parent whose inputs changed since it was built.
    #[arg(long)]
    pub rebuild_stale: bool,
    /// Deploy the master's boot files when the build succeeds (its hosts
    /// boot them next).
    #[arg(long)]
    pub deploy: bool,
    /// Print the live log and exit with the build's result.
    #[arg(long, short)]
    pub follow: bool,
}

/// Runs the subcommand.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let client = args.server.client()?;
    let runtime = super::push::runtime()?;
    runtime.block_on(async move {
        match args.command {
            Command::Build(b) => build(&client, b).await,
            Command::Status { id } => {
                let build = client.get(&id).await?;
                print_build(&build);
                ended_well(&build)
            }
            Command::Log { id, follow } => {
                if follow {
                    return follow_build(&client, &id).await;
                }
                client.log(&id, false, |l| out!("{l}")).await?;
                Ok(())
            }
            Command::Cancel { id } => {
                let reply = client.cancel(&id).await?;
                out!("{}: {}", reply.id, reply.status);
                Ok(())
            }
            Command::Retry { id, follow } => {
                let sub = client.retry(&id).await?;
                eprintln!("build {} retries {id} ({})", sub.id, sub.url);
                if follow {
                    return follow_build(&client, &sub.id).await;
                }
                out!("{}", sub.id);
                Ok(())
            }
            Command::List {
                master,
                status,
                limit,
            } => {
                let builds = client
                    .list(master.as_deref(), status.as_deref(), limit)
                    .await?;
                out!(
                    "{:<26}  {:<9}  {:<20}  {:<9}  {:<10}  CREATED",
                    "ID",
                    "STATE",
                    "MASTER",
                    "STAGE",
                    "BY"
                );
                for b in builds {
                    out!(
                        "{:<26}  {:<9}  {:<20}  {:<9}  {:<10}  {}",
                        b.id,
                        b.status.as_str(),
                        b.request.name,
                        b.request.stage,
                        b.requested_by,
                        b.created
                    );
                }
                Ok(())
            }
        }
    })
}

/// The token of `file`, else of `$VAUBAN_TOKEN`.
fn token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(file) = file else {
        return Ok(std::env::var("VAUBAN_TOKEN").ok().filter(|t| !t.is_empty()));
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match lines.as_slice() {
        [line] => Ok(line.split_whitespace().last().map(str::to_owned)),
        [] => bail!("{}: no token in it", file.display()),
        _ => bail!(
            "{}: {} tokens in it; give a file of one (or $VAUBAN_TOKEN)",
            file.display(),
            lines.len()
        ),
    }
}

async fn build(client: &Client, b: BuildArgs) -> Result<()> {
    let req = BuildRequest {
        name: b.name,
        stage: b.stage,
        build_parents: b.build_parents,
        conffs: b.conffs,
        branch: b.branch,
        no_cache: b.no_cache,
        rebuild_stale: b.rebuild_stale,
        deploy: b.deploy,
    };
    let sub = client.submit(&req).await?;
    eprintln!(
        "build {} {} ({})",
        sub.id,
        if sub.coalesced {
            "joined an identical queued build"
        } else {
            "queued"
        },
        sub.url
    );
    if !b.follow {
        out!("{}", sub.id);
        return Ok(());
    }
    follow_build(client, &sub.id).await
}

/// Prints the live log; on Ctrl-C, asks whether to cancel. Fails when the
/// build did not succeed.
async fn follow_build(client: &Client, id: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let log = client.log(id, true, |l| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{l}");
        let _ = out.flush();
    });
    tokio::pin!(log);
    loop {
        tokio::select! {
            done = &mut log => { done?; break; }
            _ = tokio::signal::ctrl_c() => {
                if ask_cancel(id)? {
                    let reply = client.cancel(id).await?;
                    eprintln!("build {id}: {}", reply.status);
                    // Follow on to its end.
                } else {
                    eprintln!("build {id} goes on: vauban remote log --follow {id}");
                    std::process::exit(130);
                }
            }
        }
    }
    let build = client.get(id).await?;
    eprintln!("build {id}: {}", build.status.as_str());
    ended_well(&build)
}

fn ask_cancel(id: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("\nCancel build {id} on the server? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn print_build(b: &Build) {
    let r = &b.request;
    out!("build {}: {}", b.id, b.status.as_str());
    out!(
        "  master {} --stage {} --build-parents {}",
        r.name,
        r.stage,
        r.build_parents
    );
    out!(
        "  asked by {} ({}) at {}",
        b.requested_by,
        b.trigger.as_str(),
        b.created
    );
    if let Some(s) = b.seconds {
        out!("  took {s:.1} s");
    }
    for s in &b.steps {
        out!(
            "  {:<9} {:<50} {} {}",
            s.state,
            s.step,
            s.image.as_deref().unwrap_or(""),
            s.seconds.map(|s| format!("({s:.1} s)")).unwrap_or_default()
        );
    }
    if let Some(e) = &b.error {
        out!("  error: {e}");
    }
    if let Some(h) = &b.failed_host {
        out!("  failed host: {h}");
    }
    for l in &b.tail {
        out!("  | {l}");
    }
}

fn ended_well(b: &Build) -> Result<()> {
    match b.status {
        Status::Succeeded | Status::Queued | Status::Running => Ok(()),
        Status::Failed => bail!(
            "build {} failed: {}",
            b.id,
            b.error.as_deref().unwrap_or("no error recorded")
        ),
        Status::Cancelled => bail!("build {} was cancelled", b.id),
    }
}
