//! The request as the pipeline sees it: the request target split and form-decoded,
//! the client behind trusted proxies, and SPEC 4's path and method rule.

use std::net::IpAddr;

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

/// The request's refusal before authentication: path and method (SPEC 4, 9).
pub fn check_path_and_method(method: &str, path: &str) -> Result<(), super::refusal::Refusal> {
    if method != "GET" && method != "HEAD" {
        return Err(super::refusal::Refusal::MethodNotAllowed);
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".ico") || lower.ends_with(".png") {
        return Err(super::refusal::Refusal::NotFound);
    }
    Ok(())
}
