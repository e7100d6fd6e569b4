#!/usr/bin/python3
"""vauban-drift: what this live host changed since it booted.

Put into the image by vauban (`drift_report:` on a master). Packs the live
overlay's upper dir (dracut keeps it at /run/overlayfs) as one OCI layer,
tar+gzip: a whiteout (a character device 0/0) becomes `.wh.NAME`, an opaque
directory gets a `.wh..wh..opq` entry. The secrets and the paths
/etc/vauban/drift.json names (globs from the root: `*` within one name, a
directory with what is under it) are left out; past its max_size
(compressed) nothing is sent. Local users can change the tree while it is
packed: it is walked by directory descriptors, no link followed, and a
file is read only when what was opened is the regular file that was
listed.

  vauban-drift              send it to the boot service this host booted
                            from (its URL, boot token and host name are on
                            the kernel command line: root=live:URL?boot=TOKEN,
                            live.updates=.../conffs-HOST.tgz)
  vauban-drift -o FILE      write it to FILE (0600) instead, for scp; then
                            `vauban diff IMAGE IMAGE+FILE`

A host whose conffs gave it an sshd ed25519 key signs what it sends with
that key (`ssh-keygen -Y sign`, so as root): the boot service takes its
drift with that signature only, as the boot token on /proc/cmdline is
readable by every local user.

The operator then runs `vauban diff --drift HOST` to see it against the
exact build the host booted. Exit status: 0 sent or written, 1 not.
"""

import argparse
import base64
import fnmatch
import hashlib
import json
import shutil
import os
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

CONFIG = "/etc/vauban/drift.json"
# The key a drift is signed with, and the signature's namespace (vauban's
# `drift_signature`).
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
NAMESPACE = "drift@vauban"
# Never sent, whatever the settings say (globs from the root, `*` within one
# name; a directory with what is under it). vauban's own list, checked equal
# to it by its tests.
SECRETS = [
    "etc/shadow",
    "etc/shadow-",
    "etc/gshadow",
    "etc/gshadow-",
    "etc/security/opasswd",
    "etc/ssh/ssh_host_*_key",
    "etc/ssl/private",
    "etc/krb5.keytab",
    "etc/NetworkManager/system-connections",
    "etc/wpa_supplicant",
    "root/.ssh/id_*",
    "home/*/.ssh/id_*",
    "root/.*_history",
    "home/*/.*_history",
]
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
         "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
         "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3}
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")


class TooBig(Exception):
    """The drift is larger than max_size."""


class Bounded:
    """A file written to, refusing to grow past `limit` bytes."""

    def __init__(self, f, limit):
        self.f, self.limit, self.size = f, limit, 0

    def write(self, data):
        self.size += len(data)
        if self.size > self.limit:
            raise TooBig()
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def fail(message):
    print(f"vauban-drift: error: {message}", file=sys.stderr)
    sys.exit(1)


def size_of(value, path):
    """Bytes: a number, or a number and a unit (`64M`, `64MiB`, `1GB`)."""
    text = str(value).strip().replace(" ", "")
    digits = text.rstrip("KkMmGgIiBb")
    unit = text[len(digits):].lower()
    if not digits.isdigit() or unit not in UNITS or int(digits) == 0:
        fail(f"{path}: max_size {value!r} is not a size (bytes, or a number and K, M, G, "
             f"KiB, MiB, GiB)")
    return int(digits) * UNITS[unit]


def load_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    if not isinstance(config, dict):
        fail(f"{path}: not a JSON object")
    return {
        "upper": config.get("upper", "/run/overlayfs"),
        "skip": [p.strip("/") for p in SECRETS + list(config.get("secrets", []))
                 + list(config.get("exclude", []))],
        "max_size": size_of(config.get("max_size", 64 << 20), path),
    }


def left_out(rel, skip):
    """Whether `rel` (a/b/c) is or is under a path `skip` names (globs,
    `*` within one name)."""
    parts = rel.split("/")
    for pattern in skip:
        wanted = pattern.split("/")
        if len(wanted) <= len(parts) and all(
            fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted)
        ):
            return True
    return False


def xattrs_of(fd):
    """The extended attributes of the open file `fd` (overlayfs's own
    left out), as PAX records."""
    out = {}
    try:
        names = os.listxattr(fd)
    except OSError:
        return out
    for name in names:
        if name.startswith(OVERLAY_XATTRS):
            continue
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def is_opaque(fd):
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(fd, attr) == b"y":
                return True
        except OSError:
            pass
    return False


def empty_file(name):
    info = tarfile.TarInfo(name)
    info.mode = 0o600
    return info


class Exactly:
    """`size` bytes of a file: fewer if it grew, zeros after its end if it
    shrank while read (said on stderr), so the archive stays whole."""

    def __init__(self, f, size, name):
        self.f, self.left, self.name = f, size, name

    def read(self, n=-1):
        if n < 0 or n > self.left:
            n = self.left
        data = self.f.read(n)
        if len(data) < n:
            print(f"vauban-drift: {self.name} shrank while read: zeros at its end",
                  file=sys.stderr)
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


