//! Seed "Determine IP addresses": per address family, which query parameter
//! decides and what it means (`AddressAction`), and how an action changes a record set.

use super::directory::{Token, ZonePolicy};
use super::hostname;
use super::refusal::Refusal;
use super::request::{Query, Request};
use crate::net::cidr::{mask, with_prefix, Cidr};
use crate::net::name;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What happens to one family of one name, and which rule decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyPlan {
    pub action: AddressAction,
    pub source: ActionSource,
}

pub use super::family::Family;

/// What one family of one name should become: the closed set of outcomes of an
/// address parameter (after deSEC's dyndns view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressAction {
    /// Exactly these addresses (sorted, no duplicates, never empty).
    Set(Vec<IpAddr>),
    /// No records of this family.
    Delete,
    /// Leave the records as they are.
    Preserve,
    /// Keep each record's host bits, put this network prefix in front.
    ReplacePrefix { network: IpAddr, len: u8 },
    /// The connection address lies in a `guard_fallback` range: leave as is.
    Guard(IpAddr),
}

impl fmt::Display for AddressAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressAction::Set(list) => {
                let l: Vec<String> = list.iter().map(IpAddr::to_string).collect();
                write!(f, "set {}", l.join(", "))
            }
            AddressAction::Delete => f.write_str("delete"),
            AddressAction::Preserve => f.write_str("preserve"),
            AddressAction::ReplacePrefix { network, len } => {
                write!(f, "replace prefix with {network}/{len}")
            }
            AddressAction::Guard(ip) => write!(
                f,
                "leave as is (connection address {ip} is in guard_fallback)"
            ),
        }
    }
}

/// Where a family's action came from (for `explain` and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionSource {
    Parameter(String),
    Connection,
    NoAddress,
    TokenFamilyPolicy,
    NotNamedForThisName,
}

impl fmt::Display for ActionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionSource::Parameter(k) => write!(f, "parameter {k}"),
            ActionSource::Connection => {
                f.write_str("the connection's address (no parameter counted)")
            }
            ActionSource::NoAddress => {
                f.write_str("no parameter counted and the connection is of the other family")
            }
            ActionSource::TokenFamilyPolicy => f.write_str("the token may not write this family"),
            ActionSource::NotNamedForThisName => {
                f.write_str("only named in myipvN:NAME for the other family")
            }
        }
    }
}

enum Element<'a> {
    Empty,
    Preserve,
    Address(&'a str),
}

/// Why an address parameter's value is refused (`400`, SPEC 4.3): each names
/// the parameter (`key`, request text, shown by `show_key`) and the bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Addresses together with `preserve` or an empty element.
    MixedWithAddresses { key: String },
    /// `preserve` together with an empty element.
    PreserveWithEmpty { key: String },
    /// More than `MAX_ADDRESSES` addresses.
    TooMany { key: String, count: usize },
    /// An `addr/len` together with other addresses.
    PrefixWithOthers { key: String },
    /// An `addr/len` whose length is not 0 to `max`.
    PrefixLength { key: String, value: String, max: u8 },
    /// Not an address of `family`.
    NotAnAddress {
        key: String,
        text: String,
        family: Family,
    },
    /// `::ffff:a.b.c.d` sent as IPv6.
    Ipv4Mapped { key: String, text: String },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::MixedWithAddresses { key } => write!(
                f,
                "{}: 'preserve' or an empty value cannot be mixed with addresses",
                show_key(key)
            ),
            AddressError::PreserveWithEmpty { key } => write!(
                f,
                "{}: 'preserve' cannot be mixed with empty values",
                show_key(key)
            ),
            AddressError::TooMany { key, count } => write!(
                f,
                "{}: too many addresses: {count} (at most {MAX_ADDRESSES} per family)",
                show_key(key)
            ),
            AddressError::PrefixWithOthers { key } => write!(
                f,
                "{}: a prefix (addr/len) cannot be combined with other addresses",
                show_key(key)
            ),
            AddressError::PrefixLength { key, value, max } => write!(
                f,
                "{}: invalid prefix length in {} (0 to {max})",
                show_key(key),
                name::quoted(value)
            ),
            AddressError::NotAnAddress { key, text, family } => write!(
                f,
                "{}: {} is not a valid {} address",
                show_key(key),
                name::quoted(text),
                family.name()
            ),
            AddressError::Ipv4Mapped { key, text } => write!(
                f,
                "{}: {} is an IPv4-mapped IPv6 address; send the IPv4 address as such",
                show_key(key),
                name::quoted(text)
            ),
        }
    }
}

