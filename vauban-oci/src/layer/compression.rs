//! Compression of layer blobs: media types, decompressors (multi-member gzip,
//! capped zstd window, xz for imported tarballs) and format sniffing.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip OCI layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd OCI layer.
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Largest zstd window accepted when decoding (2^27 = 128 MiB, zstd's default cap).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Compression of a layer blob.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Compression {
    /// gzip (the default, the most widely understood).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// No compression.
    None,
}

impl Compression {
    /// The OCI layer media type of this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd => MEDIA_TYPE_TAR_ZSTD,
            Compression::None => MEDIA_TYPE_TAR,
        }
    }

    /// The compression of an OCI or Docker layer media type (non-distributable
    /// variants included).
    pub fn from_media_type(media_type: &str) -> Result<Self> {
        let base = media_type.replace(".nondistributable.", ".").replace(
            "vnd.docker.image.rootfs.foreign.diff",
            "vnd.docker.image.rootfs.diff",
        );
        match base.as_str() {
            MEDIA_TYPE_TAR_GZIP | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                Ok(Compression::Gzip)
            }
            MEDIA_TYPE_TAR_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
                Ok(Compression::Zstd)
            }
            MEDIA_TYPE_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
                Ok(Compression::None)
            }
            _ => Err(Error::UnsupportedMediaType(media_type.to_string())),
        }
    }

    /// Parses `gzip`, `zstd` or `none` (command-line spelling).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gzip" | "gz" => Some(Compression::Gzip),
            "zstd" | "zst" => Some(Compression::Zstd),
            "none" | "tar" => Some(Compression::None),
            _ => None,
        }
    }
}

/// A decompressing reader for a layer of `media_type`. Gzip reads every member
/// to the end of the stream (bytes after the last member are an error), zstd
/// refuses windows larger than 128 MiB.
pub fn decompressor<'a>(media_type: &str, input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let compression = Compression::from_media_type(media_type)?;
    decoder(compression, input).at("open decompressor for", media_type)
}

fn decoder<'a>(
    compression: Compression,
    input: impl Read + 'a,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(input)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(d)
        }
        Compression::None => Box::new(input),
    })
}

/// Sniffs the first bytes of `input` (gzip, zstd, xz or plain) and returns a
/// reader of the uncompressed stream.
pub fn sniff_decompressor<'a>(input: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        decoder(Compression::Gzip, input)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        decoder(Compression::Zstd, input)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Ok(Box::new(xz2::read::XzDecoder::new_multi_decoder(input)))
    } else {
        Ok(Box::new(input))
    }
}

/// Opens a tarball that may be plain, gzip, xz or zstd (sniffed from its content).
pub fn open_tarball(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).at("open", path)?;
    sniff_decompressor(file).at("read", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_round_trip() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(Compression::from_media_type(c.media_type()).unwrap(), c);
        }
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap(),
            Compression::Gzip
        );
        assert!(Compression::from_media_type("application/json").is_err());
    }

    #[test]
    fn sniffs_formats() {
        use std::io::Write;
        let plain = b"hello tar".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::bulk::compress(&plain, 3).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let xz = xz.finish().unwrap();
        for blob in [plain.clone(), gz, zst, xz] {
            let mut out = Vec::new();
            sniff_decompressor(&blob[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn zstd_window_is_capped() {
        use std::io::Write;
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.set_parameter(zstd::zstd_safe::CParameter::WindowLog(30))
            .unwrap();
        e.write_all(&[7u8; 4096]).unwrap();
        let blob = e.finish().unwrap();
        let mut out = Vec::new();
        let r = decompressor(MEDIA_TYPE_TAR_ZSTD, &blob[..])
            .unwrap()
            .read_to_end(&mut out);
        assert!(r.is_err(), "a 1 GiB window was accepted");
    }
}
