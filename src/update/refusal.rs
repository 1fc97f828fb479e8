//! Every way an update request or an acme-dns call is refused, and the one table
//! that turns a refusal into HTTP: status, body and the headers that go with it.

use super::directory::DirectoryError;
use std::fmt;
use std::time::Duration;

/// Every way a request is refused; `status`, `body` and `headers` are the one
/// place where refusals become HTTP.
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

    /// The headers that go with the status: the challenge many clients wait for
    /// before they send credentials (SPEC 4.1), `Allow`, `Retry-After`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Refusal::BadAuth { .. } => vec![(
                "WWW-Authenticate",
                "Basic realm=\"dedyn-update\"".to_string(),
            )],
            Refusal::MethodNotAllowed => vec![("Allow", "GET, HEAD".to_string())],
            Refusal::RateLimited(d) => vec![("Retry-After", retry_after_secs(*d).to_string())],
            _ => Vec::new(),
        }
    }
}

/// The largest body read (SPEC 10: at most 1 KiB).
pub const MAX_BODY: usize = 1024;

/// Every way an acme-dns call (SPEC 10) is refused; `status`, `body` and
/// `headers` are the one place where these become HTTP (JSON answers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcmeRefusal {
    /// 401: bad or missing credentials. `counted`: credentials were presented and
    /// failed, so it counts as a failed authentication for rate limiting.
    Unauthorized { counted: bool, reason: String },
    /// 403: the token may not do this (scope, `--domain` policy, static zone), or
    /// `/register`.
    Forbidden(String),
    /// 400 `bad_subdomain`: malformed JSON, or a name that is malformed or not held.
    BadSubdomain(String),
    /// 400 `bad_txt`: a value that is not 1–255 of `A-Z a-z 0-9 - _`.
    BadTxt(String),
    /// 400 `names_per_domain`: a new `_acme-challenge` name would take the domain
    /// past `[limits] names_per_domain` (SPEC 17); the message names the bound.
    NamesPerDomain(String),
    /// 413: a body over [`MAX_BODY`].
    TooLarge,
    /// 429 over `rate_limit.acme_per_domain`.
    RateLimited(Duration),
    /// 500: the database failed; nothing was written.
    Database(String),
}

impl AcmeRefusal {
    pub fn status(&self) -> u16 {
        match self {
            AcmeRefusal::Unauthorized { .. } => 401,
            AcmeRefusal::Forbidden(_) => 403,
            AcmeRefusal::BadSubdomain(_)
            | AcmeRefusal::BadTxt(_)
            | AcmeRefusal::NamesPerDomain(_) => 400,
            AcmeRefusal::TooLarge => 413,
            AcmeRefusal::RateLimited(_) => 429,
            AcmeRefusal::Database(_) => 500,
        }
    }

    /// `Retry-After` with a 429; acme-dns clients get no Basic challenge.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            AcmeRefusal::RateLimited(d) => vec![("Retry-After", retry_after_secs(*d).to_string())],
            _ => Vec::new(),
        }
    }

    /// The JSON body, acme-dns's words where it has them.
    pub fn body(&self) -> String {
        let word = match self {
            AcmeRefusal::Unauthorized { .. } | AcmeRefusal::Forbidden(_) => "forbidden",
            AcmeRefusal::BadSubdomain(_) => "bad_subdomain",
            AcmeRefusal::BadTxt(_) => "bad_txt",
            AcmeRefusal::NamesPerDomain(_) => "names_per_domain",
            AcmeRefusal::TooLarge => "body_too_large",
            AcmeRefusal::RateLimited(_) => "rate_limited",
            AcmeRefusal::Database(_) => "database",
        };
        format!("{{\"error\": \"{word}\"}}")
    }
}

impl fmt::Display for AcmeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeRefusal::Unauthorized { reason, .. } => {
                write!(f, "authentication failed: {reason}")
            }
            AcmeRefusal::Forbidden(m) => write!(f, "forbidden: {m}"),
            AcmeRefusal::BadSubdomain(m) => write!(f, "bad subdomain: {m}"),
            AcmeRefusal::BadTxt(m) => write!(f, "bad txt: {m}"),
            AcmeRefusal::NamesPerDomain(m) => f.write_str(m),
            AcmeRefusal::TooLarge => write!(f, "body larger than {} bytes", MAX_BODY),
            AcmeRefusal::RateLimited(d) => {
                write!(f, "rate limited for {}s", retry_after_secs(*d))
            }
            AcmeRefusal::Database(m) => write!(f, "database error: {m}"),
        }
    }
}

/// The one translation of a directory failure: the database could not answer.
impl From<DirectoryError> for Refusal {
    fn from(e: DirectoryError) -> Self {
        Refusal::Database(e.0)
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
