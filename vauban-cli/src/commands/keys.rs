//! `vauban keys import|list|show|rm`: the sshd host-key store of the hosts'
//! conffs. The library reads, checks and keeps the keys
//! (`vauban_core::keys`); this parses and prints.
//!
//! Private keys are printed only by `show --private`, and only to a file or a
//! pipe: on a terminal they would stay in its scrollback (and in a recorded
//! session), so the command refuses and says how to redirect.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use vauban_core::keys::{
    HostKeys, ImportSource, Imported, KeyKind, KeySecret, KeyStore, SkipReason,
};
use vauban_core::printable::escape;

use crate::cli::Globals;

/// Arguments of `vauban keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key store and its secret.
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// Where the key store is and what opens it (the options of `vauban build`).
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The sshd host-key store [default: $XDG_DATA_HOME/vauban-keys/hostkeys.age].
    #[arg(
        long,
        value_name = "FILE",
        env = "VAUBAN_KEYSTORE",
        global = true,
        help_heading = "Key store options"
    )]
    pub keystore: Option<PathBuf>,

    /// The file of the key store's secret (an age identity or a passphrase)
    /// [default: $VAUBAN_KEYSTORE_KEY, else $XDG_CONFIG_HOME/vauban/keystore-key.txt,
    /// which `import` makes when missing].
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help_heading = "Key store options"
    )]
    pub keystore_key_file: Option<PathBuf>,
}

