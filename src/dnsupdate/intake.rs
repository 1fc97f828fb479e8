//! One DNS message from bytes to answer, on a worker, in SPEC 14's order of
//! checks: parse and opcode, TSIG, the zone, the prerequisites' and updates'
//! syntax, the HTTP API's rules for every name, the rate limits, then one write
//! through the ledger — whose judge checks the prerequisites under the write
//! lock. Every answer to a signed message is signed with its key.

use super::job::Transport;
use super::judge::{txt_value, Deletable, Scene};
use super::rcode;
use super::translate::{translate, Change, Update, Value};
use crate::config::settings::Config;
use crate::dns::key::Algorithm;
use crate::dns::name::Name;
use crate::dns::tsig::{self, Checked, KeyMaterial};
use crate::dns::wire::{Class, Message, Opcode, RData, RType, Rcode, Record, Soa};
use crate::net::cidr::mask;
use crate::net::name::quoted;
use crate::os::clock::now_unix;
use crate::publish::{LastUsed, Publisher};
use crate::ratelimit::{auth_key, note_failed_auth, Limiter, Limits};
use crate::update::acme::{check_value, CHALLENGE_LABEL};
use crate::update::address::Family;
use crate::update::directory::{Token, ZonePolicy};
use crate::update::hostname::{check_held, check_updatable};
use crate::update::ledger::{Holding, Ledger, MessageName, Provenance, Via};
use crate::update::{auth, Refusal};
use log::info;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Limiter keys are bounded: a flood from many sources evicts old keys.
const LIMITER_CAPACITY: usize = 100_000;

/// Per source /24 (IPv4) or /64 (IPv6): failed UDP messages and unsigned
/// queries answered before the rest are dropped (SPEC 14: UDP sources can be
/// spoofed, so they never lock anyone out, and no one may use us to reflect).
const UDP_UNTRUSTED: &str = "10/1s, 100/1m";

/// Everything the workers share for DNS messages; the rate limiters are the
/// HTTP service's own (SPEC 14: counted together).
pub struct DnsService {
    pub config: Arc<Config>,
    /// Tells the publisher that something changed (`Publisher::changed`).
    changed: Box<dyn Fn() + Send + Sync>,
    pub last_used: Arc<LastUsed>,
    pub dyndns_limiter: Arc<Limiter<i64>>,
    pub acme_limiter: Arc<Limiter<i64>>,
    pub failed_auth_limiter: Arc<Limiter<IpAddr>>,
    /// Failed or unsigned messages over UDP, per source prefix.
    untrusted: Limiter<IpAddr>,
}

/// A stored key as `tsig` checks it, with the token it belongs to.
struct StoredKey {
    token: Token,
    algorithm: Algorithm,
    secret: Vec<u8>,
}

impl KeyMaterial for StoredKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// What one message did, for its log line.
struct Outcome {
    rcode: Rcode,
    /// The zone, when the message named one of ours.
    zone: String,
    /// What changed or why nothing did (values escaped).
    what: String,
}

impl Outcome {
    fn new(rcode: Rcode, what: impl Into<String>) -> Outcome {
        Outcome {
            rcode,
            zone: String::new(),
            what: what.into(),
        }
    }
}

impl DnsService {
    /// The DNS side of the service; the limiters are the HTTP service's.
    pub fn new(
        config: Arc<Config>,
        publisher: Publisher,
        last_used: Arc<LastUsed>,
        dyndns_limiter: Arc<Limiter<i64>>,
        acme_limiter: Arc<Limiter<i64>>,
        failed_auth_limiter: Arc<Limiter<IpAddr>>,
    ) -> DnsService {
        let untrusted: Limits = UDP_UNTRUSTED.parse().unwrap_or_default();
        DnsService {
            config,
            changed: Box::new(move || publisher.changed()),
            last_used,
            dyndns_limiter,
            acme_limiter,
            failed_auth_limiter,
            untrusted: Limiter::new(untrusted, LIMITER_CAPACITY),
        }
    }

