//! The update write transaction (all names or none, re-checked under the write
//! lock, held to the `[limits]` bounds), its dry run for `explain`, and the
//! `Directory` the pipeline reads.

use super::db::{
    addr_blob, blob_addr, bump_generation, check_domain_held, check_token_held, Result, Store,
    StoreError,
};
use super::history::record_change;
use crate::net::cidr::Cidr;
use crate::net::name::quoted;
use crate::os::clock::now_unix;
use crate::update::acme::expiry_cutoff;
use crate::update::address::Family;
use crate::update::bounds::Bounds;
use crate::update::directory::Scope;
use crate::update::directory::TsigKey;
use crate::update::ledger::{
    AcmeWriter, Applied, Decide, FamilyRecords, Holding, Judge, Ledger, LedgerError,
    MessageApplied, MessageName, Provenance,
};
use crate::update::{Directory, DirectoryError, Domain, FamilyPolicy, NamePlan, Outcome, Token};
use log::warn;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

impl Store {
    // ---- records ----

    pub(super) fn current(
        conn: &Connection,
        zone: &str,
        name: &str,
        f: Family,
    ) -> Result<Vec<IpAddr>> {
        let mut st = conn.prepare_cached(
            "SELECT addr FROM records WHERE zone = ?1 AND name = ?2 AND type = ?3 ORDER BY addr",
        )?;
        let rows = st.query_map(params![zone, name, f.rtype()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            match blob_addr(&b?) {
                Ok(a) => out.push(a),
                Err(len) => bad_row_read(zone, name, f, len),
            }
        }
        Ok(out)
    }

    /// The A and AAAA records stored for `name` (A first, numeric order).
    pub fn records(&self, zone: &str, name: &str) -> Result<Vec<IpAddr>> {
        let mut out = Self::current(&self.conn, zone, name, Family::V4)?;
        out.extend(Self::current(&self.conn, zone, name, Family::V6)?);
        Ok(out)
    }

    /// Apply an update plan atomically: all names or none. `decide` turns the
    /// records stored now into the records after the update (and the outcome to
    /// report); the store only reads and writes. Nothing is written when nothing
    /// changes (checked first without taking the write lock).
    pub fn apply_with(
        &mut self,
        names: &[NamePlan],
        from: &Provenance,
        owner: i64,
        decide: &Decide,
        limits: &Bounds,
    ) -> Result<Applied> {
        // Before the read too: an update that changes nothing is `good` as well.
        self.check_same_file()?;
        {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Deferred)?;
            let (applied, changes) = Self::compute(&tx, names, decide)?;
            if changes.is_empty() {
                return Ok(applied);
            }
        }
        self.write_tx(|tx| {
            Self::check_still_held(tx, names, from.token, owner)?;
            let (mut applied, changes) = Self::compute(tx, names, decide)?;
            Self::check_limits(tx, names, &applied, limits)?;
            Self::write_records(tx, &changes)?;
            let mut zones: Vec<&str> = changes.iter().map(|(n, _, _)| n.zone.as_str()).collect();
            zones.sort_unstable();
            zones.dedup();
            for z in zones {
                let serial = bump_generation(tx, z)?;
                applied.serials.push((z.to_string(), serial));
            }
            Self::write_history(tx, names, &applied, from)?;
            Ok(applied)
        })
    }

