//! The publisher's own check of each stored row before it goes into a zone file
//! (SPEC 17), pure: rows in, verdicts out. A row that would make the nameserver
//! refuse the zone (an older version's or a hand edit's) is left out, not the zone.
//!
//! The intakes refuse such rows already (`Hostname::parse`, `Hostname::prefixed`,
//! `update::acme::check_value`); this is the last line, because one bad row would
//! otherwise take every other user's records off the air.

use crate::net::name::{check_syntax, is_at_or_below, quoted, MAX_NAME_LEN};
use crate::update::acme::{challenge_name, check_value};
use std::net::IpAddr;

/// One stored row as the renderer gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row<'a> {
    /// A row of `records`: an A or AAAA record of `name`.
    Address { name: &'a str, addr: IpAddr },
    /// A row of `acme_txt`: the TXT record `_acme-challenge.NAME "VALUE"`.
    AcmeTxt { name: &'a str, value: &'a str },
    /// A row of `records` whose address is `len` bytes long, neither 4 nor 16:
    /// there is no record to render from it.
    BadAddress {
        name: &'a str,
        rtype: &'static str,
        len: usize,
    },
}

impl Row<'_> {
    /// The row as the ERROR line names it: its table, its stored name (quoted and
    /// escaped: it comes from the database, and may be anything), the record.
    pub fn describe(&self) -> String {
        match self {
            Row::Address { name, addr } => {
                let rtype = if addr.is_ipv4() { "A" } else { "AAAA" };
                format!("records row {} {rtype} {addr}", quoted(name))
            }
            Row::AcmeTxt { name, .. } => format!(
                "acme_txt row {} (TXT {})",
                quoted(name),
                quoted(&challenge_name(name))
            ),
            Row::BadAddress { name, rtype, len } => {
                format!("records row {} {rtype} of {len} bytes", quoted(name))
            }
        }
    }
}

/// A row left out of a rendered zone, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    pub row: String,
    pub reason: String,
}

impl LeftOut {
    pub fn new(row: &Row, reason: Unfit) -> LeftOut {
        LeftOut {
            row: row.describe(),
            reason: reason.0,
        }
    }
}

/// Why a row cannot go into the zone file: the rule it breaks, for the log line
/// and `zone render` that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfit(pub String);

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the rows of one zone. Rows come ordered by name, so the last owner
/// name that passed is remembered: the A and AAAA rows of a name cost one check
/// (the zone is re-rendered whole on every publication).
pub struct ZoneCheck<'z> {
    zone: &'z str,
    last_ok: String,
}

