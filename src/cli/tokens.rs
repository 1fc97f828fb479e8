//! `token add --owner EMAIL [options] | list | revoke ID`: the secrets clients update
//! with; the secret is printed once, only its hash is stored.

use super::add::{add_one, Add};
use super::args::{open, open_existing, print_lines, usage, Args, Failure, Out};
use super::rules::{check_token_name, normalize_email};
use crate::config::settings::Config;
use crate::dns::key::Algorithm;
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::store::NewToken;
use crate::update::directory::Scope;
use crate::update::FamilyPolicy;

pub(crate) const TOKEN_FLAGS: &[&str] = &[
    "owner",
    "name",
    "allowed-subnet",
    "expires-in",
    "domain",
    "family",
    "scope",
    "key-name",
    "algorithm",
];

/// `token add --tsig`: a TSIG key instead of a secret for HTTP (SPEC 14).
pub(crate) const TOKEN_SWITCHES: &[&str] = &["tsig"];

pub(crate) fn token_add(a: &Args) -> Result<Add, Failure> {
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
    let scope = a
        .one("scope")
        .map(|s| {
            Scope::parse(s)
                .ok_or_else(|| Failure::from(format!("--scope: '{s}' is not update, acme or both")))
        })
        .transpose()?
        .unwrap_or_default();
    let name = check_token_name(a.one("name").unwrap_or(""))?;
    let tsig = tsig_choice(a)?;
    let token = NewToken {
        hash: [0; 32], // made with the secret, by Add::token
        name,
        allowed_subnets,
        expires_in,
        domains,
        family,
        scope,
        tsig: None, // made with the secret, by Add::tsig
    };
    match tsig {
        Some((key_name, algorithm)) => {
            Add::tsig(normalize_email(owner), token, key_name, algorithm)
        }
        None => Add::token(normalize_email(owner), token),
    }
}

/// `--tsig [--key-name NAME] [--algorithm hmac-sha256|hmac-sha512]`: the key's
/// name (normalized: lower case, no trailing dot; a random one when not given)
/// and algorithm. hmac-md5 and hmac-sha1 are not offered.
fn tsig_choice(a: &Args) -> Result<Option<(Option<String>, Algorithm)>, Failure> {
    if !a.has("tsig") {
        for flag in ["key-name", "algorithm"] {
            if a.one(flag).is_some() {
                return Err(usage(format!("--{flag} goes with --tsig")));
            }
        }
        return Ok(None);
    }
    let algorithm = match a.one("algorithm") {
        None => Algorithm::HmacSha256,
        Some(given) => Algorithm::from_str_name(given).ok_or_else(|| {
            Failure::from(format!(
                "--algorithm: '{given}' is not hmac-sha256 or hmac-sha512 (hmac-md5 and hmac-sha1 are not offered)"
            ))
        })?,
    };
    let key_name = a
        .one("key-name")
        .map(|k| {
            let n = name::normalize(k);
            name::check_syntax(&n)
                .map(|_| n)
                .map_err(|e| Failure::from(format!("--key-name: {e}")))
        })
        .transpose()?;
    Ok(Some((key_name, algorithm)))
}

pub fn token(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, TOKEN_FLAGS, TOKEN_SWITCHES)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, token_add(&a)?)?,
        Some("list") => {
            a.exactly(1, "token list [--owner EMAIL]")?;
            let time = |t: Option<i64>| t.map_or("never".to_string(), crate::os::clock::rfc3339);
            print_lines(open_existing(config)?.list_tokens(a.one("owner").map(normalize_email).as_deref())?.into_iter().map(|t| {
                format!(
                    "{}\towner={}\tname={}\tcreated={}\tlast_used={}\texpires={}\tsubnets={}\tdomains={}\tfamily={}\tscope={}\ttsig={}",
                    t.id,
                    t.owner,
                    t.name,
                    crate::os::clock::rfc3339(t.created),
                    time(t.last_used),
                    time(t.expires),
                    if t.allowed_subnets.is_empty() { "any".into() } else { t.allowed_subnets.replace(' ', ",") },
                    if t.domains.is_empty() { "all".into() } else { t.domains.replace(' ', ",") },
                    t.family,
                    t.scope,
                    t.tsig_name.as_deref().unwrap_or("no")
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
