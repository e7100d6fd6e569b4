//! The sandbox's network. By default ([`Network::Isolated`]) every sandbox
//! (a run, or a whole Ansible session: controller and hosts) has a network
//! namespace of its own with only a loopback interface: nothing of the host's
//! loopback services, abstract Unix sockets (a session D-Bus, X11) or
//! interfaces is reachable, and ports below 1024 can be bound (the sandbox
//! owns the namespace). What a build needs from outside goes through
//! vauban's egress proxy (`sandbox::proxy`), which listens *inside* the
//! namespace — on `127.0.0.1:3128` for HTTP and HTTPS (`http_proxy`,
//! `https_proxy`, which apt, pip, curl, git and Ansible's modules honour) and
//! on `127.0.0.1:53` for DNS — and connects out from the host, to public
//! addresses only unless the build allows a host by name.
//!
//! Why a proxy and not user-mode networking (`pasta`, `slirp4netns`): both
//! need `/dev/net/tun` open to the user, which many machines (these among
//! them) keep root-only; both let the build reach the host's own addresses
//! and the local network unless told otherwise; a proxy needs no device and
//! gives the allowlist for free. Its limit: only HTTP(S) and DNS go out.
//!
//! [`Network::Host`] keeps the host's namespace (a site's local apt proxy),
//! [`Network::Offline`] has no way out at all (exports).

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The egress proxy's HTTP port inside the sandbox.
pub const PROXY_PORT: u16 = 3128;

/// The proxy address as the sandbox's programs see it.
pub const PROXY_URL: &str = "http://127.0.0.1:3128";

/// The `resolv.conf` of a sandbox with its own network: the proxy's resolver.
pub const RESOLV_CONF: &str = "# vauban: the build's own resolver (see `vauban run --help`)\nnameserver 127.0.0.1\noptions edns0 trust-ad\n";

/// A sandbox's network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Network {
    /// A network namespace of its own; HTTP(S) and DNS out through vauban's
    /// proxy, to public addresses and the hosts `allow` names (`HOST`,
    /// `HOST:PORT`, `*.DOMAIN`, an address or `ADDR/PREFIX`), which may be
    /// private.
    Isolated {
        /// Hosts reachable whatever their address.
        allow: Vec<String>,
    },
    /// The host's network namespace: everything the user can reach.
    Host,
    /// A network namespace of its own with no way out.
    #[default]
    Offline,
}

impl Network {
    /// The default of a build: isolated, nothing allowed beyond public
    /// addresses.
    pub fn isolated() -> Self {
        Network::Isolated { allow: Vec::new() }
    }

    /// What init does about it.
    pub(crate) fn ns(&self) -> NetNs {
        match self {
            Network::Isolated { .. } => NetNs::Proxied,
            Network::Host => NetNs::Keep,
            Network::Offline => NetNs::Offline,
        }
    }

    /// The environment that points programs at the proxy (none without it).
    pub fn env(&self) -> Vec<(String, String)> {
        if !matches!(self, Network::Isolated { .. }) {
            return Vec::new();
        }
        let no_proxy = "localhost,127.0.0.1,::1";
        [
            ("http_proxy", PROXY_URL),
            ("https_proxy", PROXY_URL),
            ("HTTP_PROXY", PROXY_URL),
            ("HTTPS_PROXY", PROXY_URL),
            ("no_proxy", no_proxy),
            ("NO_PROXY", no_proxy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The `resolv.conf` a sandbox gets: the proxy's resolver when isolated,
    /// none offline, else the host's.
    pub(crate) fn resolv_conf(&self) -> Vec<u8> {
        match self {
            Network::Isolated { .. } => RESOLV_CONF.as_bytes().to_vec(),
            Network::Offline => b"# vauban: no network\n".to_vec(),
            Network::Host => std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        }
    }
}

/// Checks an allowlist ([`Network::Isolated`]); the first bad entry's
/// message, with the forms accepted.
pub fn check_allow(allow: &[String]) -> std::result::Result<(), String> {
    super::proxy::policy::Egress::new(allow, Vec::new()).map(drop)
}

/// What a sandbox's init does about the network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NetNs {
    /// Stays in the namespace it was started in (the host's, or a session's).
    Keep,
    /// A new one, loopback only.
    Offline,
    /// A new one with the proxy's listeners on its loopback.
    Proxied,
}

/// In init, inside its new network namespace (when `net` is not `Keep`):
/// the loopback interface up, and for `Proxied` the proxy's listening
/// sockets (HTTP TCP, DNS UDP, DNS TCP), to be handed to the proxy.
pub(crate) fn set_up(net: NetNs) -> Result<Option<Vec<OwnedFd>>> {
    if net == NetNs::Keep {
        return Ok(None);
    }
    loopback_up()?;
    if net == NetNs::Offline {
        return Ok(None);
    }
    let bind = |what: &'static str, r: std::io::Result<OwnedFd>| r.map_err(|e| Error::sys(what, e));
    let http = bind(
        "listen on 127.0.0.1:3128",
        std::net::TcpListener::bind(("127.0.0.1", PROXY_PORT)).map(OwnedFd::from),
    )?;
    let dns_udp = bind(
        "bind 127.0.0.1:53/udp",
        std::net::UdpSocket::bind(("127.0.0.1", 53)).map(OwnedFd::from),
    )?;
    let dns_tcp = bind(
        "listen on 127.0.0.1:53",
        std::net::TcpListener::bind(("127.0.0.1", 53)).map(OwnedFd::from),
    )?;
    Ok(Some(vec![http, dns_udp, dns_tcp]))
}

/// `ip link set lo up` in this process's network namespace.
#[allow(unsafe_code)]
fn loopback_up() -> Result<()> {
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socket", e))?;
    // SAFETY: `ifreq` is plain old data; zeroed is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, a
    // properly sized `struct ifreq` that lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(Error::sys(
            "read the flags of lo",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the union member just written by SIOCGIFFLAGS is the flags.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `req`, which lives across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(Error::sys("bring lo up", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_isolated_sandbox_is_pointed_at_the_proxy() {
        let env = Network::isolated().env();
        assert!(env.contains(&("https_proxy".into(), PROXY_URL.into())));
        assert!(env
            .iter()
            .any(|(k, v)| k == "no_proxy" && v.contains("127.0.0.1")));
        assert!(Network::Host.env().is_empty());
        assert!(Network::Offline.env().is_empty());
        assert_eq!(Network::isolated().ns(), NetNs::Proxied);
        assert_eq!(Network::Host.ns(), NetNs::Keep);
    }

    #[test]
    fn the_isolated_resolver_is_the_proxy() {
        let conf = String::from_utf8(Network::isolated().resolv_conf()).unwrap();
        assert!(conf.contains("nameserver 127.0.0.1"));
    }
}
