//! `vauban drift [--upper DIR] -o FILE`: what a live host changed since it
//! booted, packed as one OCI layer (`tar+gzip`): the overlay's upper dir
//! (dracut's live root keeps it at `/run/overlayfs`), its whiteouts and
//! opaque directories in OCI form, the secrets left out (the password
//! hashes, private keys and shell histories of `drift_tool::SECRETS`, and
//! every `--exclude`), never more than `--max-size`
//! bytes. `vauban diff IMAGE IMAGE+FILE` then shows the changes against the
//! image the host booted. Written under a temp name beside FILE, 0600, and
//! renamed when complete: a drift holds whatever the host's users wrote.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vauban_core::build::drift_tool::secrets_in;
use vauban_core::vauban_oci::layer::{pack, Compression, LayerSource, PackOptions};

/// Arguments of `vauban drift`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The overlay's upper dir: what changed since boot.
    #[arg(long, default_value = "/run/overlayfs")]
    pub upper: PathBuf,
    /// Where the layer (tar+gzip) goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also leave out this path (from the root; a directory with what is
    /// under it); repeatable.
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<String>,
    /// The largest layer written, in bytes (K, M, G or KiB, MiB, GiB).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub max_size: u64,
}

/// A size with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s}: not a size (a number, then K, M or G)"))?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s}: not a size (a number, then K, M, G or KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(unit).ok_or_else(|| format!("{s}: too large"))
}

/// A writer that refuses to go past `left` bytes (and says it did).
struct Bounded<W> {
    inner: W,
    left: u64,
    exceeded: bool,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.exceeded = true;
            return Err(std::io::Error::other("the drift is larger than --max-size"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Packs and writes.
pub fn run(args: Args) -> Result<()> {
    if !args.upper.is_dir() {
        bail!(
            "{}: no such directory (the live root's overlay upper dir; --upper to name another)",
            args.upper.display()
        );
    }
    let mut exclude: Vec<PathBuf> = secrets_in(&args.upper);
    for e in &args.exclude {
        let e = e.trim_matches('/');
        if e.is_empty() || e.split('/').any(|c| c == "..") {
            bail!("--exclude {e:?}: a path from the root, without `..`");
        }
        exclude.push(e.into());
    }
    if args.output.is_dir() {
        bail!(
            "-o {}: a directory: give the drift's file name",
            args.output.display()
        );
    }
    let dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".drift-")
        .tempfile_in(&dir)
        .with_context(|| format!("create a temp file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .context("chmod 0600")?;
    let opts = PackOptions {
        compression: Compression::Gzip,
        source_date_epoch: None,
        exclude,
    };
    let mut out = Bounded {
        inner: std::io::BufWriter::new(tmp.as_file()),
        left: args.max_size,
        exceeded: false,
    };
    let packed = pack(LayerSource::Upper(&args.upper), &opts, &mut out);
    let flushed = out.flush();
    if out.exceeded {
        bail!(
            "the drift of {} is larger than --max-size ({} bytes compressed): nothing written \
             (--exclude what grows, or a larger --max-size)",
            args.upper.display(),
            args.max_size
        );
    }
    let packed = packed.with_context(|| format!("packing {}", args.upper.display()))?;
    flushed.context("write the drift")?;
    drop(out);
    tmp.as_file().sync_all().context("fsync the drift")?;
    tmp.persist(&args.output)
        .with_context(|| format!("rename the drift to {}", args.output.display()))?;
    eprintln!(
        "{}: {} entries, {} bytes (layer {})",
        args.output.display(),
        packed.entries,
        packed.size,
        packed.diff_id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_unit() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("M").is_err());
    }
}
