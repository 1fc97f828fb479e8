//! `check`: after the config loaded, try what the service will do — open the
//! database, write into the zone directories, load the TLS pair, bind the
//! listeners (DNS UPDATE's UDP and TCP too) — naming each problem.

use super::args::{open_existing, print_lines, usage, Failure, Out};
use crate::config::settings::{Config, Zone};
use crate::net::name;
use crate::store::Store;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
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
    problems.extend(trusted_proxy_problems(config));
    problems.extend(events_problem(config));
    let (listener_problems, listeners) = listener_problems(config);
    problems.extend(listener_problems);
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
        listeners,
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

/// SPEC 15: `[events] command` runs without a shell as the service user: it
/// must be a file this user may execute (else every event fails, retried).
fn events_problem(config: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let cmd = config.events.command.as_ref()?;
    let why = match std::fs::metadata(cmd) {
        Err(e) => e.to_string(),
        Ok(m) if !m.is_file() => "not a file".into(),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => "not executable (chmod 755)".into(),
        Ok(_) => return None,
    };
    Some(format!("events.command {}: {why}", cmd.display()))
}

/// SPEC 17: a proxy is trusted by its socket; loopback on a TCP listener is
/// every local user's address (see `Server::loopback_trust_problem`).
fn trusted_proxy_problems(config: &Config) -> Option<String> {
    config.server.loopback_trust_problem()
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

/// Why the service could not write where a configured file lives; `check`
/// prints it after the key and the file's path.
#[derive(Debug)]
enum DirProblem {
    /// Creating a file in `dir` failed.
    NotWritable { dir: PathBuf, error: io::Error },
    /// A file was created in `dir` but could not be removed again.
    CannotRemove { dir: PathBuf, error: io::Error },
    /// An ancestor of the file exists but is no directory.
    NotADirectory { path: PathBuf },
}

impl fmt::Display for DirProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirProblem::NotWritable { dir, error } => write!(
                f,
                "directory {} is not writable for this user (creating a file failed: {error})",
                dir.display()
            ),
            DirProblem::CannotRemove { dir, error } => write!(
                f,
                "directory {}: cannot remove a file: {error}",
                dir.display()
            ),
            DirProblem::NotADirectory { path } => write!(
                f,
                "{} is not a directory, so the zone file's directory can never be created",
                path.display()
            ),
        }
    }
}

/// Create and remove a file in `dir`, as the publisher's atomic write does: the
/// only test that also catches ownership, ACLs and read-only mounts.
fn try_write_in(dir: &Path) -> Result<(), DirProblem> {
    let probe = dir.join(format!(".dedyn-update-check.{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => fs::remove_file(&probe).map_err(|error| DirProblem::CannotRemove {
            dir: dir.to_path_buf(),
            error,
        }),
        Err(error) => Err(DirProblem::NotWritable {
            dir: dir.to_path_buf(),
            error,
        }),
    }
}

/// The nearest ancestor of `path` that exists: the publisher creates the
/// missing directories below it, so that is where it must be able to write.
/// `Err` names an ancestor that exists but is no directory (issue 20: a
/// regular file where a directory should be), below which nothing can ever be
/// created.
fn existing_dir_of(path: &Path) -> Result<Option<PathBuf>, DirProblem> {
    for d in path.ancestors().skip(1) {
        match fs::metadata(d) {
            Ok(m) if m.is_dir() => return Ok(Some(d.to_path_buf())),
            Ok(_) => {
                return Err(DirProblem::NotADirectory {
                    path: d.to_path_buf(),
                })
            }
            Err(_) => continue,
        }
    }
    Ok(None)
}

