//! The administrative subcommands (SPEC 2): users, domains, tokens, records, zone
//! rendering, `check`, and the request inspector `explain` — all over the store.

use crate::config::Config;
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::store::{Batch, NewToken, Store, StoreError};
use crate::update::{self, FamilyPolicy};
use std::io::Write;
use std::net::IpAddr;

/// A command's failure: the one-line message and the exit code.
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, code: 1 }
    }
}

pub fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

type Out = Result<(), Failure>;

/// Parsed `--flag value` options and positional arguments of one command.
pub struct Args {
    pub positional: Vec<String>,
    pub options: Vec<(String, String)>,
}

impl Args {
    /// `with_value`: flags that take a value. Anything else starting with `--` is an error.
    pub fn parse(raw: &[String], with_value: &[&str]) -> Result<Args, Failure> {
        let mut positional = Vec::new();
        let mut options = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(flag) = a.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (flag, None),
                };
                if !with_value.contains(&name) {
                    return Err(usage(format!("unknown option --{name}")));
                }
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| usage(format!("--{name} needs a value")))?,
                };
                options.push((name.to_string(), value));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args {
            positional,
            options,
        })
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Exactly `n` positional arguments, else a usage error naming `what`.
    pub fn exactly(&self, n: usize, what: &str) -> Result<&[String], Failure> {
        if self.positional.len() != n {
            return Err(usage(format!("expected {what}")));
        }
        Ok(&self.positional)
    }
}

fn open(config: &Config) -> Result<Store, Failure> {
    let mut s = Store::open(&config.database.path, &config.database.synchronous)?;
    let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    s.ensure_zones(&zones)?;
    Ok(s)
}

fn print_lines(lines: impl IntoIterator<Item = String>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return; // a closed pipe (| head) is not an error
        }
    }
}

const USER_FLAGS: &[&str] = &[];
const DOMAIN_FLAGS: &[&str] = &["owner"];
const TOKEN_FLAGS: &[&str] = &[
    "owner",
    "name",
    "allowed-subnet",
    "expires-in",
    "domain",
    "family",
];

/// One `user add`, `domain add` or `token add`, parsed and checked as far as the
/// command line goes; the store checks the rest when it runs in a `Batch`.
enum Add {
    User(String),
    Domain {
        name: String,
        zone: String,
        owner: String,
    },
    Token {
        owner: String,
        token: NewToken,
    },
}

impl Add {
    /// Run in `batch`; a token's secret is returned (to be shown once, after commit).
    fn run(&self, batch: &Batch) -> Result<Option<String>, Failure> {
        match self {
            Add::User(email) => batch.add_user(email)?,
            Add::Domain { name, zone, owner } => batch.add_domain(name, zone, owner)?,
            Add::Token { owner, token } => return Ok(Some(batch.add_token(owner, token)?.1)),
        }
        Ok(None)
    }
}

/// A single add command: a batch of one.
fn add_one(config: &Config, add: Add) -> Out {
    let mut store = open(config)?;
    let batch = store.batch()?;
    let secret = add.run(&batch)?;
    batch.commit()?;
    print_lines(secret);
    Ok(())
}

fn user_add(a: &Args) -> Result<Add, Failure> {
    let p = a.exactly(2, "user add EMAIL")?;
    Ok(Add::User(p[1].clone()))
}

fn domain_add(config: &Config, a: &Args) -> Result<Add, Failure> {
    let p = a.exactly(2, "domain add NAME --owner EMAIL")?;
    let owner = a
        .one("owner")
        .ok_or_else(|| usage("domain add needs --owner EMAIL"))?;
    let (name, zone) = domain_in_zone(config, &p[1])?;
    Ok(Add::Domain {
        name,
        zone: zone.to_string(),
        owner: owner.to_string(),
    })
}