    /// SPEC 15: a history row per changed name and family, in the update's own
    /// transaction (last changed and last seen come with the workers' batch).
    fn write_history(
        conn: &Connection,
        names: &[NamePlan],
        applied: &Applied,
        from: &Provenance,
    ) -> Result<()> {
        let now = now_unix();
        for (n, sets) in names.iter().zip(&applied.records) {
            let serial = applied
                .serials
                .iter()
                .find(|(z, _)| *z == n.zone)
                .map_or(0, |(_, s)| *s);
            for f in Family::BOTH {
                let s = &sets[f as usize];
                if s.before != s.after {
                    record_change(
                        conn, now, &n.zone, &n.name, f, &s.before, &s.after, from, serial,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The plan was made outside the write transaction: make sure, under the write
    /// lock, that the token still exists and every domain is still the owner's (an
    /// admin command may have revoked or removed it in between, and a removed
    /// domain's id may be reused by a new registration).
    fn check_still_held(
        conn: &Connection,
        names: &[NamePlan],
        token: Option<i64>,
        owner: i64,
    ) -> Result<()> {
        if let Some(token) = token {
            check_token_held(conn, token, owner)?;
        }
        for n in names {
            check_domain_held(conn, n.domain_id, &n.domain, Some(owner))?;
        }
        Ok(())
    }

    /// Replace the records of each changed (name, family) by its new set.
    fn write_records(conn: &Connection, changes: &[Change<'_>]) -> Result<()> {
        for (n, f, after) in changes {
            replace_family(conn, &n.zone, &n.name, n.domain_id, *f, after)?;
        }
        Ok(())
    }

    /// What `apply_with` would do with the same `decide` and `limits`, without
    /// writing (`explain`).
    pub fn dry_run(
        &mut self,
        names: &[NamePlan],
        decide: &Decide,
        limits: &Bounds,
    ) -> Result<Applied> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (mut applied, changes) = Self::compute(&tx, names, decide)?;
        if !changes.is_empty() {
            Self::check_limits(&tx, names, &applied, limits)?;
        }
        let mut zones: Vec<String> = changes.iter().map(|(n, _, _)| n.zone.clone()).collect();
        drop(tx);
        zones.sort_unstable();
        zones.dedup();
        for z in zones {
            let serial = self.pending_serial(&z)?;
            applied.serials.push((z, serial));
        }
        Ok(applied)
    }

    /// Read each name's records, ask `decide`, and collect the outcomes and the
    /// (name, family) pairs whose records change.
    fn compute<'p>(
        conn: &Connection,
        names: &'p [NamePlan],
        decide: &Decide,
    ) -> Result<(Applied, Vec<Change<'p>>)> {
        let mut applied = Applied::default();
        let mut changes = Vec::new();
        for n in names {
            let mut out = [Outcome::Unchanged; 2];
            let mut sets: [FamilyRecords; 2] = Default::default();
            for f in Family::BOTH {
                let before = Self::current(conn, &n.zone, &n.name, f)?;
                let (after, outcome) = decide(n, f, &before);
                out[f as usize] = outcome;
                if before != after {
                    changes.push((n, f, after.clone()));
                }
                sets[f as usize] = FamilyRecords { before, after };
            }
            applied.outcomes.push((n.name.clone(), out));
            applied.records.push(sets);
        }
        Ok((applied, changes))
    }

    /// SPEC 13's bounds on what `applied` would leave (checked under the write
    /// lock, so concurrent updates cannot both squeeze under a bound). Only growth
    /// is refused: a name or domain already over a lowered bound may still be
    /// updated as long as it does not grow.
    fn check_limits(
        conn: &Connection,
        names: &[NamePlan],
        applied: &Applied,
        limits: &Bounds,
    ) -> Result<()> {
        let over = |m: String| Err(StoreError::OverLimit(m));
        for (n, sets) in names.iter().zip(&applied.records) {
            for f in Family::BOTH {
                let s = &sets[f as usize];
                check_family_room(&n.name, f, s.before.len(), s.after.len(), limits)?;
            }
        }
        let max = limits.names_per_domain;
        if max == 0 {
            return Ok(());
        }
        // Per domain: names that come to hold records, less names whose records
        // are all deleted (they free their place).
        let mut delta: Vec<(&NamePlan, i64)> = Vec::new();
        for (n, [a, aaaa]) in names.iter().zip(&applied.records) {
            let held = !a.before.is_empty() || !aaaa.before.is_empty();
            let holds = !a.after.is_empty() || !aaaa.after.is_empty();
            let d = i64::from(holds) - i64::from(held);
            match delta.iter_mut().find(|(p, _)| p.domain_id == n.domain_id) {
                Some((_, sum)) => *sum += d,
                None => delta.push((n, d)),
            }
        }
        let now = now_unix();
        for (n, d) in delta.into_iter().filter(|(_, d)| *d > 0) {
            let has = names_in_domain(conn, n.domain_id, now)?;
            let will = has.saturating_add(d).max(0) as u64;
            if Bounds::over(max, will) {
                return over(format!(
                    "limits.names_per_domain: {} already has {has} names with records; this update would make it {will} (at most {max})",
                    n.domain
                ));
            }
        }
        Ok(())
    }
}

/// `[limits] names_per_domain` counts these (SPEC 13, 17): the names of the domain
/// `domain` (its id) that hold records at `now` — address names and live
/// `_acme-challenge` names alike (a name whose values all expired frees its place).
pub(super) fn names_in_domain(conn: &Connection, domain: i64, now: i64) -> Result<i64> {
    // '_acme-challenge.' is `update::acme::CHALLENGE_LABEL`: the owner name of the
    // TXT record, so that the UNION counts a DNS name once whichever table holds it.
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM (
                SELECT name FROM records WHERE domain = ?1
                UNION
                SELECT '_acme-challenge.' || name FROM acme_txt WHERE domain = ?1 AND written > ?2)",
        )?
        .query_row(params![domain, expiry_cutoff(now)], |r| r.get(0))?)
}

/// Replace the `f` records of `name` by `after` (the one write of an address
/// set, for HTTP updates and DNS UPDATE messages alike).
pub(super) fn replace_family(
    conn: &Connection,
    zone: &str,
    name: &str,
    domain: i64,
    f: Family,
    after: &[IpAddr],
) -> Result<()> {
    conn.prepare_cached("DELETE FROM records WHERE zone = ?1 AND name = ?2 AND type = ?3")?
        .execute(params![zone, name, f.rtype()])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO records(zone, name, type, addr, domain) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for a in after {
        ins.execute(params![zone, name, f.rtype(), addr_blob(a), domain])?;
    }
    Ok(())
}

/// SPEC 13: a family of `name` going from `was` to `will` records may not grow
/// past `records_per_name` (a name already over a lowered bound may shrink).
pub(super) fn check_family_room(
    name: &str,
    f: Family,
    was: usize,
    will: usize,
    limits: &Bounds,
) -> Result<()> {
    let max = limits.records_per_name;
    if will > was && Bounds::over(max, will as u64) {
        return Err(StoreError::OverLimit(format!(
            "limits.records_per_name: {name} would hold {will} {} records (at most {max})",
            f.rtype()
        )));
    }
    Ok(())
}

/// SPEC 13/17: one more name holding records (`new_name`, an owner name) in
/// `domain` may not take it past `max` (`0` = no bound); `OverLimit` naming the bound.
pub(super) fn check_room_for_name(
    conn: &Connection,
    domain: &Domain,
    new_name: &str,
    max: u64,
    now: i64,
) -> Result<()> {
    if max == 0 {
        return Ok(());
    }
    let has = names_in_domain(conn, domain.id, now)?;
    let will = has.saturating_add(1).max(0) as u64;
    if Bounds::over(max, will) {
        return Err(StoreError::OverLimit(format!(
            "limits.names_per_domain: {} already has {has} names with records; {new_name} would make it {will} (at most {max})",
            domain.name
        )));
    }
    Ok(())
}

/// Whether an update has logged a malformed address row yet (see `bad_row_read`).
static BAD_ROW_LOGGED: AtomicBool = AtomicBool::new(false);

/// An address row that is not 4 or 16 bytes, met while reading a name's records:
/// the update goes on without it (as before), but the first one in a process is
/// logged, naming it. Only the first: a client that keeps sending its unchanged
/// address would read the row again on every update. Every publication of the
/// zone reports each such row anyway, and counts it (`zone_rows_left_out`).
fn bad_row_read(zone: &str, name: &str, f: Family, len: usize) {
    if !BAD_ROW_LOGGED.swap(true, Ordering::Relaxed) {
        warn!(
            "zone {zone}: records row {} {} holds {len} bytes, not an address: updates read the name without it (fix or delete the row; updates log only the first such row, the publisher every one)",
            quoted(name),
            f.rtype()
        );
    }
}

/// One (name, family) whose records change, with its records after the update.
type Change<'p> = (&'p NamePlan, Family, Vec<IpAddr>);

/// The worker's port: the store's own methods, their failures in the rules' words.
impl Ledger for Store {
    fn apply(
        &mut self,
        names: &[NamePlan],
        from: &Provenance,
        owner: i64,
        decide: &Decide,
        limits: &Bounds,
    ) -> std::result::Result<Applied, LedgerError> {
        Ok(self.apply_with(names, from, owner, decide, limits)?)
    }

