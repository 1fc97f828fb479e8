//! Accounts: users, their domains and their tokens — added one by one or in one
//! `Batch` (`import`), listed, removed — as plain queries; the CLI owns the rules.

use super::{invalid, now_unix, reverse_labels, writer_turn, Result, Store, StoreError};
use crate::net::cidr::Cidr;
use crate::net::name;
use crate::update::{Domain, FamilyPolicy};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// A new token secret: 192 random bits, URL-safe.
fn new_secret() -> Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Db("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A token as `token list` shows it.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub expires: Option<i64>,
    pub allowed_subnets: String,
    pub domains: String,
    pub family: String,
}

/// Options of `token add`.
#[derive(Clone, Debug, Default)]
pub struct NewToken {
    pub name: String,
    pub allowed_subnets: Vec<Cidr>,
    pub expires_in: Option<u64>,
    pub domains: Vec<String>,
    pub family: Option<FamilyPolicy>,
}

impl Store {
    // ---- users ----

    pub fn add_user(&mut self, email: &str) -> Result<()> {
        let b = self.batch()?;
        b.add_user(email)?;
        b.commit()
    }

    pub fn list_users(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT email FROM users ORDER BY email")?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    fn user_id(&self, email: &str) -> Result<i64> {
        user_id(&self.conn, email)
    }

    /// Delete a user with domains, tokens and records; their zones are republished.
    pub fn remove_user(&mut self, email: &str) -> Result<()> {
        let id = self.user_id(email)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE zones SET generation = generation + 1 WHERE name IN (SELECT DISTINCT zone FROM records WHERE domain IN (SELECT id FROM domains WHERE owner = ?1))",
            [id],
        )?;
        tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    // ---- domains ----

    /// Register `name` (already normalized) in `zone` for the user `owner`.
    pub fn add_domain(&mut self, name: &str, zone: &str, owner: &str) -> Result<()> {
        let b = self.batch()?;
        b.add_domain(name, zone, owner)?;
        b.commit()
    }