fn token_add(a: &Args) -> Result<Add, Failure> {
    a.exactly(1, "token add --owner EMAIL [options]")?;
    let owner = a
        .one("owner")
        .ok_or_else(|| usage("token add needs --owner EMAIL"))?;
    let allowed_subnets = a
        .all("allowed-subnet")
        .iter()
        .map(|s| {
            s.parse::<Cidr>()
                .map_err(|e| Failure::from(format!("--allowed-subnet: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expires_in = a
        .one("expires-in")
        .map(|s| {
            s.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                Failure::from(format!("--expires-in: '{s}' is not a number of seconds"))
            })
        })
        .transpose()?;
    let domains = a
        .all("domain")
        .iter()
        .map(|d| {
            let n = name::normalize(d);
            name::check_syntax(&n)
                .map(|_| n)
                .map_err(|e| Failure::from(format!("--domain: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let family = a
        .one("family")
        .map(|f| {
            FamilyPolicy::parse(f)
                .ok_or_else(|| Failure::from(format!("--family: '{f}' is not v4, v6 or both")))
        })
        .transpose()?;
    let name = a.one("name").unwrap_or("").to_string();
    let token = NewToken {
        name,
        allowed_subnets,
        expires_in,
        domains,
        family,
    };
    Ok(Add::Token {
        owner: owner.to_string(),
        token,
    })
}

/// One line of `import`: `user add …`, `domain add …` or `token add …`, words
/// separated by whitespace (no quoting), parsed exactly like the command.
fn import_line(config: &Config, line: &str) -> Result<Add, Failure> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let (cmd, rest) = words.split_first().ok_or_else(|| usage("empty line"))?;
    let flags = match cmd.as_str() {
        "user" => USER_FLAGS,
        "domain" => DOMAIN_FLAGS,
        "token" => TOKEN_FLAGS,
        other => {
            return Err(usage(format!(
                "'{other}': expected user add, domain add or token add"
            )))
        }
    };
    let a = Args::parse(rest, flags)?;
    if a.positional.first().map(String::as_str) != Some("add") {
        return Err(usage(format!("expected {cmd} add")));
    }
    match cmd.as_str() {
        "user" => user_add(&a),
        "domain" => domain_add(config, &a),
        _ => token_add(&a),
    }
}

/// `import`: many `user add` / `domain add` / `token add` lines from stdin in one
/// transaction, all or nothing. Prints each new token's secret, in order, after
/// the commit; a bad line is named by its number and nothing is imported.
pub fn import(config: &Config, args: &[String]) -> Out {
    if !args.is_empty() {
        return Err(usage(
            "import takes no arguments; it reads lines from stdin",
        ));
    }
    let mut store = open(config)?;
    let batch = store.batch()?;
    let mut secrets = Vec::new();
    let at = |n: usize, f: Failure| Failure {
        message: format!("line {n}: {}; nothing was imported", f.message),
        code: f.code,
    };
    for (i, line) in std::io::stdin().lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| at(n, Failure::from(format!("cannot read stdin: {e}"))))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let add = import_line(config, line).map_err(|f| at(n, f))?;
        secrets.extend(add.run(&batch).map_err(|f| at(n, f))?);
    }
    batch.commit()?;
    print_lines(secrets);
    Ok(())
}

pub fn user(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, USER_FLAGS)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, user_add(&a)?)?,
        Some("list") => {
            a.exactly(1, "user list")?;
            print_lines(open(config)?.list_users()?);
        }
        Some("remove") => {
            let p = a.exactly(2, "user remove EMAIL")?;
            open(config)?.remove_user(&p[1])?;
        }
        _ => return Err(usage("expected user add|list|remove")),
    }
    Ok(())
}

/// Normalize a domain name and find the configured zone it lies strictly below.
fn domain_in_zone<'c>(config: &'c Config, raw: &str) -> Result<(String, &'c str), Failure> {
    let name = name::normalize(raw);
    name::check_syntax(&name).map_err(Failure::from)?;
    let zone = config.zone_for(&name).ok_or_else(|| {
        let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
        Failure::from(format!(
            "{name} does not lie below a configured zone ({})",
            zones.join(", ")
        ))
    })?;
    Ok((name, zone.name.as_str()))
}

pub fn domain(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, DOMAIN_FLAGS)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, domain_add(config, &a)?)?,
        Some("list") => {
            a.exactly(1, "domain list [--owner EMAIL]")?;
            print_lines(
                open(config)?
                    .list_domains(a.one("owner"))?
                    .into_iter()
                    .map(|(n, _)| n),
            );
        }
        Some("remove") => {
            let p = a.exactly(2, "domain remove NAME")?;
            open(config)?.remove_domain(&name::normalize(&p[1]))?;
        }
        _ => return Err(usage("expected domain add|list|remove")),
    }
    Ok(())
}

