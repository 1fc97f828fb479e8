//! The one composition of a zone file, behind the publisher and `zone render`:
//! the include file, then every stored row that passes the publisher's check.

use super::check::{self, LeftOut, Row, ZoneCheck};
use super::error::PublishError;
use super::feed::ZoneFeed;
use super::zone;
use crate::config::settings::Zone;
use crate::os::clock::now_unix;
use crate::update::name_and_parents;
use log::error;
use std::collections::HashMap;

/// What `render_zone` put into the file.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Records rendered from the store (addresses and `_acme-challenge` values).
    pub records: usize,
    /// Rows left out because they would break the zone (SPEC 17), each logged.
    pub left_out: Vec<check::LeftOut>,
}

/// At most this many left-out rows are logged one by one per rendering; the
/// rest are summed up in one line (a damaged database must not flood the log).
const LEFT_OUT_LOGGED: usize = 10;

/// The zone file with `serial`, from the include file and the stored records:
/// the one composition behind the publisher and `zone render`. Every row passes
/// `check::ZoneCheck` first: one that would make the nameserver refuse the zone
/// is left out, logged as an ERROR naming it, and the rest is rendered (SPEC 17).
pub fn render_zone(
    zone: &Zone,
    ttl: u32,
    serial: u32,
    feed: &dyn ZoneFeed,
    out: &mut Vec<u8>,
) -> Result<Rendered, PublishError> {
    let include = zone::read_include(zone)?;
    let ttls = Ttls::new(feed.domain_ttls(&zone.name)?, ttl);
    let mut check = ZoneCheck::new(&zone.name);
    let mut left_out = Vec::new();
    let records = zone::render(
        zone,
        ttl,
        serial,
        include.as_deref(),
        |emit| {
            feed.for_each_record(&zone.name, &mut |name, stored| {
                let row = match stored {
                    Ok(addr) => Row::Address { name, addr },
                    Err(bad) => Row::BadAddress {
                        name,
                        rtype: bad.family.rtype(),
                        len: bad.len,
                    },
                };
                match (check.row(&row), stored) {
                    (Ok(()), Ok(addr)) => emit(name, ttls.of(name), addr),
                    // `check` refuses every `BadAddress`: no `Ok` without an address.
                    (Ok(()), Err(_)) => {}
                    (Err(why), _) => left_out.push(LeftOut::new(&row, why)),
                }
            })
        },
        out,
    )?;
    // SPEC 10: the live _acme-challenge values, after the addresses.
    let values = feed.for_each_acme_value(&zone.name, now_unix(), &mut |name, value| {
        let row = Row::AcmeTxt { name, value };
        match check.row(&row) {
            Ok(()) => zone::render_acme_txt(name, ttls.of(name), value, out),
            Err(why) => left_out.push(LeftOut::new(&row, why)),
        }
    })?;
    for l in left_out.iter().take(LEFT_OUT_LOGGED) {
        error!(
            "zone {}: left out {}: {}; the rest of the zone is published (fix or delete the row; acme clear NAME removes an acme_txt row)",
            zone.name, l.row, l.reason
        );
    }
    if left_out.len() > LEFT_OUT_LOGGED {
        error!(
            "zone {}: left out {} more rows that would break the zone",
            zone.name,
            left_out.len() - LEFT_OUT_LOGGED
        );
    }
    Ok(Rendered {
        records: (records + values).saturating_sub(left_out.len()),
        left_out,
    })
}

/// SPEC 15: the TTL of a name's records — its registered domain's own
/// (`domain set --ttl`), else `dns.ttl`. Domains never nest, so the first found
/// going up from the name is the one.
struct Ttls {
    by_domain: HashMap<String, u32>,
    default: u32,
}

impl Ttls {
    fn new(domains: Vec<(String, u32)>, default: u32) -> Ttls {
        Ttls {
            by_domain: domains.into_iter().collect(),
            default,
        }
    }

    fn of(&self, name: &str) -> u32 {
        if self.by_domain.is_empty() {
            return self.default;
        }
        name_and_parents(name)
            .find_map(|n| self.by_domain.get(n).copied())
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::feed::fake::FakeFeed;
    use crate::publish::feed::BadAddr;
    use crate::update::address::Family;
    use std::path::PathBuf;

    fn zone() -> Zone {
        Zone {
            name: "dedyn.example".into(),
            file: PathBuf::from("/nonexistent/dedyn.example.zone"),
            dynamic: true,
            nameservers: vec!["ns1.dedyn.example.".into()],
            hostmaster: "hostmaster.dedyn.example.".into(),
            include: None,
        }
    }

    /// The composition over the publisher's port alone: good rows rendered,
    /// the malformed one left out and named, the acme value after the addresses.
    #[test]
    fn a_feed_renders_its_rows_and_leaves_out_a_malformed_one() {
        let feed = FakeFeed {
            rows: vec![
                (
                    "alice.dedyn.example".into(),
                    Ok("192.0.2.7".parse().unwrap()),
                ),
                (
                    "bob.dedyn.example".into(),
                    Err(BadAddr {
                        family: Family::V6,
                        len: 5,
                    }),
                ),
                (
                    "carol.dedyn.example".into(),
                    Ok("2001:db8::9".parse().unwrap()),
                ),
            ],
            acme: vec![(
                "alice.dedyn.example".into(),
                "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg".into(),
            )],
            ..FakeFeed::default()
        };
        let mut out = Vec::new();
        let r = render_zone(&zone(), 60, 4242, &feed, &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(r.records, 3, "{text}");
        assert_eq!(r.left_out.len(), 1);
        assert!(
            r.left_out[0].row.contains("bob.dedyn.example"),
            "{:?}",
            r.left_out
        );
        assert!(text.contains("4242"), "{text}");
        let alice = text.find("192.0.2.7").expect("alice's A");
        assert!(text.contains("2001:db8::9"), "{text}");
        assert!(!text.contains("bob.dedyn.example"), "{text}");
        let txt = text
            .find("Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg")
            .expect("the acme value");
        assert!(alice < txt, "addresses first: {text}");
    }

    /// SPEC 15: a domain's own TTL on its records and the names below it (A,
    /// AAAA, ACME TXT); every other name keeps dns.ttl.
    #[test]
    fn a_domain_ttl_applies_to_it_and_the_names_below() {
        let feed = FakeFeed {
            rows: vec![
                (
                    "alice.dedyn.example".into(),
                    Ok("192.0.2.7".parse().unwrap()),
                ),
                (
                    "www.alice.dedyn.example".into(),
                    Ok("2001:db8::7".parse().unwrap()),
                ),
                (
                    "malice.dedyn.example".into(),
                    Ok("192.0.2.8".parse().unwrap()),
                ),
            ],
            acme: vec![("alice.dedyn.example".into(), "abc".into())],
            ttls: vec![("alice.dedyn.example".into(), 300)],
            ..FakeFeed::default()
        };
        let mut out = Vec::new();
        render_zone(&zone(), 60, 1, &feed, &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        for line in [
            "alice.dedyn.example. 300 IN A 192.0.2.7",
            "www.alice.dedyn.example. 300 IN AAAA 2001:db8::7",
            "malice.dedyn.example. 60 IN A 192.0.2.8",
            "_acme-challenge.alice.dedyn.example. 300 IN TXT \"abc\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
    }
}