impl<'z> ZoneCheck<'z> {
    pub fn new(zone: &'z str) -> ZoneCheck<'z> {
        ZoneCheck {
            zone,
            last_ok: String::new(),
        }
    }

    /// `Ok` when the row can go into the zone file as rendered: its owner name
    /// fits DNS's limits (≤ 253 characters, labels of 1–63 of the SPEC 4.2
    /// alphabet) and lies in the zone; a TXT value is one character-string of
    /// the digest alphabet (≤ 255, nothing to quote). `Err` says which rule broke.
    pub fn row(&mut self, row: &Row) -> Result<(), Unfit> {
        match *row {
            Row::Address { name, .. } => self.owner(name),
            Row::BadAddress { .. } => Err(Unfit(
                "an address is stored in 4 bytes (A) or 16 (AAAA)".into(),
            )),
            Row::AcmeTxt { name, value } => {
                check_value(value).map_err(|e| Unfit(e.to_string()))?;
                self.owner(&challenge_name(name))
            }
        }
    }

    fn owner(&mut self, owner: &str) -> Result<(), Unfit> {
        if !self.last_ok.is_empty() && owner == self.last_ok {
            return Ok(());
        }
        if owner.len() > MAX_NAME_LEN {
            return Err(Unfit(format!(
                "owner name is {} characters, longer than DNS allows ({MAX_NAME_LEN})",
                owner.len()
            )));
        }
        check_syntax(owner).map_err(|e| Unfit(format!("owner name: {e}")))?;
        if !is_at_or_below(owner, self.zone) {
            return Err(Unfit(format!(
                "owner name {} lies outside the zone",
                quoted(owner)
            )));
        }
        self.last_ok.clear();
        self.last_ok.push_str(owner);
        Ok(())
    }
}

/// Rows in → the rows to publish, and the rows left out with their reasons.
pub fn sift<'a>(
    zone: &str,
    rows: impl IntoIterator<Item = Row<'a>>,
) -> (Vec<Row<'a>>, Vec<LeftOut>) {
    let mut check = ZoneCheck::new(zone);
    let (mut accepted, mut left_out) = (Vec::new(), Vec::new());
    for row in rows {
        match check.row(&row) {
            Ok(()) => accepted.push(row),
            Err(reason) => left_out.push(LeftOut::new(&row, reason)),
        }
    }
    (accepted, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "dedyn.example";
    const DIGEST: &str = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg";

    fn a(name: &str) -> Row<'_> {
        Row::Address {
            name,
            addr: "192.0.2.1".parse().expect("ip"),
        }
    }

    fn txt<'a>(name: &'a str, value: &'a str) -> Row<'a> {
        Row::AcmeTxt { name, value }
    }

    /// Issue 18 E1's name: 253 characters, valid for an A record; its
    /// `_acme-challenge` name (269) made nsd-checkzone refuse the whole zone.
    fn longest() -> String {
        let labels = format!("{}.", "a".repeat(63)).repeat(3);
        let n = format!("{}.{labels}alice.dedyn.example", "b".repeat(41));
        assert_eq!(n.len(), 253);
        n
    }

    #[test]
    fn an_address_of_the_wrong_length_is_left_out_naming_its_row_and_length() {
        let bad = Row::BadAddress {
            name: "alice.dedyn.example",
            rtype: "AAAA",
            len: 5,
        };
        let (accepted, left_out) = sift(ZONE, [bad, a("alice.dedyn.example")]);
        assert_eq!(accepted, [a("alice.dedyn.example")]);
        assert_eq!(
            left_out,
            [LeftOut {
                row: "records row 'alice.dedyn.example' AAAA of 5 bytes".into(),
                reason: "an address is stored in 4 bytes (A) or 16 (AAAA)".into(),
            }]
        );
    }

    #[test]
    fn good_rows_pass_in_order() {
        let rows = [
            a("alice.dedyn.example"),
            a("alice.dedyn.example"),
            a("*.bob.dedyn.example"),
            txt("alice.dedyn.example", DIGEST),
            txt("www.alice.dedyn.example", "x"),
        ];
        let (ok, out) = sift(ZONE, rows);
        assert_eq!(ok, rows);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_name_that_breaks_the_zone_is_left_out_with_the_reason() {
        let long = longest();
        let over = format!("x{long}");
        let label64 = format!("{}.dedyn.example", "a".repeat(64));
        let rows = [
            a("alice.dedyn.example"),
            txt(&long, DIGEST),
            a(&long),
            a(&over),
            a(&label64),
            a("a b.dedyn.example"),
            a("evil.other.example"),
            a("x\n@ NS evil.example.dedyn.example"),
            txt("bob.dedyn.example", DIGEST),
        ];
        let (ok, out) = sift(ZONE, rows);
        assert_eq!(
            ok,
            [
                a("alice.dedyn.example"),
                a(&long),
                txt("bob.dedyn.example", DIGEST)
            ]
        );
        let reasons: Vec<&str> = out.iter().map(|l| l.reason.as_str()).collect();
        assert_eq!(
            reasons[..2],
            [
                "owner name is 269 characters, longer than DNS allows (253)",
                "owner name is 254 characters, longer than DNS allows (253)",
            ]
        );
        assert!(
            reasons[2].starts_with("owner name: invalid hostname"),
            "{reasons:?}"
        );
        assert_eq!(
            reasons[4],
            "owner name 'evil.other.example' lies outside the zone"
        );
        assert_eq!(out.len(), 6, "{out:?}");
        // The log line names the row, escaped: a stored newline stays one line.
        assert!(out[0].row.starts_with("acme_txt row 'bbbb"), "{:?}", out[0]);
        assert!(
            out[0].row.contains("(TXT '_acme-challenge.bbbb"),
            "{:?}",
            out[0]
        );
        assert_eq!(
            out[5].row,
            "records row 'x\\u{a}@ NS evil.example.dedyn.example' A 192.0.2.1"
        );
    }

    #[test]
    fn a_txt_value_that_is_not_one_plain_string_is_left_out() {
        let too_long = "x".repeat(256);
        for value in ["", "a\"b", "a b", "a\nb", too_long.as_str()] {
            let (ok, out) = sift(ZONE, [txt("alice.dedyn.example", value)]);
            assert!(ok.is_empty(), "{value:?}");
            assert!(out[0].reason.starts_with("bad txt:"), "{out:?}");
        }
        assert!(sift(ZONE, [txt("alice.dedyn.example", &"x".repeat(255))])
            .1
            .is_empty());
    }

    #[test]
    fn the_remembered_name_never_lets_a_bad_row_through() {
        let mut check = ZoneCheck::new(ZONE);
        if let Err(e) = check.row(&a("dedyn.example")) {
            panic!("{e:?}");
        }
        if let Err(e) = check.row(&a("dedyn.example")) {
            panic!("{e:?}");
        }
        // An empty name is not "the last name that passed" of a fresh check.
        assert_eq!(
            ZoneCheck::new(ZONE).row(&a("")).unwrap_err().to_string(),
            "owner name: empty hostname"
        );
        assert_eq!(
            check.row(&a("")).unwrap_err().to_string(),
            "owner name: empty hostname"
        );
    }
}