    /// The answer to one message (`None`: drop it); one log line per message.
    pub fn answer(
        &self,
        ledger: &mut dyn Ledger,
        message: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let now = Instant::now();
        let client = source.ip();
        let msg = match Message::parse(message) {
            Ok(m) if !m.header.response => m,
            // An answer sent to us: never answered (no loops between servers).
            Ok(_) => return None,
            Err(e) => {
                let h = e.header.filter(|h| !h.response)?;
                let o = Outcome::new(Rcode::FormErr, format!("{:?}", e.what));
                return self.bare(&h, o, source, transport, now);
            }
        };
        if let Opcode::Other(op) = msg.header.opcode {
            let o = Outcome::new(Rcode::NotImp, format!("opcode {op}"));
            return self.bare(&msg.header, o, source, transport, now);
        }
        if transport == Transport::Tcp
            && self
                .failed_auth_limiter
                .blocked(&auth_key(client), now)
                .is_some()
        {
            let o = Outcome::new(Rcode::Refused, "locked out after failed authentications");
            self.log(source, transport, "-", &o);
            return Some(Message::bare_answer(&msg.header, Rcode::Refused).to_wire());
        }
        let failed_lookup = RefCell::new(None);
        let checked =
            tsig::check_request(message, &msg, now_unix().max(0) as u64, |name: &Name| {
                self.lookup(ledger, name, &failed_lookup)
            });
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                let o = Outcome::new(Rcode::FormErr, format!("malformed TSIG: {e:?}"));
                return self.bare(&msg.header, o, source, transport, now);
            }
        };
        let key_name = checked
            .key_name()
            .map_or("-".to_string(), |n| n.to_string());
        let (outcome, answers) = match (&checked, failed_lookup.into_inner()) {
            (_, Some(e)) => (Outcome::new(Rcode::ServFail, e), Vec::new()),
            (Checked::Failed { error, .. }, None) => {
                let reason = format!("TSIG {} for key {key_name}", error.name());
                match transport {
                    Transport::Tcp => {
                        note_failed_auth(&self.failed_auth_limiter, client, &reason, now)
                    }
                    Transport::Udp => {
                        if !self.may_answer_untrusted(client, transport, now) {
                            return None;
                        }
                    }
                }
                (Outcome::new(Rcode::NotAuth, reason), Vec::new())
            }
            (Checked::Unsigned, None) => {
                if !self.may_answer_untrusted(client, transport, now) {
                    return None;
                }
                match msg.header.opcode {
                    Opcode::Update => (
                        Outcome::new(Rcode::Refused, "unsigned: updates need a TSIG key"),
                        Vec::new(),
                    ),
                    _ => self.query(ledger, &msg),
                }
            }
            (Checked::Valid { key, .. }, None) => match msg.header.opcode {
                Opcode::Update => (self.update(ledger, &msg, key, client, now), Vec::new()),
                _ => self.query(ledger, &msg),
            },
        };
        self.log(source, transport, &key_name, &outcome);
        let mut answer = Message::answer_to(&msg, outcome.rcode);
        answer.header.authoritative = outcome.rcode == Rcode::NoError && !answers.is_empty();
        answer.answers = answers;
        let mut wire = answer.to_wire();
        // SPEC 14: no answer to an unsigned or failed UPDATE is larger than it.
        let trusted = matches!(checked, Checked::Valid { .. });
        if !trusted && msg.header.opcode == Opcode::Update && wire.len() > message.len() {
            wire = Message::bare_answer(&msg.header, outcome.rcode).to_wire();
        }
        Some(tsig::sign_answer(wire, &checked, now_unix().max(0) as u64))
    }

    /// An unsigned header-only answer to a message that failed before its TSIG
    /// was read (dropped over UDP past the source's budget), logged.
    fn bare(
        &self,
        header: &crate::dns::wire::Header,
        o: Outcome,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if !self.may_answer_untrusted(source.ip(), transport, now) {
            return None;
        }
        self.log(source, transport, "-", &o);
        Some(Message::bare_answer(header, o.rcode).to_wire())
    }

    /// Over UDP, a failed or unsigned message from a source prefix that sent
    /// too many is dropped; over TCP (no spoofing) it is always answered.
    fn may_answer_untrusted(&self, client: IpAddr, transport: Transport, now: Instant) -> bool {
        if transport == Transport::Tcp {
            return true;
        }
        let prefix = match client {
            IpAddr::V4(_) => mask(client, 24),
            IpAddr::V6(_) => mask(client, 64),
        };
        self.untrusted.check_and_hit(&prefix, now).is_ok()
    }

    /// The key named in a request's TSIG, with its token; a database failure
    /// is kept in `failed` (the answer is then SERVFAIL).
    fn lookup(
        &self,
        ledger: &mut dyn Ledger,
        name: &Name,
        failed: &RefCell<Option<String>>,
    ) -> Option<StoredKey> {
        let text = name.to_store_form()?;
        match ledger.tsig_key(&text) {
            Ok(Some((token, key))) => Some(StoredKey {
                token,
                algorithm: Algorithm::from_str_name(&key.algorithm)?,
                secret: key.secret,
            }),
            Ok(None) => None,
            Err(e) => {
                *failed.borrow_mut() = Some(format!("key lookup failed: {e}"));
                None
            }
        }
    }

    /// An UPDATE signed by a valid key: SPEC 14 steps 2 (token policy) to 7.
    fn update(
        &self,
        ledger: &mut dyn Ledger,
        msg: &Message,
        key: &StoredKey,
        client: IpAddr,
        now: Instant,
    ) -> Outcome {
        let token = &key.token;
        if let Err(r) =
            auth::check_expiry(token, now_unix()).and_then(|_| auth::check_subnet(token, client))
        {
            return Outcome::new(rcode::of_refusal(&r), r.to_string());
        }
        let zones: Vec<&str> = self.config.zones.iter().map(|z| z.name.as_str()).collect();
        let update = match translate(msg, &zones) {
            Ok(u) => u,
            Err(u) => return Outcome::new(rcode::of_unfit(u), format!("{u:?}")),
        };
        let mut outcome = self.write(ledger, &update, key, client, now);
        outcome.zone = update.zone;
        outcome
    }

    /// Policy, rate limits and the write of a translated UPDATE.
    fn write(
        &self,
        ledger: &mut dyn Ledger,
        update: &Update,
        key: &StoredKey,
        client: IpAddr,
        now: Instant,
    ) -> Outcome {
        let token = &key.token;
        // SPEC 14 step 4 before the policy (step 6): read, then checked again
        // under the write lock by the judge.
        if let Err(o) = self.prerequisites(ledger, update) {
            return o;
        }
        let policy = match self.policy(ledger, update, token) {
            Ok(p) => p,
            Err(r) => return Outcome::new(rcode::of_refusal(&r), r.to_string()),
        };
        // All of the message's domains are counted, or none (as for HTTP).
        let limited = self
            .dyndns_limiter
            .check_and_hit_all(&policy.address_domains, now)
            .and_then(|_| {
                self.acme_limiter
                    .check_and_hit_all(&policy.acme_domains, now)
            });
        if let Err(wait) = limited {
            let r = Refusal::RateLimited(wait);
            return Outcome::new(Rcode::Refused, r.to_string());
        }
        let names: Vec<String> = policy.names.iter().map(|m| m.name.clone()).collect();
        let scene = Scene {
            update,
            names: &names,
            deletable: &policy.deletable,
        };
        let judge = |before: &[Holding]| scene.judge(before);
        let from = Provenance {
            via: Via::DnsUpdate,
            client: Some(client),
            token: Some(token.id),
        };
        let applied = ledger.apply_message(
            token.id,
            token.owner,
            &policy.names,
            &judge,
            &self.config.limits,
            &from,
        );
        match applied {
            Ok(done) => {
                // SPEC 15: last seen (and changed) for the address names it
                // named, as for HTTP; the key's token as last used.
                let seen = policy
                    .names
                    .iter()
                    .zip(done.before.iter().zip(&done.after))
                    .filter_map(|(m, (b, a))| {
                        let d = m.domain.as_ref()?;
                        let addresses = !m.name.starts_with(CHALLENGE_LABEL);
                        let changed = b.v4 != a.v4 || b.v6 != a.v6;
                        addresses.then_some((m.name.as_str(), m.zone.as_str(), d.id, changed))
                    });
                self.last_used.note_update(Some(token.id), seen);
                if !done.serials.is_empty() {
                    (self.changed)();
                }
                Outcome::new(Rcode::NoError, describe(&names, &done.before, &done.after))
            }
            Err(e) => Outcome::new(rcode::of_ledger(&e), e.to_string()),
        }
    }

    /// The prerequisites against what the store holds now (one read).
    fn prerequisites(&self, ledger: &mut dyn Ledger, update: &Update) -> Result<(), Outcome> {
        if update.prereqs.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = Vec::new();
        for n in update.prereqs.iter().map(prereq_name) {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        let read: Vec<MessageName> = names
            .iter()
            .map(|n| MessageName {
                name: n.clone(),
                zone: update.zone.clone(),
                domain: None,
            })
            .collect();
        let holdings = ledger
            .holdings(&read)
            .map_err(|e| Outcome::new(rcode::of_ledger(&e), e.to_string()))?;
        let deletable = vec![Deletable::default(); names.len()];
        let scene = Scene {
            update,
            names: &names,
            deletable: &deletable,
        };
        scene
            .check(&holdings)
            .map_err(|u| Outcome::new(rcode::of_unmet(u), format!("prerequisite not met: {u:?}")))
    }

    /// SPEC 14 step 6 for every change: the name is the key owner's, its token's
    /// `--domain`s cover it, its zone is dynamic; the type is one the key may
    /// write there (A/AAAA with `update` scope and the token's family; TXT only
    /// at `_acme-challenge.NAME` with `acme` scope and a valid value); added
    /// addresses outside the blocked subnets. Prerequisite-only names are read.
    fn policy(
        &self,
        ledger: &mut dyn Ledger,
        update: &Update,
        token: &Token,
    ) -> Result<Policy, Refusal> {
        let mut p = Policy::default();
        for c in &update.changes {
            let name = c.name();
            let (held_name, acme) = match name
                .strip_prefix(CHALLENGE_LABEL)
                .and_then(|r| r.strip_prefix('.'))
            {
                Some(base) => (base.to_string(), true),
                None => (name.to_string(), false),
            };
            if name == update.zone {
                return Err(Refusal::NotYours(format!(
                    "{name}: the apex's records are not updatable"
                )));
            }
            check_type(c, acme, token, self.config.as_ref())?;
            if p.names.iter().any(|m| m.name == name) {
                continue;
            }
            let held = check_held(std::slice::from_ref(&held_name), ledger, token)?;
            check_updatable(&held, self.config.as_ref(), token, ledger)?;
            let domain = held.into_iter().next().map(|(_, d)| d);
            if let Some(d) = &domain {
                let ids = if acme {
                    &mut p.acme_domains
                } else {
                    &mut p.address_domains
                };
                if !ids.contains(&d.id) {
                    ids.push(d.id);
                }
            }
            p.deletable.push(Deletable {
                v4: !acme && token.scope.allows_update() && token.family.allows(Family::V4),
                v6: !acme && token.scope.allows_update() && token.family.allows(Family::V6),
                txt: acme && token.scope.allows_acme(),
            });
            p.names.push(MessageName {
                name: name.to_string(),
                zone: update.zone.clone(),
                domain,
            });
        }
        for n in update.prereqs.iter().map(prereq_name) {
            if !p.names.iter().any(|m| m.name == n) {
                p.deletable.push(Deletable::default());
                p.names.push(MessageName {
                    name: n.to_string(),
                    zone: update.zone.clone(),
                    domain: None,
                });
            }
        }
        Ok(p)
    }

    /// An unsigned or signed query: the SOA of a configured zone's apex
    /// (NOERROR, AA, the one record), NOERROR without an answer for another
    /// name under a configured zone, REFUSED for everything else.
    fn query(&self, ledger: &mut dyn Ledger, msg: &Message) -> (Outcome, Vec<Record>) {
        let [q] = msg.questions.as_slice() else {
            return (
                Outcome::new(Rcode::FormErr, "a query holds one question"),
                Vec::new(),
            );
        };
        let Some(qname) = q.name.to_store_form() else {
            return (
                Outcome::new(Rcode::Refused, "not a zone of this server"),
                Vec::new(),
            );
        };
        let zone = self
            .config
            .zones
            .iter()
            .find(|z| crate::net::name::is_at_or_below(&qname, &z.name));
        let (Some(zone), RType::Soa, Class::In) = (zone, q.rtype, q.class) else {
            return (
                Outcome::new(Rcode::Refused, "only SOA queries for this server's zones"),
                Vec::new(),
            );
        };
        if qname != zone.name {
            let mut o = Outcome::new(Rcode::NoError, format!("SOA {qname}: not an apex"));
            o.zone = zone.name.clone();
            return (o, Vec::new());
        }
        let serial = match ledger.soa_serial(&zone.name) {
            Ok(s) => s.unwrap_or(0),
            Err(e) => return (Outcome::new(Rcode::ServFail, e.to_string()), Vec::new()),
        };
        let ttl = self.config.dns.ttl;
        let soa = Name::from_text(&zone.nameservers[0])
            .and_then(|m| Name::from_text(&zone.hostmaster).map(|r| (m, r)));
        let Ok((mname, rname)) = soa else {
            return (
                Outcome::new(Rcode::ServFail, "the zone's SOA names do not parse"),
                Vec::new(),
            );
        };
        let record = Record {
            name: q.name.clone(),
            rtype: RType::Soa,
            class: Class::In,
            ttl,
            rdata: RData::Soa(Soa {
                mname,
                rname,
                serial,
                refresh: crate::publish::zone::SOA_REFRESH,
                retry: crate::publish::zone::SOA_RETRY,
                expire: crate::publish::zone::SOA_EXPIRE,
                minimum: ttl,
            }),
        };
        let mut o = Outcome::new(Rcode::NoError, format!("SOA {serial}"));
        o.zone = zone.name.clone();
        (o, vec![record])
    }

    /// SPEC 14: one line per message — source, transport, key, zone, rcode and
    /// what changed, values escaped.
    fn log(&self, source: SocketAddr, transport: Transport, key: &str, o: &Outcome) {
        let zone = if o.zone.is_empty() { "-" } else { &o.zone };
        info!(
            "dns-update {} {} key {} zone {}: {} {}",
            source.ip(),
            transport.as_str(),
            quoted(key),
            zone,
            o.rcode.name(),
            o.what
        );
    }
}

