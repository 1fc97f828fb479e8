//! The additions `user add`, `domain add`, `token add` (alone or as lines of
//! `import`): each checked against the rules, the bounds and the `Batch` it runs in.

use super::args::{open, print_lines, Failure, Out};
use super::rules;
use crate::config::settings::Config;
use crate::dns::key::{bind_key_file, Algorithm};
use crate::dns::name::Name;
use crate::store::{Batch, NewToken};
use crate::update::bounds::Bounds;
use crate::update::directory::TsigKey;

/// One `user add`, `domain add` or `token add`, parsed and checked as far as the
/// command line goes — a token's secret already made and hashed — so that `run`,
/// inside the write transaction, only checks the rest against the `Batch`.
pub enum Add {
    User(String),
    Domain {
        name: String,
        zone: String,
        owner: String,
        /// `--force`: past `[limits] domains_per_user`.
        force: bool,
    },
    Token {
        owner: String,
        /// Its `hash` is the secret's; with `--tsig`, its key.
        token: NewToken,
        /// What is shown once after the commit: the secret, or the TSIG key's
        /// lines (`tsig_lines`).
        secret: String,
    },
}

impl Add {
    /// A token addition with a new secret, hashed now: outside the write lock.
    pub fn token(owner: String, token: NewToken) -> Result<Add, Failure> {
        let secret = new_secret()?;
        let token = NewToken {
            hash: crate::update::token_hash(&secret),
            ..token
        };
        Ok(Add::Token {
            owner,
            token,
            secret,
        })
    }

    /// A TSIG key addition (SPEC 14): a new secret for the HMAC, stored; the
    /// token's hash is of another random secret, shown to nobody, so the key is
    /// never usable over HTTP. `key_name`: a random `key-…` name when not given.
    pub fn tsig(
        owner: String,
        token: NewToken,
        key_name: Option<String>,
        algorithm: Algorithm,
    ) -> Result<Add, Failure> {
        let secret = random_bytes(algorithm.secret_len())?;
        let name = match key_name {
            Some(n) => n,
            None => format!("key-{}", hex(&random_bytes(6)?)),
        };
        let lines = tsig_lines(&name, algorithm, &secret)?;
        let key = TsigKey {
            name,
            algorithm: algorithm.as_str().to_string(),
            secret,
        };
        let token = NewToken {
            hash: crate::update::token_hash(&new_secret()?),
            tsig: Some(key),
            ..token
        };
        Ok(Add::Token {
            owner,
            token,
            secret: lines,
        })
    }

    /// Check the rules that need the database and run in `batch`; a token's
    /// secret is returned (to be shown once, after commit).
    pub fn run(&self, batch: &Batch, limits: &Bounds) -> Result<Option<String>, Failure> {
        match self {
            Add::User(email) => batch.add_user(email)?,
            Add::Domain {
                name,
                zone,
                owner,
                force,
            } => {
                let owner_id = batch.user_id(owner)?;
                rules::check_domain_free(name, &batch.domains_overlapping(name)?)?;
                if !force && limits.domains_per_user != 0 {
                    let held = batch.domain_count_of(owner_id)?;
                    rules::check_domains_per_user(owner, held, limits.domains_per_user)?;
                }
                batch.add_domain(name, zone, owner_id)?;
            }
            Add::Token {
                owner,
                token,
                secret,
            } => {
                add_token(batch, owner, token)?;
                return Ok(Some(secret.clone()));
            }
        }
        Ok(None)
    }
}

/// A single add command: a batch of one.
pub fn add_one(config: &Config, add: Add) -> Out {
    let mut store = open(config)?;
    let batch = store.batch()?;
    let secret = add.run(&batch, &config.limits)?;
    batch.commit()?;
    print_lines(secret);
    Ok(())
}

/// Add `token` (its hash made already) for `owner` (normalized) in `batch`: its
/// domains must be the owner's; only the hash is stored.
fn add_token(batch: &Batch, owner: &str, token: &NewToken) -> Result<(), Failure> {
    let owner_id = batch.user_id(owner)?;
    // Only looked up when needed: an owner may hold many domains.
    if !token.domains.is_empty() {
        rules::check_token_domains(&token.domains, &batch.domain_names_of(owner_id)?, owner)?;
    }
    if let Some(k) = &token.tsig {
        if let Some(id) = batch.tsig_name_owner(&k.name)? {
            return Err(Failure::from(format!(
                "--key-name: {} is the TSIG key of token {id} already",
                k.name
            )));
        }
    }
    batch.add_token(owner_id, token)?;
    Ok(())
}

/// What `token add --tsig` prints once: the key in BIND's key-file format
/// (`nsupdate -k FILE`), then the lines certbot's rfc2136 credentials file and
/// lego's environment take, each after a `#` line saying so.
fn tsig_lines(name: &str, algorithm: Algorithm, secret: &[u8]) -> Result<String, Failure> {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.encode(secret);
    let wire_name =
        Name::from_text(name).map_err(|e| Failure::from(format!("--key-name: {name}: {e}")))?;
    let alg = algorithm.as_str();
    Ok(format!(
        "{}\
         # certbot --dns-rfc2136-credentials FILE (with dns_rfc2136_server and dns_rfc2136_port):\n\
         dns_rfc2136_name = {name}\n\
         dns_rfc2136_secret = {secret}\n\
         dns_rfc2136_algorithm = {}\n\
         # lego --dns rfc2136 (with RFC2136_NAMESERVER=HOST:PORT):\n\
         RFC2136_TSIG_KEY={name}\n\
         RFC2136_TSIG_SECRET={secret}\n\
         RFC2136_TSIG_ALGORITHM={alg}.",
        bind_key_file(&wire_name, algorithm, &secret),
        alg.to_ascii_uppercase()
    ))
}

fn random_bytes(n: usize) -> Result<Vec<u8>, Failure> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Failure::from("the system random generator failed".to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token secret: 192 random bits, URL-safe.
fn new_secret() -> Result<String, Failure> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(24)?))
}
