//! `vauban pull REF [--tag NAME[:TAG]] [--platform OS/ARCH]`, and the transfer
//! progress shown by push and pull: a bar per blob on a terminal, one plain
//! line per blob otherwise (CI logs).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use vauban_oci::reference::Reference;
use vauban_oci::registry::{self, BlobOutcome, Platform, Progress, Source};
use vauban_oci::Digest;

use super::push::{runtime, RegistryArgs};
use crate::cli::Globals;

/// Progress of blob transfers for the terminal or a log.
pub struct TransferProgress {
    bars: Option<(MultiProgress, Mutex<HashMap<Digest, ProgressBar>>)>,
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl TransferProgress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        TransferProgress {
            bars,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        if let Some((m, _)) = &self.bars {
            let _ = m.clear();
        }
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

impl Progress for TransferProgress {
    fn blob_start(&self, digest: &Digest, size: u64) {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone(), size);
        if let Some((m, bars)) = &self.bars {
            let bar = m.add(
                ProgressBar::new(size).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                ),
            );
            bar.set_message(short(digest));
            bars.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest.clone(), bar);
        }
    }

    fn blob_progress(&self, digest: &Digest, done: u64) {
        if let Some((_, bars)) = &self.bars {
            if let Some(b) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(digest) {
                b.set_position(done);
            }
        }
    }

    fn blob_done(&self, digest: &Digest, outcome: BlobOutcome) {
        let what = match outcome {
            BlobOutcome::Uploaded => "uploaded",
            BlobOutcome::Exists => "already in the repository",
            BlobOutcome::Mounted => "mounted",
            BlobOutcome::Downloaded => "downloaded",
            BlobOutcome::Cached => "already in the store",
        };
        let size = self
            .sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .copied();
        let line = match size {
            Some(s) if matches!(outcome, BlobOutcome::Uploaded | BlobOutcome::Downloaded) => {
                format!("blob {} {what} ({s} bytes)", short(digest))
            }
            _ => format!("blob {} {what}", short(digest)),
        };
        match &self.bars {
            Some((m, bars)) => {
                if let Some(b) = bars
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(digest)
                {
                    b.finish_and_clear();
                }
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn message(&self, text: &str) {
        match &self.bars {
            Some((m, _)) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

/// Arguments of `vauban pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to pull: [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST], or through skopeo
    /// docker-archive:FILE, oci-archive:FILE, oci:DIR[:REF], containers-storage:REF.
    pub source: String,
    /// Local name, NAME[:TAG] [default: HOST[:PORT]/REPO:TAG].
    #[arg(long, value_name = "NAME[:TAG]")]
    pub tag: Option<String>,
    /// Platform chosen from an image index.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pulls the image, then prints its local name and manifest digest.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let source = Source::parse(&args.source)?;
    let local = args.tag.as_deref().map(Reference::parse).transpose()?;
    let mut opts = args.registry.options()?;
    opts.platform = args.platform.parse::<Platform>()?;
    let progress = Arc::new(TransferProgress::new());
    let report = runtime()?
        .block_on(registry::pull_any(
            &store,
            &source,
            local.as_ref(),
            &opts,
            progress.clone(),
        ))
        .with_context(|| format!("pulling {}", args.source))?;
    progress.finish();
    eprintln!(
        "downloaded {} blob(s) ({} bytes), {} already in the store",
        report.downloaded.len(),
        report.bytes,
        report.cached.len()
    );
    println!("{} {}", report.reference, report.manifest_digest);
    Ok(())
}