impl std::error::Error for AddressError {}

/// At most this many addresses per family and name in one request (the SPEC sets
/// no bound; it keeps one request from writing thousands of records).
pub const MAX_ADDRESSES: usize = 32;

/// SPEC 4.3: what the value of parameter `key` means for `family`; `Ok(None)` when
/// it does not count for this family (then the next parameter is tried).
pub fn parse_value(
    key: &str,
    value: &str,
    family: Family,
) -> Result<Option<AddressAction>, AddressError> {
    let elements = elements_of(value, family);
    if elements.is_empty() {
        return Ok(None);
    }
    let addresses: Vec<&str> = elements
        .iter()
        .filter_map(|e| match e {
            Element::Address(a) => Some(*a),
            _ => None,
        })
        .collect();
    if addresses.is_empty() {
        return delete_or_preserve(key, &elements).map(Some);
    }
    if addresses.len() != elements.len() {
        return Err(AddressError::MixedWithAddresses { key: key.into() });
    }
    if addresses.iter().any(|a| a.contains('/')) {
        return replace_prefix(key, &addresses, family).map(Some);
    }
    if addresses.len() > MAX_ADDRESSES {
        return Err(AddressError::TooMany {
            key: key.into(),
            count: addresses.len(),
        });
    }
    let mut list = addresses
        .iter()
        .map(|a| parse_address(key, a, family))
        .collect::<Result<Vec<_>, _>>()?;
    list.sort();
    list.dedup();
    Ok(Some(AddressAction::Set(list)))
}

/// A parameter name in a message: the fixed ones (`myipv4`, ...) as they are;
/// `myipvN:NAME` keys carry request text, so they are quoted and escaped.
fn show_key(key: &str) -> String {
    let fixed = Family::V4.parameters().contains(&key) || Family::V6.parameters().contains(&key);
    if fixed {
        key.to_string()
    } else {
        name::quoted(key)
    }
}

/// The elements of a comma list that count for `family` (SPEC 4.3, 9): empty,
/// `preserve`, or an address of this family; the other family and words of
/// neither (`invalid`, `<ipaddr>` placeholders) are as if absent.
fn elements_of(value: &str, family: Family) -> Vec<Element<'_>> {
    let mut elements = Vec::new();
    for e in value.split(',').map(str::trim) {
        let fam = if e.contains(':') {
            Some(Family::V6)
        } else if e.contains('.') {
            Some(Family::V4)
        } else {
            None
        };
        match (e, fam) {
            ("", _) => elements.push(Element::Empty),
            ("preserve", _) => elements.push(Element::Preserve),
            (_, Some(f)) if f == family => elements.push(Element::Address(e)),
            _ => {}
        }
    }
    elements
}

/// Only empty elements: delete; only `preserve`: preserve; both mixed: `400`.
fn delete_or_preserve(key: &str, elements: &[Element]) -> Result<AddressAction, AddressError> {
    if elements.iter().all(|e| matches!(e, Element::Empty)) {
        return Ok(AddressAction::Delete);
    }
    if elements.iter().all(|e| matches!(e, Element::Preserve)) {
        return Ok(AddressAction::Preserve);
    }
    Err(AddressError::PreserveWithEmpty { key: key.into() })
}

/// One `addr/len`: the prefix replacement (host bits of the value ignored);
/// alone or `400`.
fn replace_prefix(
    key: &str,
    addresses: &[&str],
    family: Family,
) -> Result<AddressAction, AddressError> {
    if addresses.len() > 1 {
        return Err(AddressError::PrefixWithOthers { key: key.into() });
    }
    let (addr, len) = addresses[0].split_once('/').unwrap_or((addresses[0], ""));
    let ip = parse_address(key, addr, family)?;
    let max = if family == Family::V4 { 32 } else { 128 };
    let len: u8 =
        len.parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| AddressError::PrefixLength {
                key: key.into(),
                value: addresses[0].into(),
                max,
            })?;
    Ok(AddressAction::ReplacePrefix {
        network: mask(ip, len),
        len,
    })
}

