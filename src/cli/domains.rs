//! `domain add NAME --owner EMAIL | list | remove NAME`: the names users may update,
//! each strictly below a configured zone.

use super::add::{add_one, Add};
use super::args::{open, open_existing, print_lines, usage, Args, Failure, Out};
use super::rules::{check_domain_name, check_not_nameserver, normalize_email};
use crate::config::settings::{Config, Zone};
use crate::net::name;

pub(crate) const DOMAIN_FLAGS: &[&str] = &["owner", "ttl"];
/// `--force`: add past `[limits] domains_per_user`.
pub(crate) const DOMAIN_SWITCHES: &[&str] = &["force"];

pub(crate) fn domain_add(config: &Config, a: &Args) -> Result<Add, Failure> {
    let p = a.exactly(2, "domain add NAME --owner EMAIL [--force]")?;
    let owner = a
        .one("owner")
        .ok_or_else(|| usage("domain add needs --owner EMAIL"))?;
    let (name, zone) = domain_in_zone(config, &p[1])?;
    check_domain_name(&name)?;
    let nameservers: Vec<(&str, &str)> = config
        .zones
        .iter()
        .flat_map(|z| {
            z.nameservers
                .iter()
                .map(|ns| (z.name.as_str(), ns.as_str()))
        })
        .collect();
    check_not_nameserver(&name, &zone.name, &nameservers)?;
    Ok(Add::Domain {
        name,
        zone: zone.name.clone(),
        owner: normalize_email(owner),
        force: a.has("force"),
    })
}

/// Normalize a domain name and find the configured zone it lies strictly below.
fn domain_in_zone<'c>(config: &'c Config, raw: &str) -> Result<(String, &'c Zone), Failure> {
    let name = name::normalize(raw);
    name::check_syntax(&name).map_err(Failure::from)?;
    if config.zones.iter().any(|z| z.name == name) {
        // The apex holds the zone's SOA and NS: a domain is registered below it.
        return Err(Failure::from(format!(
            "{name} is a configured zone itself: register a name below it, e.g. alice.{name}"
        )));
    }
    let zone = config.zone_for(&name).ok_or_else(|| {
        let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
        Failure::from(format!(
            "{name} does not lie below a configured zone ({})",
            zones.join(", ")
        ))
    })?;
    Ok((name, zone))
}

/// SPEC 15: a TTL within `dns.min_ttl` ..= `dns.max_ttl`; outside, exit 1
/// naming the bound.
fn check_ttl(config: &Config, raw: &str) -> Result<u32, Failure> {
    let (lo, hi) = (config.dns.min_ttl, config.dns.max_ttl);
    let ttl: u64 = raw
        .parse()
        .map_err(|_| Failure::from(format!("--ttl {raw}: not a number of seconds")))?;
    if ttl < u64::from(lo) {
        return Err(Failure::from(format!(
            "--ttl {ttl}: below dns.min_ttl = {lo}"
        )));
    }
    if ttl > u64::from(hi) {
        return Err(Failure::from(format!(
            "--ttl {ttl}: above dns.max_ttl = {hi}"
        )));
    }
    Ok(ttl as u32)
}

pub fn domain(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, DOMAIN_FLAGS, DOMAIN_SWITCHES)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, domain_add(config, &a)?)?,
        Some("list") => {
            a.exactly(1, "domain list [--owner EMAIL]")?;
            // A domain with a TTL of its own shows it (SPEC 15).
            print_lines(
                open_existing(config)?
                    .list_domains(a.one("owner").map(normalize_email).as_deref())?
                    .into_iter()
                    .map(|(n, _, ttl)| match ttl {
                        Some(t) => format!("{n} ttl {t}"),
                        None => n,
                    }),
            );
        }
        Some("set") => {
            let p = a.exactly(2, "domain set NAME --ttl SECONDS")?;
            let raw = a
                .one("ttl")
                .ok_or_else(|| usage("domain set needs --ttl SECONDS"))?;
            let ttl = check_ttl(config, raw)?;
            open(config)?.set_domain_ttl(&name::normalize(&p[1]), Some(ttl))?;
        }
        Some("remove") => {
            let p = a.exactly(2, "domain remove NAME")?;
            open(config)?.remove_domain(&name::normalize(&p[1]))?;
        }
        _ => return Err(usage("expected domain add|list|set|remove")),
    }
    Ok(())
}
