//! `records NAME` and `zone render ZONE`: what is stored for one name, and the zone
//! file as it would be published now.

use super::args::{held, open_existing, print_lines, usage, Args, Failure, Out};
use crate::config::settings::Config;
use crate::net::name;
use std::io::Write;
use std::net::IpAddr;

pub fn records(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(1, "records NAME")?;
    let store = open_existing(config)?;
    let (name, d) = held(&store, &p[0])?;
    print_lines(
        store
            .records(&d.zone, &name)?
            .into_iter()
            .map(|ip| match ip {
                IpAddr::V4(v) => format!("A {v}"),
                IpAddr::V6(v) => format!("AAAA {v}"),
            })
            .chain(super::acme::txt_lines(&store, &d.zone, &name)?),
    );
    Ok(())
}

pub fn zone(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(2, "zone render ZONE")?;
    if p[0] != "render" {
        return Err(usage("expected zone render ZONE"));
    }
    let name = name::normalize(&p[1]);
    let zone = config
        .zone(&name)
        .ok_or_else(|| Failure::from(format!("{name} is not a configured zone")))?;
    let store = open_existing(config)?;
    let serial = store.pending_serial(&name)?;
    let mut text = Vec::new();
    crate::publish::render::render_zone(zone, config.dns.ttl, serial, &store, &mut text)
        .map_err(|e| e.to_string())?;
    let _ = std::io::stdout().write_all(&text);
    Ok(())
}
