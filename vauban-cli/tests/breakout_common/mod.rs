//! Breakout attempts against the sandbox, shared by `sandbox_breakout` (as root
//! in CI: no user namespace at all) and `rootless_breakout` (the unprivileged
//! test user). Each attempt really runs inside `vauban run` on the Debian
//! fixture, in a vauban process that holds a secret in its environment, has its
//! working directory and an inheritable descriptor on a host directory with a
//! marker file; neither the marker nor the secret may ever show in what the
//! command prints. A control case must succeed, so a sandbox that refuses
//! everything fails too.

#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::cli_support::{fixture, sandbox_leftovers, vauban_bin};

/// A store with the Debian fixture, a host directory with a marker, a secret.
pub struct Breakout {
    store: PathBuf,
    /// The host directory (vauban's working directory, held open by vauban).
    pub outside: PathBuf,
    /// What the marker file holds.
    pub marker: String,
    /// The secret in vauban's environment.
    pub secret: String,
    _held: std::os::fd::OwnedFd,
}

impl Breakout {
    /// Imports the Debian fixture into a fresh store.
    pub fn new() -> Self {
        let base = tempfile::Builder::new()
            .prefix("vauban-breakout-")
            .tempdir()
            .unwrap()
            .keep();
        let store = base.join("store");
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let tag = format!("{}-{}", std::process::id(), nanos());
        let marker = format!("host-marker-{tag}");
        let secret = format!("ci-secret-{tag}");
        std::fs::write(outside.join("marker"), &marker).unwrap();
        // Left inheritable on purpose (no O_CLOEXEC): vauban gets it.
        let held = nix::fcntl::open(
            &outside,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let b = Breakout {
            store,
            outside,
            marker,
            secret,
            _held: held,
        };
        let fixture = fixture("debian.tar");
        let out = b.vauban(&["import", "-t", "deb", fixture.to_str().unwrap()]);
        assert!(out.status.success(), "import: {}", text(&out));
        b
    }

    /// `vauban ARGS` from the host directory, with the secret in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vauban_bin());
        c.args(args)
            .current_dir(&self.outside)
            .env("VAUBAN_STORE", &self.store)
            .env("VAUBAN_TEST_SECRET", &self.secret)
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `vauban ARGS` to its end, without a terminal.
    pub fn vauban(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run vauban")
    }

    /// Runs `script` with `/bin/sh -c` in the image; returns what it printed.
    pub fn attempt(&self, script: &str) -> String {
        let marker_path = self.outside.join("marker");
        let env = format!("MARKER={}", marker_path.display());
        let out = self.vauban(&["run", "-e", &env, "deb", "--", "/bin/sh", "-c", script]);
        text(&out)
    }

    /// Panics when `output` holds the marker, the secret or a `forbidden` word.
    pub fn assert_held(&self, case: &str, output: &str, forbidden: &[&str]) {
        assert!(
            !output.contains(&self.marker),
            "{case}: the host's marker file was read:\n{output}"
        );
        assert!(
            !output.contains(&self.secret),
            "{case}: vauban's secret reached the command:\n{output}"
        );
        for word in forbidden {
            assert!(!output.contains(word), "{case}: {word}:\n{output}");
        }
        assert_eq!(
            std::fs::read_to_string(self.outside.join("marker")).unwrap(),
            self.marker,
            "{case}: the marker file was changed"
        );
    }

    /// The store, for the leftovers check.
    pub fn store(&self) -> &Path {
        &self.store
    }
}

impl Drop for Breakout {
    fn drop(&mut self) {
        let base = self.store.parent().unwrap().to_path_buf();
        let helper = vauban_core::sandbox::Helper::at(vauban_bin());
        let _ = vauban_core::sandbox::remove_dir_all(&base, &helper);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// stdout and stderr of a finished command.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The attempts: (name, script, words that must never be printed).
pub const ATTEMPTS: &[(&str, &str, &[&str])] = &[
    (
        "environ of every process",
        "for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < \"$f\"; done 2>&1",
        &[],
    ),
    (
        "root and cwd of every process",
        "for p in /proc/[0-9]*; do cat \"$p/root$MARKER\" \"$p/cwd/marker\"; ls \"$p/root/\" \"$p/cwd/\"; done 2>&1",
        &[],
    ),
    (
        "every descriptor of every process",
        "for f in /proc/[0-9]*/fd/*; do echo \"== $f\"; cat \"$f/marker\"; ls \"$f/\"; done 2>&1 | head -c 200000",
        &[],
    ),
    (
        "the double-chroot climb",
        r#"python3 - <<'PY' 2>&1
import os
os.makedirs('/tmp/jail', exist_ok=True)
keep = os.open('/', os.O_RDONLY)
os.chroot('/tmp/jail')
os.fchdir(keep)
for _ in range(64):
    os.chdir('..')
os.chroot('.')
print('climbed to', sorted(os.listdir('/'))[:8])
for path in (os.environ['MARKER'], '/proc/1/root' + os.environ['MARKER']):
    try:
        print(open(path).read())
    except OSError as e:
        print('refused', path, e)
PY"#,
        &[],
    ),
    (
        "mount and umount",
        r#"python3 - <<'PY' 2>&1
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def check(what, rc):
    print(what, 'MOUNT-SUCCEEDED' if rc == 0 else 'refused errno %d' % ctypes.get_errno())
check('umount /dev/null', libc.umount2(b'/dev/null', 2))
check('umount /proc/kcore', libc.umount2(b'/proc/kcore', 2))
check('umount /proc', libc.umount2(b'/proc', 2))
check('tmpfs on /mnt', libc.mount(b'none', b'/mnt', b'tmpfs', 0, None))
check('bind / on /mnt', libc.mount(b'/', b'/mnt', None, 4096, None))
check('remount /proc/sys rw', libc.mount(None, b'/proc/sys', None, 32 | 4096, None))
check('proc on /mnt', libc.mount(b'proc', b'/mnt', b'proc', 0, None))
PY"#,
        &["MOUNT-SUCCEEDED"],
    ),
    (
        "umount the masks from a new user namespace",
        r#"python3 - <<'PY' 2>&1
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) != 0:
    print('unshare refused errno', ctypes.get_errno())
else:
    for p in (b'/proc/kcore', b'/proc/sys', b'/proc'):
        rc = libc.umount2(p, 2)
        print(p, 'MOUNT-SUCCEEDED' if rc == 0 else 'refused errno %d' % ctypes.get_errno())
    print(open('/proc/kcore', 'rb').read(16))
PY"#,
        &["MOUNT-SUCCEEDED"],
    ),
    (
        "kernel memory, sysrq and sysctl",
        "head -c 64 /proc/kcore | od -c | head -3; (echo h > /proc/sysrq-trigger && echo SYSRQ-WRITTEN); \
         (echo 1 > /proc/sys/kernel/core_pattern && echo SYSCTL-WRITTEN); cat /proc/keys; true",
        &["SYSRQ-WRITTEN", "SYSCTL-WRITTEN"],
    ),
    (
        "ptrace and /proc of pid 1",
        r#"python3 - <<'PY' 2>&1
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
# pid 1 is the sandbox's own init, a fresh exec of vauban holding its channel.
rc = libc.ptrace(16, 1, None, None)
print('init', 'PTRACE-ATTACHED' if rc == 0 else 'refused errno %d' % ctypes.get_errno())
if rc == 0:
    libc.ptrace(17, 1, None, None)
for name in ('exe', 'mem', 'environ'):
    try:
        open('/proc/1/' + name, 'rb').read(1)
        print('/proc/1/' + name, 'INIT-READ')
    except OSError as e:
        print('/proc/1/' + name, 'refused', e.errno)
PY"#,
        &["PTRACE-ATTACHED", "INIT-READ"],
    ),
    (
        "the user's session keyring",
        r#"python3 - <<'PY' 2>&1
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", name, 0)
key = libc.syscall(250, 10, -3, b'user', b'vauban-breakout-key', 0)
if key < 0:
    print('search refused errno', ctypes.get_errno())
else:
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(250, 11, key, buf, 256)
    print('read', buf.raw[:max(n, 0)])
PY"#,
        &["KEYRING-SECRET"],
    ),
    (
        "the uid's user keyring and another uid's",
        r#"python3 - <<'PY' 2>&1
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def steal(who):
    # keyctl(KEYCTL_LINK, @u, @s), then KEYCTL_SEARCH @s and KEYCTL_READ.
    rc = libc.syscall(250, 8, -4, -3)
    print(who, 'link', 'refused errno %d' % ctypes.get_errno() if rc < 0 else 'LINKED')
    key = libc.syscall(250, 10, -3, b'user', b'vauban-breakout-user-key', 0)
    if key >= 0:
        buf = ctypes.create_string_buffer(256)
        n = libc.syscall(250, 11, key, buf, 256)
        print(who, 'read', buf.raw[:max(n, 0)])
    # KEYCTL_GET_PERSISTENT (a Kerberos cache's keyring).
    rc = libc.syscall(250, 22, -1, -3)
    print(who, 'persistent', 'refused errno %d' % ctypes.get_errno() if rc < 0 else 'PERSISTENT-KEYRING')
steal('uid 0')
if os.fork() == 0:
    os.setresuid(1001, 1001, 1001)
    steal('uid 1001')
    os._exit(0)
os.wait()
PY"#,
        &["USER-KEYRING-SECRET", "LINKED", "PERSISTENT-KEYRING"],
    ),
    (
        "device nodes of the host's disks",
        r#"python3 - <<'PY' 2>&1
import os
for major, minor, name in ((8, 0, 'sda'), (253, 0, 'vda'), (1, 1, 'mem'), (259, 0, 'nvme')):
    try:
        os.mknod('/tmp/' + name, 0o600 | 0o060000, os.makedev(major, minor))
        open('/tmp/' + name, 'rb').read(1)
        print(name, 'DEVICE-READ')
    except OSError as e:
        print(name, 'refused', e.errno)
PY"#,
        &["DEVICE-READ"],
    ),
];

/// The control: what a build needs must work in the same sandbox.
pub const CONTROL: &str =
    "set -e; echo uid=$(id -u); cat /etc/debian_version; echo visible=$VISIBLE; \
    echo written > /tmp/x; cat /tmp/x; python3 -c 'import os; print(\"pid\", os.getpid())'; \
    grep CapEff /proc/self/status; echo done";

/// Runs every attempt and the control.
pub fn attempts_never_reach_the_host() {
    let b = Breakout::new();
    // A secret in the session keyring vauban runs in (a CI's cached token).
    let added = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import ctypes; libc = ctypes.CDLL(None, use_errno=True); \
             libc.syscall.restype = ctypes.c_long; \
             k = libc.syscall(248, b'user', b'vauban-breakout-key', b'KEYRING-SECRET', 14, -3); \
             print(k if k >= 0 else 'errno %d' % ctypes.get_errno())",
        )
        .output()
        .unwrap();
    let added = String::from_utf8_lossy(&added.stdout).into_owned();
    assert!(
        added.trim().parse::<i64>().is_ok(),
        "the test could not add a key to its session keyring: {added}"
    );
    // And one in the keyring of the user running vauban (root's, in CI),
    // which any process of that uid can link into its session.
    let user_key = keyring_add(-4, "vauban-breakout-user-key", "USER-KEYRING-SECRET");
    for (case, script, forbidden) in ATTEMPTS {
        let out = b.attempt(script);
        b.assert_held(case, &out, forbidden);
        assert!(!out.is_empty(), "{case}: the attempt printed nothing");
    }
    let out = b.vauban(&[
        "run",
        "-e",
        "VISIBLE=shown",
        "deb",
        "--",
        "/bin/sh",
        "-c",
        CONTROL,
    ]);
    let out_text = text(&out);
    assert!(out.status.success(), "the control failed:\n{out_text}");
    for want in ["uid=0\n", "visible=shown\n", "written\n", "done\n", "12."] {
        assert!(
            out_text.contains(want),
            "control lacks {want:?}:\n{out_text}"
        );
    }
    // The command holds exactly the bounded set (Docker's default minus
    // CAP_MKNOD and CAP_NET_RAW).
    let eff = out_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        eff,
        vauban_core::sandbox::ALLOWED_CAPABILITIES.bits(),
        "CapEff {eff:#x}"
    );
    keyring_invalidate(user_key);
    assert_eq!(sandbox_leftovers(b.store()), Vec::<String>::new());
}

