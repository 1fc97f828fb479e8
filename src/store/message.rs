//! A DNS UPDATE message's write (RFC 2136 §3.2–3.4) in SQL: what the message's
//! names hold, read under the write lock, handed to the intake's judge, and the
//! difference written in the same transaction — addresses into `records`,
//! `_acme-challenge` values into `acme_txt` — held to the `[limits]` bounds.
//! The rules (prerequisites, RFC semantics, policy) are the intake's; this is
//! their SQL.

use super::db::{
    bump_generation, check_domain_held, check_token_held, text_at, Result, Store, StoreError,
};
use super::history::record_change;
use super::update::{check_family_room, check_room_for_name, replace_family};
use crate::os::clock::now_unix;
use crate::update::acme::{expiry_cutoff, CHALLENGE_LABEL, VALUES_PER_NAME};
use crate::update::address::Family;
use crate::update::bounds::Bounds;
use crate::update::ledger::{Holding, Judge, MessageApplied, MessageName, Provenance, Unmet};
use rusqlite::{params, Connection};

/// The name `acme_txt` keys an owner name's values by: NAME for
/// `_acme-challenge.NAME`; `None` for any other owner name.
fn acme_key(owner: &str) -> Option<&str> {
    owner
        .strip_prefix(CHALLENGE_LABEL)
        .and_then(|r| r.strip_prefix('.'))
}

impl Store {
    fn holding(conn: &Connection, m: &MessageName, now: i64) -> Result<Holding> {
        let mut h = Holding {
            v4: Self::current(conn, &m.zone, &m.name, Family::V4)?,
            v6: Self::current(conn, &m.zone, &m.name, Family::V6)?,
            txt: Vec::new(),
        };
        if let Some(key) = acme_key(&m.name) {
            let mut st = conn.prepare_cached(
                "SELECT value FROM acme_txt WHERE zone = ?1 AND name = ?2 AND written > ?3 ORDER BY id",
            )?;
            let mut rows = st.query(params![m.zone, key, expiry_cutoff(now)])?;
            while let Some(r) = rows.next()? {
                h.txt.push(text_at(r, 0)?.to_string());
            }
        }
        Ok(h)
    }

    /// What `names` hold now, in one read.
    pub fn holdings(&self, names: &[MessageName]) -> Result<Vec<Holding>> {
        let tx = self.conn.unchecked_transaction()?;
        let now = now_unix();
        names.iter().map(|m| Self::holding(&tx, m, now)).collect()
    }

    /// Apply one message: `Ok(Err(unmet))` when `judge` finds a prerequisite that
    /// does not hold (nothing written); see `Ledger::apply_message`.
    pub fn apply_message(
        &mut self,
        token: i64,
        owner: i64,
        names: &[MessageName],
        judge: &Judge<'_>,
        limits: &Bounds,
        from: &Provenance,
    ) -> Result<std::result::Result<MessageApplied, Unmet>> {
        self.write_tx(|tx| {
            check_token_held(tx, token, owner)?;
            for d in names.iter().filter_map(|m| m.domain.as_ref()) {
                check_domain_held(tx, d.id, &d.name, Some(owner))?;
            }
            let now = now_unix();
            let before = names
                .iter()
                .map(|m| Self::holding(tx, m, now))
                .collect::<Result<Vec<_>>>()?;
            let after = match judge(&before) {
                Ok(after) => after,
                Err(unmet) => return Ok(Err(unmet)),
            };
            if after.len() != names.len() {
                return Err(StoreError::Db(format!(
                    "a message judged {} names into {}",
                    names.len(),
                    after.len()
                )));
            }
            let mut zones: Vec<&str> = Vec::new();
            for ((m, b), a) in names.iter().zip(&before).zip(&after) {
                if b == a {
                    continue;
                }
                let Some(domain) = &m.domain else {
                    return Err(StoreError::Invalid(format!(
                        "{} may not be written by this message",
                        m.name
                    )));
                };
                check_message_limits(tx, m, b, a, limits, now)?;
                for (f, was, will) in [(Family::V4, &b.v4, &a.v4), (Family::V6, &b.v6, &a.v6)] {
                    if was != will {
                        replace_family(tx, &m.zone, &m.name, domain.id, f, will)?;
                    }
                }
                if b.txt != a.txt {
                    write_values(tx, m, domain.id, &b.txt, &a.txt, now)?;
                }
                if !zones.contains(&m.zone.as_str()) {
                    zones.push(&m.zone);
                }
            }
            let mut serials = Vec::with_capacity(zones.len());
            for z in zones {
                serials.push((z.to_string(), bump_generation(tx, z)?));
            }
            // SPEC 15: the history of each changed address set, in this transaction.
            for ((m, b), a) in names.iter().zip(&before).zip(&after) {
                let serial = serials
                    .iter()
                    .find(|(z, _)| *z == m.zone)
                    .map_or(0, |(_, s)| *s);
                for (f, was, will) in [(Family::V4, &b.v4, &a.v4), (Family::V6, &b.v6, &a.v6)] {
                    if was != will {
                        record_change(tx, now, &m.zone, &m.name, f, was, will, from, serial)?;
                    }
                }
            }
            Ok(Ok(MessageApplied {
                before,
                after,
                serials,
            }))
        })
    }
}

