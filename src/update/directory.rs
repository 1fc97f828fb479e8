//! What the rules read from outside the request: tokens, registered domains and
//! the zone configuration, as interfaces the store and the config implement.

use super::acme::Scope;
use super::address::Family;
use crate::net::cidr::Cidr;

/// Which families a token may write (`token add --family`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    Both,
    V4,
    V6,
}

impl FamilyPolicy {
    pub fn allows(self, f: Family) -> bool {
        matches!(
            (self, f),
            (FamilyPolicy::Both, _)
                | (FamilyPolicy::V4, Family::V4)
                | (FamilyPolicy::V6, Family::V6)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FamilyPolicy::Both => "both",
            FamilyPolicy::V4 => "v4",
            FamilyPolicy::V6 => "v6",
        }
    }

    pub fn parse(s: &str) -> Option<FamilyPolicy> {
        match s {
            "both" => Some(FamilyPolicy::Both),
            "v4" => Some(FamilyPolicy::V4),
            "v6" => Some(FamilyPolicy::V6),
            _ => None,
        }
    }
}

/// A token as the pipeline needs it (never the secret).
#[derive(Clone, Debug)]
pub struct Token {
    pub id: i64,
    pub owner: i64,
    pub owner_email: String,
    pub expires: Option<i64>,
    pub allowed_subnets: Vec<Cidr>,
    /// Empty: all of the owner's domains.
    pub domains: Vec<String>,
    pub family: FamilyPolicy,
    /// What the token may be used for: address updates, acme-dns calls, or both.
    pub scope: Scope,
}

/// A registered domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub zone: String,
}

/// What the pipeline reads from the database.
pub trait Directory {
    fn token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Token>, String>;
    fn domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, String>;
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
