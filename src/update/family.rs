//! The two address families and which of them a token may write: leaf types
//! the address rules, the directory and the store share.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The DNS record type that holds this family.
    pub fn rtype(self) -> &'static str {
        match self {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
    }

    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// seed: IPv4 from myip, myipv4, ip; IPv6 from myipv6, ipv6, myip, ip — in this order.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            Family::V4 => &["myip", "myipv4", "ip"],
            Family::V6 => &["myipv6", "ipv6", "myip", "ip"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Which families a token may write (`token add --family`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    Both,
    V4,
    V6,
}

impl FamilyPolicy {
    pub fn allows(self, f: Family) -> bool {
        matches!(
            (self, f),
            (FamilyPolicy::Both, _)
                | (FamilyPolicy::V4, Family::V4)
                | (FamilyPolicy::V6, Family::V6)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FamilyPolicy::Both => "both",
            FamilyPolicy::V4 => "v4",
            FamilyPolicy::V6 => "v6",
        }
    }

    pub fn parse(s: &str) -> Option<FamilyPolicy> {
        match s {
            "both" => Some(FamilyPolicy::Both),
            "v4" => Some(FamilyPolicy::V4),
            "v6" => Some(FamilyPolicy::V6),
            _ => None,
        }
    }
}
