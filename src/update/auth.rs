//! Seed "IP Update Authentication": which credentials a request presents (token
//! header, Basic, query parameters — first that applies) and the username rule.

use super::directory::{token_hash, Directory, Token};
use super::refusal::Refusal;
use super::request::{Query, Request};
use crate::net::name;
use base64::Engine;
use std::net::IpAddr;

/// How the client authenticated; named after the seed's three methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    TokenHeader,
    Basic,
    QueryParameters,
}

impl AuthMethod {
    pub fn describe(self) -> &'static str {
        match self {
            AuthMethod::TokenHeader => "Authorization: Token header",
            AuthMethod::Basic => "Authorization: Basic header",
            AuthMethod::QueryParameters => "username/password query parameters",
        }
    }
}

/// What the request presented. `username` is empty for the token header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub method: AuthMethod,
    pub username: String,
    pub secret: String,
}

/// Credentials that were presented but cannot be read: a failed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable(pub &'static str);

/// SPEC 4.1: the first method that applies. `Ok(None)`: no credentials at all (the
/// client may be waiting for the challenge; not a failed authentication).
pub fn credentials(
    authorization: Option<&str>,
    query: &Query,
) -> Result<Option<Credentials>, Unreadable> {
    if let Some(header) = authorization {
        return authorization_header(header).map(Some);
    }
    query_parameters(query)
}

fn authorization_header(header: &str) -> Result<Credentials, Unreadable> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("token") {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(Unreadable("malformed Token authorization header"));
        }
        return Ok(Credentials {
            method: AuthMethod::TokenHeader,
            username: String::new(),
            secret: rest.to_string(),
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Unreadable("Basic authorization header is not valid base64"))?;
        let text = String::from_utf8(raw)
            .map_err(|_| Unreadable("Basic authorization header is not UTF-8"))?;
        let (user, secret) = text
            .split_once(':')
            .ok_or(Unreadable("Basic authorization header has no ':'"))?;
        return Ok(Credentials {
            method: AuthMethod::Basic,
            username: user.to_string(),
            secret: secret.to_string(),
        });
    }
    Err(Unreadable(
        "unsupported Authorization scheme (use Basic or Token)",
    ))
}

/// SPEC 9: the query method applies when `username` or `password` is present;
/// one without the other fails.
fn query_parameters(query: &Query) -> Result<Option<Credentials>, Unreadable> {
    match (query.get("username"), query.get("password")) {
        (None, None) => Ok(None),
        (Some(u), Some(p)) => Ok(Some(Credentials {
            method: AuthMethod::QueryParameters,
            username: u.to_string(),
            secret: p.to_string(),
        })),
        _ => Err(Unreadable(
            "username and password query parameters must come together",
        )),
    }
}

/// SPEC 4.1: with Basic or query authentication the username must be empty, the
/// owner's email, or a name the owner holds (a domain or a name below one).
/// `holds` answers the last question for one normalized name (a lookup by name:
/// the owner's whole list is never read).
pub fn username_acceptable<E>(
    username: &str,
    owner_email: &str,
    mut holds: impl FnMut(&str) -> Result<bool, E>,
) -> Result<bool, E> {
    if username.is_empty() || username.eq_ignore_ascii_case(owner_email) {
        return Ok(true);
    }
    // The username may be a list of names (SPEC 4.2 takes the hostname from it):
    // each must be held. As one string, "bob.x,www.alice.x" ends in a held name.
    for element in username.split(',') {
        let name = name::normalize(element);
        if name.is_empty() || !holds(&name)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A failed authentication that counts for the lock-out (credentials were presented).
fn bad_auth(reason: impl Into<String>) -> Refusal {
    Refusal::BadAuth {
        counted: true,
        reason: reason.into(),
    }
}

/// SPEC 4.1: the credentials the request presents. None at all is `401` that does
/// not count (the client may be waiting for the challenge); unreadable ones count.
pub fn credentials_of(req: &Request) -> Result<Credentials, Refusal> {
    match credentials(req.authorization, &req.query) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Refusal::BadAuth {
            counted: false,
            reason: "no credentials".into(),
        }),
        Err(Unreadable(why)) => Err(bad_auth(why)),
    }
}

/// seed: the secret must be a known token (looked up by its hash only).
pub fn find_token(dir: &mut dyn Directory, creds: &Credentials) -> Result<Token, Refusal> {
    dir.token_by_hash(&token_hash(&creds.secret))?
        .ok_or_else(|| bad_auth("unknown token"))
}

/// SPEC 4.1: an expired token fails like an unknown one.
pub fn check_expiry(token: &Token, now_unix: i64) -> Result<(), Refusal> {
    if token.expires.is_some_and(|e| e <= now_unix) {
        return Err(bad_auth(format!("token {} has expired", token.id)));
    }
    Ok(())
}

