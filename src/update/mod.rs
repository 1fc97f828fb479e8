//! The seed's update request as pure steps over a parsed request: authenticate →
//! determine hostnames → determine addresses → a `Plan` for the store to apply.
//! No SQL and no sockets here: what the steps need from the database comes through `Directory`.

pub mod address;
pub mod auth;
pub mod hostname;

use crate::net::cidr::Cidr;
use crate::net::name;
use address::{ActionSource, AddressAction, Family};
use auth::AuthMethod;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The form-decoded query string. A repeated key keeps the value and the position
/// of its last occurrence (SPEC 9).
#[derive(Clone, Debug, Default)]
pub struct Query {
    entries: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let mut entries: Vec<(String, String)> = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (form_decode(k), form_decode(v));
            entries.retain(|(old, _)| *old != k);
            entries.push((k, v));
        }
        Query { entries }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%xx` a byte;
/// invalid UTF-8 becomes U+FFFD (and then fails whatever syntax check applies).
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An update request as the pipeline sees it: the handler fills it from the wire,
/// with the client address already resolved through trusted proxies.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    pub query: Query,
    pub authorization: Option<&'a str>,
    pub client: IpAddr,
    pub tls: bool,
}

/// Split a request target into path and query; an absolute-form target
/// (`http://host/path?query`, also `http://host?query`) loses scheme and host.
pub fn split_target(target: &str) -> (&str, &str) {
    let t = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return ("/", &rest[i + 1..]),
            None => "/",
        },
        None => target,
    };
    t.split_once('?').unwrap_or((t, ""))
}

impl<'a> Request<'a> {
    /// The request as the pipeline sees it, from the request line's target; the
    /// live handler and `explain` both build it here.
    pub fn from_target(
        method: &'a str,
        target: &'a str,
        authorization: Option<&'a str>,
        client: IpAddr,
        tls: bool,
    ) -> Request<'a> {
        let (path, query) = split_target(target);
        Request {
            method,
            path,
            query: Query::parse(query),
            authorization,
            client,
            tls,
        }
    }
}

/// Every way a request is refused; `status` and `body` are the one place where
/// refusals become HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A path ending in .ico or .png.
    NotFound,
    MethodNotAllowed,
    /// `counted`: credentials were presented and failed (counts for rate limiting).
    BadAuth {
        counted: bool,
        reason: String,
    },
    BadRequest(String),
    NoHost(String),
    NotYours(String),
    RateLimited(Duration),
    Database(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFound | Refusal::NoHost(_) => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::BadAuth { .. } => 401,
            Refusal::BadRequest(_) => 400,
            Refusal::NotYours(_) => 403,
            Refusal::RateLimited(_) => 429,
            Refusal::Database(_) => 500,
        }
    }

    /// The response body (dyndns2 words where the protocol has them).
    pub fn body(&self) -> String {
        match self {
            Refusal::NotFound => "not found\n".into(),
            Refusal::MethodNotAllowed => "method not allowed: use GET or HEAD\n".into(),
            Refusal::BadAuth { .. } => "badauth".into(),
            Refusal::BadRequest(m) => format!("{m}\n"),
            Refusal::NoHost(_) => "nohost".into(),
            Refusal::NotYours(_) => "!yours".into(),
            Refusal::RateLimited(d) => {
                format!("rate limited: retry in {} seconds\n", retry_after_secs(*d))
            }
            Refusal::Database(_) => "911".into(),
        }
    }
}

/// Whole seconds to put in `Retry-After` (rounded up, at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotFound => f.write_str("path ends in .ico/.png"),
            Refusal::MethodNotAllowed => f.write_str("method not allowed"),
            Refusal::BadAuth { reason, .. } => write!(f, "authentication failed: {reason}"),
            Refusal::BadRequest(m) => f.write_str(m),
            Refusal::NoHost(m) => write!(f, "no hostname: {m}"),
            Refusal::NotYours(m) => write!(f, "not allowed: {m}"),
            Refusal::RateLimited(d) => write!(f, "rate limited for {}s", retry_after_secs(*d)),
            Refusal::Database(m) => write!(f, "database error: {m}"),
        }
    }
}

