//! `status NAME`: the stored records, the serial that contains them, and whether
//! the nameserver (`[dns] verify_server`) serves them yet.

use super::args::{open_existing, print_lines, Args, Failure, Out};
use super::records::held;
use crate::config::Config;
use crate::net::dnsquery::{self, Answer};
use crate::store::Store;
use std::net::{IpAddr, SocketAddr};

/// `status NAME`: the stored records, the serial that contains them, and what the
/// local nameserver (`[dns] verify_server`) answers right now.
pub fn status(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(1, "status NAME")?;
    let store = open_existing(config)?;
    let (name, d) = held(&store, &p[0])?;
    let stored = store.records(&d.zone, &name)?;
    let mut lines = vec![format!("name: {name} (domain {}, zone {})", d.name, d.zone)];
    if stored.is_empty() {
        lines.push("stored: no A/AAAA records".into());
    }
    lines.extend(
        super::acme::txt_lines(&store, &d.zone, &name)?
            .into_iter()
            .map(|l| format!("stored: {l}")),
    );
    for ip in &stored {
        lines.push(format!(
            "stored: {} {ip}",
            if ip.is_ipv4() { "A" } else { "AAAA" }
        ));
    }
    let (containing, serial_line) = containing_serial(&store, &d.zone)?;
    lines.push(serial_line);
    match config.dns.verify_server {
        None => lines.push("nameserver: not checked (set [dns] verify_server)".into()),
        Some(server) => lines.extend(served(server, &d.zone, &name, &stored, containing)),
    }
    print_lines(lines);
    Ok(())
}

/// The serial of the publication that contains the stored records (0 when the
/// zone was never published and nothing is pending), and the line saying so.
fn containing_serial(store: &Store, zone: &str) -> Result<(u32, String), Failure> {
    let published = store.published_serial(zone)?;
    let dirty = store.dirty_zones()?.iter().any(|z| z == zone);
    let containing = if dirty {
        store.pending_serial(zone)?
    } else {
        published.unwrap_or(0)
    };
    let line = match (dirty, published) {
        (false, Some(s)) => format!("serial: {s} (published)"),
        _ => format!("serial: {containing} (pending publication)"),
    };
    Ok((containing, line))
}

/// Ask `server` for the zone's SOA and the name's A and AAAA records: the lines
/// saying what it answers, ending with 'served' or 'not yet served'.
fn served(
    server: SocketAddr,
    zone: &str,
    name: &str,
    stored: &[IpAddr],
    containing: u32,
) -> Vec<String> {
    let t = std::time::Duration::from_secs(2);
    // One silent nameserver costs one timeout, not three.
    let answers = dnsquery::query(server, zone, dnsquery::SOA, t).and_then(|soa| {
        let v4 = dnsquery::query(server, name, dnsquery::A, t)?;
        let v6 = dnsquery::query(server, name, dnsquery::AAAA, t)?;
        Ok((soa, v4, v6))
    });
    let (soa, v4, v6): (Answer, Answer, Answer) = match answers {
        Ok(a) => a,
        Err(e) => return vec![format!("nameserver {server}: {e}"), "not yet served".into()],
    };
    let mut served: Vec<IpAddr> = v4.addresses.into_iter().chain(v6.addresses).collect();
    served.sort();
    let list: Vec<String> = served.iter().map(IpAddr::to_string).collect();
    let serial = soa.soa_serial.map_or("none".to_string(), |s| s.to_string());
    let up_to_date = served == stored
        && soa
            .soa_serial
            .is_some_and(|s| s >= containing || containing == 0);
    vec![
        format!(
            "nameserver {server}: serial {serial}, answers [{}]",
            list.join(", ")
        ),
        if up_to_date {
            "served".into()
        } else {
            "not yet served".into()
        },
    ]
}
