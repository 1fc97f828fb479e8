//! RFC 2136's semantics over what the store holds: the prerequisites (§3.2.5)
//! against the holdings read under the write lock, then the changes (§3.4.2)
//! applied in message order. Pure: the ledger hands the holdings in and writes
//! what comes out.

use super::translate::{Change, Prereq, Update, Value};
use crate::dns::wire::RType;
use crate::update::ledger::{Holding, Unmet};
use std::net::IpAddr;

/// What one name's "delete all RRsets" may delete: only the types the key may
/// change (SPEC 14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deletable {
    pub v4: bool,
    pub v6: bool,
    pub txt: bool,
}

/// The message's names in the order the ledger reads them, and what each may lose.
pub struct Scene<'a> {
    pub update: &'a Update,
    pub names: &'a [String],
    pub deletable: &'a [Deletable],
}

impl Scene<'_> {
    fn at(&self, name: &str) -> usize {
        // Every name of the message is in `names` (intake.rs builds it so).
        self.names.iter().position(|n| n == name).unwrap_or(0)
    }

    /// The apex always holds its SOA and NS (the renderer writes them).
    fn is_apex(&self, name: &str) -> bool {
        name == self.update.zone
    }

    fn rrset_exists(&self, h: &[Holding], name: &str, t: RType) -> bool {
        let held = &h[self.at(name)];
        match t {
            RType::A => !held.v4.is_empty(),
            RType::Aaaa => !held.v6.is_empty(),
            RType::Txt => !held.txt.is_empty(),
            RType::Soa | RType::Ns => self.is_apex(name),
            _ => false,
        }
    }

    fn rrset_is(&self, h: &[Holding], name: &str, t: RType, values: &[Value]) -> bool {
        let held = &h[self.at(name)];
        let addrs = |set: &[IpAddr]| {
            set.len() == values.len()
                && values
                    .iter()
                    .all(|v| matches!(v, Value::Addr(a) if set.contains(a)))
        };
        match t {
            RType::A => addrs(&held.v4),
            RType::Aaaa => addrs(&held.v6),
            RType::Txt => {
                held.txt.len() == values.len()
                    && values
                        .iter()
                        .all(|v| txt_value(v).is_some_and(|s| held.txt.contains(&s)))
            }
            _ => false,
        }
    }

    /// §3.2.5: the first prerequisite that does not hold.
    pub fn check(&self, h: &[Holding]) -> Result<(), Unmet> {
        for p in &self.update.prereqs {
            let holds = |n: &str| self.is_apex(n) || !h[self.at(n)].is_empty();
            match p {
                Prereq::NameInUse(n) if !holds(n) => return Err(Unmet::NxDomain),
                Prereq::NameNotInUse(n) if holds(n) => return Err(Unmet::YxDomain),
                Prereq::RrsetExists(n, t) if !self.rrset_exists(h, n, *t) => {
                    return Err(Unmet::NxRrset)
                }
                Prereq::RrsetNotExists(n, t) if self.rrset_exists(h, n, *t) => {
                    return Err(Unmet::YxRrset)
                }
                Prereq::RrsetIs(n, t, values) if !self.rrset_is(h, n, *t, values) => {
                    return Err(Unmet::NxRrset)
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The prerequisites, then every change in order (§3.4.2): the holdings after.
    pub fn judge(&self, before: &[Holding]) -> Result<Vec<Holding>, Unmet> {
        self.check(before)?;
        let mut after = before.to_vec();
        for c in &self.update.changes {
            let i = self.at(c.name());
            let h = &mut after[i];
            match c {
                Change::Add(_, Value::Addr(a)) => {
                    let set = family_of(h, a);
                    if !set.contains(a) {
                        set.push(*a);
                        set.sort_unstable();
                    }
                }
                Change::Add(_, v) => {
                    if let Some(s) = txt_value(v) {
                        if !h.txt.contains(&s) {
                            h.txt.push(s);
                        }
                    }
                }
                Change::DeleteRrset(_, RType::A) => h.v4.clear(),
                Change::DeleteRrset(_, RType::Aaaa) => h.v6.clear(),
                Change::DeleteRrset(_, RType::Txt) => h.txt.clear(),
                Change::DeleteRrset(..) => {}
                Change::DeleteAll(_) => {
                    let may = self.deletable[i];
                    if may.v4 {
                        h.v4.clear();
                    }
                    if may.v6 {
                        h.v6.clear();
                    }
                    if may.txt {
                        h.txt.clear();
                    }
                }
                Change::DeleteRr(_, Value::Addr(a)) => family_of(h, a).retain(|x| x != a),
                Change::DeleteRr(_, v) => {
                    if let Some(s) = txt_value(v) {
                        h.txt.retain(|x| *x != s);
                    }
                }
            }
        }
        Ok(after)
    }
}

fn family_of<'h>(h: &'h mut Holding, a: &IpAddr) -> &'h mut Vec<IpAddr> {
    match a {
        IpAddr::V4(_) => &mut h.v4,
        IpAddr::V6(_) => &mut h.v6,
    }
}

/// A TXT value as the store keeps it: one character-string, UTF-8 (policy has
/// refused anything else before the ledger is asked).
pub fn txt_value(v: &Value) -> Option<String> {
    match v {
        Value::Txt(strings) => match strings.as_slice() {
            [one] => String::from_utf8(one.clone()).ok(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a.dedyn.example";
    const ACME: &str = "_acme-challenge.a.dedyn.example";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn scene_judge(
        prereqs: Vec<Prereq>,
        changes: Vec<Change>,
        before: &[Holding],
    ) -> Result<Vec<Holding>, Unmet> {
        let update = Update {
            zone: "dedyn.example".into(),
            prereqs,
            changes,
        };
        let names = vec![A.to_string(), ACME.to_string(), "dedyn.example".to_string()];
        let all = Deletable {
            v4: true,
            v6: true,
            txt: true,
        };
        let only_v4 = Deletable {
            v4: true,
            ..Deletable::default()
        };
        let deletable = [only_v4, all, Deletable::default()];
        Scene {
            update: &update,
            names: &names,
            deletable: &deletable,
        }
        .judge(before)
    }

    fn held(v4: &[&str], v6: &[&str], txt: &[&str]) -> Holding {
        Holding {
            v4: v4.iter().map(|s| ip(s)).collect(),
            v6: v6.iter().map(|s| ip(s)).collect(),
            txt: txt.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn every_prerequisite_form_answers_as_rfc_2136_says() {
        let before = [
            held(&["192.0.2.1"], &[], &[]),
            held(&[], &[], &[]),
            Holding::default(),
        ];
        let run = |p: Prereq| scene_judge(vec![p], vec![], &before).map(|_| ());
        assert_eq!(run(Prereq::NameInUse(A.into())), Ok(()));
        assert_eq!(run(Prereq::NameInUse(ACME.into())), Err(Unmet::NxDomain));
        assert_eq!(run(Prereq::NameNotInUse(A.into())), Err(Unmet::YxDomain));
        assert_eq!(run(Prereq::NameNotInUse(ACME.into())), Ok(()));
        assert_eq!(run(Prereq::RrsetExists(A.into(), RType::A)), Ok(()));
        assert_eq!(
            run(Prereq::RrsetExists(A.into(), RType::Aaaa)),
            Err(Unmet::NxRrset)
        );
        assert_eq!(
            run(Prereq::RrsetNotExists(A.into(), RType::A)),
            Err(Unmet::YxRrset)
        );
        let is = |v: &str| Prereq::RrsetIs(A.into(), RType::A, vec![Value::Addr(ip(v))]);
        assert_eq!(run(is("192.0.2.1")), Ok(()));
        assert_eq!(run(is("192.0.2.2")), Err(Unmet::NxRrset));
        // The apex holds its SOA whatever the store says.
        assert_eq!(run(Prereq::NameInUse("dedyn.example".into())), Ok(()));
        assert_eq!(
            run(Prereq::RrsetExists("dedyn.example".into(), RType::Soa)),
            Ok(())
        );
    }

    #[test]
    fn changes_apply_in_order_and_delete_all_takes_only_what_the_key_may_change() {
        let before = [
            held(&["192.0.2.1"], &["2001:db8::1"], &[]),
            held(&[], &[], &["old"]),
            Holding::default(),
        ];
        let add = |n: &str, a: &str| Change::Add(n.into(), Value::Addr(ip(a)));
        let txt = |s: &str| Value::Txt(vec![s.as_bytes().to_vec()]);
        let after = scene_judge(
            vec![],
            vec![
                add(A, "192.0.2.9"),
                add(A, "192.0.2.9"),
                Change::DeleteRr(A.into(), Value::Addr(ip("192.0.2.1"))),
                Change::Add(ACME.into(), txt("new")),
                Change::DeleteRr(ACME.into(), txt("old")),
            ],
            &before,
        )
        .expect("no prerequisites");
        assert_eq!(after[0], held(&["192.0.2.9"], &["2001:db8::1"], &[]));
        assert_eq!(after[1], held(&[], &[], &["new"]));
        let after = scene_judge(vec![], vec![Change::DeleteAll(A.into())], &before).unwrap();
        assert_eq!(after[0], held(&[], &["2001:db8::1"], &[]), "v4 only");
        let after = scene_judge(
            vec![],
            vec![Change::DeleteRrset(ACME.into(), RType::Txt)],
            &before,
        )
        .unwrap();
        assert!(after[1].is_empty());
    }

    #[test]
    fn an_unmet_prerequisite_changes_nothing() {
        let before = [Holding::default(), Holding::default(), Holding::default()];
        let r = scene_judge(
            vec![Prereq::NameInUse(A.into())],
            vec![Change::Add(A.into(), Value::Addr(ip("192.0.2.1")))],
            &before,
        );
        assert_eq!(r, Err(Unmet::NxDomain));
    }
}
