//! Makes a boot tree from an image of a store, by hand until `vauban build`
//! calls the export steps itself:
//!
//! ```text
//! cargo run -p vauban-core --example boot_tree -- --store S --image NAME \
//!     --out OUT --master M --base http://10.0.2.100 --host web01 [--host H...] \
//!     [--xz] [--processors N] [--append ARG]... [--skip-initramfs] [--skip-rootfs]
//! ```
//!
//! The conffs archives (`OUT/M/conffs-H.tgz`) are not made here; `SHA256SUMS`
//! is written last, over whatever the tree holds. Logs go to `OUT.logs/`.

use std::path::PathBuf;
use std::time::Instant;

use vauban_core::export::{
    self, BootTree, HostBoot, InitramfsOptions, SquashCompression, SquashfsOptions,
};
use vauban_oci::store::Store;
use vauban_oci::Reference;

#[derive(Default)]
struct Args {
    store: PathBuf,
    image: String,
    out: PathBuf,
    master: String,
    base: String,
    hosts: Vec<String>,
    append: Vec<String>,
    xz: bool,
    processors: Option<usize>,
    skip_initramfs: bool,
    skip_rootfs: bool,
}

fn parse() -> Args {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--store" => a.store = v().into(),
            "--image" => a.image = v(),
            "--out" => a.out = v().into(),
            "--master" => a.master = v(),
            "--base" => a.base = v(),
            "--host" => a.hosts.push(v()),
            "--append" => a.append.push(v()),
            "--processors" => a.processors = Some(v().parse().expect("a number")),
            "--xz" => a.xz = true,
            "--skip-initramfs" => a.skip_initramfs = true,
            "--skip-rootfs" => a.skip_rootfs = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    vauban_core::sandbox::run_helper_if_asked();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = parse();
    let store = Store::open(&args.store)?;
    let image = store.image(&Reference::parse(&args.image)?)?;
    let tree = BootTree::new(&args.out);
    // Beside the tree, not in it (it is served as is).
    let logs = PathBuf::from(format!("{}.logs", args.out.display()));

    let kver = if args.skip_initramfs {
        let names = std::fs::read_link(tree.linux_dir().join("vmlinuz-default"))?;
        let name = names.to_string_lossy();
        name.trim_start_matches("vmlinuz-").to_owned()
    } else {
        let t = Instant::now();
        let opts = InitramfsOptions {
            log: logs.join("dracut.log"),
            ..InitramfsOptions::default()
        };
        let k = export::make_initramfs(&store, &image, &args.image, &opts, &tree.linux_dir())?;
        let size = std::fs::metadata(&k.initramfs)?.len();
        println!(
            "initramfs: {} ({} bytes) in {:.1} s",
            k.initramfs.display(),
            size,
            t.elapsed().as_secs_f64()
        );
        k.version
    };
    if !args.skip_rootfs {
        let t = Instant::now();
        let opts = SquashfsOptions {
            compression: if args.xz {
                SquashCompression::Xz
            } else {
                SquashCompression::Zstd
            },
            processors: args.processors,
            log: logs.join("mksquashfs.log"),
            ..SquashfsOptions::default()
        };
        let dest = tree.rootfs(&args.master);
        export::make_rootfs(&store, &image, &args.image, &opts, &dest)?;
        println!(
            "rootfs: {} ({} bytes) in {:.1} s",
            dest.display(),
            std::fs::metadata(&dest)?.len(),
            t.elapsed().as_secs_f64()
        );
    }
    for host in &args.hosts {
        tree.write_host_files(&HostBoot {
            base: &args.base,
            master: &args.master,
            host,
            kver: &kver,
            extra_args: &args.append,
        })?;
    }
    tree.write_sums()?;
    println!("tree: {}", args.out.display());
    Ok(())
}
