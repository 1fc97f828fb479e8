//! `status NAME`: the stored records, the serial that contains them, and whether
//! the nameserver (`[dns] verify_server`) serves them yet.

use super::records::held;
use super::{open, print_lines, Args, Out};
use crate::config::Config;
use std::net::IpAddr;

/// `status NAME`: the stored records, the serial that contains them, and what the
/// local nameserver (`[dns] verify_server`) answers right now.
pub fn status(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(1, "status NAME")?;
    let store = open(config)?;
    let (name, d) = held(&store, &p[0])?;
    let stored = store.records(&d.zone, &name)?;
    let mut lines = vec![format!("name: {name} (domain {}, zone {})", d.name, d.zone)];
    if stored.is_empty() {
        lines.push("stored: no A/AAAA records".into());
    }
    for ip in &stored {
        lines.push(format!(
            "stored: {} {ip}",
            if ip.is_ipv4() { "A" } else { "AAAA" }
        ));
    }
    let published = store.published_serial(&d.zone)?;
    let dirty = store.dirty_zones()?.contains(&d.zone);
    let containing = if dirty {
        store.pending_serial(&d.zone)?
    } else {
        published.unwrap_or(0)
    };
    lines.push(match (dirty, published) {
        (false, Some(s)) => format!("serial: {s} (published)"),
        _ => format!("serial: {containing} (pending publication)"),
    });
    match config.dns.verify_server {
        None => lines.push("nameserver: not checked (set [dns] verify_server)".into()),
        Some(server) => {
            let t = std::time::Duration::from_secs(2);
            // One silent nameserver costs one timeout, not three.
            let answers =
                crate::net::dnsquery::query(server, &d.zone, crate::net::dnsquery::SOA, t)
                    .and_then(|soa| {
                        let v4 =
                            crate::net::dnsquery::query(server, &name, crate::net::dnsquery::A, t)?;
                        let v6 = crate::net::dnsquery::query(
                            server,
                            &name,
                            crate::net::dnsquery::AAAA,
                            t,
                        )?;
                        Ok((soa, v4, v6))
                    });
            match answers {
                Ok((soa, v4, v6)) => {
                    let mut served: Vec<IpAddr> =
                        v4.addresses.into_iter().chain(v6.addresses).collect();
                    served.sort();
                    let list: Vec<String> = served.iter().map(IpAddr::to_string).collect();
                    let serial = soa.soa_serial.map_or("none".to_string(), |s| s.to_string());
                    lines.push(format!(
                        "nameserver {server}: serial {serial}, answers [{}]",
                        list.join(", ")
                    ));
                    let up_to_date = served == stored
                        && soa
                            .soa_serial
                            .is_some_and(|s| s >= containing || containing == 0);
                    lines.push(if up_to_date {
                        "served".into()
                    } else {
                        "not yet served".into()
                    });
                }
                Err(e) => {
                    lines.push(format!("nameserver {server}: {e}"));
                    lines.push("not yet served".into());
                }
            }
        }
    }
    print_lines(lines);
    Ok(())
}