    /// (name, owner email), sorted by name.
    pub fn list_domains(&self, owner: Option<&str>) -> Result<Vec<(String, String)>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT d.name, u.email FROM domains d JOIN users u ON u.id = d.owner WHERE ?1 IS NULL OR d.owner = ?1 ORDER BY d.name",
        )?;
        let rows = st
            .query_map([owner_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn remove_domain(&mut self, name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, zone FROM domains WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, zone)) = found else {
            return invalid(format!("no domain {name}"));
        };
        let had_records: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM records WHERE domain = ?1)",
            [id],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM domains WHERE id = ?1", [id])?;
        if had_records {
            tx.execute(
                "UPDATE zones SET generation = generation + 1 WHERE name = ?1",
                [zone],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The registered domain that holds `name` (equal or above it), with its zone.
    pub fn domain_holding(&self, name: &str) -> Result<Option<Domain>> {
        let mut candidate = name;
        loop {
            let d = self
                .conn
                .query_row(
                    "SELECT id, name, zone FROM domains WHERE name = ?1",
                    [candidate],
                    |r| {
                        Ok(Domain {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            zone: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            if d.is_some() {
                return Ok(d);
            }
            match candidate.split_once('.') {
                Some((_, rest)) => candidate = rest,
                None => return Ok(None),
            }
        }
    }

    // ---- tokens ----

    /// Create a token; returns (id, secret). The secret is shown once and only its hash stored.
    pub fn add_token(&mut self, owner: &str, t: &NewToken) -> Result<(i64, String)> {
        let b = self.batch()?;
        let r = b.add_token(owner, t)?;
        b.commit()?;
        Ok(r)
    }

    /// Start a batch of additions: one write transaction for all of them (`import`).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        Ok(Batch {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    pub fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenInfo>> {
        let owner_id = owner.map(|o| self.user_id(o)).transpose()?;
        let mut st = self.conn.prepare(
            "SELECT t.id, u.email, t.name, t.created, t.last_used, t.expires, t.allowed_subnets, t.domains, t.family
             FROM tokens t JOIN users u ON u.id = t.owner WHERE ?1 IS NULL OR t.owner = ?1 ORDER BY t.id",
        )?;
        let rows = st
            .query_map([owner_id], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    name: r.get(2)?,
                    created: r.get(3)?,
                    last_used: r.get(4)?,
                    expires: r.get(5)?,
                    allowed_subnets: r.get(6)?,
                    domains: r.get(7)?,
                    family: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn revoke_token(&mut self, id: i64) -> Result<()> {
        if self
            .conn
            .execute("DELETE FROM tokens WHERE id = ?1", [id])?
            == 0
        {
            return invalid(format!("no token {id}"));
        }
        Ok(())
    }

    /// Record when tokens were last used (coalesced by the caller: one write per batch).
    pub fn touch_tokens(&mut self, used: &[(i64, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let _turn = writer_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE tokens SET last_used = max(coalesce(last_used, 0), ?2) WHERE id = ?1",
            )?;
            for (id, at) in used {
                st.execute(params![id, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn user_id(conn: &Connection, email: &str) -> Result<i64> {
    let email = email.trim().to_ascii_lowercase();
    conn.prepare_cached("SELECT id FROM users WHERE email = ?1")?
        .query_row([&email], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Invalid(format!("no user {email}")))
}

/// Additions of users, domains and tokens in one write transaction: the single
/// admin commands are a batch of one, `import` a batch of many (all or nothing).
/// Every check lives here, so both validate exactly alike. Dropped without
/// `commit`, nothing is written.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Batch<'_> {
    pub fn add_user(&self, email: &str) -> Result<()> {
        let email = email.trim().to_ascii_lowercase();
        if email.is_empty()
            || !email.contains('@')
            || email.contains(char::is_whitespace)
            || email.len() > 254
        {
            return invalid(format!("'{email}' is not an email address"));
        }
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO users(email, created) VALUES (?1, ?2) ON CONFLICT(email) DO NOTHING",
            )?
            .execute(params![email, now_unix()])?;
        if n == 0 {
            return invalid(format!("user {email} already exists"));
        }
        Ok(())
    }

    /// Register `name` (already normalized) in `zone` for the user `owner`.
    pub fn add_domain(&self, name: &str, zone: &str, owner: &str) -> Result<()> {
        if let Err(e) = name::check_syntax(name) {
            return invalid(e);
        }
        if name.starts_with('*') {
            return invalid(format!("{name}: a domain cannot be a wildcard name"));
        }
        let owner_id = user_id(&self.tx, owner)?;
        let tx = &self.tx;
        let rname = reverse_labels(name);
        // Above: one of the name's parent domains is registered.
        let mut parent = name;
        while let Some((_, rest)) = parent.split_once('.') {
            let taken: Option<String> = tx
                .prepare_cached("SELECT name FROM domains WHERE name = ?1")?
                .query_row([rest], |r| r.get(0))
                .optional()?;
            if let Some(t) = taken {
                return invalid(format!("{name} lies below the registered domain {t}"));
            }
            parent = rest;
        }
        let same: Option<String> = tx
            .prepare_cached("SELECT name FROM domains WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        if same.is_some() {
            return invalid(format!("domain {name} is already registered"));
        }
        // Below: a registered domain lies below the new name ('/' sorts right after '.').
        let below: Option<String> = tx
            .prepare_cached(
                "SELECT name FROM domains WHERE rname > ?1 || '.' AND rname < ?1 || '/' LIMIT 1",
            )?
            .query_row([&rname], |r| r.get(0))
            .optional()?;
        if let Some(b) = below {
            return invalid(format!("{name} would contain the registered domain {b}"));
        }
        tx.prepare_cached(
            "INSERT INTO domains(name, rname, zone, owner, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![name, rname, zone, owner_id, now_unix()])?;
        Ok(())
    }

    /// Create a token; returns (id, secret).
    pub fn add_token(&self, owner: &str, t: &NewToken) -> Result<(i64, String)> {
        let owner_id = user_id(&self.tx, owner)?;
        // Only looked up when needed: an owner may hold many domains.
        let held: Vec<String> = if t.domains.is_empty() {
            Vec::new()
        } else {
            let mut st = self
                .tx
                .prepare_cached("SELECT name FROM domains WHERE owner = ?1")?;
            let rows = st.query_map([owner_id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for d in &t.domains {
            if !held.iter().any(|h| name::is_at_or_below(d, h)) {
                return invalid(format!(
                    "--domain {d}: not held by {}",
                    owner.trim().to_ascii_lowercase()
                ));
            }
        }
        let secret = new_secret()?;
        let hash = crate::update::token_hash(&secret);
        let now = now_unix();
        let expires = t
            .expires_in
            .map(|s| now.saturating_add(s.min(i64::MAX as u64 / 2) as i64));
        let subnets: Vec<String> = t.allowed_subnets.iter().map(Cidr::to_string).collect();
        self.tx.prepare_cached(
            "INSERT INTO tokens(owner, hash, name, created, expires, allowed_subnets, domains, family) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?.execute(params![
                owner_id,
                &hash[..],
                t.name,
                now,
                expires,
                subnets.join(" "),
                t.domains.join(" "),
                t.family.unwrap_or(FamilyPolicy::Both).as_str()
            ])?;
        Ok((self.tx.last_insert_rowid(), secret))
    }

    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}
