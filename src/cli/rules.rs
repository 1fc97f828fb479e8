//! The rules of the admin commands that are not SQL: what an email, a domain and a
//! token's domains must be. The store offers only the queries these rules need.

use super::args::Failure;
use crate::net::name;
use crate::store::Overlap;

/// The stored form of an email: trimmed and lower-case.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// `user add`: `LOCAL@DOMAIN` with both parts non-empty, the domain a host name,
/// no whitespace or control characters, at most 254 characters (RFC 5321's path
/// limit). Returns the normalized form. (SPEC 17: `@` and `a@` were accepted.)
pub fn check_email(raw: &str) -> Result<String, Failure> {
    let email = normalize_email(raw);
    let refuse = |why: &str| {
        Failure::from(format!(
            "{} is not an email address: {why}",
            name::quoted(&email)
        ))
    };
    if email.len() > 254 {
        return Err(refuse("longer than 254 characters"));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || name::needs_escape(c))
    {
        return Err(refuse("it contains white space or a control character"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(refuse("no '@'"));
    };
    if local.is_empty() {
        return Err(refuse("nothing before the '@'"));
    }
    if domain.is_empty() || name::check_syntax(domain).is_err() {
        return Err(refuse("what follows the '@' is not a domain name"));
    }
    Ok(email)
}

/// `token add --name`: a label for people, shown in `token list`'s tab-separated
/// lines, so no control or format character may forge a line or a column (SPEC 17).
pub fn check_token_name(raw: &str) -> Result<String, Failure> {
    if raw.chars().any(name::needs_escape) {
        return Err(Failure::from(format!(
            "--name {} contains a control character (tabs, line breaks and format characters are refused)",
            name::quoted(raw)
        )));
    }
    if raw.chars().count() > 100 {
        return Err(Failure::from(
            "--name is longer than 100 characters".to_string(),
        ));
    }
    Ok(raw.to_string())
}

/// `domain add`: a domain is a host name (normalized already), never a wildcard:
/// a wildcard is something a domain's records may hold, not a name one registers.
pub fn check_domain_name(name: &str) -> Result<(), Failure> {
    name::check_syntax(name).map_err(Failure::from)?;
    if name.starts_with('*') {
        return Err(Failure::from(format!(
            "{name}: a domain cannot be a wildcard name"
        )));
    }
    Ok(())
}

/// `domain add` (SPEC 17): the nameservers of the configured zones (each
/// zone's `nameservers`, as (zone, nameserver) pairs) that lie inside `zone` —
/// the zone the domain `name` would be registered in — are held by it. A domain
/// at or above one would let its owner replace the nameserver's address, and with
/// it the answers for the whole zone the nameserver serves.
pub fn check_not_nameserver(
    name: &str,
    zone: &str,
    nameservers: &[(&str, &str)],
) -> Result<(), Failure> {
    for (served, ns) in nameservers {
        let ns = name::normalize(ns);
        if name::is_at_or_below(&ns, zone) && name::is_at_or_below(&ns, name) {
            let what = if ns == name {
                format!("{name} is")
            } else {
                format!("{name} would hold {ns}, which is")
            };
            return Err(Failure::from(format!(
                "{what} a nameserver of zone {served} (its nameservers): held, it cannot be registered as a domain"
            )));
        }
    }
    Ok(())
}

/// `domain add`: registered domains never nest (SPEC: a name belongs to exactly
/// one domain), so `name` may not lie below one, be one, or contain one.
pub fn check_domain_free(name: &str, overlap: &Overlap) -> Result<(), Failure> {
    if let Some(t) = &overlap.above {
        return Err(Failure::from(format!(
            "{name} lies below the registered domain {t}"
        )));
    }
    if overlap.same {
        return Err(Failure::from(format!(
            "domain {name} is already registered"
        )));
    }
    if let Some(b) = &overlap.below {
        return Err(Failure::from(format!(
            "{name} would contain the registered domain {b}"
        )));
    }
    Ok(())
}

/// `domain add` (SPEC 13 `[limits] domains_per_user`, `0` = none): `owner`
/// (normalized email) holds `held` domains; one more may not go over `limit`.
pub fn check_domains_per_user(owner: &str, held: u64, limit: u64) -> Result<(), Failure> {
    if crate::update::bounds::Bounds::over(limit, held + 1) {
        return Err(Failure::from(format!(
            "limits.domains_per_user: {owner} already has {held} domains (at most {limit}; --force adds past it)"
        )));
    }
    Ok(())
}

/// `token add --domain NAME`: a token may only be limited to names at or below a
/// domain its owner holds (`held`); `owner` is the normalized email.
pub fn check_token_domains(
    domains: &[String],
    held: &[String],
    owner: &str,
) -> Result<(), Failure> {
    for d in domains {
        if !held.iter().any(|h| name::is_at_or_below(d, h)) {
            return Err(Failure::from(format!("--domain {d}: not held by {owner}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T>(r: Result<T, Failure>) -> String {
        match r {
            Ok(_) => panic!("expected a refusal"),
            Err(f) => f.message,
        }
    }

    #[test]
    fn an_email_is_normalized_and_needs_an_at_sign_and_no_whitespace() {
        assert_eq!(check_email("  A@X.Org ").ok(), Some("a@x.org".to_string()));
        assert_eq!(
            message(check_email("nobody")),
            "'nobody' is not an email address: no '@'"
        );
        assert_eq!(
            message(check_email("a b@x.org")),
            "'a b@x.org' is not an email address: it contains white space or a control character"
        );
        assert_eq!(
            message(check_email("   ")),
            "'' is not an email address: no '@'"
        );
        assert_eq!(
            message(check_email("@x.org")),
            "'@x.org' is not an email address: nothing before the '@'"
        );
        assert_eq!(
            message(check_email("a@")),
            "'a@' is not an email address: what follows the '@' is not a domain name"
        );
        let long = format!("{}@x.org", "a".repeat(250));
        // The quoted value is cut short; the reason is whole.
        let said = message(check_email(&long));
        assert!(
            said.starts_with("'aaaa")
                && said.ends_with("' is not an email address: longer than 254 characters"),
            "{said}"
        );
    }

    #[test]
    fn the_zones_own_nameservers_are_held() {
        let zone = "dedyn.example";
        let ns = [
            ("dedyn.example", "ns1.dedyn.example."),
            ("dedyn.example", "ns.other.example."),
            ("other.example", "ns1.sub.dedyn.example."),
        ];
        assert_eq!(
            message(check_not_nameserver("ns1.dedyn.example", zone, &ns)),
            "ns1.dedyn.example is a nameserver of zone dedyn.example (its nameservers): held, it cannot be registered as a domain"
        );
        // Another zone's nameserver inside this zone is held here too.
        assert_eq!(
            message(check_not_nameserver("sub.dedyn.example", zone, &ns)),
            "sub.dedyn.example would hold ns1.sub.dedyn.example, which is a nameserver of zone other.example (its nameservers): held, it cannot be registered as a domain"
        );
        for free in [
            "ns2.dedyn.example",
            "x.ns1.dedyn.example",
            "alice.dedyn.example",
        ] {
            if let Err(e) = check_not_nameserver(free, zone, &ns) {
                panic!("{free}: {e:?}");
            }
        }
        // dedyn.example's nameserver in the zone other.example is held there.
        assert_eq!(
            message(check_not_nameserver("ns.other.example", "other.example", &ns)),
            "ns.other.example is a nameserver of zone dedyn.example (its nameservers): held, it cannot be registered as a domain"
        );
    }

    #[test]
    fn a_domain_is_not_a_wildcard() {
        if let Err(e) = check_domain_name("a.dedyn.example") {
            panic!("{e:?}");
        }
        assert_eq!(
            message(check_domain_name("*.a.dedyn.example")),
            "*.a.dedyn.example: a domain cannot be a wildcard name"
        );
        assert_eq!(
            message(check_domain_name("a..dedyn.example")),
            "invalid hostname 'a..dedyn.example'"
        );
    }

    #[test]
    fn domains_do_not_nest_and_the_nearest_conflict_is_named() {
        let name = "b.a.dedyn.example";
        if let Err(e) = check_domain_free(name, &Overlap::default()) {
            panic!("{e:?}");
        }
        let above = Overlap {
            above: Some("a.dedyn.example".into()),
            ..Overlap::default()
        };
        assert_eq!(
            message(check_domain_free(name, &above)),
            "b.a.dedyn.example lies below the registered domain a.dedyn.example"
        );
        let same = Overlap {
            same: true,
            below: Some("c.b.a.dedyn.example".into()),
            ..Overlap::default()
        };
        assert_eq!(
            message(check_domain_free(name, &same)),
            "domain b.a.dedyn.example is already registered"
        );
        let below = Overlap {
            below: Some("c.b.a.dedyn.example".into()),
            ..Overlap::default()
        };
        assert_eq!(
            message(check_domain_free(name, &below)),
            "b.a.dedyn.example would contain the registered domain c.b.a.dedyn.example"
        );
    }

    #[test]
    fn domains_per_user_refuses_the_one_past_the_limit_and_zero_is_none() {
        if let Err(e) = check_domains_per_user("a@x.org", 99, 100) {
            panic!("{e:?}");
        }
        assert_eq!(
            message(check_domains_per_user("a@x.org", 100, 100)),
            "limits.domains_per_user: a@x.org already has 100 domains (at most 100; --force adds past it)"
        );
        if let Err(e) = check_domains_per_user("a@x.org", 5000, 0) {
            panic!("{e:?}");
        }
    }

    #[test]
    fn a_token_domain_must_be_at_or_below_a_held_domain() {
        let held = vec!["a.dedyn.example".to_string()];
        let ok = vec![
            "a.dedyn.example".to_string(),
            "x.a.dedyn.example".to_string(),
        ];
        if let Err(e) = check_token_domains(&ok, &held, "a@x.org") {
            panic!("{e:?}");
        }
        let other = vec!["b.dedyn.example".to_string()];
        assert_eq!(
            message(check_token_domains(&other, &held, "a@x.org")),
            "--domain b.dedyn.example: not held by a@x.org"
        );
    }
}
