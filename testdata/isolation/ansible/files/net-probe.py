"""Tries the host's loopback listener (directly and through the proxy), its
abstract Unix socket, a port below 1024, DNS and Debian's mirror; prints the
results as JSON."""
import json
import os
import socket
import sys
import urllib.request

port, abstract = int(sys.argv[1]), sys.argv[2]
out = {}


def attempt(name, fn):
    try:
        out[name] = "ok:%s" % fn()
    except Exception as e:  # what failed, and how
        out[name] = "failed:%s" % e


def direct():
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return "connected"


def via_proxy(url):
    # By hand: urllib would go direct for 127.0.0.1 (no_proxy).
    def go():
        with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % url).encode())
            return s.recv(64).split(b"\r\n")[0].decode()
    return go


def connect_tunnel():
    with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
        s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % port).encode())
        return s.recv(64).split(b"\r\n")[0].decode()


def unix_abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect("\0" + abstract)
    return "connected"


def bind_80():
    s = socket.socket()
    s.bind(("0.0.0.0", 80))
    s.listen(1)
    return "bound"


def dns():
    return sorted({a[4][0] for a in socket.getaddrinfo("deb.debian.org", 80)})[0]


def mirror():
    with urllib.request.urlopen(
            "http://deb.debian.org/debian/dists/bookworm/Release", timeout=30) as r:
        return r.status


attempt("direct", direct)
attempt("proxy_http", via_proxy("http://127.0.0.1:%d/" % port))
attempt("proxy_connect", connect_tunnel)
attempt("abstract", unix_abstract)
attempt("bind_80", bind_80)
attempt("dns", dns)
attempt("mirror", mirror)
out["http_proxy"] = os.environ.get("http_proxy", "")
print(json.dumps(out))
