//! Where a build may connect through the egress proxy: public addresses on
//! the web's ports (80 for `http://`, 443 for a tunnel), and whatever the
//! build's allowlist names. Refused unless allowed: the host's loopback and
//! its own interface addresses (its services), link-local addresses (a
//! cloud's metadata service at 169.254.169.254), private and shared ranges
//! (the site's network: RFC 1918, 100.64/10, fc00::/7), multicast, broadcast
//! and unspecified addresses, and any other port (ssh to a public server
//! through a tunnel).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// A host name, exactly.
    Host(String, Option<u16>),
    /// Every name under a domain (`*.example.org`).
    Domain(String, Option<u16>),
    /// An address range.
    Net(IpAddr, u8, Option<u16>),
}

/// The proxy's rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Egress {
    allow: Vec<Allow>,
    /// The host's own interface addresses.
    own: Vec<IpAddr>,
}

impl Egress {
    /// Rules from an allowlist (`HOST`, `HOST:PORT`, `*.DOMAIN[:PORT]`,
    /// `ADDR`, `ADDR/PREFIX`, `[V6]:PORT`) and the host's own addresses.
    pub(crate) fn new(allow: &[String], own: Vec<IpAddr>) -> Result<Self, String> {
        let allow = allow
            .iter()
            .map(|e| parse_entry(e))
            .collect::<Result<_, _>>()?;
        Ok(Egress { allow, own })
    }

    /// Whether `host` (as the client named it) is allowed by name.
    pub(crate) fn allows_name(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|a| match a {
            Allow::Host(h, p) => *h == host && p.is_none_or(|p| p == port),
            Allow::Domain(d, p) => {
                // `d` is `.DOMAIN`: a name under it, not the domain itself.
                host.strip_suffix(d.as_str())
                    .is_some_and(|rest| !rest.is_empty())
                    && p.is_none_or(|p| p == port)
            }
            Allow::Net(..) => false,
        })
    }

    /// Whether `addr:port` may be connected to, for a forwarded `http://`
    /// request or (`tunnel`) a `CONNECT`; the reason when not.
    pub(crate) fn check(&self, addr: IpAddr, port: u16, tunnel: bool) -> Result<(), &'static str> {
        let allowed = self.allow.iter().any(|a| match a {
            Allow::Net(net, prefix, p) => {
                in_net(addr, *net, *prefix) && p.is_none_or(|p| p == port)
            }
            _ => false,
        });
        if allowed {
            return Ok(());
        }
        if self.own.contains(&addr) || self.own.contains(&canonical(addr)) {
            return Err("an address of this machine");
        }
        public(addr)?;
        match (tunnel, port) {
            (true, 443) | (false, 80) => Ok(()),
            (true, _) => Err("a public address, but a tunnel goes to port 443 only"),
            (false, _) => Err("a public address, but http:// goes to port 80 only"),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 one.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `addr` is a public unicast address; the kind of address when not.
pub(crate) fn public(addr: IpAddr) -> Result<(), &'static str> {
    match canonical(addr) {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> Result<(), &'static str> {
    let o = a.octets();
    if a.is_loopback() {
        Err("loopback")
    } else if a.is_unspecified() || o[0] == 0 {
        Err("an unspecified address")
    } else if a.is_link_local() {
        Err("link-local (a metadata service)")
    } else if a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Err("a private network")
    } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
        Err("multicast, broadcast or reserved")
    } else {
        Ok(())
    }
}

fn public_v6(a: Ipv6Addr) -> Result<(), &'static str> {
    let s = a.segments();
    if a.is_loopback() {
        Err("loopback")
    } else if a.is_unspecified() {
        Err("an unspecified address")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Err("link-local (a metadata service)")
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        Err("a private network")
    } else if a.is_multicast() {
        Err("multicast, broadcast or reserved")
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // The local-use NAT64 prefix (64:ff9b:1::/48): a site's own.
        Err("a private network")
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 (the well-known prefix): the embedded IPv4 address decides.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        public_v4(v4)
    } else {
        Ok(())
    }
}

