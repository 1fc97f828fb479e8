//! `check`: after the config loaded, look at the database, the zone files'
//! directories, the include files and the TLS files, naming each problem.

use super::args::{open, print_lines, Failure, Out};
use crate::config::{Config, Zone};
use crate::net::name;
use crate::store::Store;

/// `check`: the config is already valid when we get here; look at the database,
/// the zone files' directories and the include files.
pub fn check(config: &Config) -> Out {
    let store = open(config)?;
    let mut problems = database_problems(config, &store)?;
    for z in &config.zones {
        problems.extend(zone_problems(z));
    }
    problems.extend(tls_problems(config));
    let counts = store.counts()?;
    let source = config
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
    if !problems.is_empty() {
        return Err(Failure::from(problems.join("; ")));
    }
    let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    print_lines([
        format!("config: {source}: ok"),
        format!(
            "database: {} (schema {}): ok",
            config.database.path.display(),
            store.schema_version()?
        ),
        format!(
            "{} users, {} domains, {} tokens, {} records",
            counts.users, counts.domains, counts.tokens, counts.records
        ),
        format!("zones: {}", zones.join(", ")),
    ]);
    print_lines(config.zones.iter().flat_map(glue_notes));
    Ok(())
}

/// The database's integrity, and domains no configured zone holds any more.
fn database_problems(config: &Config, store: &Store) -> Result<Vec<String>, Failure> {
    let mut problems = Vec::new();
    let qc = store.quick_check()?;
    if qc != "ok" {
        problems.push(format!(
            "database {}: integrity check says {qc}",
            config.database.path.display()
        ));
    }
    let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    for d in store.domains_outside(&zones)? {
        problems.push(format!(
            "domain {d} is not below any configured zone: it cannot be updated or published"
        ));
    }
    Ok(problems)
}

/// A zone's include file must be readable and its file's directory writable.
fn zone_problems(z: &Zone) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = crate::publish::zone::read_include(z) {
        problems.push(e);
    }
    let dir = z
        .file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if std::fs::create_dir_all(dir).is_err()
        || std::fs::metadata(dir)
            .map(|m| m.permissions().readonly())
            .unwrap_or(true)
    {
        problems.push(format!(
            "zone {}: directory {} is not writable",
            z.name,
            dir.display()
        ));
    }
    problems
}

/// With HTTPS listeners, the certificate and key files must exist.
fn tls_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if !config.server.https_listen.is_empty() {
        for p in [&config.server.tls_cert, &config.server.tls_key] {
            if let Err(e) = std::fs::metadata(p) {
                problems.push(format!("server.tls_cert/tls_key: {}: {e}", p.display()));
            }
        }
    }
    problems
}

/// Not a failure (the built-in defaults have it): a nameserver inside its own
/// zone without glue in the include file, which BIND refuses.
fn glue_notes(z: &Zone) -> Vec<String> {
    let include = crate::publish::zone::read_include(z)
        .ok()
        .flatten()
        .unwrap_or_default();
    z.nameservers
        .iter()
        .filter(|ns| {
            let host = ns.trim_end_matches('.');
            name::is_at_or_below(host, &z.name) && !include.contains(host)
        })
        .map(|ns| format!(
            "note: zone {}: nameserver {ns} lies in the zone but no include file gives its address (glue); named-checkzone refuses such a zone",
            z.name
        ))
        .collect()
}
