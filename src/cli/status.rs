//! `status NAME`: the stored records, the serial that contains them, the zone's
//! publication state (SPEC 13) and whether the nameserver (`[dns] verify_server`) serves them.

use super::args::held;
use super::args::{open_existing, print_lines, Args, Out};
use crate::config::settings::Config;
use crate::net::dnsquery::{self, Answer};
use crate::os::clock::rfc3339;
use crate::store::Publication;
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
    // SPEC 15: last seen lags by up to a flush of the running service.
    let ns = store.name_state(&name)?;
    let when = |t: Option<i64>| t.map_or("never recorded".to_string(), rfc3339);
    lines.push(format!("last changed: {}", when(ns.last_changed)));
    lines.push(format!("last seen: {}", when(ns.last_seen)));
    if let Some(t) = ns.stale_at {
        lines.push(format!(
            "stale: since {} (no update for longer than [events] stale_after)",
            rfc3339(t)
        ));
    }
    // No row yet: `serve` never ran on this database, so nothing was published.
    let p = store.publication(&d.zone)?.unwrap_or(Publication {
        published_generation: -1,
        ..Publication::default()
    });
    let dirty = p.generation != p.published_generation;
    // The serial of the publication that contains the stored records: the
    // published one if nothing is pending; else the latest attempt's if it
    // contains them (in flight, or failed: a retry carries a higher serial);
    // else the one the next publication carries.
    let latest_attempt = p
        .attempt_serial
        .filter(|_| p.attempt_generation.is_some_and(|g| g >= p.generation));
    let containing = match (dirty, p.published_serial, latest_attempt) {
        (false, Some(s), _) => s,
        (true, _, Some(s)) => s,
        _ => p.pending_serial,
    };
    lines.push(format!("serial: {containing}"));
    let served = config
        .dns
        .verify_server
        .map(|server| served(server, &d.zone, &name, &stored, containing));
    lines.push(state_line(
        &p,
        dirty,
        containing,
        served.as_ref().map(|(ok, _)| *ok),
    ));
    if let (Some(s), Some(t), true) = (p.published_serial, p.published_at, dirty) {
        lines.push(format!("last published: serial {s} at {}", rfc3339(t)));
    }
    if let (Some(e), true) = (
        &p.last_error,
        dirty || served.as_ref().is_some_and(|(ok, _)| !ok),
    ) {
        let at = p
            .last_error_at
            .map_or(String::new(), |t| format!(" ({})", rfc3339(t)));
        lines.push(format!("last error{at}: {e}"));
    }
    match served {
        None => lines.push("nameserver: not checked (set [dns] verify_server)".into()),
        Some((_, l)) => lines.extend(l),
    }
    print_lines(lines);
    Ok(())
}

/// SPEC 13's state: `published` only once the nameserver serves the serial (when
/// `status` can ask it: `served`) or, without `verify_server`, once the running
/// service recorded a successful reload; else `written, not yet loaded` (the file
/// holds the change) or `pending`.
fn state_line(p: &Publication, dirty: bool, containing: u32, served: Option<bool>) -> String {
    let written = p.written_generation.is_some_and(|w| w >= p.generation);
    match (dirty, served) {
        (false, None | Some(true)) => format!(
            "state: published (serial {}{})",
            p.published_serial.unwrap_or(0),
            p.published_at
                .map_or(String::new(), |t| format!(" at {}", rfc3339(t)))
        ),
        (false, Some(false)) => format!(
            "state: written, not yet loaded (serial {}: the nameserver does not serve it)",
            p.published_serial.unwrap_or(0)
        ),
        (true, _) if written => format!(
            "state: written, not yet loaded (serial {}{})",
            p.written_serial.unwrap_or(0),
            attempted(p)
        ),
        (true, _) => format!("state: pending (serial {containing}{})", attempted(p)),
    }
}

fn attempted(p: &Publication) -> String {
    p.last_attempt_at
        .map_or(String::new(), |t| format!("; last attempt {}", rfc3339(t)))
}

/// Ask `server` for the zone's SOA and the name's A and AAAA records: the lines
/// saying what it answers, ending with 'served' or 'not yet served'.
fn served(
    server: SocketAddr,
    zone: &str,
    name: &str,
    stored: &[IpAddr],
    containing: u32,
) -> (bool, Vec<String>) {
    let t = std::time::Duration::from_secs(2);
    // One silent nameserver costs one timeout, not three.
    let answers = dnsquery::query(server, zone, dnsquery::SOA, t).and_then(|soa| {
        let v4 = dnsquery::query(server, name, dnsquery::A, t)?;
        let v6 = dnsquery::query(server, name, dnsquery::AAAA, t)?;
        Ok((soa, v4, v6))
    });
    let (soa, v4, v6): (Answer, Answer, Answer) = match answers {
        Ok(a) => a,
        Err(e) => {
            return (
                false,
                vec![format!("nameserver {server}: {e}"), "not yet served".into()],
            )
        }
    };
    let mut served: Vec<IpAddr> = v4.addresses.into_iter().chain(v6.addresses).collect();
    served.sort();
    let list: Vec<String> = served.iter().map(IpAddr::to_string).collect();
    let serial = soa.soa_serial.map_or("none".to_string(), |s| s.to_string());
    let up_to_date = served == stored
        && soa
            .soa_serial
            .is_some_and(|s| s >= containing || containing == 0);
    let lines = vec![
        format!(
            "nameserver {server}: serial {serial}, answers [{}]",
            list.join(", ")
        ),
        if up_to_date {
            "served".into()
        } else {
            "not yet served".into()
        },
    ];
    (up_to_date, lines)
}