pub fn token(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, TOKEN_FLAGS)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, token_add(&a)?)?,
        Some("list") => {
            a.exactly(1, "token list [--owner EMAIL]")?;
            let time = |t: Option<i64>| t.map_or("never".to_string(), crate::os::clock::rfc3339);
            print_lines(open(config)?.list_tokens(a.one("owner"))?.into_iter().map(|t| {
                format!(
                    "{}\towner={}\tname={}\tcreated={}\tlast_used={}\texpires={}\tsubnets={}\tdomains={}\tfamily={}",
                    t.id,
                    t.owner,
                    t.name,
                    crate::os::clock::rfc3339(t.created),
                    time(t.last_used),
                    time(t.expires),
                    if t.allowed_subnets.is_empty() { "any".into() } else { t.allowed_subnets.replace(' ', ",") },
                    if t.domains.is_empty() { "all".into() } else { t.domains.replace(' ', ",") },
                    t.family
                )
            }));
        }
        Some("revoke") => {
            let p = a.exactly(2, "token revoke ID")?;
            let id: i64 = p[1]
                .parse()
                .map_err(|_| Failure::from(format!("'{}' is not a token id", p[1])))?;
            open(config)?.revoke_token(id)?;
        }
        _ => return Err(usage("expected token add|list|revoke")),
    }
    Ok(())
}

/// The domain that holds `name`, or an error saying nobody does.
fn held(store: &Store, raw: &str) -> Result<(String, update::Domain), Failure> {
    let name = name::normalize(raw);
    name::check_syntax(&name).map_err(Failure::from)?;
    let d = store
        .domain_holding(&name)?
        .ok_or_else(|| Failure::from(format!("{name} is not a registered name")))?;
    Ok((name, d))
}

pub fn records(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(1, "records NAME")?;
    let store = open(config)?;
    let (name, d) = held(&store, &p[0])?;
    print_lines(
        store
            .records(&d.zone, &name)?
            .into_iter()
            .map(|ip| match ip {
                IpAddr::V4(v) => format!("A {v}"),
                IpAddr::V6(v) => format!("AAAA {v}"),
            }),
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
    let include = crate::publish::zone::read_include(zone)?;
    let store = open(config)?;
    let serial = store.pending_serial(&name)?;
    let mut text = Vec::new();
    crate::publish::zone::render_head(zone, config.dns.ttl, serial, include.as_deref(), &mut text);
    store.for_each_record(&name, |n, a| {
        crate::publish::zone::render_record(n, config.dns.ttl, a, &mut text)
    })?;
    let _ = std::io::stdout().write_all(&text);
    Ok(())
}

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

/// `explain URL [--header 'Name: value']... [--peer ADDR]`: the whole pipeline
/// without writing, step by step. Exit 0 when it would succeed, 1 when refused.
pub fn explain(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &["header", "peer"])?;
    let p = a.exactly(1, "explain 'URL' [--header 'Name: value']... [--peer ADDR]")?;
    let peer: IpAddr = a
        .one("peer")
        .unwrap_or("127.0.0.1")
        .parse()
        .map_err(|_| usage("--peer: not an IP address"))?;
    let url = p[0].as_str();
    let tls = url.starts_with("https://");
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in a.all("header") {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("--header '{h}': expected 'Name: value'")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    // Exactly as the live handler: every X-Forwarded-For line counts.
    let forwarded = crate::server::forwarded_lines(
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("X-Forwarded-For"))
            .map(|(_, v)| v.as_str()),
    );
    let client =
        crate::edge::forwarded_client(peer, forwarded.as_deref(), &config.server.trusted_proxies);
    let req = update::Request::from_target("GET", url, header("Authorization"), client, tls);
    let shown = if req.query.iter().next().is_some() {
        format!("{}?{}", req.path, update::split_target(url).1)
    } else {
        req.path.to_string()
    };
    let mut lines = vec![format!(
        "request: GET {shown} from {peer}{}",
        if tls { " over TLS" } else { "" }
    )];
    let store = &mut open(config)?;
    match update::plan(&req, store, config, crate::os::clock::now_unix()) {
        Ok(plan) => {
            lines.extend(plan.trace.iter().map(|t| format!("  {t}")));
            let applied = store.dry_run(&plan.names)?;
            for (name, out) in &applied.outcomes {
                lines.push(format!(
                    "  result {name}: A {}, AAAA {}",
                    out[0].as_str(),
                    out[1].as_str()
                ));
            }
            lines.push(format!(
                "would answer: 200 good{}",
                if applied.changed() {
                    " (and publish)"
                } else {
                    " (nothing changes)"
                }
            ));
            print_lines(lines);
            Ok(())
        }
        Err(r) => {
            lines.push(format!("  refused: {r}"));
            lines.push(format!(
                "would answer: {} {}",
                r.status(),
                r.body().trim_end()
            ));
            print_lines(lines);
            Err(Failure {
                message: String::new(),
                code: 1,
            })
        }
    }
}