/// What `policy` found: the names to read and write, what each may lose to a
/// "delete all", and the domains each rate limit counts.
#[derive(Default)]
struct Policy {
    names: Vec<MessageName>,
    deletable: Vec<Deletable>,
    address_domains: Vec<i64>,
    acme_domains: Vec<i64>,
}

fn prereq_name(p: &super::translate::Prereq) -> &str {
    use super::translate::Prereq;
    match p {
        Prereq::NameInUse(n)
        | Prereq::NameNotInUse(n)
        | Prereq::RrsetExists(n, _)
        | Prereq::RrsetNotExists(n, _)
        | Prereq::RrsetIs(n, _, _) => n,
    }
}

/// The type rules of one change (SPEC 14 step 6).
fn check_type(
    c: &Change,
    acme: bool,
    token: &Token,
    zones: &dyn ZonePolicy,
) -> Result<(), Refusal> {
    let name = c.name();
    let refuse = |why: String| Err(Refusal::NotYours(format!("{name}: {why}")));
    let rtype = match c {
        Change::Add(_, v) | Change::DeleteRr(_, v) => match v {
            Value::Addr(IpAddr::V4(_)) => RType::A,
            Value::Addr(IpAddr::V6(_)) => RType::Aaaa,
            Value::Txt(_) => RType::Txt,
            Value::Other(t) => *t,
        },
        Change::DeleteRrset(_, t) => *t,
        Change::DeleteAll(_) => return Ok(()),
    };
    match (rtype, acme) {
        (RType::A | RType::Aaaa, false) => {
            let f = if rtype == RType::A {
                Family::V4
            } else {
                Family::V6
            };
            if !token.scope.allows_update() {
                return refuse(format!(
                    "token {} has scope {}, not update",
                    token.id,
                    token.scope.as_str()
                ));
            }
            if !token.family.allows(f) {
                return refuse(format!(
                    "token {} may not write {} records",
                    token.id,
                    f.rtype()
                ));
            }
            if let Change::Add(_, Value::Addr(a)) = c {
                if zones.blocked_subnets().iter().any(|b| b.contains(*a)) {
                    return refuse(format!("{a} is in a blocked subnet"));
                }
            }
            Ok(())
        }
        (RType::Txt, true) => {
            if !token.scope.allows_acme() {
                return refuse(format!(
                    "token {} has scope {}, not acme",
                    token.id,
                    token.scope.as_str()
                ));
            }
            if let Change::Add(_, v) = c {
                let Some(value) = txt_value(v) else {
                    return refuse("a TXT value is one character-string".into());
                };
                check_value(&value).map_err(|e| Refusal::NotYours(format!("{name}: {e}")))?;
            }
            Ok(())
        }
        (t, _) => refuse(format!("type {t:?} may not be updated here")),
    }
}

