//! Who the client is behind a reverse proxy: `X-Forwarded-For`, believed only
//! from a trusted proxy (SPEC 6, 17). The one place that decides it, for the
//! live handler and for `explain`.
//!
//! A proxy is trusted by the socket it connects through: a `unix:` listener
//! that `trusted_proxies` names (only who may open the socket file can reach
//! it), or a TCP peer in a `trusted_proxies` network. A TCP peer on loopback
//! is any local user of the machine, so its header is believed only with
//! `trusted_proxies_allow_local_users = true`.
//!
//! Each proxy appends the address it saw, so the list is read from the right;
//! the first hop that is not a trusted proxy is the client. Anything to its left
//! was written by the client and proves nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::peer::Peer;
use crate::net::cidr::{canonical_ip, Cidr};

/// `trusted_proxies` and `trusted_proxies_allow_local_users` from `[server]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Networks whose TCP connections (and hops in the header) are proxies.
    pub nets: Vec<Cidr>,
    /// `unix:` listeners (of `http_listen`) whose connections are proxies.
    pub unix: Vec<PathBuf>,
    /// Believe loopback TCP peers in `nets` although every local user is one.
    pub allow_local_users: bool,
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The loopback addresses `nets` trusts (`127.0.0.1`, `::1`), which with
    /// a TCP listener lets every local user pose as the proxy (SPEC 17).
    pub fn trusted_loopback(&self) -> Vec<IpAddr> {
        let candidates = [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        candidates
            .into_iter()
            .filter(|ip| self.trusts(*ip))
            .collect()
    }
}

/// A request whose client address cannot be known: refused (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoClient {
    /// A `unix:` listener `trusted_proxies` does not name: no address at all.
    UntrustedSocket(PathBuf),
    /// Through a trusted `unix:` listener without a readable last hop.
    NoForwardedFor(PathBuf),
}

impl fmt::Display for NoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoClient::UntrustedSocket(p) => write!(
                f,
                "request on unix:{} has no client address: the listener is not in trusted_proxies",
                p.display()
            ),
            NoClient::NoForwardedFor(p) => write!(
                f,
                "request on unix:{} has no client address: X-Forwarded-For is missing or its last hop is not an IP address",
                p.display()
            ),
        }
    }
}