    fn dry_run(
        &mut self,
        names: &[NamePlan],
        decide: &Decide,
        limits: &Bounds,
    ) -> std::result::Result<Applied, LedgerError> {
        Ok(Store::dry_run(self, names, decide, limits)?)
    }

    fn acme_set(
        &mut self,
        domain: &Domain,
        name: &str,
        value: &str,
        who: AcmeWriter,
        limits: &Bounds,
    ) -> std::result::Result<u32, LedgerError> {
        Ok(Store::acme_set(self, domain, name, value, who, limits)?)
    }

    fn apply_message(
        &mut self,
        token: i64,
        owner: i64,
        names: &[MessageName],
        judge: &Judge<'_>,
        limits: &Bounds,
        from: &Provenance,
    ) -> std::result::Result<MessageApplied, LedgerError> {
        Store::apply_message(self, token, owner, names, judge, limits, from)?
            .map_err(LedgerError::Unmet)
    }

    fn holdings(
        &mut self,
        names: &[MessageName],
    ) -> std::result::Result<Vec<Holding>, LedgerError> {
        Ok(Store::holdings(self, names)?)
    }

    fn soa_serial(&mut self, zone: &str) -> std::result::Result<Option<u32>, LedgerError> {
        Ok(self
            .publication(zone)?
            .map(|p| p.published_serial.unwrap_or(p.pending_serial)))
    }
}

/// The one translation of a store failure into the pipeline's directory error.
fn dir_err(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

/// The token row `token_row` reads, found by `$condition` on `?1`: the whole
/// statement is a literal, so that the per-request lookup formats nothing.
macro_rules! token_select {
    ($condition:literal) => {
        concat!(
            "SELECT t.id, t.owner, u.email, t.expires, t.allowed_subnets,
                EXISTS(SELECT 1 FROM token_domains d WHERE d.token = t.id) OR t.domains <> '',
                t.family, t.scope, t.tsig_name, t.tsig_algorithm, t.tsig_secret
             FROM tokens t JOIN users u ON u.id = t.owner WHERE ",
            $condition
        )
    };
}

impl Store {
    /// One token found by `select` (a `token_select!`) on `key` (the hash, or the TSIG key name),
    /// with its TSIG key when it is one. A stored policy that does not parse
    /// fails closed (logged, `None`).
    fn token_row(
        &self,
        select: &'static str,
        key: &dyn rusqlite::ToSql,
    ) -> std::result::Result<Option<(Token, Option<TsigKey>)>, DirectoryError> {
        // Scoped or not is one index probe: the --domain list itself (which may be
        // long) is not read for a scoped token; `token_covers` asks about it name
        // by name. The text column is the fallback that keeps a token scoped
        // should its rows ever be missing (it is '' for an unscoped token).
        let mut st = self.conn.prepare_cached(select).map_err(dir_err)?;
        let row = st
            .query_row([key], |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ),
                    (
                        r.get::<_, String>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ),
                    (
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, Option<Vec<u8>>>(10)?,
                    ),
                ))
            })
            .optional()
            .map_err(dir_err)?;
        let Some(((id, owner, owner_email, expires), (subnets, scoped, family, scope), tsig)) = row
        else {
            return Ok(None);
        };
        // A stored policy that does not parse fails closed: read permissively, a
        // dropped subnet could leave the token usable from anywhere, an unknown
        // family would become both.
        let refuse = |what: &str, value: &str| {
            warn!(
                "token {id}: stored {what} {value:?} does not parse: the token is refused until it is replaced (token revoke {id}, token add)"
            );
            Ok(None)
        };
        let mut allowed_subnets = Vec::new();
        for s in subnets.split_whitespace() {
            match s.parse::<Cidr>() {
                Ok(c) => allowed_subnets.push(c),
                Err(_) => return refuse("allowed_subnets entry", s),
            }
        }
        let Some(family) = FamilyPolicy::parse(&family) else {
            return refuse("family", &family);
        };
        let Some(scope) = Scope::parse(&scope) else {
            return refuse("scope", &scope);
        };
        let tsig = match tsig {
            (Some(name), Some(algorithm), Some(secret)) => Some(TsigKey {
                name,
                algorithm,
                secret,
            }),
            _ => None,
        };
        let token = Token {
            id,
            owner,
            owner_email,
            expires,
            allowed_subnets,
            scoped,
            family,
            scope,
        };
        Ok(Some((token, tsig)))
    }
}

