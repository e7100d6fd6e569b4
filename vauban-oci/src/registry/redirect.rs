//! Where a registry may send us: the redirect policy and the loopback test.

use std::net::IpAddr;

use reqwest::Url;

fn is_private_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        url::Host::Ipv4(ip) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
        }
        url::Host::Ipv6(ip) => {
            let ip = IpAddr::V6(*ip);
            ip.is_loopback()
                || ip.is_unspecified()
                || matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Whether `HOST[:PORT]` names this machine (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn is_loopback_registry(registry: &str) -> bool {
    match Url::parse(&format!("http://{registry}/"))
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The redirect policy: same host and port are followed; another host only over
/// HTTPS and never to a loopback, private or link-local address; never from
/// HTTPS down to HTTP.
pub(crate) fn check_redirect(from: &Url, to: &Url) -> std::result::Result<(), String> {
    if from.scheme() == "https" && to.scheme() != "https" {
        return Err("downgrade from https".to_string());
    }
    let same = from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default();
    if same {
        return Ok(());
    }
    let Some(host) = to.host() else {
        return Err("no host".to_string());
    };
    if to.scheme() != "https" {
        return Err("another host over plain http".to_string());
    }
    if is_private_host(&host) {
        return Err("another host with a loopback or private address".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Private and public addresses below are inputs to a pure check: nothing
    // here is ever connected to.
    #[test]
    fn redirects() {
        let u = |s: &str| Url::parse(s).unwrap();
        let reg = u("http://127.0.0.1:5000/v2/a/blobs/x");
        assert!(check_redirect(&reg, &u("http://127.0.0.1:5000/other")).is_ok());
        assert!(check_redirect(&reg, &u("http://127.0.0.1:5001/x")).is_err());
        assert!(check_redirect(&reg, &u("http://10.0.0.1/x")).is_err());
        let https = u("https://registry.example/v2/a/blobs/x");
        assert!(check_redirect(&https, &u("https://cdn.example/blob")).is_ok());
        assert!(check_redirect(&https, &u("http://cdn.example/blob")).is_err());
        assert!(check_redirect(&https, &u("https://192.168.1.1/blob")).is_err());
        assert!(check_redirect(&https, &u("https://localhost/blob")).is_err());
        assert!(check_redirect(&https, &u("https://[::1]/blob")).is_err());
    }

    #[test]
    fn loopback_registries() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("127.1.2.3"));
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("registry.example:5000"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
    }
}