/// The client address of a request that arrived from `peer`.
///
/// `xff` is every `X-Forwarded-For` line of the request in the order received
/// (a proxy may append its own line after the client's, as HAProxy does: only
/// the last hops are its word). The one reading of the header, for the live
/// intake and for `explain`. A TCP peer that
/// is not trusted is the client; a trusted one's list is read from the right:
/// the rightmost hop that is not trusted, or the last hop that could be read
/// if the list runs out or holds something that is not an address. A trusted
/// `unix:` listener's request must carry a readable last hop. IPv4-mapped IPv6
/// results come back as IPv4.
pub fn forwarded_client<'a>(
    peer: &Peer,
    xff: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> Result<IpAddr, NoClient> {
    let lines: Vec<&str> = xff.into_iter().collect();
    let mut hops = lines.iter().rev().flat_map(|line| line.rsplit(','));
    let mut client = match peer {
        Peer::Tcp(addr) => {
            let ip = canonical_ip(addr.ip());
            if !trusted.trusts(ip) || (ip.is_loopback() && !trusted.allow_local_users) {
                return Ok(ip);
            }
            ip
        }
        Peer::Unix(path) => {
            if !trusted.unix.contains(path) {
                return Err(NoClient::UntrustedSocket(path.clone()));
            }
            // The socket has no peer address: the proxy's last hop is the
            // first address we have.
            match hops.next().and_then(parse_hop) {
                Some(ip) => canonical_ip(ip),
                None => return Err(NoClient::NoForwardedFor(path.clone())),
            }
        }
    };
    for hop in hops {
        if !trusted.trusts(client) {
            return Ok(client);
        }
        let Some(ip) = parse_hop(hop) else {
            // A trusted proxy never writes this; stop at the last hop we know.
            return Ok(client);
        };
        client = canonical_ip(ip);
    }
    Ok(client)
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

    /// The reading of the list itself, with loopback proxies allowed.
    fn forwarded(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
        let trusted = TrustedProxies {
            nets: trusted.to_vec(),
            unix: vec![],
            allow_local_users: true,
        };
        forwarded_client(&Peer::Tcp(SocketAddr::new(peer, 4711)), xff, &trusted)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = forwarded(ip("203.0.113.5"), Some("198.51.100.1"), &trusted);
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(forwarded(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        // The client claims 1.1.1.1; the real client is 198.51.100.7, seen by
        // the outer proxy 10.0.0.2, which the inner proxy 10.0.0.1 forwarded.
        let xff = "1.1.1.1, 198.51.100.7, 10.0.0.2";
        assert_eq!(
            forwarded(ip("10.0.0.1"), Some(xff), &trusted),
            ip("198.51.100.7")
        );
        let xff = "2001:db8::1, fd00::2";
        assert_eq!(
            forwarded(ip("fd00::1"), Some(xff), &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn several_header_lines_are_read_as_one_list_in_order() {
        // HAProxy appends its own line after the client's.
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Peer::Tcp(SocketAddr::new(ip("10.0.0.1"), 4711));
        let t = TrustedProxies {
            nets: trusted,
            unix: vec![],
            allow_local_users: false,
        };
        let lines = ["1.1.1.1, 198.51.100.7", "10.0.0.2"];
        assert_eq!(
            forwarded_client(&peer, lines, &t).ok(),
            Some(ip("198.51.100.7"))
        );
        let swapped = ["198.51.100.7", "1.1.1.1"];
        assert_eq!(
            forwarded_client(&peer, swapped, &t).ok(),
            Some(ip("1.1.1.1"))
        );
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            forwarded(ip("10.0.0.1"), Some("10.9.9.9, 10.0.0.2"), &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn unreadable_hop_stops_at_the_last_known_one() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            forwarded(ip("10.0.0.1"), Some("evil, 10.0.0.2"), &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            forwarded(ip("10.0.0.1"), Some(""), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn hops_with_ports_are_read() {
        let trusted = nets(&["127.0.0.1"]);
        assert_eq!(
            forwarded(ip("127.0.0.1"), Some("192.0.2.1:4711"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            forwarded(ip("127.0.0.1"), Some("[2001:db8::1]:4711"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded(ip("127.0.0.1"), Some("[2001:db8::1]"), &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn mapped_addresses_are_matched_and_returned_as_ipv4() {
        let trusted = nets(&["127.0.0.0/8"]);
        let got = forwarded(ip("::ffff:127.0.0.1"), Some("::ffff:192.0.2.9"), &trusted);
        assert_eq!(got, ip("192.0.2.9"));
        assert_eq!(
            forwarded(ip("::ffff:192.0.2.1"), None, &[]),
            ip("192.0.2.1")
        );
    }

    /// SPEC 17: every local user can connect from loopback, so trusting
    /// 127.0.0.1 alone does not make its header believable.
    #[test]
    fn loopback_peer_header_is_ignored_unless_local_users_are_allowed() {
        let mut trusted = TrustedProxies {
            nets: nets(&["127.0.0.1/32", "::1/128"]),
            unix: vec![],
            allow_local_users: false,
        };
        for peer in ["127.0.0.1:4711", "[::1]:4711", "[::ffff:127.0.0.1]:4711"] {
            let peer = Peer::Tcp(peer.parse().expect("addr"));
            let got = forwarded_client(&peer, Some("192.0.2.1"), &trusted);
            assert!(got.is_ok_and(|ip| ip.is_loopback()), "{peer}");
        }
        trusted.allow_local_users = true;
        let peer = Peer::Tcp("127.0.0.1:4711".parse().expect("addr"));
        assert_eq!(
            forwarded_client(&peer, Some("192.0.2.1"), &trusted),
            Ok(ip("192.0.2.1"))
        );
        assert_eq!(trusted.trusted_loopback().len(), 2);
        assert!(TrustedProxies::default().trusted_loopback().is_empty());
    }

    #[test]
    fn a_trusted_unix_listener_gives_the_last_hop_and_needs_one() {
        let sock = PathBuf::from("/run/dedyn-update/http.sock");
        let trusted = TrustedProxies {
            nets: nets(&["10.0.0.0/8"]),
            unix: vec![sock.clone()],
            allow_local_users: false,
        };
        let peer = Peer::Unix(sock.clone());
        let got = |xff| forwarded_client(&peer, xff, &trusted);
        assert_eq!(got(Some("1.1.1.1, 198.51.100.7")), Ok(ip("198.51.100.7")));
        // An outer proxy in `nets` is looked through, as over TCP.
        assert_eq!(got(Some("198.51.100.7, 10.0.0.2")), Ok(ip("198.51.100.7")));
        assert_eq!(got(Some("[2001:db8::1]:4711")), Ok(ip("2001:db8::1")));
        for bad in [None, Some(""), Some("1.1.1.1, unknown")] {
            assert_eq!(
                got(bad),
                Err(NoClient::NoForwardedFor(sock.clone())),
                "{bad:?}"
            );
        }
        let other = Peer::Unix(PathBuf::from("/run/other.sock"));
        let e = forwarded_client(&other, Some("192.0.2.1"), &trusted).unwrap_err();
        assert_eq!(
            e,
            NoClient::UntrustedSocket(PathBuf::from("/run/other.sock"))
        );
        assert!(e.to_string().contains("unix:/run/other.sock"), "{e}");
    }
}