impl Directory for Store {
    fn token_by_hash(
        &mut self,
        hash: &[u8; 32],
    ) -> std::result::Result<Option<Token>, DirectoryError> {
        // A TSIG key's hash is of a secret nobody was given: never presentable.
        Ok(self
            .token_row(token_select!("t.hash = ?1"), &&hash[..])?
            .map(|(t, _)| t))
    }

    fn tsig_key(
        &mut self,
        name: &str,
    ) -> std::result::Result<Option<(Token, TsigKey)>, DirectoryError> {
        Ok(self
            .token_row(token_select!("t.tsig_name = ?1"), &name)?
            .and_then(|(t, k)| Some((t, k?))))
    }

    fn domain_holding(
        &mut self,
        name: &str,
    ) -> std::result::Result<Option<Domain>, DirectoryError> {
        Store::domain_holding(self, name).map_err(dir_err)
    }

    fn two_domains_of(&mut self, owner: i64) -> std::result::Result<Vec<Domain>, DirectoryError> {
        Store::two_domains_of(self, owner).map_err(dir_err)
    }

    fn token_covers(
        &mut self,
        token: i64,
        name: &str,
    ) -> std::result::Result<bool, DirectoryError> {
        Store::token_covers(self, token, name).map_err(dir_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewToken;
    use crate::update::address::{ActionSource, AddressAction};
    use crate::update::FamilyPlan;

    fn http(token: i64) -> Provenance {
        Provenance {
            via: crate::update::ledger::Via::Http,
            client: Some("192.0.2.9".parse().unwrap()),
            token: Some(token),
        }
    }

    fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("dedyn-store-{tag}-{}.sqlite3", std::process::id()));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut s = Store::open(&path, "NORMAL").unwrap();
        s.ensure_zones(&["dedyn.example"]).unwrap();
        (s, path)
    }

