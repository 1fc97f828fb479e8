//! `history NAME [--limit N] [--json]`: what happened to a name's addresses
//! (SPEC 15), newest first, from the history the updates write.

use super::args::{held, open_existing, print_lines, usage, Args, Out};
use crate::config::settings::Config;
use crate::events::{json, Change};
use crate::os::clock::rfc3339;

/// Entries shown without `--limit`: `[history] per_name`'s default.
const DEFAULT_LIMIT: u32 = 50;

pub fn history(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, &["limit"], &["json"])?;
    let p = a.exactly(1, "history NAME [--limit N] [--json]")?;
    let limit = match a.one("limit") {
        None => DEFAULT_LIMIT,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| usage(format!("--limit {n}: not a number from 1")))?,
    };
    let store = open_existing(config)?;
    // A removed name keeps its history: look it up by name, held or not.
    let name = match held(&store, &p[0]) {
        Ok((name, _)) => name,
        Err(_) => crate::net::name::normalize(&p[0]),
    };
    let entries = store.history(&name, limit)?;
    if a.has("json") {
        print_lines(entries.iter().map(json::history_entry));
    } else {
        print_lines(entries.iter().map(line));
    }
    Ok(())
}

/// `TIME TYPE OLD -> NEW via WAY [client ADDR] [token ID] serial N`.
fn line(c: &Change) -> String {
    let list = |a: &[String]| {
        if a.is_empty() {
            "none".to_string()
        } else {
            a.join(",")
        }
    };
    let mut out = format!(
        "{} {} {} -> {} via {}",
        rfc3339(c.at),
        c.rtype,
        list(&c.old),
        list(&c.new),
        c.via
    );
    if let Some(client) = &c.client {
        out.push_str(&format!(" client {client}"));
    }
    if let Some(t) = c.token {
        out.push_str(&format!(" token {t}"));
    }
    out.push_str(&format!(" serial {}", c.serial));
    out
}
