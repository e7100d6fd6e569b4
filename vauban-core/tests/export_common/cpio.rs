//! Reading an initramfs in the tests: uncompressed `newc` cpio archives
//! (dracut's early microcode, if any) followed by a gzip one, as the kernel
//! reads them. Only what the tests need: regular files by path.

use std::collections::BTreeMap;
use std::io::Read;

/// Every regular file of the initramfs `data` by path (no leading `./`).
pub fn initramfs_files(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut rest = data;
    loop {
        while rest.first() == Some(&0) {
            rest = &rest[1..];
        }
        if rest.is_empty() {
            return files;
        }
        if rest.starts_with(b"07070") {
            rest = read_archive(rest, &mut files);
        } else if rest.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(rest)
                .read_to_end(&mut plain)
                .expect("a gzip initramfs");
            read_archive(&plain, &mut files);
            return files;
        } else {
            panic!(
                "unknown initramfs part starting {:02x?}",
                &rest[..4.min(rest.len())]
            );
        }
    }
}

/// Reads one archive up to its trailer; returns what follows it.
fn read_archive<'a>(mut data: &'a [u8], files: &mut BTreeMap<String, Vec<u8>>) -> &'a [u8] {
    let start = data.as_ptr() as usize;
    let align = |d: &'a [u8]| -> &'a [u8] {
        let off = d.as_ptr() as usize - start;
        &d[(4 - off % 4) % 4..]
    };
    loop {
        assert!(data.starts_with(b"07070"), "bad cpio header");
        let field = |i: usize| {
            let s = std::str::from_utf8(&data[6 + 8 * i..14 + 8 * i]).unwrap();
            usize::from_str_radix(s, 16).unwrap()
        };
        let (mode, size, namesize) = (field(1), field(6), field(11));
        let name = String::from_utf8_lossy(&data[110..110 + namesize - 1]).into_owned();
        data = align(&data[110 + namesize..]);
        if name == "TRAILER!!!" {
            return data;
        }
        if mode & 0o170000 == 0o100000 {
            let path = name.trim_start_matches("./").to_string();
            files.insert(path, data[..size].to_vec());
        }
        data = align(&data[size..]);
    }
}