    /// A user, and a domain of theirs, inserted as the CLI would after its checks.
    fn user_with_domain(s: &mut Store, email: &str, domain: Option<&str>) {
        let b = s.batch().unwrap();
        b.add_user(email).unwrap();
        if let Some(d) = domain {
            let id = b.user_id(email).unwrap();
            b.add_domain(d, "dedyn.example", id).unwrap();
        }
        b.commit().unwrap();
    }

    fn add_token(s: &mut Store, owner: &str) -> i64 {
        let b = s.batch().unwrap();
        let id = b.user_id(owner).unwrap();
        let token = NewToken {
            hash: crate::update::token_hash(owner),
            ..NewToken::default()
        };
        let tok = b.add_token(id, &token).unwrap();
        b.commit().unwrap();
        tok
    }

    fn add_domain(s: &mut Store, name: &str, owner: &str) {
        let b = s.batch().unwrap();
        let id = b.user_id(owner).unwrap();
        b.add_domain(name, "dedyn.example", id).unwrap();
        b.commit().unwrap();
    }

    fn plan_for(s: &Store, name: &str, ip: &str) -> NamePlan {
        let d = s.domain_holding(name).unwrap().unwrap();
        let set = FamilyPlan {
            action: AddressAction::Set(vec![ip.parse().unwrap()]),
            source: ActionSource::Connection,
        };
        let keep = FamilyPlan {
            action: AddressAction::Preserve,
            source: ActionSource::NotNamedForThisName,
        };
        NamePlan {
            name: name.into(),
            domain_id: d.id,
            domain: d.name,
            zone: d.zone,
            v4: set,
            v6: keep,
        }
    }

    #[test]
    fn a_token_revoked_between_plan_and_write_writes_nothing() {
        let (mut s, path) = store("revoked");
        user_with_domain(&mut s, "a@x.org", Some("a.dedyn.example"));
        let tok = add_token(&mut s, "a@x.org");
        let owner = 1; // the first user
        let plan = plan_for(&s, "a.dedyn.example", "1.2.3.4");
        s.revoke_token(tok).unwrap();
        assert!(matches!(
            s.apply_with(
                &[plan],
                &http(tok),
                owner,
                &crate::update::outcome::decide,
                &Bounds::NONE
            ),
            Err(StoreError::Revoked)
        ));
        assert!(s
            .records("dedyn.example", "a.dedyn.example")
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_domain_that_changed_hands_between_plan_and_write_is_not_written() {
        let (mut s, path) = store("gone");
        user_with_domain(&mut s, "a@x.org", Some("a.dedyn.example"));
        user_with_domain(&mut s, "b@x.org", None);
        let tok = add_token(&mut s, "a@x.org");
        let plan = plan_for(&s, "a.dedyn.example", "1.2.3.4");
        let owner_a = 1;
        // Removed and registered again, by someone else: the id may well be reused.
        s.remove_domain("a.dedyn.example").unwrap();
        add_domain(&mut s, "a.dedyn.example", "b@x.org");
        assert!(matches!(
            s.apply_with(&[plan], &http(tok), owner_a, &crate::update::outcome::decide, &Bounds::NONE),
            Err(StoreError::Gone(d)) if d == "a.dedyn.example"
        ));
        assert!(s
            .records("dedyn.example", "a.dedyn.example")
            .unwrap()
            .is_empty());
        let _ = std::fs::remove_file(path);
    }
}
