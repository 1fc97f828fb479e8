//! Seed "IP Update Authentication": which credentials a request presents (token
//! header, Basic, query parameters — first that applies) and the username rule.

use super::Query;
use crate::net::name;
use base64::Engine;

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
pub fn username_acceptable(username: &str, owner_email: &str, owner_domains: &[&str]) -> bool {
    if username.is_empty() || username.eq_ignore_ascii_case(owner_email) {
        return true;
    }
    // The username may be a list of names (SPEC 4.2 takes the hostname from it):
    // each must be held. As one string, "bob.x,www.alice.x" ends in a held name.
    username.split(',').all(|element| {
        let name = name::normalize(element);
        !name.is_empty() && owner_domains.iter().any(|d| name::is_at_or_below(&name, d))
    })
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
        assert!(credentials(None, &q("username=alice")).is_err());
        assert!(credentials(None, &q("password=tok")).is_err());
    }

    #[test]
    fn unparsable_authorization_header_fails() {
        assert!(credentials(Some("Basic !!!"), &q("")).is_err());
        assert!(credentials(Some(&basic("no-colon")), &q("")).is_err());
        assert!(credentials(Some("Bearer x"), &q("")).is_err());
        assert!(credentials(Some("Token "), &q("")).is_err());
    }

    #[test]
    fn username_must_be_empty_email_or_held_name() {
        let doms = ["alice.dedyn.example"];
        assert!(username_acceptable("", "a@x.org", &doms));
        assert!(username_acceptable("A@X.org", "a@x.org", &doms));
        assert!(username_acceptable("alice.dedyn.example", "a@x.org", &doms));
        assert!(username_acceptable(
            "www.Alice.dedyn.example.",
            "a@x.org",
            &doms
        ));
        assert!(!username_acceptable("bob.dedyn.example", "a@x.org", &doms));
        assert!(!username_acceptable("b@x.org", "a@x.org", &doms));
        // a list (SPEC 4.2 takes one from the username): every name must be held
        let two = ["alice.dedyn.example", "home.dedyn.example"];
        assert!(username_acceptable(
            "alice.dedyn.example, www.home.dedyn.example",
            "a@x.org",
            &two
        ));
        assert!(!username_acceptable(
            "bob.dedyn.example,www.alice.dedyn.example",
            "a@x.org",
            &doms
        ));
    }
}