/// Which families a token may write (`token add --family`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    Both,
    V4,
    V6,
}

impl FamilyPolicy {
    pub fn allows(self, f: Family) -> bool {
        matches!(
            (self, f),
            (FamilyPolicy::Both, _)
                | (FamilyPolicy::V4, Family::V4)
                | (FamilyPolicy::V6, Family::V6)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FamilyPolicy::Both => "both",
            FamilyPolicy::V4 => "v4",
            FamilyPolicy::V6 => "v6",
        }
    }

    pub fn parse(s: &str) -> Option<FamilyPolicy> {
        match s {
            "both" => Some(FamilyPolicy::Both),
            "v4" => Some(FamilyPolicy::V4),
            "v6" => Some(FamilyPolicy::V6),
            _ => None,
        }
    }
}

/// A token as the pipeline needs it (never the secret).
#[derive(Clone, Debug)]
pub struct Token {
    pub id: i64,
    pub owner: i64,
    pub owner_email: String,
    pub expires: Option<i64>,
    pub allowed_subnets: Vec<Cidr>,
    /// Empty: all of the owner's domains.
    pub domains: Vec<String>,
    pub family: FamilyPolicy,
}

/// A registered domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub zone: String,
}

/// What the pipeline reads from the database.
pub trait Directory {
    fn token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Token>, String>;
    fn domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, String>;
}

/// SHA-256 of a token secret: what the database stores and looks up.
pub fn token_hash(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What the zone configuration says about a zone, as far as updates care.
pub trait ZonePolicy {
    fn is_dynamic(&self, zone: &str) -> bool;
    fn guard_fallback(&self) -> &[Cidr];
    /// Addresses that may never be published (`[server] blocked_subnets`).
    fn blocked_subnets(&self) -> &[Cidr] {
        &[]
    }
}

/// One name to update and what happens to each family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePlan {
    pub name: String,
    pub domain_id: i64,
    pub domain: String,
    pub zone: String,
    pub v4: (AddressAction, ActionSource),
    pub v6: (AddressAction, ActionSource),
}

impl NamePlan {
    pub fn action(&self, f: Family) -> &AddressAction {
        match f {
            Family::V4 => &self.v4.0,
            Family::V6 => &self.v6.0,
        }
    }
}

/// The outcome of the pipeline before anything is written.
#[derive(Clone, Debug)]
pub struct Plan {
    pub token_id: i64,
    pub owner: i64,
    pub method: AuthMethod,
    pub names: Vec<NamePlan>,
    /// Step by step, which rule decided what (for `explain`).
    pub trace: Vec<String>,
}