fn parse_address(key: &str, text: &str, family: Family) -> Result<IpAddr, AddressError> {
    let bad = || AddressError::NotAnAddress {
        key: key.into(),
        text: text.into(),
        family,
    };
    match family {
        Family::V4 => text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad()),
        Family::V6 => {
            let v6 = text.parse::<Ipv6Addr>().map_err(|_| bad())?;
            if v6.to_ipv4_mapped().is_some() {
                return Err(AddressError::Ipv4Mapped {
                    key: key.into(),
                    text: text.into(),
                });
            }
            Ok(IpAddr::V6(v6))
        }
    }
}

/// The general action for `family`: the first counting parameter, else the
/// connection's address if it is of this family (unless guarded), else delete.
pub fn family_action(
    query: &Query,
    family: Family,
    peer: IpAddr,
    guard: &[Cidr],
) -> Result<(AddressAction, ActionSource), AddressError> {
    for key in family.parameters() {
        if let Some(value) = query.get(key) {
            if let Some(action) = parse_value(key, value, family)? {
                return Ok((action, ActionSource::Parameter(key.to_string())));
            }
        }
    }
    let peer = crate::net::cidr::canonical_ip(peer);
    if Family::of(peer) != family {
        return Ok((AddressAction::Delete, ActionSource::NoAddress));
    }
    if guard.iter().any(|c| c.contains(peer)) {
        return Ok((AddressAction::Guard(peer), ActionSource::Connection));
    }
    Ok((AddressAction::Set(vec![peer]), ActionSource::Connection))
}

/// One `myipv4:NAME=` / `myipv6:NAME=` parameter: its names and what it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerName {
    pub key: String,
    pub names: Vec<String>,
    pub family: Family,
    pub action: AddressAction,
}

impl PerName {
    /// Where its names come from, for the trace.
    pub fn origin(&self) -> String {
        format!(
            "{} names {} for {}",
            self.key,
            self.names.join(", "),
            self.family.rtype()
        )
    }
}

/// SPEC 4.3: every per-name parameter, in query order (later ones win).
pub fn per_name_parameters(query: &Query) -> Result<Vec<PerName>, Refusal> {
    let mut out = Vec::new();
    for (key, value) in query.iter() {
        let (family, names) = if let Some(n) = key.strip_prefix("myipv4:") {
            (Family::V4, n)
        } else if let Some(n) = key.strip_prefix("myipv6:") {
            (Family::V6, n)
        } else {
            continue;
        };
        let names = hostname::parse_list(names).map_err(|e| match hostname::refusal(e) {
            Refusal::BadRequest(m) => Refusal::BadRequest(format!("{}: {m}", show_key(key))),
            other => other,
        })?;
        let action = parse_value(key, value, family)
            .map_err(|e| Refusal::BadRequest(e.to_string()))?
            .ok_or_else(|| {
                Refusal::BadRequest(format!(
                    "{}: no {} address in {}",
                    show_key(key),
                    family.name(),
                    name::quoted(value)
                ))
            })?;
        out.push(PerName {
            key: key.to_string(),
            names,
            family,
            action,
        });
    }
    Ok(out)
}

/// The record set an action leaves, given the current one (sorted, no duplicates).
pub fn apply(action: &AddressAction, current: &[IpAddr]) -> Vec<IpAddr> {
    let mut next = match action {
        AddressAction::Set(list) => list.clone(),
        AddressAction::Delete => Vec::new(),
        AddressAction::Preserve | AddressAction::Guard(_) => current.to_vec(),
        AddressAction::ReplacePrefix { network, len } => current
            .iter()
            .filter_map(|old| with_prefix(*old, *network, *len))
            .collect(),
    };
    next.sort();
    next.dedup();
    next
}

