//! An UPDATE message in the store's terms (RFC 2136 §3.1, §3.2.1–3.2.3 and
//! §3.4.1's prescan): the one zone, the prerequisites and the changes, with
//! names as the store writes them. Everything here is syntax; policy (whose
//! names, which types) is `intake.rs`'s, with the HTTP API's rules.

use crate::dns::name::Name;
use crate::dns::wire::{Class, Message, RData, RType, Record};
use std::net::IpAddr;

/// A record value the store can hold, or the type of one it cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Addr(IpAddr),
    /// A TXT record's character-strings (SPEC 14: one per value).
    Txt(Vec<Vec<u8>>),
    /// Any other type: refused by policy, never written.
    Other(RType),
}

impl Value {
    fn of(r: &Record) -> Value {
        match &r.rdata {
            RData::A(a) => Value::Addr(IpAddr::V4(*a)),
            RData::Aaaa(a) => Value::Addr(IpAddr::V6(*a)),
            RData::Txt(t) => Value::Txt(t.clone()),
            _ => Value::Other(r.rtype),
        }
    }
}

/// RFC 2136 §2.4's five prerequisite forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prereq {
    NameInUse(String),
    NameNotInUse(String),
    RrsetExists(String, RType),
    RrsetNotExists(String, RType),
    /// The whole RRset equals these values (all records of the form for one
    /// name and type, gathered).
    RrsetIs(String, RType, Vec<Value>),
}

/// RFC 2136 §2.5's four update forms, in message order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add(String, Value),
    DeleteRrset(String, RType),
    DeleteAll(String),
    DeleteRr(String, Value),
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Add(n, _)
            | Change::DeleteRrset(n, _)
            | Change::DeleteAll(n)
            | Change::DeleteRr(n, _) => n,
        }
    }
}

/// An UPDATE as the store's names and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The zone, as configured (lower case, no trailing dot).
    pub zone: String,
    pub prereqs: Vec<Prereq>,
    pub changes: Vec<Change>,
}

/// Why a message is not an update this server takes, with its rcode's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfit {
    /// FORMERR: the zone section or a record is malformed for an UPDATE.
    FormErr(&'static str),
    /// NOTAUTH: the zone is not one configured here.
    NotOurs,
    /// NOTZONE: a prerequisite or update name outside the zone.
    NotZone,
}

/// The zone section (§3.1.1): exactly one question, class IN, type SOA, and a
/// zone configured here (`zones`: lower case, no trailing dot).
pub fn zone_of(msg: &Message, zones: &[&str]) -> Result<(Name, String), Unfit> {
    let [q] = msg.zone() else {
        return Err(Unfit::FormErr(
            "the zone section must hold exactly one zone",
        ));
    };
    if q.class != Class::In || q.rtype != RType::Soa {
        return Err(Unfit::FormErr("the zone must be class IN, type SOA"));
    }
    let name = q
        .name
        .to_store_form()
        .ok_or(Unfit::FormErr("the zone name holds bytes no zone has"))?;
    if !zones.contains(&name.as_str()) {
        return Err(Unfit::NotOurs);
    }
    Ok((q.name.clone(), name))
}

/// A record's owner in the store's form, inside `zone`, else NOTZONE.
fn owner(r: &Record, zone: &Name) -> Result<String, Unfit> {
    if !r.name.is_at_or_below(zone) {
        return Err(Unfit::NotZone);
    }
    r.name
        .to_store_form()
        .ok_or(Unfit::FormErr("a name holds bytes no DNS name here has"))
}

/// Meta types may not be added or named in an RRset (§3.4.1.3).
fn is_meta(t: RType) -> bool {
    matches!(t, RType::Any | RType::Opt | RType::Tsig)
        || matches!(t, RType::Other(v) if (128..=255).contains(&v))
}

/// The prerequisite section (§3.2.1–3.2.3).
fn prereqs(msg: &Message, zone: &Name) -> Result<Vec<Prereq>, Unfit> {
    let mut out = Vec::new();
    let mut sets: Vec<Prereq> = Vec::new();
    for r in msg.prerequisites() {
        let name = owner(r, zone)?;
        if r.ttl != 0 {
            return Err(Unfit::FormErr("a prerequisite's TTL must be 0"));
        }
        let empty = r.rdata == RData::Empty;
        let p = match (r.class, r.rtype, empty) {
            (Class::Any, RType::Any, true) => Prereq::NameInUse(name),
            (Class::Any, t, true) => Prereq::RrsetExists(name, t),
            (Class::None, RType::Any, true) => Prereq::NameNotInUse(name),
            (Class::None, t, true) => Prereq::RrsetNotExists(name, t),
            (Class::In, t, false) if !is_meta(t) => {
                let value = Value::of(r);
                match sets
                    .iter_mut()
                    .find(|p| matches!(p, Prereq::RrsetIs(n, pt, _) if *n == name && *pt == t))
                {
                    Some(Prereq::RrsetIs(_, _, values)) => {
                        if !values.contains(&value) {
                            values.push(value);
                        }
                    }
                    _ => sets.push(Prereq::RrsetIs(name, t, vec![value])),
                }
                continue;
            }
            _ => return Err(Unfit::FormErr("a prerequisite has no RFC 2136 form")),
        };
        out.push(p);
    }
    out.extend(sets);
    Ok(out)
}

