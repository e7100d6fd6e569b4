//! The egress proxy of an isolated sandbox (see [`super::network`]): a fresh
//! exec of the helper, started by the sandbox's helper (H) in the host's
//! network namespace, given the listening sockets that init made *inside*
//! the sandbox's namespace. It accepts there and connects out from here, so
//! the build reaches the world only through it:
//!
//! - HTTP: an HTTP/1.1 forward proxy (`http://` requests forwarded, `CONNECT`
//!   tunnels for `https://`), every destination checked by [`policy`] after
//!   its name is resolved here; a refusal is a `403` naming the reason, and
//!   a line on the build's standard error.
//! - DNS: queries relayed as they are to the host's resolvers
//!   (`/etc/resolv.conf`), over UDP and TCP.
//!
//! It runs as `nobody` with `no_new_privs` and no capability, holds nothing
//! of vauban's (empty environment, no descriptor but its channel and the
//! listeners), and ends when H does.

mod dns;
mod http;
pub(crate) mod policy;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::helper::channel::Channel;
use super::helper::CHANNEL_FD;
use policy::Egress;

/// H → proxy.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToProxy {
    /// The rules (first message).
    Job {
        /// The allowlist (see [`super::network::Network::Isolated`]).
        allow: Vec<String>,
    },
    /// A network namespace's listeners come with this message: HTTP, DNS
    /// over UDP, DNS over TCP (one per namespace: the session's, each
    /// host's).
    Listeners,
}

/// The proxy's `main`: never returns.
pub(crate) fn main() -> ! {
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: H gave us our channel as descriptor 3; this fresh process has no
    // other owner of it.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(CHANNEL_FD) };
    let mut chan = Channel::new(fd);
    let allow = match chan.recv::<ToProxy>() {
        Ok(Some(ToProxy::Job { allow })) => allow,
        _ => std::process::exit(2),
    };
    let rules = match Egress::new(&allow, own_addresses()) {
        Ok(rules) => Arc::new(rules),
        Err(e) => {
            eprintln!("vauban proxy: {e}");
            std::process::exit(2)
        }
    };
    let upstreams = Arc::new(nameservers(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    ));
    if let Err(e) = drop_privileges() {
        eprintln!("vauban proxy: cannot drop its privileges: {e}");
        std::process::exit(2);
    }
    // Each network namespace of the sandbox (the session's, each host's)
    // sends its listeners; H's channel ending is the end.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<[OwnedFd; 3]>();
    std::thread::spawn(move || {
        while let Ok(Some(msg)) = chan.recv::<ToProxy>() {
            let fds = (chan.take_fd(), chan.take_fd(), chan.take_fd());
            if let (ToProxy::Listeners, (Some(a), Some(b), Some(c))) = (msg, fds) {
                let _ = tx.send([a, b, c]);
            }
        }
        std::process::exit(0);
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vauban proxy: {e}");
            std::process::exit(2)
        }
    };
    runtime.block_on(async move {
        while let Some(listeners) = rx.recv().await {
            match serve(listeners) {
                Ok((http, dns_udp, dns_tcp)) => {
                    tokio::spawn(http::serve(http, rules.clone()));
                    tokio::spawn(dns::serve_udp(dns_udp, upstreams.clone()));
                    tokio::spawn(dns::serve_tcp(dns_tcp, upstreams.clone()));
                }
                Err(e) => eprintln!("vauban proxy: {e}"),
            }
        }
    });
    std::process::exit(0)
}

/// One network namespace's listeners (HTTP, DNS over UDP, over TCP) as the
/// runtime's.
fn serve(
    [http, dns_udp, dns_tcp]: [OwnedFd; 3],
) -> std::io::Result<(
    tokio::net::TcpListener,
    tokio::net::UdpSocket,
    tokio::net::TcpListener,
)> {
    let http = std::net::TcpListener::from(http);
    let dns_udp = std::net::UdpSocket::from(dns_udp);
    let dns_tcp = std::net::TcpListener::from(dns_tcp);
    http.set_nonblocking(true)?;
    dns_udp.set_nonblocking(true)?;
    dns_tcp.set_nonblocking(true)?;
    Ok((
        tokio::net::TcpListener::from_std(http)?,
        tokio::net::UdpSocket::from_std(dns_udp)?,
        tokio::net::TcpListener::from_std(dns_tcp)?,
    ))
}

/// The resolvers of a `resolv.conf`.
fn nameservers(conf: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| {
            // `fe80::1%eth0`: the zone is not kept.
            let a = a.trim().split('%').next()?;
            a.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        // What the C library does without a resolv.conf.
        vec![SocketAddr::from(([127, 0, 0, 1], 53))]
    } else {
        servers
    }
}

/// Every address of this machine's interfaces.
fn own_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// `nobody`, no supplementary group, `no_new_privs`: no capability left.
fn drop_privileges() -> std::io::Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let nobody = (Uid::from_raw(65534), Gid::from_raw(65534));
    setgroups(&[]).map_err(std::io::Error::from)?;
    setresgid(nobody.1, nobody.1, nobody.1).map_err(std::io::Error::from)?;
    setresuid(nobody.0, nobody.0, nobody.0).map_err(std::io::Error::from)?;
    rustix::thread::set_no_new_privs(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_are_read_from_resolv_conf() {
        let conf = "# x\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nsearch lan\n";
        assert_eq!(
            nameservers(conf),
            [
                "10.255.255.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(nameservers(""), ["127.0.0.1:53".parse().unwrap()]);
    }
}
