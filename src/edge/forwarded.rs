//! Who the client is behind a reverse proxy: `X-Forwarded-For`, believed only
//! when the connection comes from a `trusted_proxies` network (SPEC 6).
//!
//! Each proxy appends the address it saw, so the list is read from the right;
//! the first hop that is not a trusted proxy is the client. Anything to its left
//! was written by the client and proves nothing.

use std::net::{IpAddr, SocketAddr};

use crate::net::cidr::{canonical_ip, Cidr};

/// The client address for a request that arrived from `peer`.
///
/// `xff` is the `X-Forwarded-For` value; if the request carries several such
/// headers, pass them joined with `,` in the order received. Returns `peer`
/// unless `peer` is trusted; otherwise the rightmost hop that is not trusted,
/// or the last hop that could be read if the list runs out or holds something
/// that is not an address. IPv4-mapped IPv6 results come back as IPv4.
pub fn forwarded_client(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = canonical_ip(peer);
    if !is_trusted(client) {
        return client;
    }
    let Some(xff) = xff else {
        return client;
    };
    for hop in xff.rsplit(',') {
        let Some(ip) = parse_hop(hop) else {
            // A trusted proxy never writes this; stop at the last hop we know.
            return client;
        };
        client = canonical_ip(ip);
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// One hop: "192.0.2.1", "2001:db8::1", and the forms with a port some proxies
/// write ("192.0.2.1:4711", "[2001:db8::1]:4711", "[2001:db8::1]").
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = forwarded_client(ip("203.0.113.5"), Some("198.51.100.1"), &trusted);
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), None, &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        // The client claims 1.1.1.1; the real client is 198.51.100.7, seen by
        // the outer proxy 10.0.0.2, which the inner proxy 10.0.0.1 forwarded.
        let xff = "1.1.1.1, 198.51.100.7, 10.0.0.2";
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), Some(xff), &trusted),
            ip("198.51.100.7")
        );
        let xff = "2001:db8::1, fd00::2";
        assert_eq!(
            forwarded_client(ip("fd00::1"), Some(xff), &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), Some("10.9.9.9, 10.0.0.2"), &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn unreadable_hop_stops_at_the_last_known_one() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), Some("evil, 10.0.0.2"), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), Some(""), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn hops_with_ports_are_read() {
        let trusted = nets(&["127.0.0.1"]);
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), Some("192.0.2.1:4711"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), Some("[2001:db8::1]:4711"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), Some("[2001:db8::1]"), &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn mapped_addresses_are_matched_and_returned_as_ipv4() {
        let trusted = nets(&["127.0.0.0/8"]);
        let got = forwarded_client(ip("::ffff:127.0.0.1"), Some("::ffff:192.0.2.9"), &trusted);
        assert_eq!(got, ip("192.0.2.9"));
        assert_eq!(
            forwarded_client(ip("::ffff:192.0.2.1"), None, &[]),
            ip("192.0.2.1")
        );
    }
}