/// SPEC 2 `--allowed-subnet`: a token used from outside its subnets fails.
pub fn check_subnet(token: &Token, client: IpAddr) -> Result<(), Refusal> {
    if !token.allowed_subnets.is_empty()
        && !token.allowed_subnets.iter().any(|c| c.contains(client))
    {
        return Err(bad_auth(format!(
            "token {} may not be used from {}",
            token.id, client
        )));
    }
    Ok(())
}

/// SPEC 4.1: with Basic or query authentication the username must be empty, the
/// owner's email or a name the owner holds; the token header has no username.
pub fn check_username(
    creds: &Credentials,
    token: &Token,
    dir: &mut dyn Directory,
) -> Result<(), Refusal> {
    let holds = |n: &str| {
        dir.domain_holding(n)
            .map(|d| d.is_some_and(|d| d.owner == token.owner))
    };
    if creds.method != AuthMethod::TokenHeader
        && !username_acceptable(&creds.username, &token.owner_email, holds)?
    {
        return Err(bad_auth(format!(
            "username {} is not the owner of token {}",
            name::quoted(&creds.username),
            token.id
        )));
    }
    Ok(())
}

/// SPEC 10: a token made only for certificates (`--scope acme`) may not update
/// addresses: `403 !yours`, after authentication (it is a valid token).
pub fn check_scope(token: &Token) -> Result<(), Refusal> {
    if !token.scope.allows_update() {
        return Err(Refusal::NotYours(format!(
            "token {} has scope {}: it may not update addresses",
            token.id,
            token.scope.as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(s)
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn token_header_applies_first() {
        let c = credentials(Some("Token s3cret"), &q("username=a&password=b"))
            .unwrap()
            .unwrap();
        assert_eq!(c.method, AuthMethod::TokenHeader);
        assert_eq!(c.secret, "s3cret");
    }

    #[test]
    fn basic_header_gives_username_and_token() {
        let c = credentials(Some(&basic("alice.dedyn.example:tok")), &q(""))
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials {
                method: AuthMethod::Basic,
                username: "alice.dedyn.example".into(),
                secret: "tok".into()
            }
        );
    }

    #[test]
    fn query_parameters_apply_without_header() {
        let c = credentials(None, &q("username=alice&password=tok"))
            .unwrap()
            .unwrap();
        assert_eq!(c.method, AuthMethod::QueryParameters);
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("alice", "tok"));
    }

    #[test]
    fn no_credentials_is_not_a_failure() {
        assert_eq!(credentials(None, &q("hostname=x")).unwrap(), None);
    }

    #[test]
    fn query_username_without_password_fails() {
        let apart = Err(Unreadable(
            "username and password query parameters must come together",
        ));
        assert_eq!(credentials(None, &q("username=alice")), apart);
        assert_eq!(credentials(None, &q("password=tok")), apart);
    }

    #[test]
    fn unparsable_authorization_header_fails() {
        let fails = |h: &str, why: &'static str| {
            assert_eq!(credentials(Some(h), &q("")), Err(Unreadable(why)), "{h}");
        };
        fails(
            "Basic !!!",
            "Basic authorization header is not valid base64",
        );
        fails(&basic("no-colon"), "Basic authorization header has no ':'");
        fails(
            "Bearer x",
            "unsupported Authorization scheme (use Basic or Token)",
        );
        fails("Token ", "malformed Token authorization header");
    }

    /// The username rule over a fixed list of held domains.
    fn acceptable(username: &str, email: &str, doms: &[&str]) -> bool {
        let holds = |n: &str| Ok::<_, ()>(doms.iter().any(|d| name::is_at_or_below(n, d)));
        username_acceptable(username, email, holds) == Ok(true)
    }

    #[test]
    fn username_must_be_empty_email_or_held_name() {
        let doms = ["alice.dedyn.example"];
        assert!(acceptable("", "a@x.org", &doms));
        assert!(acceptable("A@X.org", "a@x.org", &doms));
        assert!(acceptable("alice.dedyn.example", "a@x.org", &doms));
        assert!(acceptable("www.Alice.dedyn.example.", "a@x.org", &doms));
        assert!(!acceptable("bob.dedyn.example", "a@x.org", &doms));
        assert!(!acceptable("b@x.org", "a@x.org", &doms));
        // a list (SPEC 4.2 takes one from the username): every name must be held
        let two = ["alice.dedyn.example", "home.dedyn.example"];
        assert!(acceptable(
            "alice.dedyn.example, www.home.dedyn.example",
            "a@x.org",
            &two
        ));
        assert!(!acceptable(
            "bob.dedyn.example,www.alice.dedyn.example",
            "a@x.org",
            &doms
        ));
    }

    #[test]
    fn a_failing_lookup_is_an_error_not_a_refusal() {
        let failing = |_: &str| Err::<bool, _>("db down");
        assert_eq!(
            username_acceptable("alice.dedyn.example", "a@x.org", failing),
            Err("db down")
        );
        // no lookup is needed for an empty username or the owner's email
        assert_eq!(username_acceptable("", "a@x.org", failing), Ok(true));
    }
}