/// The general parameters' action per family, for the general names (none when
/// only `myipvN:NAME` parameters named hosts).
pub fn general_actions(
    req: &Request,
    general_names: &[String],
    zones: &dyn ZonePolicy,
) -> Result<Option<[FamilyPlan; 2]>, Refusal> {
    if general_names.is_empty() {
        return Ok(None);
    }
    let one = |f| {
        family_action(&req.query, f, req.client, zones.guard_fallback())
            .map(|(action, source)| FamilyPlan { action, source })
            .map_err(|e| Refusal::BadRequest(e.to_string()))
    };
    Ok(Some([one(Family::V4)?, one(Family::V6)?]))
}

/// SPEC 4.3 and 8, for one name: the general action if the name is a general
/// one, overridden by its `myipvN:NAME` parameters (later wins), then the
/// token's family policy (`preserved`).
pub fn actions_for(
    name: &str,
    general: Option<&[FamilyPlan; 2]>,
    per_name: &[PerName],
    token: &Token,
) -> [FamilyPlan; 2] {
    let not_named = || FamilyPlan {
        action: AddressAction::Preserve,
        source: ActionSource::NotNamedForThisName,
    };
    let mut v = match general {
        Some(g) => g.clone(),
        None => [not_named(), not_named()],
    };
    for p in per_name
        .iter()
        .filter(|p| p.names.iter().any(|n| n == name))
    {
        v[p.family as usize] = FamilyPlan {
            action: p.action.clone(),
            source: ActionSource::Parameter(p.key.clone()),
        };
    }
    for f in Family::BOTH {
        if !token.family.allows(f) {
            v[f as usize] = FamilyPlan {
                action: AddressAction::Preserve,
                source: ActionSource::TokenFamilyPolicy,
            };
        }
    }
    v
}

