//! The seed's update request as pure steps over a parsed request: authenticate →
//! determine hostnames → determine addresses → a `Plan` for the store to apply.
//! No SQL and no sockets here: what the steps need from the database comes through
//! `Directory`. Each rule is a named function in the file of its step; `plan` runs
//! them in the seed's order.

pub mod acme;
pub mod address;
pub mod auth;
pub mod bounds;
pub mod directory;
pub mod family;
pub mod hostname;
pub mod ledger;
pub mod outcome;
pub mod plan;
pub mod refusal;
pub mod request;

pub use address::{ActionSource, AddressAction, Family, FamilyPlan};
pub use auth::AuthMethod;
pub use directory::{
    name_and_parents, token_hash, Directory, DirectoryError, Domain, FamilyPolicy, Token,
    ZonePolicy,
};
pub use outcome::Outcome;
pub use plan::{NamePlan, Plan};
pub use refusal::{retry_after_secs, Refusal};
pub use request::{check_path_and_method, split_target, Query, Request};

/// The whole pipeline up to the write, one named rule per line, in the seed's order.
pub fn plan(
    req: &Request,
    dir: &mut dyn Directory,
    zones: &dyn ZonePolicy,
    now_unix: i64,
) -> Result<Plan, Refusal> {
    let mut trace = Vec::new();
    check_path_and_method(req.method, req.path)?;

    // seed "IP Update Authentication"
    let creds = auth::credentials_of(req)?;
    trace.push(format!("authentication: {}", creds.method.describe()));
    let token = auth::find_token(dir, &creds)?;
    auth::check_expiry(&token, now_unix)?;
    auth::check_subnet(&token, req.client)?;
    auth::check_username(&creds, &token, dir)?;
    auth::check_scope(&token)?;
    trace.push(format!(
        "token {} of {} accepted (scope {})",
        token.id,
        token.owner_email,
        token.scope.as_str()
    ));

    // seed "Determine Hostname" (and SPEC 4.3's per-name parameters, which add names)
    let per_name = address::per_name_parameters(&req.query)?;
    let given = !per_name.is_empty();
    let general = hostname::general_names(req, &creds, dir, &token, given, &mut trace)?;
    let added = per_name.iter().map(|p| (p.origin(), &p.names[..]));
    let names = hostname::all_names(&general, added, &mut trace)?;
    let held = hostname::check_held(&names, dir, &token)?;
    hostname::check_updatable(&held, zones, &token, dir)?;

    // seed "Determine IP addresses"
    let general_actions = address::general_actions(req, &general, zones)?;
    let mut plans = Vec::with_capacity(held.len());
    for (name, domain) in held {
        let in_general = general.contains(&name);
        let general_here = general_actions.as_ref().filter(|_| in_general);
        let p = NameRules {
            per_name: &per_name,
            token: &token,
            zones,
        };
        plans.push(p.name_plan(name, domain, general_here, &mut trace)?);
    }
    Ok(Plan {
        token_id: token.id,
        owner: token.owner,
        method: creds.method,
        names: plans,
        trace,
    })
}

/// What the address rules of one name read besides the name itself.
struct NameRules<'a> {
    per_name: &'a [address::PerName],
    token: &'a Token,
    zones: &'a dyn ZonePolicy,
}