/// `status NAME`: the stored records, the serial that contains them, and what the
/// local nameserver (`[dns] verify_server`) answers right now.
pub fn status(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    let p = a.exactly(1, "status NAME")?;
    let store = open(config)?;
    let (name, d) = held(&store, &p[0])?;
    let stored = store.records(&d.zone, &name)?;
    let mut lines = vec![format!("name: {name} (domain {}, zone {})", d.name, d.zone)];
    if stored.is_empty() {
        lines.push("stored: no A/AAAA records".into());
    }
    for ip in &stored {
        lines.push(format!(
            "stored: {} {ip}",
            if ip.is_ipv4() { "A" } else { "AAAA" }
        ));
    }
    let published = store.published_serial(&d.zone)?;
    let dirty = store.dirty_zones()?.contains(&d.zone);
    let containing = if dirty {
        store.pending_serial(&d.zone)?
    } else {
        published.unwrap_or(0)
    };
    lines.push(match (dirty, published) {
        (false, Some(s)) => format!("serial: {s} (published)"),
        _ => format!("serial: {containing} (pending publication)"),
    });
    match config.dns.verify_server {
        None => lines.push("nameserver: not checked (set [dns] verify_server)".into()),
        Some(server) => {
            let t = std::time::Duration::from_secs(2);
            // One silent nameserver costs one timeout, not three.
            let answers =
                crate::net::dnsquery::query(server, &d.zone, crate::net::dnsquery::SOA, t)
                    .and_then(|soa| {
                        let v4 =
                            crate::net::dnsquery::query(server, &name, crate::net::dnsquery::A, t)?;
                        let v6 = crate::net::dnsquery::query(
                            server,
                            &name,
                            crate::net::dnsquery::AAAA,
                            t,
                        )?;
                        Ok((soa, v4, v6))
                    });
            match answers {
                Ok((soa, v4, v6)) => {
                    let mut served: Vec<IpAddr> =
                        v4.addresses.into_iter().chain(v6.addresses).collect();
                    served.sort();
                    let list: Vec<String> = served.iter().map(IpAddr::to_string).collect();
                    let serial = soa.soa_serial.map_or("none".to_string(), |s| s.to_string());
                    lines.push(format!(
                        "nameserver {server}: serial {serial}, answers [{}]",
                        list.join(", ")
                    ));
                    let up_to_date = served == stored
                        && soa
                            .soa_serial
                            .is_some_and(|s| s >= containing || containing == 0);
                    lines.push(if up_to_date {
                        "served".into()
                    } else {
                        "not yet served".into()
                    });
                }
                Err(e) => {
                    lines.push(format!("nameserver {server}: {e}"));
                    lines.push("not yet served".into());
                }
            }
        }
    }
    print_lines(lines);
    Ok(())
}
