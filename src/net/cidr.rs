//! `Cidr`: an IPv4 or IPv6 network ("10.0.0.0/8", "fd00::/8", a bare address as a
//! host route), used for trusted proxies here and for token subnets elsewhere.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4
//! address they carry, both when parsing a network and in `contains`, so that a
//! dual-stack socket's view of an IPv4 client matches an IPv4 rule.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address whose bits past `prefix` are zero, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a text is not a network; the message names the text and says what is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

/// `::ffff:a.b.c.d` → `a.b.c.d`; everything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask_v4(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(addr: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    Ipv6Addr::from(bits & mask)
}

/// `host`'s host bits behind `network`'s first `len` bits (SPEC 4.3's prefix
/// replacement); `None` when the two are of different families.
pub fn with_prefix(host: IpAddr, network: IpAddr, len: u8) -> Option<IpAddr> {
    match (host, network) {
        (IpAddr::V4(h), IpAddr::V4(n)) => {
            let keep = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            Some(IpAddr::V4((u32::from(n) | (u32::from(h) & keep)).into()))
        }
        (IpAddr::V6(h), IpAddr::V6(n)) => {
            let keep = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            Some(IpAddr::V6((u128::from(n) | (u128::from(h) & keep)).into()))
        }
        _ => None,
    }
}

/// Keep the first `prefix` bits of `ip`, zero the rest.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(mask_v4(a, prefix.min(32))),
        IpAddr::V6(a) => IpAddr::V6(mask_v6(a, prefix.min(128))),
    }
}

impl Cidr {
    /// A network from an address and a prefix length; host bits are cleared.
    /// `None` if the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // ::ffff:0:0/96 is exactly the IPv4 space.
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4(mask_v4(v4, prefix)),
            IpAddr::V6(v6) if prefix <= 128 => IpAddr::V6(mask_v6(v6, prefix)),
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// "10.0.0.0/8", "fd00::/8", or a bare address ("192.0.2.1" = "/32").
    /// Host bits after the prefix are an error ("10.1.2.3/8"): an operator who
    /// wrote that may have meant either the host or the network, so say so.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let text = s.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            CidrError(format!(
                "{s:?} is not a network: expected an address with an optional prefix length, like 10.0.0.0/8 or fd00::/8"
            ))
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(CidrError(format!(
                        "{s:?} is not a network: the prefix length must be a number from 0 to {max}"
                    )))
                }
            },
        };
        let cidr =
            Cidr::new(addr, prefix).ok_or_else(|| CidrError(format!("{s:?} is not a network")))?;
        if canonical_ip(addr) != cidr.network {
            return Err(CidrError(format!(
                "{s:?} has bits set after the prefix length; did you mean {cidr}?"
            )));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    /// Always with the prefix length ("192.0.2.1/32"), so it parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_network_contains_its_addresses_only() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.1")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("::a00:1")));
    }

    #[test]
    fn ipv6_network_contains_its_addresses_only() {
        let net = cidr("fd00::/8");
        assert!(net.contains(ip("fd12:3456::1")));
        assert!(!net.contains(ip("fe80::1")));
        assert!(!net.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bare_address_is_a_host_route() {
        assert_eq!(cidr("192.0.2.7"), cidr("192.0.2.7/32"));
        assert_eq!(cidr("2001:db8::7").prefix(), 128);
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
    }

    #[test]
    fn zero_prefix_contains_the_whole_family() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert!(cidr("::ffff:192.0.2.1").contains(ip("192.0.2.1")));
    }

    #[test]
    fn host_bits_and_junk_are_refused() {
        let err = "10.1.2.3/8".parse::<Cidr>().expect_err("host bits");
        assert!(
            err.to_string().contains("did you mean 10.0.0.0/8?"),
            "{err}"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "nope",
            "10.0.0/8",
            "fd00::/8/8",
        ] {
            let e = bad.parse::<Cidr>().expect_err(bad).to_string();
            assert!(e.contains(bad), "{bad:?}: {e}");
        }
    }

    #[test]
    fn display_parses_back() {
        for s in [
            "10.0.0.0/8",
            "fd00::/8",
            "192.0.2.1/32",
            "::/0",
            "2001:db8::/32",
        ] {
            let c = cidr(s);
            assert_eq!(c.to_string(), s);
            assert_eq!(cidr(&c.to_string()), c);
        }
        assert_eq!(cidr("192.0.2.1").to_string(), "192.0.2.1/32");
    }
}
