//! `vauban images`: a table of the store's images.

use anyhow::Result;
use vauban_oci::Image;

use crate::cli::Globals;

/// Arguments of `vauban images`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show full manifest digests.
    #[arg(long)]
    pub no_trunc: bool,
    /// Also show intermediate images (each stage's own, `PREFIX/playbook:TAG`).
    #[arg(long, short)]
    pub all: bool,
}

/// Prints NAME, DIGEST, SIZE, CREATED for every image.
pub fn run(globals: &Globals, args: Args) -> Result<()> {
    let store = globals.open_store()?;
    let mut rows = vec![[
        "NAME".to_string(),
        "DIGEST".to_string(),
        "SIZE".to_string(),
        "CREATED".to_string(),
    ]];
    for (reference, desc) in store.list()? {
        if !args.all && vauban_oci::store::Store::is_intermediate(&desc) {
            continue;
        }
        // A broken image is listed all the same (`vauban fsck` says what is wrong).
        let row = match Image::from_descriptor(&store, &desc) {
            Ok(image) => [
                reference.to_string(),
                short(&image.manifest_digest.to_string(), args.no_trunc),
                human_size(image.size()),
                image.config.created().clone().unwrap_or_else(|| "-".into()),
            ],
            Err(e) => {
                tracing::warn!("image {reference}: {e}");
                [
                    reference.to_string(),
                    short(desc.digest().as_ref(), args.no_trunc),
                    "?".into(),
                    "(broken: run vauban fsck)".into(),
                ]
            }
        };
        rows.push(row);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        println!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(())
}

/// `sha256:<hex>` as 12 hex digits, or whole with `--no-trunc`.
fn short(digest: &str, no_trunc: bool) -> String {
    if no_trunc {
        return digest.to_string();
    }
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// `1.5 MiB`-style sizes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(12), "12 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(200 << 20), "200.0 MiB");
    }
}
