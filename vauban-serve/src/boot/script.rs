//! The iPXE scripts the boot route answers: a host's (its kernel, initramfs,
//! rootfs and conffs named by digest at `BASE/boot/blobs/DIGEST/NAME`, each
//! URL carrying the boot's token; dracut's live boot command line as the
//! build writes it, then the config's, the master's and the host's kernel
//! arguments), and the local-disk one for a MAC nobody owns or a host whose
//! master is not deployed (`exit` hands the boot back to the firmware,
//! which tries its next device).

use vauban_core::export::is_kernel_arg;

use super::artifact::{Artifact, BootFile};
use crate::error::Result;

/// The script of `host` booting `artifact` (deployment `deployment`, build
/// `build`) with `token`, files fetched from `base` (no trailing `/`).
pub fn host_script(
    base: &str,
    host: &str,
    artifact: &Artifact,
    deployment: i64,
    build: Option<&str>,
    token: &str,
) -> Result<String> {
    let [kernel, initramfs, rootfs, conffs] = artifact.boot_files(host)?;
    let url = |f: &BootFile| {
        format!(
            "{base}/boot/blobs/{}/{}?boot={token}",
            f.digest,
            word(f.name())
        )
    };
    let info = &artifact.info;
    let mut extra: Vec<String> = info.kernel_args.clone();
    if let Some(h) = info.hosts.get(host) {
        extra.extend(h.kernel_args.iter().cloned());
    }
    // An artifact may come from a registry, its boot.json from an
    // inventory: nothing of it may end a line of the script or be expanded
    // by iPXE (`${...}`).
    extra.retain(|a| {
        let ok = is_kernel_arg(a);
        if !ok {
            tracing::warn!(host, arg = %a.escape_debug(), "kernel argument left out of the iPXE script");
        }
        ok
    });
    let (host, master) = (word(host), word(&info.master));
    let cmdline = vauban_core::export::live_cmdline(&url(rootfs), &url(conffs), &extra);
    let what = match build {
        Some(b) => format!("build {b}"),
        None => format!("artifact {}", artifact.digest),
    };
    Ok(format!(
        "#!ipxe\n\
         # vauban: {host} boots {master}, {what} (deployment {deployment})\n\
         echo vauban: {host} boots {master}, {what}\n\
         kernel {kernel_url} initrd={initrd_name} {cmdline}\n\
         initrd {initrd_url}\n\
         boot\n",
        kernel_url = url(kernel),
        initrd_name = word(initramfs.name()),
        initrd_url = url(initramfs),
    ))
}

/// The script that sends a host to its local disk, after `why`.
pub fn local_disk_script(why: &str) -> String {
    // iPXE prints the line as is: keep it to the printable ASCII of a MAC,
    // a host and a master name.
    let why: String = why
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!(
        "#!ipxe\n\
         # vauban: no boot for this host here\n\
         echo vauban: {why}\n\
         echo vauban: booting from the local disk in 5 seconds\n\
         sleep 5\n\
         exit\n"
    )
}

/// A name as a word of the script: letters, digits, `.`, `_`, `-` kept,
/// anything else `_`.
fn word(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_of_an_artifact_can_add_a_line_or_expand_a_setting() {
        assert!(is_kernel_arg("console=ttyS0,115200"));
        for bad in ["", "a b", "x\nchain http://evil/", "${net0/mac}", "é"] {
            assert!(!is_kernel_arg(bad), "{bad:?}");
        }
        assert_eq!(word("web01"), "web01");
        assert_eq!(word("web\nchain ${x}"), "web_chain___x_");
    }
}
