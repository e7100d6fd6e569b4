//! Tests of the commit of an upper dir: the change set, private files, links left by the build.

use super::*;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

#[test]
fn upper_becomes_the_change_set() {
    let dir = tempfile::tempdir().unwrap();
    let (upper, private, lower) = (
        dir.path().join("up"),
        dir.path().join("priv"),
        dir.path().join("low"),
    );
    // Placeholders the sandbox made, and the build's own files.
    for rel in [
        "dev/null",
        "dev/tty",
        "etc/hosts",
        "etc/resolv.conf",
        "usr/sbin/policy-rc.d",
    ] {
        write(&upper, rel, "");
    }
    std::os::unix::fs::symlink("/proc/self/fd", upper.join("dev/fd")).unwrap();
    for d in ["proc", "sys", "tmp", "dev/pts"] {
        std::fs::create_dir_all(upper.join(d)).unwrap();
    }
    write(&upper, "dev/made-by-build", "x");
    write(&upper, "toslash/etc/motd", "moved\n");
    write(&upper, "etc/motd", "old\n");
    write(&upper, "srv/keep", "k");
    std::fs::create_dir_all(&lower).unwrap();
    // Private files: hostname changed by the build, hosts unchanged.
    write(&private, "hosts", "h\n");
    write(&private, "resolv.conf", "r\n");
    write(&private, "hostname", "built\n");
    for name in ["hosts", "resolv.conf"] {
        let f = std::fs::File::options()
            .write(true)
            .open(private.join(name))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
    }
    let initial = vec![
        ("hosts".to_string(), b"h\n".to_vec()),
        ("resolv.conf".to_string(), b"r\n".to_vec()),
        ("hostname".to_string(), b"web01\n".to_vec()),
    ];

    finish_upper(&upper, &private, &initial, &[lower]).unwrap();

    let exists = |rel: &str| upper.join(rel).symlink_metadata().is_ok();
    for gone in [
        "dev/null",
        "dev/tty",
        "dev/fd",
        "dev/pts",
        "proc",
        "sys",
        "tmp",
        "etc/hosts",
        "etc/resolv.conf",
        "usr/sbin/policy-rc.d",
        "toslash",
    ] {
        assert!(!exists(gone), "{gone} left in the upper dir");
    }
    assert!(exists("dev/made-by-build"));
    assert!(exists("srv/keep"));
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/motd")).unwrap(),
        "moved\n"
    );
}

fn private_dir(root: &Path, hostname: &str) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let private = root.join("priv");
    let mut initial = Vec::new();
    for (name, content) in [
        ("hosts", "h\n".to_string()),
        ("resolv.conf", "r\n".into()),
        ("hostname", format!("{hostname}\n")),
    ] {
        write(&private, name, &content);
        let f = std::fs::File::options()
            .write(true)
            .open(private.join(name))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH).unwrap();
        initial.push((name.to_string(), content.into_bytes()));
    }
    (private, initial)
}

#[test]
fn rewritten_with_the_same_content_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path().join("up");
    std::fs::create_dir(&upper).unwrap();
    let (private, initial) = private_dir(dir.path(), "web01");
    // The build (e.g. Ansible's hostname module) writes the name it already had.
    std::fs::write(private.join("hostname"), "web01\n").unwrap();
    finish_upper(&upper, &private, &initial, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/hostname")).unwrap(),
        "web01\n"
    );
    assert!(!upper.join("etc/hosts").exists(), "an untouched file kept");
}

#[test]
fn links_left_by_the_build_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("hostname"), "host's\n").unwrap();
    let (private, initial) = private_dir(dir.path(), "web01");
    std::fs::write(private.join("hostname"), "built\n").unwrap();
    std::fs::write(private.join("hosts"), "changed\n").unwrap();

    // `/etc` replaced by a link out of the tree.
    let upper = dir.path().join("up");
    std::fs::create_dir(&upper).unwrap();
    std::os::unix::fs::symlink(&outside, upper.join("etc")).unwrap();
    finish_upper(&upper, &private, &initial, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("hostname")).unwrap(),
        "host's\n"
    );
    assert!(!outside.join("hosts").exists());

    // `/etc/hostname` itself a link out of the tree: replaced by the file.
    let upper = dir.path().join("up2");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.join("hostname"), upper.join("etc/hostname")).unwrap();
    finish_upper(&upper, &private, &initial, &[]).unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("hostname")).unwrap(),
        "host's\n"
    );
    let kept = upper.join("etc/hostname");
    assert!(!kept.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "built\n");
}

/// A build that replaced `/dev`, `/etc`, `/proc` and `/toslash/etc` by links to
/// host directories: commit changes nothing there (the placeholders' names are
/// all present on the host side, empty and removable).
#[test]
fn links_to_host_dirs_never_lead_commit_out() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    for d in ["dev/pts", "dev/shm", "etc", "proc", "sys", "tmp", "run"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    for f in [
        "dev/null",
        "dev/tty",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        std::fs::write(host.join(f), "").unwrap();
    }
    std::os::unix::fs::symlink("/proc/self/fd", host.join("dev/fd")).unwrap();
    std::fs::write(host.join("etc/motd"), "host motd\n").unwrap();
    let before = tree(&host);

    let upper = dir.path().join("up");
    std::fs::create_dir_all(upper.join("toslash")).unwrap();
    for d in ["dev", "etc", "proc", "sys", "tmp", "run"] {
        std::os::unix::fs::symlink(host.join(d), upper.join(d)).unwrap();
    }
    std::os::unix::fs::symlink(host.join("etc"), upper.join("toslash/etc")).unwrap();
    std::fs::create_dir_all(upper.join("usr/sbin")).unwrap();
    std::os::unix::fs::symlink(host.join("etc/motd"), upper.join("usr/sbin/policy-rc.d")).unwrap();
    let (private, initial) = private_dir(dir.path(), "web01");
    std::fs::write(private.join("hostname"), "built\n").unwrap();
    std::fs::write(private.join("hosts"), "changed\n").unwrap();

    finish_upper(&upper, &private, &initial, &[]).unwrap();
    assert_eq!(tree(&host), before, "commit changed the host's files");
    // `/toslash/etc` was a link: moved onto `/` as a link, never followed.
    assert!(upper
        .join("etc")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Every path under `root` with its kind, size and content.
fn tree(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("{:?}", std::fs::read(&p).unwrap())
            };
            out.push((p.strip_prefix(root).unwrap().to_path_buf(), what));
        }
    }
    out.sort();
    out
}