impl Plan {
    /// The registered domains this request touches (each counts for rate limiting).
    pub fn domains(&self) -> Vec<i64> {
        let mut d: Vec<i64> = self.names.iter().map(|n| n.domain_id).collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

/// The request's refusal before authentication: path and method (SPEC 4, 9).
pub fn check_path_and_method(method: &str, path: &str) -> Result<(), Refusal> {
    if method != "GET" && method != "HEAD" {
        return Err(Refusal::MethodNotAllowed);
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".ico") || lower.ends_with(".png") {
        return Err(Refusal::NotFound);
    }
    Ok(())
}

fn bad_auth(reason: impl Into<String>) -> Refusal {
    Refusal::BadAuth {
        counted: true,
        reason: reason.into(),
    }
}

/// Bounds one request's work and the records it can create (the SPEC sets none;
/// a dynDNS client names a handful): more is refused with 400, nothing written.
pub const MAX_NAMES: usize = 100;

/// The whole pipeline up to the write: auth → hostname → addresses.
pub fn plan(
    req: &Request,
    dir: &mut dyn Directory,
    zones: &dyn ZonePolicy,
    now_unix: i64,
) -> Result<Plan, Refusal> {
    let mut trace = Vec::new();
    check_path_and_method(req.method, req.path)?;

    // seed "IP Update Authentication"
    let creds = match auth::credentials(req.authorization, &req.query) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Refusal::BadAuth {
                counted: false,
                reason: "no credentials".into(),
            })
        }
        Err(auth::Unreadable(why)) => return Err(bad_auth(why)),
    };
    trace.push(format!("authentication: {}", creds.method.describe()));
    let token = dir
        .token_by_hash(&token_hash(&creds.secret))
        .map_err(Refusal::Database)?
        .ok_or_else(|| bad_auth("unknown token"))?;
    if token.expires.is_some_and(|e| e <= now_unix) {
        return Err(bad_auth(format!("token {} has expired", token.id)));
    }
    if !token.allowed_subnets.is_empty()
        && !token.allowed_subnets.iter().any(|c| c.contains(req.client))
    {
        return Err(bad_auth(format!(
            "token {} may not be used from {}",
            token.id, req.client
        )));
    }
    let domains = dir.domains_of(token.owner).map_err(Refusal::Database)?;
    let domain_names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    let basic_username = (creds.method == AuthMethod::Basic).then_some(creds.username.as_str());
    if creds.method != AuthMethod::TokenHeader
        && !auth::username_acceptable(&creds.username, &token.owner_email, &domain_names)
    {
        return Err(bad_auth(format!(
            "username '{}' is not the owner of token {}",
            name::printable(&creds.username),
            token.id
        )));
    }
    trace.push(format!(
        "token {} of {} accepted",
        token.id, token.owner_email
    ));

    // seed "Determine Hostname" (and SPEC 4.3's per-name parameters, which add names)
    let per_name = address::per_name_parameters(&req.query)?;
    let (general_names, source) = match hostname::determine(
        &req.query,
        basic_username,
        &domain_names,
        !per_name.is_empty(),
    ) {
        Ok(r) => r,
        Err(hostname::HostnameError::Invalid(m)) => return Err(Refusal::BadRequest(m)),
        Err(hostname::HostnameError::NotFound(m)) => return Err(Refusal::NoHost(m.into())),
    };
    if let Some(s) = source {
        trace.push(format!(
            "hostnames from {}: {}",
            s.describe(),
            general_names.join(", ")
        ));
    }
    let mut names: Vec<String> = general_names.clone();
    for p in &per_name {
        trace.push(format!(
            "{} names {} for {}",
            p.key,
            p.names.join(", "),
            p.family.rtype()
        ));
        for n in &p.names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    if names.is_empty() {
        return Err(Refusal::NoHost("no hostname found".into()));
    }
    if names.len() > MAX_NAMES {
        return Err(Refusal::BadRequest(format!(
            "too many hostnames in one request: {} (at most {MAX_NAMES})",
            names.len()
        )));
    }
    let mut held = Vec::with_capacity(names.len());
    for n in &names {
        let d = domains
            .iter()
            .find(|d| name::is_at_or_below(n, &d.name))
            .ok_or_else(|| {
                Refusal::NoHost(format!("{} is not held by {}", n, token.owner_email))
            })?;
        held.push(d);
    }
    for (n, d) in names.iter().zip(&held) {
        if !zones.is_dynamic(&d.zone) {
            return Err(Refusal::NotYours(format!(
                "{n}: zone {} does not allow dynamic updates",
                d.zone
            )));
        }
        if !token.domains.is_empty() && !token.domains.iter().any(|t| name::is_at_or_below(n, t)) {
            return Err(Refusal::NotYours(format!(
                "{n}: outside the domains of token {}",
                token.id
            )));
        }
    }

    // seed "Determine IP addresses"
    let general = if general_names.is_empty() {
        None
    } else {
        let v4 = address::family_action(&req.query, Family::V4, req.client, zones.guard_fallback())
            .map_err(Refusal::BadRequest)?;
        let v6 = address::family_action(&req.query, Family::V6, req.client, zones.guard_fallback())
            .map_err(Refusal::BadRequest)?;
        Some((v4, v6))
    };
    let mut plans = Vec::with_capacity(names.len());
    for (n, d) in names.iter().zip(&held) {
        let mut v = match (&general, general_names.contains(n)) {
            (Some((v4, v6)), true) => [v4.clone(), v6.clone()],
            _ => [
                (AddressAction::Preserve, ActionSource::NotNamedForThisName),
                (AddressAction::Preserve, ActionSource::NotNamedForThisName),
            ],
        };
        for p in per_name.iter().filter(|p| p.names.contains(n)) {
            v[p.family as usize] = (p.action.clone(), ActionSource::Parameter(p.key.clone()));
        }
        for f in Family::BOTH {
            if !token.family.allows(f) {
                v[f as usize] = (AddressAction::Preserve, ActionSource::TokenFamilyPolicy);
            }
        }
        for (action, _) in &v {
            let network = match action {
                AddressAction::Set(list) => list
                    .iter()
                    .find(|a| zones.blocked_subnets().iter().any(|c| c.contains(**a))),
                // The stored records' host bits are not known here: refuse a prefix
                // whose range overlaps a blocked subnet at all.
                AddressAction::ReplacePrefix { network, len } => Some(network).filter(|a| {
                    zones.blocked_subnets().iter().any(|c| {
                        c.contains(**a)
                            || Cidr::new(**a, *len).is_some_and(|p| p.contains(c.network()))
                    })
                }),
                _ => None,
            };
            if let Some(a) = network {
                return Err(Refusal::BadRequest(format!(
                    "{a} may not be published (server.blocked_subnets)"
                )));
            }
        }
        let [v4, v6] = v;
        trace.push(format!("{n} {}: {} ({})", Family::V4.rtype(), v4.0, v4.1));
        trace.push(format!("{n} {}: {} ({})", Family::V6.rtype(), v6.0, v6.1));
        plans.push(NamePlan {
            name: n.clone(),
            domain_id: d.id,
            domain: d.name.clone(),
            zone: d.zone.clone(),
            v4,
            v6,
        });
    }
    Ok(Plan {
        token_id: token.id,
        owner: token.owner,
        method: creds.method,
        names: plans,
        trace,
    })
}