/// `[server] blocked_subnets`: an address in them is `400`, nothing written. The
/// stored records' host bits are not known here, so a prefix whose range overlaps
/// a blocked subnet at all is refused.
pub fn check_blocked(actions: &[&AddressAction], zones: &dyn ZonePolicy) -> Result<(), Refusal> {
    let blocked = zones.blocked_subnets();
    for action in actions {
        let hit = match action {
            AddressAction::Set(list) => list
                .iter()
                .find(|a| blocked.iter().any(|c| c.contains(**a))),
            AddressAction::ReplacePrefix { network, len } => Some(network).filter(|a| {
                blocked.iter().any(|c| {
                    c.contains(**a) || Cidr::new(**a, *len).is_some_and(|p| p.contains(c.network()))
                })
            }),
            _ => None,
        };
        if let Some(a) = hit {
            return Err(Refusal::BadRequest(format!(
                "{a} may not be published (server.blocked_subnets)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn act(query: &str, family: Family, peer: &str) -> Result<AddressAction, String> {
        family_action(&Query::parse(query), family, ip(peer), &[])
            .map(|(a, _)| a)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ipv4_parameter_order_is_myip_myipv4_ip() {
        assert_eq!(
            act("ip=3.3.3.3&myipv4=2.2.2.2&myip=1.1.1.1", Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("1.1.1.1")])
        );
        assert_eq!(
            act("ip=3.3.3.3&myipv4=2.2.2.2", Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("2.2.2.2")])
        );
        assert_eq!(
            act("ip=3.3.3.3", Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("3.3.3.3")])
        );
    }

    #[test]
    fn ipv6_parameter_order_is_myipv6_ipv6_myip_ip() {
        let q = "ip=::3&myip=::2&ipv6=::1&myipv6=fd08::1";
        assert_eq!(
            act(q, Family::V6, "1.1.1.1").unwrap(),
            AddressAction::Set(vec![ip("fd08::1")])
        );
        assert_eq!(
            act("ip=::3&myip=::2&ipv6=::1", Family::V6, "1.1.1.1").unwrap(),
            AddressAction::Set(vec![ip("::1")])
        );
        assert_eq!(
            act("ip=::3&myip=::2", Family::V6, "1.1.1.1").unwrap(),
            AddressAction::Set(vec![ip("::2")])
        );
    }

    #[test]
    fn parameter_of_other_family_does_not_count() {
        assert_eq!(
            act("myip=1.2.3.4&ip=fd08::9", Family::V6, "1.1.1.1").unwrap(),
            AddressAction::Set(vec![ip("fd08::9")])
        );
    }

    #[test]
    fn connection_address_is_the_fallback() {
        assert_eq!(
            act("", Family::V4, "192.0.2.7").unwrap(),
            AddressAction::Set(vec![ip("192.0.2.7")])
        );
        assert_eq!(
            act("", Family::V6, "192.0.2.7").unwrap(),
            AddressAction::Delete
        );
        assert_eq!(
            act("", Family::V6, "2001:db8::7").unwrap(),
            AddressAction::Set(vec![ip("2001:db8::7")])
        );
    }

    #[test]
    fn ipv4_mapped_peer_is_ipv4() {
        assert_eq!(
            act("", Family::V4, "::ffff:192.0.2.7").unwrap(),
            AddressAction::Set(vec![ip("192.0.2.7")])
        );
        assert_eq!(
            act("", Family::V6, "::ffff:192.0.2.7").unwrap(),
            AddressAction::Delete
        );
    }

    #[test]
    fn guarded_connection_address_is_left_alone() {
        let guard: Vec<Cidr> = vec!["100.64.0.0/10".parse().unwrap()];
        let (a, _) =
            family_action(&Query::parse(""), Family::V4, ip("100.64.1.1"), &guard).unwrap();
        assert_eq!(a, AddressAction::Guard(ip("100.64.1.1")));
        let (a, _) = family_action(
            &Query::parse("myip=100.64.1.1"),
            Family::V4,
            ip("100.64.1.1"),
            &guard,
        )
        .unwrap();
        assert_eq!(a, AddressAction::Set(vec![ip("100.64.1.1")]));
    }

    #[test]
    fn empty_value_deletes() {
        assert_eq!(
            act("myipv4=", Family::V4, "1.1.1.1").unwrap(),
            AddressAction::Delete
        );
        assert_eq!(
            act("myipv4=,", Family::V4, "1.1.1.1").unwrap(),
            AddressAction::Delete
        );
        assert_eq!(
            act("myipv6=", Family::V6, "::1").unwrap(),
            AddressAction::Delete
        );
    }

    #[test]
    fn preserve_keeps() {
        assert_eq!(
            act("myip=preserve", Family::V4, "1.1.1.1").unwrap(),
            AddressAction::Preserve
        );
        assert_eq!(
            act("myip=preserve", Family::V6, "::1").unwrap(),
            AddressAction::Preserve
        );
    }

    #[test]
    fn comma_list_sets_exactly_those() {
        assert_eq!(
            act("myipv4=1.1.1.2, 1.1.1.1,1.1.1.2", Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("1.1.1.1"), ip("1.1.1.2")])
        );
    }

    #[test]
    fn mixed_list_in_myip_splits_by_family() {
        let q = "myip=1.2.3.4,fd08::1";
        assert_eq!(
            act(q, Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("1.2.3.4")])
        );
        assert_eq!(
            act(q, Family::V6, "::1").unwrap(),
            AddressAction::Set(vec![ip("fd08::1")])
        );
        let q = "myip=1.2.3.0/24,fd08::1";
        assert_eq!(
            act(q, Family::V4, "::1").unwrap(),
            AddressAction::ReplacePrefix {
                network: ip("1.2.3.0"),
                len: 24
            }
        );
        assert_eq!(
            act(q, Family::V6, "::1").unwrap(),
            AddressAction::Set(vec![ip("fd08::1")])
        );
    }

    #[test]
    fn placeholders_of_neither_family_are_ignored() {
        assert_eq!(
            act("myip=<ipaddr>&ip=2.2.2.2", Family::V4, "::1").unwrap(),
            AddressAction::Set(vec![ip("2.2.2.2")])
        );
        assert_eq!(
            act("myipv6=invalid", Family::V6, "2001:db8::1").unwrap(),
            AddressAction::Set(vec![ip("2001:db8::1")])
        );
    }

    #[test]
    fn invalid_address_of_the_family_is_an_error_naming_the_parameter() {
        let e = act("myipv4=1.2.3.999", Family::V4, "::1").unwrap_err();
        assert!(e.contains("myipv4") && e.contains("1.2.3.999"), "{e}");
        assert_eq!(
            act("myipv6=fd08::zz", Family::V6, "::1"),
            Err("myipv6: 'fd08::zz' is not a valid IPv6 address".into())
        );
    }

    #[test]
    fn too_many_addresses_is_an_error() {
        let many: Vec<String> = (0..=MAX_ADDRESSES).map(|i| format!("10.0.0.{i}")).collect();
        let e = act(&format!("myipv4={}", many.join(",")), Family::V4, "::1").unwrap_err();
        assert!(e.contains("too many addresses"), "{e}");
        let ok: Vec<String> = (0..MAX_ADDRESSES).map(|i| format!("10.0.0.{i}")).collect();
        assert!(matches!(
            act(&format!("myipv4={}", ok.join(",")), Family::V4, "::1"),
            Ok(AddressAction::Set(l)) if l.len() == MAX_ADDRESSES
        ));
    }

    #[test]
    fn ipv4_mapped_value_is_an_error() {
        assert_eq!(
            act("myipv6=::ffff:1.2.3.4", Family::V6, "::1"),
            Err("myipv6: '::ffff:1.2.3.4' is an IPv4-mapped IPv6 address; send the IPv4 address as such".into())
        );
    }

    #[test]
    fn preserve_or_empty_mixed_with_addresses_is_an_error() {
        let mixed =
            Err("myipv4: 'preserve' or an empty value cannot be mixed with addresses".into());
        assert_eq!(act("myipv4=preserve,1.2.3.4", Family::V4, "::1"), mixed);
        assert_eq!(act("myipv4=1.2.3.4,", Family::V4, "::1"), mixed);
        assert_eq!(
            act("myipv4=preserve,", Family::V4, "::1"),
            Err("myipv4: 'preserve' cannot be mixed with empty values".into())
        );
    }

    #[test]
    fn prefix_with_other_elements_is_an_error() {
        assert_eq!(
            act("myipv6=fd08::/64,fd09::1", Family::V6, "::1"),
            Err("myipv6: a prefix (addr/len) cannot be combined with other addresses".into())
        );
    }

    #[test]
    fn invalid_prefix_length_is_an_error() {
        assert_eq!(
            act("myipv4=1.2.3.0/33", Family::V4, "::1"),
            Err("myipv4: invalid prefix length in '1.2.3.0/33' (0 to 32)".into())
        );
        assert_eq!(
            act("myipv6=fd08::/129", Family::V6, "::1"),
            Err("myipv6: invalid prefix length in 'fd08::/129' (0 to 128)".into())
        );
        assert_eq!(
            act("myipv6=fd08::/x", Family::V6, "::1"),
            Err("myipv6: invalid prefix length in 'fd08::/x' (0 to 128)".into())
        );
    }

    #[test]
    fn prefix_update_keeps_host_bits() {
        let a = AddressAction::ReplacePrefix {
            network: ip("2001:db8:1::"),
            len: 48,
        };
        assert_eq!(
            apply(&a, &[ip("fd00:aaaa:bbbb:cccc::42")]),
            vec![ip("2001:db8:1:cccc::42")]
        );
        let a = AddressAction::ReplacePrefix {
            network: ip("10.1.0.0"),
            len: 16,
        };
        assert_eq!(
            apply(&a, &[ip("192.168.7.9"), ip("192.168.7.10")]),
            vec![ip("10.1.7.9"), ip("10.1.7.10")]
        );
        assert_eq!(apply(&a, &[]), Vec::<IpAddr>::new());
    }

    #[test]
    fn per_name_parameters_in_query_order() {
        let q = Query::parse(
            "myipv4:a.x.example,b.x.example=1.1.1.1&myipv6:b.x.example=&myipv4:b.x.example=2.2.2.2",
        );
        let p = per_name_parameters(&q).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].names, ["a.x.example", "b.x.example"]);
        assert_eq!(p[1].action, AddressAction::Delete);
        assert_eq!(p[2].action, AddressAction::Set(vec![ip("2.2.2.2")]));
        assert_eq!(
            per_name_parameters(&Query::parse("myipv4:a.x.example=fd08::1")),
            Err(Refusal::BadRequest(
                "'myipv4:a.x.example': no IPv4 address in 'fd08::1'".into()
            ))
        );
        assert_eq!(
            per_name_parameters(&Query::parse("myipv4:bad!name=1.1.1.1")),
            Err(Refusal::BadRequest(
                "'myipv4:bad!name': invalid hostname 'bad!name'".into()
            ))
        );
    }
}