/// `vauban keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Bring a site's existing host keys into the store, so no fingerprint changes.
    ///
    /// The original's `vault/HOST.tar.gpg` files (--gpg), or plain key files laid
    /// out as `DIR/HOST/etc/ssh/ssh_host_*` (--from-dir). Every file is checked first (a private key in the OpenSSH format with no
    /// passphrase, its .pub its public half, the ed25519, ecdsa and rsa pairs of
    /// each host); one bad file stops the import, naming it, before the store
    /// changes. A host the store already has keeps its keys unless --replace.
    /// The files are kept byte for byte: the hosts' conffs carry what they had.
    #[command(group = clap::ArgGroup::new("source").required(true))]
    Import {
        /// The original's encrypted keys: its `vault/` directory of HOST.tar.gpg
        /// files, or one such file. Decrypted with `gpg` (package gnupg).
        #[arg(
            long,
            value_name = "PATH",
            group = "source",
            requires = "passphrase_file"
        )]
        gpg: Option<PathBuf>,
        /// The file whose first line is the passphrase of --gpg (the original's
        /// $VAULTED_SSHD_KEYS_KEY); it is read once, so `<(...)` works.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// A directory of plain key files: DIR/HOST/etc/ssh/ssh_host_* (e.g. each
        /// host's /etc/ssh, or keys taken out of Vault).
        #[arg(long, value_name = "DIR", group = "source")]
        from_dir: Option<PathBuf>,
        /// Replace the keys of hosts the store already has (listed as replaced).
        #[arg(long)]
        replace: bool,
    },
    /// List the hosts of the store with their keys' types, sizes and fingerprints.
    List,
    /// Print a host's keys: --public, --known-hosts or --private.
    ///
    /// --public prints its .pub lines (the authorized_keys form), --known-hosts
    /// `HOST TYPE KEY` lines for ~/.ssh/known_hosts, --private the private keys
    /// (to a file or a pipe only).
    #[command(group = clap::ArgGroup::new("what").required(true))]
    Show {
        /// The host.
        host: String,
        /// The public keys, as in the .pub files.
        #[arg(long, group = "what")]
        public: bool,
        /// The public keys as known_hosts lines.
        #[arg(long, group = "what")]
        known_hosts: bool,
        /// The private keys, in the OpenSSH format, one after the other; only to a
        /// file or a pipe, never to a terminal. Mind the file's mode:
        /// `(umask 077; vauban keys show web01 --private --kind ed25519 > key)`.
        #[arg(long, group = "what")]
        private: bool,
        /// Only this type of key: ed25519, ecdsa or rsa.
        #[arg(long, value_name = "TYPE")]
        kind: Option<KeyKind>,
    },
    /// Forget hosts' keys: the next build gives them new ones (and new fingerprints).
    Rm {
        /// The hosts.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

/// Runs the subcommand.
pub fn run(_globals: &Globals, args: Args) -> Result<()> {
    let path = match &args.store.keystore {
        Some(path) => std::path::absolute(path)?,
        None => KeyStore::default_path()?,
    };
    let key_file = args.store.keystore_key_file.as_deref();
    match args.action {
        Action::Import {
            gpg,
            passphrase_file,
            from_dir,
            replace,
        } => {
            let source = match (&gpg, &passphrase_file, &from_dir) {
                (Some(path), Some(passphrase_file), _) => ImportSource::Gpg {
                    path,
                    passphrase_file,
                },
                (_, _, Some(dir)) => ImportSource::Dir(dir),
                _ => bail!("give --gpg PATH --passphrase-file FILE, or --from-dir DIR"),
            };
            import(&path, key_file, source, replace)
        }
        Action::List => list(&path, key_file),
        Action::Show {
            host,
            public,
            known_hosts,
            private: _,
            kind,
        } => {
            let store = open_existing(&path, key_file)?;
            let Some(keys) = store.get(&host) else {
                bail!("{}: no keys for host {}", path.display(), escape(&host));
            };
            let kinds = KeyKind::ALL
                .into_iter()
                .filter(|k| kind.is_none_or(|only| only == *k));
            if public {
                for kind in kinds {
                    println!("{}", escape(keys.public_key(kind)));
                }
            } else if known_hosts {
                for kind in kinds {
                    println!("{}", keys.known_hosts_line(kind));
                }
            } else {
                show_private(keys, &kinds.collect::<Vec<_>>())?;
            }
            Ok(())
        }
        Action::Rm { hosts } => {
            let mut store = open_existing(&path, key_file)?;
            let unknown: Vec<_> = hosts.iter().filter(|h| store.get(h).is_none()).collect();
            if !unknown.is_empty() {
                let names: Vec<_> = unknown.iter().map(|h| escape(h)).collect();
                bail!("{}: no keys for {}", path.display(), names.join(", "));
            }
            for host in &hosts {
                store.remove(host);
            }
            store.save()?;
            for host in &hosts {
                println!("removed the keys of {}", escape(host));
            }
            Ok(())
        }
    }
}

/// `keys import`: reads and checks every key before the store is opened.
fn import(path: &Path, key_file: Option<&Path>, source: ImportSource, replace: bool) -> Result<()> {
    let imported = Imported::read(source)?;
    let (secret, made) = KeySecret::find(key_file, true)?;
    if let Some(made) = made {
        eprintln!(
            "vauban: made the key store secret {} (an age identity): keep it, the hosts' \
             sshd keys cannot be read without it",
            made.display()
        );
    }
    let mut store = KeyStore::open(path, secret)?;
    let report = store.import(imported, replace);
    store.save()?;
    for host in &report.added {
        println!("{}: added", escape(host));
    }
    for host in &report.replaced {
        println!("{}: replaced", escape(host));
    }
    for (host, reason) in &report.skipped {
        println!("{}: skipped, {reason}", escape(host));
    }
    for ignored in &report.ignored {
        println!("left out {}: {}", escape(&ignored.file), ignored.reason);
    }
    eprintln!(
        "vauban: {} added, {} replaced, {} skipped, in {}",
        report.added.len(),
        report.replaced.len(),
        report.skipped.len(),
        path.display()
    );
    if !replace
        && report
            .skipped
            .iter()
            .any(|(_, r)| *r == SkipReason::OtherKeys)
    {
        eprintln!("vauban: hint: --replace takes the imported keys of the hosts skipped");
    }
    Ok(())
}

/// `keys list`: a line per key.
fn list(path: &Path, key_file: Option<&Path>) -> Result<()> {
    if !path.exists() {
        eprintln!("vauban: no key store at {}", path.display());
        return Ok(());
    }
    let store = open_existing(path, key_file)?;
    let mut rows = vec![["HOST", "TYPE", "BITS", "FINGERPRINT", "COMMENT"].map(String::from)];
    for host in store.hosts() {
        let keys = store.get(host).expect("a listed host has keys");
        for info in keys.info() {
            rows.push([
                escape(host).into_owned(),
                info.kind.to_string(),
                info.bits.to_string(),
                info.fingerprint,
                escape(&info.comment).into_owned(),
            ]);
        }
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    for [host, kind, bits, fingerprint, comment] in rows {
        let line = format!("{host:<w0$}  {kind:<w1$}  {bits:>w2$}  {fingerprint:<w3$}  {comment}");
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// Opens the store at `path`, which must exist, with the secret given or found.
fn open_existing(path: &Path, key_file: Option<&Path>) -> Result<KeyStore> {
    if !path.exists() {
        bail!("no key store at {}", path.display());
    }
    let (secret, _) = KeySecret::find(key_file, false)?;
    Ok(KeyStore::open(path, secret)?)
}

/// The private key files of `kinds`, raw, to stdout if it is no terminal.
fn show_private(keys: &HostKeys, kinds: &[KeyKind]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    if stdout.is_terminal() {
        bail!(
            "private keys are not printed on a terminal: redirect them to a file, e.g. \
             `(umask 077; vauban keys show {} --private > keys)`",
            escape(keys.host())
        );
    }
    let wanted: Vec<&str> = kinds.iter().map(|k| k.private_file()).collect();
    for file in keys.files() {
        if wanted.contains(&file.path) {
            stdout.write_all(file.contents)?;
        }
    }
    stdout.flush()?;
    Ok(())
}
