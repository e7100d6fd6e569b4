//! The layers of a conffs: the host image's layers above its master's
//! (compared by diff_id), each read from the store as a tar stream
//! (decompressed by its media type), the blob's digest and size and the
//! diff_id checked once the stream has been read to its end.

use std::io::{self, BufReader, Read};

use vauban_oci::digest::HashingReader;
use vauban_oci::image::digest_of;
use vauban_oci::layer::decompressor;
use vauban_oci::store::Store;
use vauban_oci::{Digest, Image};

use crate::error::{Error, Result};

/// One layer blob of an image.
#[derive(Debug, Clone)]
pub(crate) struct LayerBlob {
    /// The blob's digest.
    pub(crate) digest: Digest,
    /// The blob's size.
    pub(crate) size: u64,
    /// The uncompressed tar's digest.
    pub(crate) diff_id: Digest,
    /// The blob's media type (its compression).
    pub(crate) media_type: String,
}

/// The layers of `image`, base first.
pub(crate) fn layers_of(image: &Image) -> Result<Vec<LayerBlob>> {
    image
        .layers_with_diff_ids()?
        .into_iter()
        .map(|(desc, diff_id)| {
            Ok(LayerBlob {
                digest: digest_of(&desc)?,
                size: desc.size(),
                diff_id,
                media_type: desc.media_type().to_string(),
            })
        })
        .collect()
}

/// The host image's own layers, **top first**: those after the master's,
/// whose diff_ids must start the host image's.
pub(crate) fn host_layers(master: &Image, host: &Image) -> Result<Vec<LayerBlob>> {
    let below = master.diff_ids()?;
    let all = layers_of(host)?;
    let on_top = all.len() >= below.len() && all.iter().zip(&below).all(|(l, d)| l.diff_id == *d);
    if !on_top {
        return Err(Error::NotOnTop {
            master: master.manifest_digest.to_string(),
            image: host.manifest_digest.to_string(),
        });
    }
    Ok(all.into_iter().skip(below.len()).rev().collect())
}

/// Whether to read on after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next entry.
    Continue,
    /// Stop reading this layer (nothing is verified then).
    Stop,
}

/// Reads the tar entries of `layer` in order, calling `visit` with each
/// entry and its number in the layer; checks digest, size and diff_id when
/// the stream was read to its end. `visit`'s errors are returned as they are.
pub(crate) fn read_layer(
    store: &Store,
    layer: &LayerBlob,
    mut visit: impl FnMut(&mut tar::Entry<'_, &mut dyn Read>, u64) -> Result<Flow>,
) -> Result<Flow> {
    let tar_err = |source: io::Error| {
        Error::Oci(vauban_oci::Error::Tar {
            what: format!("layer blob {}", layer.digest),
            source,
        })
    };
    let blob = store.open_blob(&layer.digest)?;
    let mut packed = HashingReader::new(BufReader::new(blob).take(layer.size.saturating_add(1)));
    let mut plain = HashingReader::new(decompressor(&layer.media_type, &mut packed)?);
    {
        let input: &mut dyn Read = &mut plain;
        let mut archive = tar::Archive::new(input);
        for (n, entry) in archive.entries().map_err(tar_err)?.enumerate() {
            let mut entry = entry.map_err(tar_err)?;
            if visit(&mut entry, n as u64)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
    }
    io::copy(&mut plain, &mut io::sink()).map_err(tar_err)?;
    let (diff_id, _) = plain.finish();
    io::copy(&mut packed, &mut io::sink()).map_err(tar_err)?;
    let (digest, size) = packed.finish();
    let what = format!("layer blob {}", layer.digest);
    if size != layer.size {
        return Err(Error::Oci(vauban_oci::Error::SizeMismatch {
            what,
            expected: layer.size,
            found: size,
        }));
    }
    layer.digest.verify(&digest, &what)?;
    layer
        .diff_id
        .verify(&diff_id, format!("diff_id of {what}"))?;
    Ok(Flow::Continue)
}
