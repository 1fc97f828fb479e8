//! The additions `user add`, `domain add`, `token add` (alone or as lines of
//! `import`): each checked against the rules, the bounds and the `Batch` it runs in.

use super::args::{open, print_lines, Failure, Out};
use super::rules;
use crate::config::Config;
use crate::store::{Batch, NewToken};
use crate::update::bounds::Bounds;

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
        /// Its `hash` is the secret's.
        token: NewToken,
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
    batch.add_token(owner_id, token)?;
    Ok(())
}

/// A new token secret: 192 random bits, URL-safe.
fn new_secret() -> Result<String, Failure> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Failure::from("the system random generator failed".to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