/// What changed, escaped: `NAME A +192.0.2.1 -192.0.2.2; ...` (or "no change").
fn describe(names: &[String], before: &[Holding], after: &[Holding]) -> String {
    let mut parts = Vec::new();
    for ((n, b), a) in names.iter().zip(before).zip(after) {
        let mut diff = Vec::new();
        for (t, was, will) in [("A", &b.v4, &a.v4), ("AAAA", &b.v6, &a.v6)] {
            diff.extend(
                will.iter()
                    .filter(|x| !was.contains(x))
                    .map(|x| format!("{t} +{x}")),
            );
            diff.extend(
                was.iter()
                    .filter(|x| !will.contains(x))
                    .map(|x| format!("{t} -{x}")),
            );
        }
        diff.extend(
            a.txt
                .iter()
                .filter(|x| !b.txt.contains(x))
                .map(|x| format!("TXT +{}", quoted(x))),
        );
        diff.extend(
            b.txt
                .iter()
                .filter(|x| !a.txt.contains(x))
                .map(|x| format!("TXT -{}", quoted(x))),
        );
        if !diff.is_empty() {
            parts.push(format!("{} {}", quoted(n), diff.join(" ")));
        }
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::key::Key;
    use crate::dns::wire::{Header, Question};
    use crate::store::{NewToken, ScratchDb, Store};
    use crate::update::directory::{Scope, TsigKey};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ZONE: &str = "dedyn.example";
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    struct Fixture {
        dns: DnsService,
        store: Store,
        _db: ScratchDb,
        changed: Arc<AtomicUsize>,
    }

    /// A real database with alice's domain and two TSIG keys: `k.update`
    /// (scope update) and `k.acme` (scope acme); bob holds bob.dedyn.example.
    fn fixture(tag: &str) -> Fixture {
        let (mut store, db) = ScratchDb::open(&format!("dnsin-{tag}"), &[ZONE]);
        let b = store.batch().expect("batch");
        for (email, domain) in [
            ("alice@x.org", "alice.dedyn.example"),
            ("bob@x.org", "bob.dedyn.example"),
        ] {
            b.add_user(email).expect("user");
            let owner = b.user_id(email).expect("id");
            b.add_domain(domain, ZONE, owner).expect("domain");
        }
        let alice = b.user_id("alice@x.org").expect("id");
        for (i, (name, scope)) in [("k.update", Scope::Update), ("k.acme", Scope::Acme)]
            .into_iter()
            .enumerate()
        {
            let t = NewToken {
                hash: [i as u8 + 1; 32],
                scope,
                tsig: Some(TsigKey {
                    name: name.into(),
                    algorithm: "hmac-sha256".into(),
                    secret: SECRET.to_vec(),
                }),
                ..NewToken::default()
            };
            b.add_token(alice, &t).expect("token");
        }
        b.commit().expect("commit");
        let text = format!(
            "[rate_limit]\ndyndns_per_domain = \"\"\n[[zone]]\nname = \"{ZONE}\"\nfile = \"{}.zone\"\nnameservers = [\"ns1.dedyn.example.\"]\n",
            db.path.display()
        );
        let config = Arc::new(Config::parse(&text, None).expect("config"));
        let changed = Arc::new(AtomicUsize::new(0));
        let c = changed.clone();
        let rl = &config.rate_limit;
        let dns = DnsService {
            untrusted: Limiter::new(UDP_UNTRUSTED.parse().unwrap(), 100),
            changed: Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
            last_used: Arc::default(),
            dyndns_limiter: Arc::new(Limiter::new(rl.dyndns_per_domain.clone(), 100)),
            acme_limiter: Arc::new(Limiter::new(rl.acme_per_domain.clone(), 100)),
            failed_auth_limiter: Arc::new(Limiter::new(rl.failed_auth_per_ip.clone(), 100)),
            config,
        };
        Fixture {
            dns,
            store,
            _db: db,
            changed,
        }
    }

    fn name(s: &str) -> Name {
        Name::from_text(s).unwrap()
    }

    fn header(opcode: Opcode) -> Header {
        Header::request(4242, opcode)
    }

    fn update(updates: Vec<Record>, prereqs: Vec<Record>) -> Message {
        Message {
            header: header(Opcode::Update),
            questions: vec![Question {
                name: name("dedyn.example."),
                rtype: RType::Soa,
                class: Class::In,
            }],
            answers: prereqs,
            authorities: updates,
            additionals: vec![],
            edns: None,
            tsig: None,
        }
    }

    fn rec(owner: &str, rtype: RType, class: Class, ttl: u32, rdata: RData) -> Record {
        Record {
            name: name(owner),
            rtype,
            class,
            ttl,
            rdata,
        }
    }

    fn add_a(owner: &str, a: &str) -> Record {
        rec(owner, RType::A, Class::In, 60, RData::A(a.parse().unwrap()))
    }

    fn key(n: &str, secret: &[u8]) -> Key {
        Key {
            name: name(n),
            algorithm: Algorithm::HmacSha256,
            secret: secret.to_vec(),
        }
    }

    fn source() -> SocketAddr {
        "127.0.0.1:5300".parse().unwrap()
    }

    /// Send `msg` signed with `k` (unsigned without), over UDP; the answer's rcode
    /// and, when signed, whether its TSIG verifies.
    fn ask(f: &mut Fixture, msg: &Message, k: Option<&Key>) -> (Rcode, Option<Message>) {
        let wire = msg.to_wire();
        let (wire, mac) = match k {
            Some(k) => tsig::sign_request(wire, k, now_unix() as u64),
            None => (wire, Vec::new()),
        };
        let answer = f
            .dns
            .answer(&mut f.store, &wire, source(), Transport::Udp)
            .expect("an answer");
        let parsed = Message::parse(&answer).expect("a parsable answer");
        if let Some(k) = k.filter(|_| parsed.header.rcode != Rcode::NotAuth) {
            assert_eq!(
                tsig::check_answer(&answer, k, &mac),
                Ok(None),
                "signed with the key"
            );
        }
        assert_eq!(parsed.header.id, 4242);
        (parsed.header.rcode, Some(parsed))
    }

    fn records(f: &Fixture, n: &str) -> Vec<IpAddr> {
        f.store.records(ZONE, n).expect("records")
    }

    #[test]
    fn a_signed_update_adds_and_deletes_an_address_and_wakes_the_publisher() {
        let mut f = fixture("add");
        let k = key("k.update.", SECRET);
        let m = update(vec![add_a("alice.dedyn.example.", "192.0.2.7")], vec![]);
        assert_eq!(ask(&mut f, &m, Some(&k)).0, Rcode::NoError);
        assert_eq!(
            records(&f, "alice.dedyn.example"),
            vec!["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(f.changed.load(Ordering::SeqCst), 1);
        // SPEC 15: its history row says how it came and from where.
        let h = f.store.history("alice.dedyn.example", 10).expect("history");
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(
            (h[0].via.as_str(), h[0].client.as_deref()),
            ("dns-update", Some("127.0.0.1"))
        );
        assert_eq!(h[0].new, vec!["192.0.2.7".to_string()]);
        // The same again changes nothing and wakes nobody.
        assert_eq!(ask(&mut f, &m, Some(&k)).0, Rcode::NoError);
        assert_eq!(f.changed.load(Ordering::SeqCst), 1);
        let del = rec(
            "alice.dedyn.example.",
            RType::A,
            Class::Any,
            0,
            RData::Empty,
        );
        assert_eq!(
            ask(&mut f, &update(vec![del], vec![]), Some(&k)).0,
            Rcode::NoError
        );
        assert!(records(&f, "alice.dedyn.example").is_empty());
    }

    /// SPEC 14: rate limits counted with the HTTP API's, then REFUSED.
    #[test]
    fn the_domains_rate_limit_refuses_the_next_update() {
        let mut f = fixture("limit");
        f.dns.dyndns_limiter = Arc::new(Limiter::new("1/1m".parse().unwrap(), 100));
        let k = key("k.update.", SECRET);
        let m = |a: &str| update(vec![add_a("alice.dedyn.example.", a)], vec![]);
        assert_eq!(ask(&mut f, &m("192.0.2.1"), Some(&k)).0, Rcode::NoError);
        assert_eq!(ask(&mut f, &m("192.0.2.2"), Some(&k)).0, Rcode::Refused);
        assert_eq!(
            records(&f, "alice.dedyn.example"),
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn refusals_answer_their_rcode_and_write_nothing() {
        let mut f = fixture("refuse");
        let good = key("k.update.", SECRET);
        let add = update(vec![add_a("alice.dedyn.example.", "192.0.2.7")], vec![]);
        // Unsigned: REFUSED; unknown key: NOTAUTH; wrong secret: NOTAUTH.
        assert_eq!(ask(&mut f, &add, None).0, Rcode::Refused);
        assert_eq!(
            ask(&mut f, &add, Some(&key("nobody.", SECRET))).0,
            Rcode::NotAuth
        );
        assert_eq!(
            ask(
                &mut f,
                &add,
                Some(&key("k.update.", b"another secret, just as long!!!"))
            )
            .0,
            Rcode::NotAuth
        );
        // Another owner's name, TXT with an update-only key, a CNAME: REFUSED.
        let bobs = update(vec![add_a("bob.dedyn.example.", "192.0.2.7")], vec![]);
        assert_eq!(ask(&mut f, &bobs, Some(&good)).0, Rcode::Refused);
        let txt = RData::Txt(vec![b"Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg".to_vec()]);
        let acme = update(
            vec![rec(
                "_acme-challenge.alice.dedyn.example.",
                RType::Txt,
                Class::In,
                60,
                txt,
            )],
            vec![],
        );
        assert_eq!(ask(&mut f, &acme, Some(&good)).0, Rcode::Refused);
        let cname = update(
            vec![rec(
                "alice.dedyn.example.",
                RType::Other(5),
                Class::In,
                60,
                RData::Opaque(vec![0]),
            )],
            vec![],
        );
        assert_eq!(ask(&mut f, &cname, Some(&good)).0, Rcode::Refused);
        // A prerequisite that does not hold: NXDOMAIN; a name outside the zone: NOTZONE.
        let needs = update(
            vec![add_a("alice.dedyn.example.", "192.0.2.7")],
            vec![rec(
                "alice.dedyn.example.",
                RType::Any,
                Class::Any,
                0,
                RData::Empty,
            )],
        );
        assert_eq!(ask(&mut f, &needs, Some(&good)).0, Rcode::NxDomain);
        let outside = update(vec![add_a("alice.other.example.", "192.0.2.7")], vec![]);
        assert_eq!(ask(&mut f, &outside, Some(&good)).0, Rcode::NotZone);
        // Another zone: NOTAUTH.
        let mut other = add.clone();
        other.questions[0].name = name("other.example.");
        assert_eq!(ask(&mut f, &other, Some(&good)).0, Rcode::NotAuth);
        assert!(records(&f, "alice.dedyn.example").is_empty());
        assert!(records(&f, "bob.dedyn.example").is_empty());
        assert_eq!(f.changed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_acme_key_sets_and_removes_a_challenge_value() {
        let mut f = fixture("acme");
        let k = key("k.acme.", SECRET);
        let value = b"Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg".to_vec();
        let owner = "_acme-challenge.alice.dedyn.example.";
        let add = update(
            vec![rec(
                owner,
                RType::Txt,
                Class::In,
                60,
                RData::Txt(vec![value.clone()]),
            )],
            vec![],
        );
        assert_eq!(ask(&mut f, &add, Some(&k)).0, Rcode::NoError);
        let values = f
            .store
            .acme_values(ZONE, "alice.dedyn.example")
            .expect("values");
        assert_eq!(values.len(), 1);
        let del = update(
            vec![rec(
                owner,
                RType::Txt,
                Class::None,
                0,
                RData::Txt(vec![value]),
            )],
            vec![],
        );
        assert_eq!(ask(&mut f, &del, Some(&k)).0, Rcode::NoError);
        assert!(f
            .store
            .acme_values(ZONE, "alice.dedyn.example")
            .expect("values")
            .is_empty());
        // An address with an acme-only key: REFUSED.
        let a = update(vec![add_a("alice.dedyn.example.", "192.0.2.7")], vec![]);
        assert_eq!(ask(&mut f, &a, Some(&k)).0, Rcode::Refused);
    }

    #[test]
    fn an_soa_query_for_an_apex_is_answered_and_anything_else_refused() {
        let mut f = fixture("soa");
        let q = |n: &str, t: RType| Message {
            header: header(Opcode::Query),
            questions: vec![Question {
                name: name(n),
                rtype: t,
                class: Class::In,
            }],
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
            edns: None,
            tsig: None,
        };
        let (rc, answer) = ask(&mut f, &q("DEDYN.example.", RType::Soa), None);
        let answer = answer.unwrap();
        assert_eq!(rc, Rcode::NoError);
        assert!(answer.header.authoritative);
        assert_eq!(answer.answers.len(), 1);
        assert!(
            matches!(&answer.answers[0].rdata, RData::Soa(s) if s.mname == name("ns1.dedyn.example."))
        );
        let (rc, answer) = ask(&mut f, &q("alice.dedyn.example.", RType::Soa), None);
        assert_eq!((rc, answer.unwrap().answers.len()), (Rcode::NoError, 0));
        assert_eq!(
            ask(&mut f, &q("dedyn.example.", RType::A), None).0,
            Rcode::Refused
        );
        assert_eq!(
            ask(&mut f, &q("example.org.", RType::Soa), None).0,
            Rcode::Refused
        );
        // Signed queries get signed answers (checked in `ask`).
        assert_eq!(
            ask(
                &mut f,
                &q("dedyn.example.", RType::Soa),
                Some(&key("k.update.", SECRET))
            )
            .0,
            Rcode::NoError
        );
    }

    /// A time signed further off than the fudge: NOTAUTH with TSIG error
    /// BADTIME, and the answer is signed (the MAC was right).
    #[test]
    fn a_request_signed_too_long_ago_is_badtime_and_writes_nothing() {
        let mut f = fixture("badtime");
        let k = key("k.update.", SECRET);
        let m = update(vec![add_a("alice.dedyn.example.", "192.0.2.7")], vec![]);
        let (wire, mac) = tsig::sign_request(m.to_wire(), &k, now_unix() as u64 - 1000);
        let answer = f
            .dns
            .answer(&mut f.store, &wire, source(), Transport::Tcp)
            .expect("an answer");
        assert_eq!(
            Message::parse(&answer).unwrap().header.rcode,
            Rcode::NotAuth
        );
        assert_eq!(
            tsig::check_answer(&answer, &k, &mac),
            Ok(Some(crate::dns::tsig::TsigError::BadTime))
        );
        assert!(records(&f, "alice.dedyn.example").is_empty());
    }

    /// The prerequisite rcodes RFC 2136 names, each leaving the name as it was.
    #[test]
    fn each_unmet_prerequisite_has_its_rcode_and_writes_nothing() {
        let mut f = fixture("prereq");
        let k = key("k.update.", SECRET);
        let first = update(vec![add_a("alice.dedyn.example.", "192.0.2.1")], vec![]);
        assert_eq!(ask(&mut f, &first, Some(&k)).0, Rcode::NoError);
        let alice = "alice.dedyn.example.";
        let cases = [
            (
                rec(alice, RType::Any, Class::None, 0, RData::Empty),
                Rcode::YxDomain,
            ),
            (
                rec(alice, RType::A, Class::None, 0, RData::Empty),
                Rcode::YxRrset,
            ),
            (
                rec(alice, RType::Aaaa, Class::Any, 0, RData::Empty),
                Rcode::NxRrset,
            ),
            (add_a(alice, "192.0.2.99"), Rcode::NxRrset),
        ];
        for (mut prereq, expected) in cases {
            if prereq.class == Class::In {
                prereq.ttl = 0;
            }
            let m = update(vec![add_a(alice, "192.0.2.2")], vec![prereq.clone()]);
            assert_eq!(ask(&mut f, &m, Some(&k)).0, expected, "{prereq:?}");
            assert_eq!(
                records(&f, "alice.dedyn.example"),
                vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
            );
        }
    }

    /// Token policies: an update that the HTTP API would refuse is REFUSED and
    /// writes nothing (a malformed update record is FORMERR).
    #[test]
    fn a_forbidden_family_or_a_malformed_record_changes_nothing() {
        let mut f = fixture("policy");
        let k = key("k.update.", SECRET);
        let b = f.store.batch().expect("batch");
        let alice = b.user_id("alice@x.org").expect("id");
        let v4_only = NewToken {
            hash: [9; 32],
            family: Some(crate::update::directory::FamilyPolicy::V4),
            tsig: Some(TsigKey {
                name: "k.v4".into(),
                algorithm: "hmac-sha256".into(),
                secret: SECRET.to_vec(),
            }),
            ..NewToken::default()
        };
        b.add_token(alice, &v4_only).expect("token");
        b.commit().expect("commit");
        let aaaa = rec(
            "alice.dedyn.example.",
            RType::Aaaa,
            Class::In,
            60,
            RData::Aaaa("2001:db8::1".parse().unwrap()),
        );
        let m = update(vec![aaaa], vec![]);
        assert_eq!(
            ask(&mut f, &m, Some(&key("k.v4.", SECRET))).0,
            Rcode::Refused
        );
        let bad = rec(
            "alice.dedyn.example.",
            RType::A,
            Class::Any,
            60,
            RData::Empty,
        );
        assert_eq!(
            ask(&mut f, &update(vec![bad], vec![]), Some(&k)).0,
            Rcode::FormErr
        );
        assert!(records(&f, "alice.dedyn.example").is_empty());
    }

    #[test]
    fn unparsable_and_unknown_opcodes_get_formerr_and_notimp_and_answers_are_dropped() {
        let mut f = fixture("bad");
        let mut wire = update(vec![], vec![]).to_wire();
        wire.truncate(14);
        let a = f
            .dns
            .answer(&mut f.store, &wire, source(), Transport::Udp)
            .expect("answered");
        assert_eq!(Message::parse(&a).unwrap().header.rcode, Rcode::FormErr);
        let mut notify = update(vec![], vec![]);
        notify.header.opcode = Opcode::Other(4);
        assert_eq!(ask(&mut f, &notify, None).0, Rcode::NotImp);
        let mut response = update(vec![], vec![]);
        response.header.response = true;
        assert!(f
            .dns
            .answer(&mut f.store, &response.to_wire(), source(), Transport::Udp)
            .is_none());
        assert!(f
            .dns
            .answer(&mut f.store, &[1, 2, 3], source(), Transport::Udp)
            .is_none());
    }
}