/// `add_key("user", name, value, keyring)`: the key's serial.
fn keyring_add(keyring: i64, name: &str, value: &str) -> i64 {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import ctypes; libc = ctypes.CDLL(None, use_errno=True); \
             libc.syscall.restype = ctypes.c_long; \
             k = libc.syscall(248, b'user', b'{name}', b'{value}', {}, {keyring}); \
             print(k if k >= 0 else 'errno %d' % ctypes.get_errno())",
            value.len()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("the test could not add {name} to keyring {keyring}: {text}"))
}

/// `keyctl(KEYCTL_INVALIDATE, key)`: a key the test added is gone after it.
fn keyring_invalidate(key: i64) {
    let _ = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import ctypes; ctypes.CDLL(None).syscall(250, 21, {key})"
        ))
        .status();
}

/// A build that replaces `/dev`, `/etc`, `/toslash/etc` and `/tmp` by links to a
/// host directory before the commit: the commit changes nothing there.
pub fn links_made_by_the_build_never_lead_commit_out() {
    let b = Breakout::new();
    let host = b.outside.join("looks-like-dev-and-etc");
    for d in ["pts", "shm"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    for f in [
        "null",
        "tty",
        "hosts",
        "resolv.conf",
        "hostname",
        "policy-rc.d",
    ] {
        std::fs::write(host.join(f), "").unwrap();
    }
    std::os::unix::fs::symlink("/proc/self/fd", host.join("fd")).unwrap();
    let before = listing(&host);
    let script = format!(
        "cd /; for d in dev etc; do mv $d $d.moved || rm -rf $d; ln -s {h} $d || true; done; \
         mkdir -p /toslash && ln -s {h} /toslash/etc; ln -s {h} /usr/sbin/policy-rc.d.x; \
         ls -la /dev /etc /toslash 2>&1; true",
        h = host.display()
    );
    let out = b.vauban(&[
        "run", "--commit", "linked", "deb", "--", "/bin/sh", "-c", &script,
    ]);
    let _ = text(&out);
    assert_eq!(
        listing(&host),
        before,
        "the commit changed the host directory"
    );
    assert_eq!(
        std::fs::read_to_string(b.outside.join("marker")).unwrap(),
        b.marker
    );
    assert_eq!(sandbox_leftovers(b.store()), Vec::<String>::new());
}

fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else if m.is_dir() {
                format!("dir {:?}", std::fs::read_dir(&p).unwrap().count())
            } else {
                format!("{:?}", std::fs::read(&p).unwrap())
            };
            (p.file_name().unwrap().to_string_lossy().into_owned(), what)
        })
        .collect();
    out.sort();
    out
}