/// The `_acme-challenge` values of one name from `before` to `after`: removed
/// ones deleted, new ones written now (newest last), at most the newest
/// `VALUES_PER_NAME` kept, as for the acme-dns call.
fn write_values(
    conn: &Connection,
    m: &MessageName,
    domain: i64,
    before: &[String],
    after: &[String],
    now: i64,
) -> Result<()> {
    let Some(key) = acme_key(&m.name) else {
        return Err(StoreError::Invalid(format!(
            "{} is not an _acme-challenge name",
            m.name
        )));
    };
    let mut del =
        conn.prepare_cached("DELETE FROM acme_txt WHERE zone = ?1 AND name = ?2 AND value = ?3")?;
    for gone in before.iter().filter(|v| !after.contains(v)) {
        del.execute(params![m.zone, key, gone])?;
    }
    let mut ins = conn.prepare_cached(
        "INSERT INTO acme_txt(zone, name, value, written, domain) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for new in after.iter().filter(|v| !before.contains(v)) {
        ins.execute(params![m.zone, key, new, now, domain])?;
    }
    conn.prepare_cached(
        "DELETE FROM acme_txt WHERE zone = ?1 AND name = ?2 AND id NOT IN
            (SELECT id FROM acme_txt WHERE zone = ?1 AND name = ?2 ORDER BY id DESC LIMIT ?3)",
    )?
    .execute(params![m.zone, key, VALUES_PER_NAME as i64])?;
    Ok(())
}

