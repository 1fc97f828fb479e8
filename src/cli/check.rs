//! `check`: after the config loaded, look at the database, the zone files'
//! directories, the include files and the TLS files, naming each problem.

use super::{open, print_lines, Failure, Out};
use crate::config::Config;
use crate::net::name;

/// `check`: the config is already valid when we get here; look at the database,
/// the zone files' directories and the include files.
pub fn check(config: &Config) -> Out {
    let mut problems = Vec::new();
    let store = open(config)?;
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
    for z in &config.zones {
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
    }
    if !config.server.https_listen.is_empty() {
        for p in [&config.server.tls_cert, &config.server.tls_key] {
            if let Err(e) = std::fs::metadata(p) {
                problems.push(format!("server.tls_cert/tls_key: {}: {e}", p.display()));
            }
        }
    }
    let counts = store.counts()?;
    let source = config
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
    if !problems.is_empty() {
        return Err(Failure::from(problems.join("; ")));
    }
    // Not a failure (the built-in defaults have it): BIND refuses such a zone.
    let mut notes = Vec::new();
    for z in &config.zones {
        let include = crate::publish::zone::read_include(z)
            .ok()
            .flatten()
            .unwrap_or_default();
        for ns in &z.nameservers {
            let host = ns.trim_end_matches('.');
            if name::is_at_or_below(host, &z.name) && !include.contains(host) {
                notes.push(format!(
                    "note: zone {}: nameserver {ns} lies in the zone but no include file gives its address (glue); named-checkzone refuses such a zone",
                    z.name
                ));
            }
        }
    }
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
    print_lines(notes);
    Ok(())
}