/// Under a terminal: the command's descriptors and controlling terminal are a
/// pty of the sandbox's own, never the user's terminal, so `TIOCSTI` can only
/// push into its own input. The control shows the attack is live on this
/// kernel where `legacy_tiocsti` allows it.
pub fn tiocsti_never_reaches_the_users_terminal() {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let b = Breakout::new();
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let open_slave = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(std::ffi::OsStr::new(name.to_str().unwrap()))
            .unwrap()
    };
    let slave = open_slave();
    let outer = rustix::fs::fstat(&slave).unwrap();
    let script = r#"
import fcntl, os, termios
seen = []
for fd in (0, 1, 2):
    st = os.fstat(fd)
    seen.append('fd%d=%d:%d' % (fd, st.st_dev, st.st_rdev))
try:
    t = os.open('/dev/tty', os.O_RDWR)
    st = os.fstat(t)
    seen.append('tty=%d:%d' % (st.st_dev, st.st_rdev))
except OSError as e:
    t = None
    seen.append('tty=none')
for fd in [0, 1, 2] + ([t] if t is not None else []):
    for c in b'echo INJECTED\n':
        try:
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))
        except OSError:
            pass
print('SEEN', ' '.join(seen))
"#;
    let mut cmd = Command::new("setsid");
    cmd.arg("--ctty")
        .arg(vauban_bin())
        .args(["run", "deb", "--", "python3", "-c", script])
        .current_dir(&b.outside)
        .env("VAUBAN_STORE", b.store())
        .env("VAUBAN_TEST_SECRET", &b.secret)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("setsid (util-linux) runs vauban");
    let output = read_until_closed(&master, &mut child);
    assert!(
        output.contains("SEEN "),
        "the command did not run under the pty:\n{output}"
    );
    let seen = output
        .lines()
        .find_map(|l| l.split_once("SEEN ").map(|(_, r)| r.to_string()))
        .unwrap();
    let outer_id = format!("{}:{}", outer.st_dev, outer.st_rdev);
    for item in seen.split_whitespace() {
        let id = item.split_once('=').unwrap().1;
        assert_ne!(
            id, outer_id,
            "{item}: the command holds the user's terminal ({outer_id}):\n{output}"
        );
    }
    b.assert_held("TIOCSTI", &output, &[]);
    // The control: on this kernel, is TIOCSTI on one's controlling terminal
    // possible at all? Then the attack above would have been real.
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|s| s.trim() == "1")
        .unwrap_or(true);
    let control = open_slave();
    let mut cmd = Command::new("setsid");
    cmd.args([
        "--ctty",
        "python3",
        "-c",
        "import fcntl, termios\nfor c in b'CONTROL':\n    fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))\nprint('INJECTED-OK')",
    ])
    .stdin(Stdio::from(control.try_clone().unwrap()))
    .stdout(Stdio::from(control.try_clone().unwrap()))
    .stderr(Stdio::from(control));
    let mut child = cmd.spawn().unwrap();
    let out = read_until_closed(&master, &mut child);
    assert_eq!(
        out.contains("INJECTED-OK"),
        legacy,
        "legacy_tiocsti={legacy} but the control said:\n{out}"
    );
    drop(master);
}

/// Reads the pty master until the child has exited and nothing is left.
fn read_until_closed(master: &std::os::fd::OwnedFd, child: &mut std::process::Child) -> String {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0);
        if ready > 0 {
            let mut buf = [0u8; 4096];
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(_) => {}
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    continue;
                }
            }
        }
        if child.try_wait().unwrap().is_some() && ready == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    let _ = master.as_raw_fd();
    String::from_utf8_lossy(&out).into_owned()
}
