//! `explain 'URL' [--header ...] [--peer ADDR]`: the update pipeline run without
//! writing, printing which rule decided what, the records before and after per
//! name, and the answer it would give.

use super::args::{open_existing, print_lines, usage, Args, Failure, Out};
use crate::config::settings::Config;
use crate::edge::{forwarded_client, Peer};
use crate::update::ledger::{FamilyRecords, Ledger, LedgerError};
use crate::update::{self, Family, Refusal};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// `explain URL [--header 'Name: value']... [--peer ADDR]`: the whole pipeline
/// without writing, step by step. Exit 0 when it would succeed, 1 when refused.
pub fn explain(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &["header", "peer"])?;
    let p = a.exactly(1, "explain 'URL' [--header 'Name: value']... [--peer ADDR]")?;
    // As the edge sees it: an address, or a `unix:` listener (SPEC 17).
    let peer = match a.one("peer").unwrap_or("127.0.0.1") {
        p if p.starts_with("unix:") => Peer::Unix(PathBuf::from(&p["unix:".len()..])),
        p => Peer::Tcp(SocketAddr::new(
            p.parse::<IpAddr>()
                .map_err(|_| usage("--peer: not an IP address or unix:/PATH"))?,
            0,
        )),
    };
    let url = p[0].as_str();
    let tls = url.starts_with("https://");
    let headers = parse_headers(&a.all("header"))?;
    let header = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    // Exactly as the live handler: every X-Forwarded-For line counts.
    let forwarded = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("X-Forwarded-For"))
        .map(|(_, v)| v.as_str());
    let client =
        forwarded_client(&peer, forwarded, &config.server.trusted_proxies).map_err(|e| {
            Failure {
                message: format!("400 {e}"),
                code: 1,
            }
        })?;
    let req = update::Request::from_target("GET", url, header("Authorization"), client, tls);
    let shown = if req.query.iter().next().is_some() {
        format!("{}?{}", req.path, update::split_target(url).1)
    } else {
        req.path.to_string()
    };
    let mut lines = vec![format!(
        "request: GET {shown} from {}{}",
        match &peer {
            Peer::Tcp(addr) => addr.ip().to_string(),
            Peer::Unix(_) => peer.to_string(),
        },
        if tls { " over TLS" } else { "" }
    )];
    let accepted = run_pipeline(config, &req, &mut lines)?;
    print_lines(lines);
    if accepted {
        Ok(())
    } else {
        // The refusal is printed; the exit code says it.
        Err(Failure {
            message: String::new(),
            code: 1,
        })
    }
}

/// `--header 'Name: value'` options as (name, value) pairs, in order.
fn parse_headers(raw: &[&str]) -> Result<Vec<(String, String)>, Failure> {
    raw.iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| usage(format!("--header '{h}': expected 'Name: value'")))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Plan the request and, when it is accepted, what writing it would do; every
/// step and the answer go to `lines`. Returns whether it would be accepted.
fn run_pipeline(
    config: &Config,
    req: &update::Request,
    lines: &mut Vec<String>,
) -> Result<bool, Failure> {
    let store = &mut open_existing(config)?;
    let refused = |r: Refusal, lines: &mut Vec<String>| {
        lines.push(format!("  refused: {r}"));
        lines.push(format!(
            "would answer: {} {}",
            r.status(),
            r.body().trim_end()
        ));
        Ok(false)
    };
    let plan = match update::plan(req, store, config, crate::os::clock::now_unix()) {
        Ok(plan) => plan,
        Err(r) => return refused(r, lines),
    };
    lines.extend(plan.trace.iter().map(|t| format!("  {t}")));
    let decide = &crate::update::outcome::decide;
    let applied = match Ledger::dry_run(store, &plan.names, decide, &config.limits) {
        Ok(a) => a,
        // A bound is a refusal, as the live server gives it (SPEC 13).
        Err(e @ LedgerError::OverLimit(_)) => {
            let names: Vec<&str> = plan.names.iter().map(|n| n.name.as_str()).collect();
            return refused(e.refusal("update", "update", &names.join(",")), lines);
        }
        Err(e) => return Err(e.to_string().into()),
    };
    for (((name, out), sets), n) in applied
        .outcomes
        .iter()
        .zip(&applied.records)
        .zip(&plan.names)
    {
        lines.push(format!(
            "  result {name}: A {}, AAAA {}",
            out[0].as_str(),
            out[1].as_str()
        ));
        for f in Family::BOTH {
            lines.push(format!(
                "    {name} {}: {}",
                f.rtype(),
                written(&sets[f as usize])
            ));
        }
        // SPEC 15: the TTL its records would be published with.
        lines.push(match store.domain_ttl(n.domain_id)? {
            Some(t) => format!(
                "    {name} TTL: {t} (domain {}, domain set --ttl)",
                n.domain
            ),
            None => format!("    {name} TTL: {} (dns.ttl)", config.dns.ttl),
        });
    }
    lines.push(format!(
        "would answer: 200 good{}",
        if applied.changed() {
            " (and publish)"
        } else {
            " (nothing changes)"
        }
    ));
    Ok(true)
}

/// SPEC 8 "what would be written", for one family of one name: the records it
/// keeps, or the records before and after (naming what a delete removes).
fn written(r: &FamilyRecords) -> String {
    let list = |a: &[IpAddr]| {
        if a.is_empty() {
            "none".to_string()
        } else {
            a.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if r.before == r.after {
        format!("keeps {}", list(&r.after))
    } else if r.after.is_empty() {
        format!(
            "before {}; after none (removes {})",
            list(&r.before),
            list(&r.before)
        )
    } else {
        format!("before {}; after {}", list(&r.before), list(&r.after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn written_names_the_records_kept_replaced_and_removed() {
        let r = |b: &[&str], a: &[&str]| FamilyRecords {
            before: ips(b),
            after: ips(a),
        };
        assert_eq!(
            written(&r(&["10.0.5.6"], &["10.1.5.6"])),
            "before 10.0.5.6; after 10.1.5.6"
        );
        assert_eq!(written(&r(&[], &["1.2.3.4"])), "before none; after 1.2.3.4");
        assert_eq!(
            written(&r(&["1.2.3.4", "1.2.3.5"], &[])),
            "before 1.2.3.4, 1.2.3.5; after none (removes 1.2.3.4, 1.2.3.5)"
        );
        assert_eq!(written(&r(&["fd08::1"], &["fd08::1"])), "keeps fd08::1");
        assert_eq!(written(&r(&[], &[])), "keeps none");
    }
}