def open_listed(name, dir_fd, st, flags=0):
    """`name` of `dir_fd` opened if it is still the one listed (`st`): no
    link followed, no FIFO or device opened; else None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | flags, dir_fd=dir_fd)
    except PermissionError:
        print(f"vauban-drift: warning: {name}: permission denied, left out", file=sys.stderr)
        return None
    except OSError:
        return None
    now = os.fstat(fd)
    if stat.S_IFMT(now.st_mode) != stat.S_IFMT(st.st_mode) or (
        now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        return None
    return fd


def info_of(rel, st):
    """The tar header of what `st` describes, at `rel`."""
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def pack(upper, out, skip):
    """Writes the layer of `upper` to `out`; how many entries it holds."""
    count = 0
    root_dev = os.stat(upper).st_dev
    links = {}
    with tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
        # fwalk opens each directory beneath its parent's descriptor and
        # checks it is the directory listed: a link swapped in is not taken.
        # Every entry is looked at beneath its directory's descriptor too.
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(upper, follow_symlinks=False):
            rel_dir = os.path.relpath(dirpath, upper)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            kept_dirs = []
            for name in sorted(dirnames + filenames):
                rel = rel_dir + name
                if left_out(rel, skip):
                    continue
                if name.startswith(".wh."):
                    # A file a user named so would read as a removal.
                    print(f"vauban-drift: warning: {rel} left out: a name the layer "
                          "format keeps for removals", file=sys.stderr)
                    continue
                try:
                    st = os.lstat(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue  # gone while walking
                mode = st.st_mode
                info = info_of(rel, st)
                if stat.S_ISCHR(mode) and st.st_rdev == 0:
                    tar.addfile(empty_file(rel_dir + ".wh." + name))
                    count += 1
                elif stat.S_ISREG(mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in links:
                        info.type, info.linkname = tarfile.LNKTYPE, links[key]
                        tar.addfile(info)
                        count += 1
                        continue
                    fd = open_listed(name, dir_fd, st)
                    if fd is None:
                        continue  # replaced while packed
                    with os.fdopen(fd, "rb") as f:
                        info.size = st.st_size
                        info.pax_headers.update(xattrs_of(fd))
                        tar.addfile(info, Exactly(f, info.size, rel))
                    links[key] = rel
                    count += 1
                elif stat.S_ISDIR(mode):
                    if st.st_dev != root_dev:
                        continue  # another file system mounted in the tree
                    fd = open_listed(name, dir_fd, st, os.O_DIRECTORY)
                    if fd is None:
                        continue
                    try:
                        info.type = tarfile.DIRTYPE
                        info.pax_headers.update(xattrs_of(fd))
                        tar.addfile(info)
                        count += 1
                        if is_opaque(fd):
                            tar.addfile(empty_file(rel + "/.wh..wh..opq"))
                            count += 1
                    finally:
                        os.close(fd)
                    kept_dirs.append(name)
                elif stat.S_ISLNK(mode):
                    try:
                        info.linkname = os.readlink(name, dir_fd=dir_fd)
                    except OSError:
                        continue
                    info.type = tarfile.SYMTYPE
                    tar.addfile(info)
                    count += 1
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                    info.type = (tarfile.CHRTYPE if stat.S_ISCHR(mode) else
                                 tarfile.BLKTYPE if stat.S_ISBLK(mode) else tarfile.FIFOTYPE)
                    if not stat.S_ISFIFO(mode):
                        info.devmajor = os.major(st.st_rdev)
                        info.devminor = os.minor(st.st_rdev)
                    tar.addfile(info)
                    count += 1
            dirnames[:] = [d for d in dirnames if d in kept_dirs]
    return count


def boot_of_cmdline(cmdline):
    """The boot service's base URL, this boot's token and the host's name
    (its conffs is `conffs-HOST.tgz`), from root=live:URL and
    live.updates=URL."""
    base = token = host = None
    for word in cmdline.split():
        key, _, value = word.partition("=")
        url = urllib.parse.urlsplit(value[len("live:"):] if key == "root" else value)
        if key == "root" and value.startswith("live:"):
            found = urllib.parse.parse_qs(url.query).get("boot", [None])[0]
            prefix, sep, _ = url.path.partition("/boot/blobs/")
            if found and sep:
                base, token = f"{url.scheme}://{url.netloc}{prefix}", found
        elif key == "live.updates":
            name = url.path.rsplit("/", 1)[-1]
            if name.startswith("conffs-") and name.endswith(".tgz"):
                host = name[len("conffs-"):-len(".tgz")]
    return base, token, host


def the_boot():
    """Where to send: the server's base URL, the token, the host."""
    with open("/proc/cmdline", encoding="utf-8") as f:
        base, token, host = boot_of_cmdline(f.read())
    if not base:
        fail("no boot token on the kernel command line (root=live:URL?boot=TOKEN): this host "
             "did not boot from `vauban serve`; write the drift with -o FILE instead")
    return base, token, host or socket.gethostname()


def signed_message(host, token, signed_at, sha256_hex):
    """What is signed: the host, the boot's token, the time, the body's
    sha256 (a signature is good for one body of one boot of one host, and
    the server takes a boot's times increasing only: no replay)."""
    return (f"vauban-drift 2\nhost {host}\ntoken {token}\ntime {signed_at}\n"
            f"sha256 {sha256_hex}\n").encode()


