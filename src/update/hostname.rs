//! Seed "Determine Hostname": the five steps that find which names to update,
//! plus the name syntax (SPEC 4.2) and the "held by the owner" relation.

use super::auth::{AuthMethod, Credentials};
use super::directory::{Directory, DirectoryError, Domain, Token, ZonePolicy};
use super::refusal::Refusal;
use super::request::{Query, Request};
use crate::net::name::{check_syntax, normalize, NameError};

/// Which step of the seed gave the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostnameSource {
    HostnameParameter,
    HostIdParameter,
    BasicUsername,
    UsernameParameter,
    OnlyDomain,
    PerNameParameters,
}

impl HostnameSource {
    pub fn describe(self) -> &'static str {
        match self {
            HostnameSource::HostnameParameter => "the hostname parameter",
            HostnameSource::HostIdParameter => "the host_id parameter",
            HostnameSource::BasicUsername => "the Basic authorization username",
            HostnameSource::UsernameParameter => "the username parameter",
            HostnameSource::OnlyDomain => "the owner's only domain",
            HostnameSource::PerNameParameters => "the myipv4:NAME / myipv6:NAME parameters",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostnameError {
    /// 400: a name that is not a valid hostname.
    Invalid(NameError),
    /// 404 `nohost`: nothing found, or an empty list element.
    NotFound(&'static str),
    /// The owner's domains could not be read.
    Directory(DirectoryError),
}

/// Split a comma list into normalized, syntax-checked names (SPEC 4.2).
/// Syntax is checked before emptiness matters to the caller (SPEC 9).
pub fn parse_list(value: &str) -> Result<Vec<String>, HostnameError> {
    let mut names = Vec::new();
    let mut empty = false;
    for element in value.split(',') {
        let n = normalize(element);
        if n.is_empty() {
            empty = true;
            continue;
        }
        check_syntax(&n).map_err(HostnameError::Invalid)?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if empty {
        return Err(HostnameError::NotFound(
            "empty element in the hostname list",
        ));
    }
    Ok(names)
}

/// The seed's steps, first that yields a value. `per_name_given` tells whether
/// `myipv4:NAME=` parameters name hosts of their own: then the owner's only domain
/// is not added behind the client's back. `two_domains` gives at most two of the
/// owner's domain names; it is asked only when the last step is reached.
pub fn determine(
    query: &Query,
    basic_username: Option<&str>,
    two_domains: impl FnOnce() -> Result<Vec<String>, DirectoryError>,
    per_name_given: bool,
) -> Result<(Vec<String>, Option<HostnameSource>), HostnameError> {
    // seed: hostname=YES is ignored, some clients send it.
    if let Some(v) = query
        .get("hostname")
        .filter(|v| !v.is_empty() && *v != "YES")
    {
        return parse_list(v).map(|n| (n, Some(HostnameSource::HostnameParameter)));
    }
    if let Some(v) = query.get("host_id").filter(|v| !v.is_empty()) {
        return parse_list(v).map(|n| (n, Some(HostnameSource::HostIdParameter)));
    }
    if let Some(u) = basic_username.filter(|u| !u.is_empty() && !u.contains('@')) {
        return parse_list(u).map(|n| (n, Some(HostnameSource::BasicUsername)));
    }
    if let Some(u) = query
        .get("username")
        .filter(|u| !u.is_empty() && !u.contains('@'))
    {
        return parse_list(u).map(|n| (n, Some(HostnameSource::UsernameParameter)));
    }
    if per_name_given {
        return Ok((Vec::new(), None));
    }
    match two_domains().map_err(HostnameError::Directory)?.as_slice() {
        [only] => Ok((vec![only.clone()], Some(HostnameSource::OnlyDomain))),
        [] => Err(HostnameError::NotFound("the account has no domain")),
        _ => Err(HostnameError::NotFound(
            "no hostname given and the account has several domains",
        )),
    }
}

/// The one translation of a hostname error into a refusal: bad syntax is `400`
/// naming the name, nothing found is `404 nohost`.
pub fn refusal(e: HostnameError) -> Refusal {
    match e {
        HostnameError::Invalid(e) => Refusal::BadRequest(e.to_string()),
        HostnameError::NotFound(m) => Refusal::NoHost(m.into()),
        HostnameError::Directory(e) => e.into(),
    }
}

/// The seed's five steps for the general names (those the general address
/// parameters apply to), recorded in the trace. `per_name_given`: the request
/// has `myipvN:NAME` parameters (then the owner's only domain is not added).
pub fn general_names(
    req: &Request,
    creds: &Credentials,
    dir: &mut dyn Directory,
    token: &Token,
    per_name_given: bool,
    trace: &mut Vec<String>,
) -> Result<Vec<String>, Refusal> {
    let two_domains = || {
        let two = dir.two_domains_of(token.owner)?;
        Ok(two.into_iter().map(|d| d.name).collect())
    };
    let basic_username = (creds.method == AuthMethod::Basic).then_some(creds.username.as_str());
    let (general, source) =
        determine(&req.query, basic_username, two_domains, per_name_given).map_err(refusal)?;
    if let Some(s) = source {
        trace.push(format!(
            "hostnames from {}: {}",
            s.describe(),
            general.join(", ")
        ));
    }
    Ok(general)
}

/// Bounds one request's work and the records it can create (the SPEC sets none;
/// a dynDNS client names a handful): more is refused with 400, nothing written.
pub const MAX_NAMES: usize = 100;

/// Every name the request updates: the general names, then those only the
/// `myipvN:NAME` parameters add (SPEC 4.3), each given with the trace line that
/// says where it came from. None is `nohost`; more than `MAX_NAMES` is `400`.
pub fn all_names<'p>(
    general: &[String],
    added: impl IntoIterator<Item = (String, &'p [String])>,
    trace: &mut Vec<String>,
) -> Result<Vec<String>, Refusal> {
    let mut names: Vec<String> = general.to_vec();
    for (origin, added) in added {
        trace.push(origin);
        for n in added {
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
    Ok(names)
}

/// SPEC 4.2: every name must equal or lie below a domain of the owner, else
/// `404 nohost`. Returns each name with the domain that holds it.
pub fn check_held(
    names: &[String],
    dir: &mut dyn Directory,
    token: &Token,
) -> Result<Vec<(String, Domain)>, Refusal> {
    let mut held = Vec::with_capacity(names.len());
    for n in names {
        match dir.domain_holding(n)? {
            Some(d) if d.owner == token.owner => held.push((n.clone(), d)),
            _ => {
                return Err(Refusal::NoHost(format!(
                    "{} is not held by {}",
                    n, token.owner_email
                )))
            }
        }
    }
    Ok(held)
}

/// SPEC 4.2: a held name in a zone with `dynamic = false` is `403 !yours`.
pub fn check_dynamic(name: &str, domain: &Domain, zones: &dyn ZonePolicy) -> Result<(), Refusal> {
    if !zones.is_dynamic(&domain.zone) {
        return Err(Refusal::NotYours(format!(
            "{name}: zone {} does not allow dynamic updates",
            domain.zone
        )));
    }
    Ok(())
}

/// SPEC 2 `--domain`: a held name outside the token's domains is `403 !yours`.
pub fn check_token_domains(
    name: &str,
    token: &Token,
    dir: &mut dyn Directory,
) -> Result<(), Refusal> {
    if token.scoped && !dir.token_covers(token.id, name)? {
        return Err(Refusal::NotYours(format!(
            "{name}: outside the domains of token {}",
            token.id
        )));
    }
    Ok(())
}

/// Both `403` rules, name by name in request order.
pub fn check_updatable(
    held: &[(String, Domain)],
    zones: &dyn ZonePolicy,
    token: &Token,
    dir: &mut dyn Directory,
) -> Result<(), Refusal> {
    for (name, domain) in held {
        check_dynamic(name, domain, zones)?;
        check_token_domains(name, token, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &[&str] = &["alice.dedyn.example"];
    const TWO: &[&str] = &["alice.dedyn.example", "bob.dedyn.example"];

    /// The owner's domains as `determine` asks for them (at most two).
    fn two(doms: &[&str]) -> impl FnOnce() -> Result<Vec<String>, DirectoryError> {
        let first_two: Vec<String> = doms.iter().take(2).map(|d| d.to_string()).collect();
        move || Ok(first_two)
    }

    fn det(query: &str, basic: Option<&str>, doms: &[&str]) -> Result<Vec<String>, HostnameError> {
        determine(&Query::parse(query), basic, two(doms), false).map(|(n, _)| n)
    }

    #[test]
    fn hostname_parameter_comes_first() {
        assert_eq!(
            det(
                "hostname=X.dedyn.example.&host_id=y.dedyn.example",
                Some("z.dedyn.example"),
                TWO
            )
            .unwrap(),
            ["x.dedyn.example"]
        );
    }

    #[test]
    fn hostname_yes_is_ignored() {
        assert_eq!(
            det("hostname=YES&host_id=h.dedyn.example", None, TWO).unwrap(),
            ["h.dedyn.example"]
        );
        assert_eq!(
            det("hostname=", None, ONE).unwrap(),
            ["alice.dedyn.example"]
        );
    }

    #[test]
    fn host_id_parameter_is_second() {
        assert_eq!(
            det("host_id=h.dedyn.example", Some("b.dedyn.example"), TWO).unwrap(),
            ["h.dedyn.example"]
        );
    }

    #[test]
    fn basic_username_is_third_unless_email() {
        assert_eq!(
            det("username=u.dedyn.example", Some("b.dedyn.example"), TWO).unwrap(),
            ["b.dedyn.example"]
        );
        assert_eq!(
            det("username=u.dedyn.example", Some("a@b.org"), TWO).unwrap(),
            ["u.dedyn.example"]
        );
        assert_eq!(det("", Some(""), ONE).unwrap(), ["alice.dedyn.example"]);
    }

    #[test]
    fn username_parameter_is_fourth_unless_email() {
        assert_eq!(
            det("username=u.dedyn.example", None, TWO).unwrap(),
            ["u.dedyn.example"]
        );
        assert_eq!(
            det("username=a@b.org", None, ONE).unwrap(),
            ["alice.dedyn.example"]
        );
    }

    #[test]
    fn only_domain_is_last_and_must_be_unambiguous() {
        assert_eq!(det("", None, ONE).unwrap(), ["alice.dedyn.example"]);
        assert!(matches!(
            det("", None, TWO),
            Err(HostnameError::NotFound(_))
        ));
        assert!(matches!(
            det("", None, &[]),
            Err(HostnameError::NotFound(_))
        ));
        assert_eq!(
            determine(&Query::parse(""), None, two(ONE), true)
                .unwrap()
                .0,
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_owners_domains_are_asked_only_in_the_last_step() {
        let never = || -> Result<Vec<String>, DirectoryError> { panic!("asked") };
        assert!(determine(
            &Query::parse("hostname=a.dedyn.example"),
            None,
            never,
            false
        )
        .is_ok());
        let failing = || Err(DirectoryError("db down".into()));
        assert_eq!(
            determine(&Query::parse(""), None, failing, false),
            Err(HostnameError::Directory(DirectoryError("db down".into())))
        );
        assert_eq!(
            refusal(HostnameError::Directory(DirectoryError("db down".into()))),
            Refusal::Database("db down".into())
        );
    }

    #[test]
    fn comma_list_is_trimmed_and_deduplicated() {
        assert_eq!(
            det(
                "hostname=a.dedyn.example, *.A.dedyn.example ,a.dedyn.example",
                None,
                ONE
            )
            .unwrap(),
            ["a.dedyn.example", "*.a.dedyn.example"]
        );
    }

    #[test]
    fn empty_list_element_is_nohost() {
        assert!(matches!(
            det("hostname=a.dedyn.example,,b.dedyn.example", None, ONE),
            Err(HostnameError::NotFound(_))
        ));
    }

    #[test]
    fn invalid_name_is_bad_request_even_if_not_held() {
        assert!(matches!(
            det("hostname=bad name.example", None, ONE),
            Err(HostnameError::Invalid(_))
        ));
        assert!(matches!(
            det("hostname=a@b.org", None, ONE),
            Err(HostnameError::Invalid(_))
        ));
        assert!(matches!(
            det("hostname=a.*.example", None, ONE),
            Err(HostnameError::Invalid(_))
        ));
        assert_eq!(det("hostname=-", None, ONE), Ok(vec!["-".to_string()]));
    }
}
