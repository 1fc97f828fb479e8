//! The additions `user add`, `domain add`, `token add` (alone or as lines of
//! `import`): each checked against the rules and the `Batch` it runs in.

use super::args::{open, print_lines, Failure, Out};
use super::rules;
use crate::config::Config;
use crate::store::{Batch, NewToken};

/// One `user add`, `domain add` or `token add`, parsed and checked as far as the
/// command line goes; `run` checks the rest against the `Batch` it runs in.
pub enum Add {
    User(String),
    Domain {
        name: String,
        zone: String,
        owner: String,
    },
    Token {
        owner: String,
        token: NewToken,
    },
}

impl Add {
    /// Check the rules that need the database and run in `batch`; a token's
    /// secret is returned (to be shown once, after commit).
    pub fn run(&self, batch: &Batch) -> Result<Option<String>, Failure> {
        match self {
            Add::User(email) => batch.add_user(email)?,
            Add::Domain { name, zone, owner } => {
                let owner_id = batch.user_id(owner)?;
                rules::check_domain_free(name, &batch.domains_overlapping(name)?)?;
                batch.add_domain(name, zone, owner_id)?;
            }
            Add::Token { owner, token } => return add_token(batch, owner, token).map(Some),
        }
        Ok(None)
    }
}

/// A single add command: a batch of one.
pub fn add_one(config: &Config, add: Add) -> Out {
    let mut store = open(config)?;
    let batch = store.batch()?;
    let secret = add.run(&batch)?;
    batch.commit()?;
    print_lines(secret);
    Ok(())
}

/// Add `token` for `owner` (normalized) in `batch`: its domains must be the
/// owner's; a new secret is made and only its hash stored. Returns the secret.
fn add_token(batch: &Batch, owner: &str, token: &NewToken) -> Result<String, Failure> {
    let owner_id = batch.user_id(owner)?;
    // Only looked up when needed: an owner may hold many domains.
    if !token.domains.is_empty() {
        rules::check_token_domains(&token.domains, &batch.domain_names_of(owner_id)?, owner)?;
    }
    let secret = new_secret()?;
    let row = NewToken {
        hash: crate::update::token_hash(&secret),
        ..token.clone()
    };
    batch.add_token(owner_id, &row)?;
    Ok(secret)
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
