//! What the rules read from outside the request: tokens, registered domains and
//! the zone configuration, as interfaces the store and the config implement.

pub use super::family::FamilyPolicy;
use crate::net::cidr::Cidr;

/// A token as the pipeline needs it (never the secret).
#[derive(Clone, Debug)]
pub struct Token {
    pub id: i64,
    pub owner: i64,
    pub owner_email: String,
    pub expires: Option<i64>,
    pub allowed_subnets: Vec<Cidr>,
    /// Limited with `--domain` (else: all of the owner's domains). Which names it
    /// covers is asked name by name (`Directory::token_covers`): the list may be long.
    pub scoped: bool,
    pub family: FamilyPolicy,
    /// What the token may be used for: address updates, acme-dns calls, or both.
    pub scope: Scope,
}

/// A token's TSIG key (SPEC 14): its name (lower case, no trailing dot), its
/// algorithm (`hmac-sha256` or `hmac-sha512`) and the secret the HMAC is keyed
/// with.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    pub secret: Vec<u8>,
}

/// Never the secret, also not in a debug line.
impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TsigKey {{ name: {:?}, algorithm: {:?} }}",
            self.name, self.algorithm
        )
    }
}

/// A registered domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub zone: String,
    /// The user id of its owner.
    pub owner: i64,
}

/// The directory could not answer (the database failed): `Refusal::Database`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryError(pub String);

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DirectoryError {}

/// What the pipeline reads from the database. Each question is about the names
/// of one request, never a whole account's list: the cost of a request must not
/// grow with the number of names its owner holds.
pub trait Directory {
    fn token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Token>, DirectoryError>;
    /// The token whose TSIG key is named `name` (lower case, no trailing dot),
    /// with the key (SPEC 14).
    fn tsig_key(&mut self, name: &str) -> Result<Option<(Token, TsigKey)>, DirectoryError>;
    /// The registered domain that holds `name` (equal to it or above it), whoever
    /// its owner is. Registered domains never nest, so there is at most one.
    fn domain_holding(&mut self, name: &str) -> Result<Option<Domain>, DirectoryError>;
    /// At most two of the owner's domains, in no particular order: enough to
    /// tell "none", "exactly one" and "several" apart.
    fn two_domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, DirectoryError>;
    /// Whether `name` equals or lies below one of the `--domain` names of the
    /// (scoped) token `token`.
    fn token_covers(&mut self, token: i64, name: &str) -> Result<bool, DirectoryError>;
}

/// The names that can hold `name`: itself, then each parent, shortest last
/// (`a.b.c`, `b.c`, `c`). Those longer than a hostname can be (253 characters)
/// are skipped: nothing longer is ever registered, and a username is not
/// syntax-checked before it is looked up.
pub fn name_and_parents(name: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(name);
    std::iter::from_fn(move || {
        while let Some(n) = next {
            next = n.split_once('.').map(|(_, parent)| parent);
            if n.len() <= 253 {
                return Some(n);
            }
        }
        None
    })
}

/// SHA-256 of a token secret: what the database stores and looks up.
pub fn token_hash(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What the zone configuration says about a zone, as far as updates care.
pub trait ZonePolicy {
    fn is_dynamic(&self, zone: &str) -> bool;
    fn guard_fallback(&self) -> &[Cidr];
    /// Addresses that may never be published (`[server] blocked_subnets`).
    fn blocked_subnets(&self) -> &[Cidr] {
        &[]
    }
}

/// What a token may be used for (`token add --scope`); the default is `Update`, so
/// that a token made for a router cannot obtain certificates unless its owner says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Update,
    Acme,
    Both,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "update" => Some(Scope::Update),
            "acme" => Some(Scope::Acme),
            "both" => Some(Scope::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Update => "update",
            Scope::Acme => "acme",
            Scope::Both => "both",
        }
    }

    /// May the token use the address update API (SPEC 4)?
    pub fn allows_update(self) -> bool {
        matches!(self, Scope::Update | Scope::Both)
    }

    /// May the token write `_acme-challenge` values (SPEC 10)?
    pub fn allows_acme(self) -> bool {
        matches!(self, Scope::Acme | Scope::Both)
    }
}