/// SPEC 13's bounds for one changed name: a family may not grow past
/// `records_per_name`; a name that comes to hold records may not take its
/// domain past `names_per_domain` (only growth is refused, as for HTTP).
fn check_message_limits(
    conn: &Connection,
    m: &MessageName,
    before: &Holding,
    after: &Holding,
    limits: &Bounds,
    now: i64,
) -> Result<()> {
    check_family_room(&m.name, Family::V4, before.v4.len(), after.v4.len(), limits)?;
    check_family_room(&m.name, Family::V6, before.v6.len(), after.v6.len(), limits)?;
    if before.is_empty() && !after.is_empty() {
        if let Some(d) = &m.domain {
            check_room_for_name(conn, d, &m.name, limits.names_per_domain, now)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewToken;
    use crate::store::ScratchDb;
    use crate::update::Domain;
    use std::net::IpAddr;

    struct Fixture {
        s: Store,
        _db: ScratchDb,
        domain: Domain,
        token: i64,
        owner: i64,
    }

    fn fixture(tag: &str) -> Fixture {
        let (mut s, db) = ScratchDb::open(&format!("msg-{tag}"), &["dedyn.example"]);
        let b = s.batch().expect("batch");
        b.add_user("a@x.org").expect("user");
        let owner = b.user_id("a@x.org").expect("owner");
        b.add_domain("a.dedyn.example", "dedyn.example", owner)
            .expect("domain");
        let token = b
            .add_token(
                owner,
                &NewToken {
                    hash: [7; 32],
                    ..NewToken::default()
                },
            )
            .expect("token");
        b.commit().expect("commit");
        let domain = s
            .domain_holding("a.dedyn.example")
            .expect("query")
            .expect("held");
        Fixture {
            s,
            _db: db,
            domain,
            token,
            owner,
        }
    }

    fn name(f: &Fixture, n: &str) -> MessageName {
        MessageName {
            name: n.into(),
            zone: "dedyn.example".into(),
            domain: Some(f.domain.clone()),
        }
    }

    const DNS: Provenance = Provenance {
        via: crate::update::ledger::Via::DnsUpdate,
        client: None,
        token: None,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_message_writes_addresses_and_values_in_one_transaction_and_reads_them_back() {
        let mut f = fixture("write");
        let names = [
            name(&f, "a.dedyn.example"),
            name(&f, "_acme-challenge.a.dedyn.example"),
        ];
        let judge = |before: &[Holding]| {
            assert!(before.iter().all(Holding::is_empty), "{before:?}");
            Ok(vec![
                Holding {
                    v4: vec![ip("192.0.2.1")],
                    v6: vec![ip("2001:db8::1")],
                    txt: vec![],
                },
                Holding {
                    txt: vec!["one".into(), "two".into(), "three".into()],
                    ..Holding::default()
                },
            ])
        };
        let (t, o) = (f.token, f.owner);
        let done =
            f.s.apply_message(t, o, &names, &judge, &Bounds::NONE, &DNS)
                .expect("db")
                .expect("met");
        assert_eq!(done.serials.len(), 1);
        let now = f.s.holdings(&names).expect("read");
        assert_eq!(now[0].v4, vec![ip("192.0.2.1")]);
        assert_eq!(now[0].v6, vec![ip("2001:db8::1")]);
        // Keep-two, as for the acme-dns call: the newest two.
        assert_eq!(now[1].txt, vec!["two".to_string(), "three".to_string()]);
        let a =
            f.s.records("dedyn.example", "a.dedyn.example")
                .expect("records");
        assert_eq!(a, vec![ip("192.0.2.1"), ip("2001:db8::1")]);
    }

    #[test]
    fn an_unmet_prerequisite_or_an_unchanged_message_writes_nothing() {
        let mut f = fixture("unmet");
        let names = [name(&f, "a.dedyn.example")];
        let generation = |s: &Store| s.generations("dedyn.example").expect("g").expect("row").0;
        let g0 = generation(&f.s);
        let (t, o) = (f.token, f.owner);
        let unmet =
            f.s.apply_message(
                t,
                o,
                &names,
                &|_: &[Holding]| Err(Unmet::NxRrset),
                &Bounds::NONE,
                &DNS,
            )
            .expect("db");
        assert_eq!(unmet.unwrap_err(), Unmet::NxRrset);
        let same =
            f.s.apply_message(
                t,
                o,
                &names,
                &|b: &[Holding]| Ok(b.to_vec()),
                &Bounds::NONE,
                &DNS,
            )
            .expect("db")
            .expect("met");
        assert!(same.serials.is_empty());
        assert_eq!(generation(&f.s), g0, "nothing written");
    }

    #[test]
    fn a_message_is_held_to_the_bounds_and_to_names_the_token_may_write() {
        let mut f = fixture("bounds");
        let (t, o) = (f.token, f.owner);
        let names = [name(&f, "a.dedyn.example")];
        let two = |_: &[Holding]| {
            Ok(vec![Holding {
                v4: vec![ip("192.0.2.1"), ip("192.0.2.2")],
                ..Holding::default()
            }])
        };
        let one_per_name = Bounds {
            records_per_name: 1,
            ..Bounds::NONE
        };
        let e =
            f.s.apply_message(t, o, &names, &two, &one_per_name, &DNS)
                .unwrap_err();
        assert!(
            matches!(&e, StoreError::OverLimit(m) if m.contains("records_per_name")),
            "{e}"
        );
        let read_only = [MessageName {
            domain: None,
            ..name(&f, "a.dedyn.example")
        }];
        let e =
            f.s.apply_message(t, o, &read_only, &two, &Bounds::NONE, &DNS)
                .unwrap_err();
        assert!(matches!(&e, StoreError::Invalid(_)), "{e}");
        let now = f.s.holdings(&names).expect("read");
        assert!(now[0].is_empty(), "nothing written: {now:?}");
    }
}