fn in_net(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (canonical(addr), canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Parses one allowlist entry.
fn parse_entry(entry: &str) -> Result<Allow, String> {
    let bad = |why: &str| {
        format!(
            "network allowlist entry {entry:?}: {why} (give HOST, HOST:PORT, *.DOMAIN, \
             ADDRESS or ADDRESS/PREFIX)"
        )
    };
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(bad("empty"));
    }
    if let Some((net, prefix)) = entry.split_once('/') {
        let addr: IpAddr = net.parse().map_err(|_| bad("not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad("bad prefix length"))?;
        return Ok(Allow::Net(addr, prefix, None));
    }
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Ok(Allow::Net(
            addr,
            if addr.is_ipv4() { 32 } else { 128 },
            None,
        ));
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        let max = if sock.is_ipv4() { 32 } else { 128 };
        return Ok(Allow::Net(sock.ip(), max, Some(sock.port())));
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (
            name,
            Some(port.parse::<u16>().map_err(|_| bad("bad port"))?),
        ),
        None => (entry, None),
    };
    let name = name.to_ascii_lowercase();
    let valid = |n: &str| {
        !n.is_empty()
            && n.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if let Some(domain) = name.strip_prefix("*.") {
        if !valid(domain) {
            return Err(bad("bad domain"));
        }
        return Ok(Allow::Domain(format!(".{domain}"), port));
    }
    if !valid(&name) {
        return Err(bad("bad host name"));
    }
    Ok(Allow::Host(name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_by_default() {
        let e = Egress::new(&[], vec![ip("192.0.2.2")]).unwrap();
        for denied in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::2",
            "fe80::1",
            "224.0.0.1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            // This machine's own address (services bound to every interface).
            "192.0.2.2",
        ] {
            assert!(
                e.check(ip(denied), 80, false).is_err(),
                "{denied} must be refused"
            );
        }
        for allowed in ["151.101.2.132", "2a04:4e42::644", "203.0.113.80"] {
            assert_eq!(e.check(ip(allowed), 80, false), Ok(()), "{allowed}");
            assert_eq!(e.check(ip(allowed), 443, true), Ok(()), "{allowed}");
            // A tunnel to ssh, http:// to another port: not the web's.
            assert!(e.check(ip(allowed), 22, true).is_err());
            assert!(e.check(ip(allowed), 8080, false).is_err());
        }
        assert!(e.check(ip("64:ff9b:1::a00:1"), 443, true).is_err());
    }

    #[test]
    fn the_allowlist_opens_names_ranges_and_ports() {
        let e = Egress::new(
            &[
                "apt.example.org:3142".into(),
                "*.mirror.example".into(),
                "10.0.0.0/8".into(),
                "127.0.0.1:3142".into(),
            ],
            vec![],
        )
        .unwrap();
        assert!(e.allows_name("APT.example.org.", 3142));
        assert!(!e.allows_name("apt.example.org", 80));
        assert!(e.allows_name("deb.mirror.example", 80));
        assert!(!e.allows_name("mirror.example", 80));
        assert!(!e.allows_name("evilmirror.example", 80));
        assert_eq!(e.check(ip("10.9.8.7"), 22, true), Ok(()));
        assert_eq!(e.check(ip("127.0.0.1"), 3142, false), Ok(()));
        assert!(e.check(ip("127.0.0.1"), 3143, false).is_err());
    }

    #[test]
    fn bad_entries_are_refused_with_the_forms() {
        for bad in ["", "10.0.0.0/33", "host:port", "bad host", "*.", "a..b"] {
            let err = Egress::new(&[bad.to_string()], vec![]).unwrap_err();
            assert!(err.contains("HOST:PORT"), "{bad}: {err}");
        }
    }
}