/// The update section's prescan (§3.4.1) and its forms (§2.5).
fn changes(msg: &Message, zone: &Name) -> Result<Vec<Change>, Unfit> {
    let mut out = Vec::with_capacity(msg.updates().len());
    for r in msg.updates() {
        let name = owner(r, zone)?;
        let empty = r.rdata == RData::Empty;
        let c = match r.class {
            Class::In if !is_meta(r.rtype) && !empty => Change::Add(name, Value::of(r)),
            Class::Any if r.ttl == 0 && empty && r.rtype == RType::Any => Change::DeleteAll(name),
            Class::Any if r.ttl == 0 && empty && !is_meta(r.rtype) => {
                Change::DeleteRrset(name, r.rtype)
            }
            Class::None if r.ttl == 0 && !is_meta(r.rtype) && !empty => {
                Change::DeleteRr(name, Value::of(r))
            }
            _ => return Err(Unfit::FormErr("an update record has no RFC 2136 form")),
        };
        out.push(c);
    }
    Ok(out)
}

/// The whole message in the store's terms, or why not.
pub fn translate(msg: &Message, zones: &[&str]) -> Result<Update, Unfit> {
    let (zone_name, zone) = zone_of(msg, zones)?;
    Ok(Update {
        prereqs: prereqs(msg, &zone_name)?,
        changes: changes(msg, &zone_name)?,
        zone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::{Header, Opcode, Question};

    fn name(s: &str) -> Name {
        Name::from_text(s).unwrap()
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

    fn update(prereqs: Vec<Record>, updates: Vec<Record>) -> Message {
        Message {
            header: Header::request(7, Opcode::Update),
            questions: vec![Question {
                name: name("Dedyn.Example."),
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

    const ZONES: &[&str] = &["dedyn.example"];

    #[test]
    fn the_four_update_forms_and_the_five_prerequisite_forms_are_read() {
        let a = RData::A("192.0.2.1".parse().unwrap());
        let m = update(
            vec![
                rec("a.dedyn.example.", RType::Any, Class::Any, 0, RData::Empty),
                rec("b.dedyn.example.", RType::A, Class::Any, 0, RData::Empty),
                rec("c.dedyn.example.", RType::Any, Class::None, 0, RData::Empty),
                rec(
                    "d.dedyn.example.",
                    RType::Aaaa,
                    Class::None,
                    0,
                    RData::Empty,
                ),
                rec("E.dedyn.example.", RType::A, Class::In, 0, a.clone()),
                rec("e.dedyn.example.", RType::A, Class::In, 0, a.clone()),
            ],
            vec![
                rec("A.dedyn.example.", RType::A, Class::In, 3600, a.clone()),
                rec("a.dedyn.example.", RType::A, Class::Any, 0, RData::Empty),
                rec("a.dedyn.example.", RType::Any, Class::Any, 0, RData::Empty),
                rec("a.dedyn.example.", RType::A, Class::None, 0, a),
            ],
        );
        let u = translate(&m, ZONES).expect("an update");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(u.zone, "dedyn.example");
        assert_eq!(
            u.prereqs,
            vec![
                Prereq::NameInUse("a.dedyn.example".into()),
                Prereq::RrsetExists("b.dedyn.example".into(), RType::A),
                Prereq::NameNotInUse("c.dedyn.example".into()),
                Prereq::RrsetNotExists("d.dedyn.example".into(), RType::Aaaa),
                Prereq::RrsetIs("e.dedyn.example".into(), RType::A, vec![Value::Addr(ip)]),
            ]
        );
        assert_eq!(
            u.changes,
            vec![
                Change::Add("a.dedyn.example".into(), Value::Addr(ip)),
                Change::DeleteRrset("a.dedyn.example".into(), RType::A),
                Change::DeleteAll("a.dedyn.example".into()),
                Change::DeleteRr("a.dedyn.example".into(), Value::Addr(ip)),
            ]
        );
    }

    #[test]
    fn the_zone_section_and_names_are_checked_in_the_rfcs_order() {
        let mut m = update(vec![], vec![]);
        m.questions[0].name = name("other.example.");
        assert_eq!(translate(&m, ZONES), Err(Unfit::NotOurs));
        m.questions[0].rtype = RType::A;
        assert!(matches!(translate(&m, ZONES), Err(Unfit::FormErr(_))));
        m.questions.clear();
        assert!(matches!(translate(&m, ZONES), Err(Unfit::FormErr(_))));
        let outside = rec("a.other.example.", RType::A, Class::Any, 0, RData::Empty);
        let m = update(vec![], vec![outside]);
        assert_eq!(translate(&m, ZONES), Err(Unfit::NotZone));
    }

    #[test]
    fn records_without_an_rfc_2136_form_are_formerr() {
        let a = RData::A("192.0.2.1".parse().unwrap());
        let bad_updates = [
            rec("a.dedyn.example.", RType::Any, Class::In, 0, a.clone()),
            rec("a.dedyn.example.", RType::A, Class::Any, 60, RData::Empty),
            rec("a.dedyn.example.", RType::A, Class::None, 60, a.clone()),
            rec("a.dedyn.example.", RType::A, Class::Other(3), 0, a.clone()),
        ];
        for r in bad_updates {
            let m = update(vec![], vec![r.clone()]);
            assert!(
                matches!(translate(&m, ZONES), Err(Unfit::FormErr(_))),
                "{r:?}"
            );
        }
        let ttl = rec("a.dedyn.example.", RType::Any, Class::Any, 5, RData::Empty);
        let m = update(vec![ttl], vec![]);
        assert!(matches!(translate(&m, ZONES), Err(Unfit::FormErr(_))));
    }
}
