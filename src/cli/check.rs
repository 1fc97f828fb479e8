//! `check`: after the config loaded, try what the service will do — open the
//! database, write into the zone directories, load the TLS pair — naming each problem.

use super::args::{open_existing, print_lines, usage, Failure, Out};
use crate::config::{Config, Zone};
use crate::net::name;
use crate::store::Store;
use std::fs;
use std::path::{Path, PathBuf};

/// `check [--reload]`: the config is already valid when we get here. Every
/// problem is printed on its own line (stderr), naming the key and the file;
/// exit 1 if there is any.
pub fn check(config: &Config, args: &[String]) -> Out {
    let reload = match args {
        [] => false,
        [r] if r == "--reload" => true,
        _ => return Err(usage("usage: dedyn-update check [--reload]")),
    };
    let store = open_existing(config)?;
    let mut problems = database_problems(config, &store)?;
    for (i, z) in config.zones.iter().enumerate() {
        problems.extend(zone_problems(i, z));
    }
    problems.extend(tls_problems(config));
    if reload && problems.is_empty() {
        problems.extend(reload_problems(config, &store)?);
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("dedyn-update: check: {p}");
        }
        return Err(Failure::from(format!(
            "check found {} problem(s) (as user id {})",
            problems.len(),
            crate::os::sys::effective_uid()
        )));
    }
    let counts = store.counts()?;
    let source = config
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
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
    if reload {
        let served = match config.dns.verify_server {
            Some(server) => format!("; {server} serves the published serial"),
            None => String::new(),
        };
        print_lines(
            config
                .zones
                .iter()
                .map(|z| format!("zone {}: reload command ran{served}", z.name)),
        );
    }
    print_lines(config.zones.iter().flat_map(glue_notes));
    Ok(())
}

/// The database's integrity, its directory writable (SQLite needs to create
/// its `-wal`/`-shm` files there), and domains no configured zone holds any more.
fn database_problems(config: &Config, store: &Store) -> Result<Vec<String>, Failure> {
    let mut problems = Vec::new();
    let path = &config.database.path;
    let qc = store.quick_check()?;
    if qc != "ok" {
        problems.push(format!(
            "database.path {}: integrity check says {qc}",
            path.display()
        ));
    }
    if let Some(dir) = path.parent() {
        if let Err(e) = try_write_in(dir) {
            problems.push(format!("database.path {}: {e}", path.display()));
        }
    }
    let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    for d in store.domains_outside(&zones)? {
        problems.push(format!(
            "domain {d} is not below any configured zone: it cannot be updated or published"
        ));
    }
    Ok(problems)
}

/// Create and remove a file in `dir`, as the publisher's atomic write does: the
/// only test that also catches ownership, ACLs and read-only mounts.
fn try_write_in(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".dedyn-update-check.{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => fs::remove_file(&probe)
            .map_err(|e| format!("directory {}: cannot remove a file: {e}", dir.display())),
        Err(e) => Err(format!(
            "directory {} is not writable for this user (creating a file failed: {e})",
            dir.display()
        )),
    }
}

/// The nearest directory of `path` that exists: the publisher creates the
/// missing ones below it, so that is where it must be able to write.
fn existing_dir_of(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|d| d.is_dir())
        .map(Path::to_path_buf)
}

/// A zone's include file must be readable, its file a file (not a directory),
/// and its directory writable by this user.
fn zone_problems(i: usize, z: &Zone) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = crate::publish::zone::read_include(z) {
        problems.push(format!("zone[{i}].include: {e}"));
    }
    let key = format!("zone[{i}].file");
    if z.file.is_dir() {
        problems.push(format!(
            "{key} {}: is a directory, not a file path",
            z.file.display()
        ));
        return problems;
    }
    match existing_dir_of(&z.file) {
        Some(dir) => {
            if let Err(e) = try_write_in(&dir) {
                problems.push(format!("{key} {}: {e}", z.file.display()));
            }
        }
        None => problems.push(format!(
            "{key} {}: no directory of it exists",
            z.file.display()
        )),
    }
    if let Ok(m) = fs::metadata(&z.file) {
        if !m.is_file() {
            problems.push(format!(
                "{key} {}: exists but is not a regular file",
                z.file.display()
            ));
        }
    }
    problems
}

/// With HTTPS listeners: the certificate chain and key parse (PEM) and belong
/// together — the same loading `serve` does, as the user running `check`.
fn tls_problems(config: &Config) -> Vec<String> {
    let s = &config.server;
    if s.https_listen.is_empty() {
        return Vec::new();
    }
    match crate::edge::load_server_config(&s.tls_cert, &s.tls_key) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("server.tls_cert/server.tls_key: {e}")],
    }
}

/// `--reload`: run each zone's reload command once, and with `verify_server`
/// wait until the nameserver serves the zone's last published serial.
fn reload_problems(config: &Config, store: &Store) -> Result<Vec<String>, Failure> {
    let mut problems = Vec::new();
    if config.dns.reload_command.is_empty() && config.dns.verify_server.is_none() {
        problems.push(
            "dns.reload_command is empty and dns.verify_server is not set: --reload has nothing to try"
                .to_string(),
        );
        return Ok(problems);
    }
    let mut reload_failed = false;
    for (i, z) in config.zones.iter().enumerate() {
        if !z.file.is_file() {
            problems.push(format!(
                "zone[{i}].file {}: not written yet (start `serve` once)",
                z.file.display()
            ));
            continue;
        }
        if !config.dns.reload_command.is_empty() {
            if let Err(e) = crate::publish::run_reload(
                &config.dns.reload_command,
                &z.name,
                &z.file,
                config.dns.reload_timeout,
            ) {
                problems.push(format!("dns.reload_command for zone {}: {e}", z.name));
                reload_failed = true;
                continue;
            }
        }
        if let Some(server) = config.dns.verify_server {
            // The serial of the file on disk: the newest written, else the last published.
            let serial = store
                .publication(&z.name)?
                .and_then(|p| p.written_serial.or(p.published_serial))
                .unwrap_or(0);
            let timeout = config.dns.reload_timeout;
            let never_superseded = &mut || false;
            if let Err(e) = crate::publish::wait_until_served(
                server,
                &z.name,
                serial,
                timeout,
                timeout,
                never_superseded,
            ) {
                problems.push(format!(
                    "dns.verify_server: zone {} ({}): {e}",
                    z.name,
                    z.file.display()
                ));
            }
        }
    }
    // Run by hand, the command may lack the group the unit gives the service
    // for the nameserver's control socket: say which, and how to have it.
    if reload_failed {
        let missing = super::unit_groups::missing_here();
        problems.extend(super::unit_groups::hint(&missing, config.source.as_deref()));
    }
    Ok(problems)
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