/// SPEC 17: in a sticky directory (mode `+t`, like /tmp) a user may rename a
/// file over another only if it owns that file or the directory (or has
/// CAP_FOWNER): the create-and-remove try passes there, yet every publication
/// of a zone file someone else owns would fail with EPERM.
fn sticky_problem(dir: &Path, file: &Path) -> Option<String> {
    let d = fs::metadata(dir).ok()?;
    let f = fs::symlink_metadata(file).ok()?;
    let me = crate::os::sys::effective_uid();
    let sticky = d.mode() & 0o1000 != 0;
    if !sticky || d.uid() == me || f.uid() == me || crate::os::sys::has_cap_fowner() {
        return None;
    }
    Some(format!(
        "directory {} is sticky (mode {:o}) and owned by user id {}, and the zone file is owned by user id {}: \
         this user cannot rename a new version over it (chown the file to this user, or use a directory of its own)",
        dir.display(),
        d.mode() & 0o7777,
        d.uid(),
        f.uid()
    ))
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
        Ok(Some(dir)) => {
            if let Err(e) = try_write_in(&dir) {
                problems.push(format!("{key} {}: {e}", z.file.display()));
            } else if let Some(p) = sticky_problem(&dir, &z.file) {
                problems.push(format!("{key} {}: {p}", z.file.display()));
            }
        }
        Ok(None) => problems.push(format!(
            "{key} {}: no directory of it exists",
            z.file.display()
        )),
        Err(e) => problems.push(format!("{key} {}: {e}", z.file.display())),
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

/// SPEC 17: bind every listener as `serve` would, and release it; the problems
/// name the key and the address. While a `serve` runs on this database it holds
/// them: then nothing is tried, and the summary line says so.
fn listener_problems(config: &Config) -> (Vec<String>, String) {
    let db = &config.database.path;
    match crate::os::serve_lock::serve_runs(db) {
        Ok(true) => {
            return (
                Vec::new(),
                "listeners: not tried: a `serve` runs on this database and holds them".into(),
            )
        }
        Ok(false) => {}
        // Not knowing is no problem of the config: try them, the errors say the rest.
        Err(e) => log::warn!(
            "cannot tell whether a `serve` runs on {} ({}: {e}); trying the listeners",
            db.display(),
            crate::os::serve_lock::path_for(db).display()
        ),
    }
    let s = &config.server;
    let all = s
        .http_listen
        .iter()
        .map(|a| ("server.http_listen", *a))
        .chain(s.https_listen.iter().map(|a| ("server.https_listen", *a)))
        .chain(s.metrics_listen.map(|a| ("server.metrics_listen", a)))
        .chain(
            config
                .dns_update
                .listen
                .iter()
                .map(|a| ("dns_update.listen", *a)),
        );
    let mut problems = Vec::new();
    let (mut tried, mut untried) = (Vec::new(), Vec::new());
    for (key, addr) in all {
        // The public listeners as the edge binds them (IPV6_V6ONLY, SPEC 6),
        // the metrics one as `metrics::bind` does (std).
        let bound = if key == "server.metrics_listen" {
            std::net::TcpListener::bind(addr).map(drop)
        } else if key == "dns_update.listen" {
            // UDP and TCP, as `serve` binds them.
            crate::os::sys::bind_udp(addr)
                .and_then(|_udp| crate::os::sys::listen_tcp(addr, 1))
                .map(drop)
        } else {
            crate::os::sys::listen_tcp(addr, 1).map(drop)
        };
        match bound {
            Ok(()) => tried.push(addr.to_string()),
            // The systemd unit gives the service CAP_NET_BIND_SERVICE; a `check`
            // run as the service user (`sudo -u`) lacks it: not a problem of the config.
            Err(e) if addr.port() < 1024 && e.kind() == std::io::ErrorKind::PermissionDenied => {
                untried.push(format!(
                    "{addr} ({key}: a port below 1024 needs CAP_NET_BIND_SERVICE, which the systemd unit grants)"
                ));
            }
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " (another process listens there)"
                } else {
                    ""
                };
                problems.push(format!("{key}: cannot listen on {addr}: {e}{hint}"));
            }
        }
    }
    let mut parts = Vec::new();
    if !tried.is_empty() {
        parts.push(format!("{}: ok (bound and released)", tried.join(", ")));
    }
    if !untried.is_empty() {
        parts.push(format!("not tried as this user: {}", untried.join(", ")));
    }
    (problems, format!("listeners: {}", parts.join("; ")))
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
            let timeout = config.dns.reload_timeout;
            if let Err(e) = crate::publish::run_reload(
                &config.dns.reload_command,
                &z.name,
                &z.file,
                timeout,
                timeout,
                &mut || false,
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