impl NameRules<'_> {
    /// seed "Determine IP addresses" for one held name: each family's action
    /// (general, per-name, the token's family policy), then the blocked subnets.
    fn name_plan(
        &self,
        name: String,
        domain: Domain,
        general: Option<&[FamilyPlan; 2]>,
        trace: &mut Vec<String>,
    ) -> Result<NamePlan, Refusal> {
        let [v4, v6] = address::actions_for(&name, general, self.per_name, self.token);
        address::check_blocked(&[&v4.action, &v6.action], self.zones)?;
        for (f, p) in [(Family::V4, &v4), (Family::V6, &v6)] {
            trace.push(format!("{name} {}: {} ({})", f.rtype(), p.action, p.source));
        }
        Ok(NamePlan {
            name,
            domain_id: domain.id,
            domain: domain.name,
            zone: domain.zone,
            v4,
            v6,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::hostname::MAX_NAMES;
    use super::request::form_decode;
    use super::*;
    use crate::net::cidr::Cidr;
    use crate::net::name::is_at_or_below;
    use base64::Engine;
    use std::collections::HashMap;
    use std::net::IpAddr;

    struct Fake {
        tokens: HashMap<[u8; 32], Token>,
        domains: Vec<Domain>,
        /// The `--domain` names of the scoped tokens, by token id.
        scopes: HashMap<i64, Vec<String>>,
    }

    impl Directory for Fake {
        fn token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Token>, DirectoryError> {
            Ok(self.tokens.get(hash).cloned())
        }
        fn tsig_key(
            &mut self,
            _name: &str,
        ) -> Result<Option<(Token, directory::TsigKey)>, DirectoryError> {
            Ok(None)
        }
        fn domain_holding(&mut self, name: &str) -> Result<Option<Domain>, DirectoryError> {
            Ok(self
                .domains
                .iter()
                .find(|d| is_at_or_below(name, &d.name))
                .cloned())
        }
        fn two_domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, DirectoryError> {
            Ok(self
                .domains
                .iter()
                .filter(|d| d.owner == owner)
                .take(2)
                .cloned()
                .collect())
        }
        fn token_covers(&mut self, token: i64, name: &str) -> Result<bool, DirectoryError> {
            Ok(self
                .scopes
                .get(&token)
                .is_some_and(|s| s.iter().any(|t| is_at_or_below(name, t))))
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
            scoped: false,
            family: FamilyPolicy::Both,
            scope: directory::Scope::Both,
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
        t.scoped = true;
        tokens.insert(token_hash("scoped"), t);
        let mut t = token(5, 1);
        t.family = FamilyPolicy::V6;
        tokens.insert(token_hash("v6only"), t);
        let d = |owner, id, name: &str, zone: &str| Domain {
            id,
            name: name.into(),
            zone: zone.into(),
            owner,
        };
        Fake {
            tokens,
            domains: vec![
                d(1, 10, "alice.dedyn.example", "dedyn.example"),
                d(1, 11, "home.dedyn.example", "dedyn.example"),
                d(1, 12, "fixed.static.example", "static.example"),
                d(2, 20, "bob.dedyn.example", "dedyn.example"),
            ],
            scopes: HashMap::from([(4, vec!["alice.dedyn.example".to_string()])]),
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
        assert_eq!(
            run("/?hostname=alice.dedyn.example", Some("Token subnet")).map(|p| p.token_id),
            Ok(3)
        );
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
            p.names[0].v4.action,
            AddressAction::Set(vec!["192.0.2.1".parse().unwrap()])
        );
        assert_eq!(p.names[0].v6.action, AddressAction::Delete);
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
        assert_eq!(
            run("/?hostname=www.alice.dedyn.example", Some("Token scoped"))
                .map(|p| p.names[0].name.clone()),
            Ok("www.alice.dedyn.example".to_string())
        );
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
        assert_eq!(p.names[0].v4.action, AddressAction::Preserve);
        assert_eq!(
            p.names[0].v6.action,
            AddressAction::Set(vec!["fd08::1".parse().unwrap()])
        );
    }

    #[test]
    fn per_name_parameters_add_names_and_leave_the_other_family() {
        let p = run("/?myipv4:home.dedyn.example=1.1.1.1", Some("Token tok")).unwrap();
        assert_eq!(p.names.len(), 1);
        assert_eq!(p.names[0].name, "home.dedyn.example");
        assert_eq!(
            p.names[0].v4.action,
            AddressAction::Set(vec!["1.1.1.1".parse().unwrap()])
        );
        assert_eq!(p.names[0].v6.action, AddressAction::Preserve);
    }

    #[test]
    fn per_name_parameters_override_the_general_ones() {
        let p = run(
            "/?hostname=alice.dedyn.example&myip=2.2.2.2&myipv4:alice.dedyn.example=3.3.3.3",
            Some("Token tok"),
        )
        .unwrap();
        assert_eq!(
            p.names[0].v4.action,
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