def signature(layer, host, token, key=HOST_KEY):
    """(the time signed at, the base64 of the signature of the drift in
    `layer`, a file, with this host's sshd ed25519 key), or None when the
    host has no such key."""
    if not os.path.lexists(key):
        return None
    signed_at = int(time.time())
    digest = hashlib.sha256()
    layer.seek(0)
    for chunk in iter(lambda: layer.read(1 << 20), b""):
        digest.update(chunk)
    layer.seek(0)
    try:
        signed = subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", key],
                                input=signed_message(host, token, signed_at,
                                                     digest.hexdigest()),
                                capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        fail("ssh-keygen not found: this host's drift is signed with its sshd key (the image "
             "needs openssh-client); or write the drift with -o FILE")
    if signed.returncode != 0:
        fail(f"ssh-keygen -Y sign -f {key}: "
             f"{signed.stderr.decode('utf-8', 'replace').strip()} (the drift is signed with "
             "the host's sshd key: run vauban-drift as root)")
    return signed_at, base64.b64encode(signed.stdout).decode("ascii")


def send(layer, size, boot):
    base, token, host = boot
    url = f"{base}/hosts/{urllib.parse.quote(host, safe='')}/drift"
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/vnd.oci.image.layer.v1.tar+gzip",
        "Content-Length": str(size),
    }
    signed = signature(layer, host, token)
    if signed:
        headers["X-Vauban-Signed-At"] = str(signed[0])
        headers["X-Vauban-Signature"] = signed[1]
    request = urllib.request.Request(url, data=layer, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            body = reply.read(1 << 16).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        fail(f"{url}: {e.code}: {e.read(4096).decode('utf-8', 'replace').strip()}")
    except (OSError, urllib.error.URLError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (BrokenPipeError, ConnectionResetError)):
            fail(f"{url}: the server closed the connection before the whole drift was sent: "
                 "it refused it (another sent less than a minute ago, too big, or a token "
                 "it does not take); its log says which")
        fail(f"{url}: {e}")
    try:
        answer = json.loads(body)
        print(f"vauban-drift: sent {answer.get('paths')} path(s), {size} bytes, as drift "
              f"{answer.get('id')} of {host} (boot {answer.get('boot_id')})")
    except ValueError:
        print(f"vauban-drift: sent {size} bytes to {url}")


def main():
    parser = argparse.ArgumentParser(
        description="Send what this live host changed since it booted (its overlay's upper "
                    "dir, as one OCI layer) to the boot service, or write it to a file.")
    parser.add_argument("-o", "--output", help="write the layer here instead of sending it")
    parser.add_argument("--config", default=CONFIG, help=f"settings (default {CONFIG})")
    parser.add_argument("--upper", help="the overlay's upper dir (default /run/overlayfs)")
    args = parser.parse_args()
    config = load_config(args.config)
    upper = args.upper or config["upper"]
    if not os.path.isdir(upper):
        fail(f"{upper}: no such directory (is this a live boot with an overlay root?)")
    if args.output:
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(out_dir):
            fail(f"{out_dir}: no such directory for -o")
        if os.path.isdir(args.output):
            fail(f"{args.output}: a directory: give a file name to -o")
        boot = None
    else:
        boot = the_boot()
        if os.path.lexists(HOST_KEY) and not os.access(HOST_KEY, os.R_OK):
            fail(f"{HOST_KEY}: not readable by this user, and this host's drift is signed with "
                 "it: run vauban-drift as root, or write the drift with -o FILE")
    if os.geteuid() != 0:
        print("vauban-drift: warning: not root: what this user cannot read is left out",
              file=sys.stderr)
    # Packed in /run (its own tmpfs, outside the overlay root): never in
    # the tree it packs.
    work = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    with tempfile.NamedTemporaryFile(dir=work, prefix=".vauban-drift-", delete=False) as tmp:
        try:
            os.fchmod(tmp.fileno(), 0o600)
            count = pack(upper, Bounded(tmp, config["max_size"]), config["skip"])
            tmp.flush()
            os.fsync(tmp.fileno())
            size = tmp.tell()
            if args.output:
                write_output(tmp, args.output)
                print(f"vauban-drift: {count} entries, {size} bytes written to {args.output}")
                return
            tmp.seek(0)
            send(tmp, size, boot)
        except TooBig:
            fail(f"the drift of {upper} is larger than {config['max_size']} bytes compressed: "
                 f"nothing sent (exclude the paths that grow in drift_report:)")
        finally:
            os.unlink(tmp.name)


def write_output(tmp, output):
    """Copies the packed drift to `output` (0600) under a temp name, then
    renames it: a reader never sees half of it."""
    out_dir = os.path.dirname(os.path.abspath(output))
    tmp.seek(0)
    fd, part = tempfile.mkstemp(dir=out_dir, prefix=".vauban-drift-")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(tmp, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(part, output)
    finally:
        if os.path.exists(part):
            os.unlink(part)


if __name__ == "__main__":
    main()