/// What happened to one family of one name (SPEC 8's `X-Update-Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Set,
    Unchanged,
    Deleted,
    Preserved,
    Guarded,
}

impl Outcome {
    pub fn decide(action: &AddressAction, before: &[IpAddr], after: &[IpAddr]) -> Outcome {
        match action {
            AddressAction::Preserve => Outcome::Preserved,
            AddressAction::Guard(_) => Outcome::Guarded,
            _ if before == after => Outcome::Unchanged,
            _ if after.is_empty() => Outcome::Deleted,
            _ => Outcome::Set,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Set => "set",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Preserved => "preserved",
            Outcome::Guarded => "guarded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::collections::HashMap;

    struct Fake {
        tokens: HashMap<[u8; 32], Token>,
        domains: Vec<(i64, Domain)>,
    }

    impl Directory for Fake {
        fn token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Token>, String> {
            Ok(self.tokens.get(hash).cloned())
        }
        fn domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, String> {
            Ok(self
                .domains
                .iter()
                .filter(|(o, _)| *o == owner)
                .map(|(_, d)| d.clone())
                .collect())
        }
    }

    struct Zones;
    impl ZonePolicy for Zones {
        fn is_dynamic(&self, zone: &str) -> bool {
            zone != "static.example"
        }
        fn guard_fallback(&self) -> &[Cidr] {
            &[]
        }
    }

    fn token(id: i64, owner: i64) -> Token {
        Token {
            id,
            owner,
            owner_email: "alice@example.org".into(),
            expires: None,
            allowed_subnets: vec![],
            domains: vec![],
            family: FamilyPolicy::Both,
        }
    }

    fn fake() -> Fake {
        let mut tokens = HashMap::new();
        tokens.insert(token_hash("tok"), token(1, 1));
        let mut t = token(2, 1);
        t.expires = Some(100);
        tokens.insert(token_hash("expired"), t);
        let mut t = token(3, 1);
        t.allowed_subnets = vec!["192.0.2.0/24".parse().unwrap()];
        tokens.insert(token_hash("subnet"), t);
        let mut t = token(4, 1);
        t.domains = vec!["alice.dedyn.example".into()];
        tokens.insert(token_hash("scoped"), t);
        let mut t = token(5, 1);
        t.family = FamilyPolicy::V6;
        tokens.insert(token_hash("v6only"), t);
        let d = |id, name: &str, zone: &str| Domain {
            id,
            name: name.into(),
            zone: zone.into(),
        };
        Fake {
            tokens,
            domains: vec![
                (1, d(10, "alice.dedyn.example", "dedyn.example")),
                (1, d(11, "home.dedyn.example", "dedyn.example")),
                (1, d(12, "fixed.static.example", "static.example")),
                (2, d(20, "bob.dedyn.example", "dedyn.example")),
            ],
        }
    }

    fn run(url: &str, authz: Option<&str>) -> Result<Plan, Refusal> {
        let (path, q) = url.split_once('?').unwrap_or((url, ""));
        let req = Request {
            method: "GET",
            path,
            query: Query::parse(q),
            authorization: authz,
            client: "192.0.2.1".parse().unwrap(),
            tls: false,
        };
        plan(&req, &mut fake(), &Zones, 1000)
    }

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn target_splits_into_path_and_query() {
        assert_eq!(split_target("/nic/update?a=b"), ("/nic/update", "a=b"));
        assert_eq!(split_target("http://h:8080/x?y"), ("/x", "y"));
        assert_eq!(
            split_target("https://h?myip=1.2.3.4"),
            ("/", "myip=1.2.3.4")
        );
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("/"), ("/", ""));
    }

    #[test]
    fn query_decoding_and_last_key_wins() {
        let q = Query::parse("a=1&b=x+y%2Cz&a=2&c");
        assert_eq!(q.get("a"), Some("2"));
        assert_eq!(q.get("b"), Some("x y,z"));
        assert_eq!(q.get("c"), Some(""));
        assert_eq!(
            q.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn ico_and_png_paths_are_not_found() {
        assert_eq!(
            run("/favicon.ICO", Some("Token tok")).unwrap_err(),
            Refusal::NotFound
        );
        assert_eq!(
            run("/x.png?hostname=a", Some("Token tok")).unwrap_err(),
            Refusal::NotFound
        );
        assert!(run("/png", Some("Token tok")).is_err_and(|e| e != Refusal::NotFound));
    }

    #[test]
    fn other_methods_are_refused_before_authentication() {
        assert_eq!(
            check_path_and_method("POST", "/"),
            Err(Refusal::MethodNotAllowed)
        );
        assert_eq!(check_path_and_method("HEAD", "/"), Ok(()));
    }

    #[test]
    fn no_credentials_is_uncounted_badauth() {
        assert!(matches!(
            run("/?hostname=alice.dedyn.example", None),
            Err(Refusal::BadAuth { counted: false, .. })
        ));
    }

    #[test]
    fn unknown_token_is_counted_badauth() {
        assert!(matches!(
            run("/", Some("Token nope")),
            Err(Refusal::BadAuth { counted: true, .. })
        ));
    }

    #[test]
    fn expired_token_is_badauth() {
        assert!(matches!(
            run("/?hostname=alice.dedyn.example", Some("Token expired")),
            Err(Refusal::BadAuth { .. })
        ));
    }

    #[test]
    fn token_used_outside_allowed_subnet_is_badauth() {
        let req = Request {
            method: "GET",
            path: "/",
            query: Query::parse("hostname=alice.dedyn.example"),
            authorization: Some("Token subnet"),
            client: "198.51.100.1".parse().unwrap(),
            tls: false,
        };
        assert!(matches!(
            plan(&req, &mut fake(), &Zones, 0),
            Err(Refusal::BadAuth { .. })
        ));
        assert!(run("/?hostname=alice.dedyn.example", Some("Token subnet")).is_ok());
    }

    #[test]
    fn basic_username_of_someone_else_is_badauth() {
        assert!(matches!(
            run("/", Some(&basic("bob.dedyn.example:tok"))),
            Err(Refusal::BadAuth { .. })
        ));
        assert!(matches!(
            run("/", Some(&basic("bob@example.org:tok"))),
            Err(Refusal::BadAuth { .. })
        ));
    }

    #[test]
    fn basic_username_gives_the_hostname() {
        let p = run("/", Some(&basic("home.dedyn.example:tok"))).unwrap();
        assert_eq!(p.names[0].name, "home.dedyn.example");
        assert_eq!(
            p.names[0].v4.0,
            AddressAction::Set(vec!["192.0.2.1".parse().unwrap()])
        );
        assert_eq!(p.names[0].v6.0, AddressAction::Delete);
    }

    #[test]
    fn email_username_falls_back_to_hostname_steps() {
        // two domains held: ambiguous → nohost
        assert!(matches!(
            run("/", Some(&basic("alice@example.org:tok"))),
            Err(Refusal::NoHost(_))
        ));
        assert!(run(
            "/?hostname=alice.dedyn.example",
            Some(&basic("alice@example.org:tok"))
        )
        .is_ok());
    }

    #[test]
    fn name_not_held_is_nohost() {
        assert!(matches!(
            run("/?hostname=bob.dedyn.example", Some("Token tok")),
            Err(Refusal::NoHost(_))
        ));
        assert!(matches!(
            run(
                "/?hostname=alice.dedyn.example,bob.dedyn.example",
                Some("Token tok")
            ),
            Err(Refusal::NoHost(_))
        ));
    }

    #[test]
    fn subdomain_and_wildcard_are_held() {
        let p = run(
            "/?hostname=www.alice.dedyn.example,*.alice.dedyn.example",
            Some("Token tok"),
        )
        .unwrap();
        assert_eq!(p.names.len(), 2);
        assert_eq!(p.names[1].domain_id, 10);
    }

    #[test]
    fn non_dynamic_zone_is_not_yours() {
        assert!(matches!(
            run("/?hostname=fixed.static.example", Some("Token tok")),
            Err(Refusal::NotYours(_))
        ));
    }

    #[test]
    fn token_domain_policy_is_not_yours() {
        assert!(matches!(
            run("/?hostname=home.dedyn.example", Some("Token scoped")),
            Err(Refusal::NotYours(_))
        ));
        assert!(run("/?hostname=www.alice.dedyn.example", Some("Token scoped")).is_ok());
    }

    #[test]
    fn held_name_outside_policy_passes_username_check_then_403() {
        assert!(matches!(
            run("/", Some(&basic("fixed.static.example:tok"))),
            Err(Refusal::NotYours(_))
        ));
    }

    #[test]
    fn token_family_policy_preserves_the_other_family() {
        let p = run(
            "/?hostname=alice.dedyn.example&myip=1.2.3.4,fd08::1",
            Some("Token v6only"),
        )
        .unwrap();
        assert_eq!(p.names[0].v4.0, AddressAction::Preserve);
        assert_eq!(
            p.names[0].v6.0,
            AddressAction::Set(vec!["fd08::1".parse().unwrap()])
        );
    }

    #[test]
    fn per_name_parameters_add_names_and_leave_the_other_family() {
        let p = run("/?myipv4:home.dedyn.example=1.1.1.1", Some("Token tok")).unwrap();
        assert_eq!(p.names.len(), 1);
        assert_eq!(p.names[0].name, "home.dedyn.example");
        assert_eq!(
            p.names[0].v4.0,
            AddressAction::Set(vec!["1.1.1.1".parse().unwrap()])
        );
        assert_eq!(p.names[0].v6.0, AddressAction::Preserve);
    }

    #[test]
    fn per_name_parameters_override_the_general_ones() {
        let p = run(
            "/?hostname=alice.dedyn.example&myip=2.2.2.2&myipv4:alice.dedyn.example=3.3.3.3",
            Some("Token tok"),
        )
        .unwrap();
        assert_eq!(
            p.names[0].v4.0,
            AddressAction::Set(vec!["3.3.3.3".parse().unwrap()])
        );
    }

    #[test]
    fn too_many_hostnames_is_bad_request() {
        let names: Vec<String> = (0..=MAX_NAMES)
            .map(|i| format!("h{i}.alice.dedyn.example"))
            .collect();
        let e = run(
            &format!("/?hostname={}", names.join(",")),
            Some("Token tok"),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::BadRequest(m) if m.contains("too many hostnames")),
            "{e:?}"
        );
        let names: Vec<String> = (0..MAX_NAMES)
            .map(|i| format!("h{i}.alice.dedyn.example"))
            .collect();
        assert!(run(
            &format!("/?hostname={}", names.join(",")),
            Some("Token tok")
        )
        .is_ok());
    }

    #[test]
    fn bad_address_is_bad_request() {
        assert!(matches!(
            run(
                "/?hostname=alice.dedyn.example&myipv4=1.2.3",
                Some("Token tok")
            ),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn blocked_subnets_refuse_the_address() {
        struct Blocking(Vec<Cidr>);
        impl ZonePolicy for Blocking {
            fn is_dynamic(&self, _: &str) -> bool {
                true
            }
            fn guard_fallback(&self) -> &[Cidr] {
                &[]
            }
            fn blocked_subnets(&self) -> &[Cidr] {
                &self.0
            }
        }
        let policy = Blocking(vec!["10.0.0.0/8".parse().unwrap()]);
        let req = |q: &str| Request {
            method: "GET",
            path: "/",
            query: Query::parse(q),
            authorization: Some("Token tok"),
            client: "192.0.2.1".parse().unwrap(),
            tls: false,
        };
        let e = plan(
            &req("hostname=alice.dedyn.example&myipv4=10.1.2.3"),
            &mut fake(),
            &policy,
            0,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::BadRequest(m) if m.contains("10.1.2.3")),
            "{e:?}"
        );
        // A prefix whose range reaches into a blocked subnet: the host bits kept
        // from a stored record (2.2.3.4 under 8.0.0.0/6 is 10.2.3.4) would publish it.
        let e = plan(
            &req("hostname=alice.dedyn.example&myipv4=8.0.0.0/6"),
            &mut fake(),
            &policy,
            0,
        )
        .unwrap_err();
        assert!(matches!(&e, Refusal::BadRequest(_)), "{e:?}");
        assert!(plan(
            &req("hostname=alice.dedyn.example&myipv4=12.0.0.0/6"),
            &mut fake(),
            &policy,
            0
        )
        .is_ok());
        assert!(plan(
            &req("hostname=alice.dedyn.example&myipv4=11.1.2.3"),
            &mut fake(),
            &policy,
            0
        )
        .is_ok());
    }

    #[test]
    fn outcome_decision() {
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert_eq!(
            Outcome::decide(&AddressAction::Set(vec![a]), &[], &[a]),
            Outcome::Set
        );
        assert_eq!(
            Outcome::decide(&AddressAction::Set(vec![a]), &[a], &[a]),
            Outcome::Unchanged
        );
        assert_eq!(
            Outcome::decide(&AddressAction::Delete, &[a], &[]),
            Outcome::Deleted
        );
        assert_eq!(
            Outcome::decide(&AddressAction::Delete, &[], &[]),
            Outcome::Unchanged
        );
        assert_eq!(
            Outcome::decide(&AddressAction::Preserve, &[a], &[a]),
            Outcome::Preserved
        );
        assert_eq!(
            Outcome::decide(&AddressAction::Guard(a), &[], &[]),
            Outcome::Guarded
        );
    }
}
