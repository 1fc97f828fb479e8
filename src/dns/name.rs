//! Domain names on the wire (RFC 1035 3.1, 4.1.4): reading a possibly compressed
//! name out of a message, the case-insensitive comparison DNS uses, and text.
//!
//! A `Name` holds the uncompressed wire form as received (case kept, so a TSIG
//! owner is echoed as the client wrote it); equality and hashing ignore ASCII case.

use std::fmt;
use std::hash::{Hash, Hasher};

/// RFC 1035 2.3.4: a name is at most 255 octets on the wire, a label 63.
pub const MAX_WIRE_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;

/// An absolute domain name in uncompressed wire form (length-prefixed labels,
/// ending with the root's empty label).
#[derive(Clone)]
pub struct Name {
    wire: Vec<u8>,
}

/// Why a name could not be read; every case is a FORMERR for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The message ends inside the name.
    Truncated,
    /// A compression pointer that does not point strictly before the previous
    /// jump (forward, to itself, or a loop).
    BadPointer,
    /// Label types 0b01 and 0b10 (RFC 6891 deprecated them; nobody sends them).
    BadLabelType,
    /// Longer than 255 octets once decompressed.
    TooLong,
    /// A label of more than 63 octets, or an empty label inside a text name.
    BadLabel,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Truncated => "name runs past the end of the message",
            NameError::BadPointer => "compression pointer does not point backwards",
            NameError::BadLabelType => "unknown label type",
            NameError::TooLong => "name longer than 255 octets",
            NameError::BadLabel => "empty label or label longer than 63 octets",
        })
    }
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// A name from its text form (`host.example.` or `host.example`; always
    /// absolute). No `\` escapes: names here are host names and key names.
    pub fn from_text(text: &str) -> Result<Name, NameError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(text.len() + 2);
        if !text.is_empty() {
            for label in text.split('.') {
                if label.is_empty() || label.len() > MAX_LABEL_LEN {
                    return Err(NameError::BadLabel);
                }
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        if wire.len() > MAX_WIRE_LEN {
            return Err(NameError::TooLong);
        }
        Ok(Name { wire })
    }

    /// Read the name starting at `start` in `msg`, following compression
    /// pointers. Returns the name and the offset just after it *in place* (after
    /// the first pointer, if any). Each pointer must point strictly before the
    /// previous jump target (the first: before the name's start), so the walk
    /// always ends; the 255-octet limit bounds what it builds.
    pub fn read(msg: &[u8], start: usize) -> Result<(Name, usize), NameError> {
        let mut wire = Vec::with_capacity(32);
        let mut pos = start;
        let mut limit = start;
        let mut end = None;
        loop {
            let len = *msg.get(pos).ok_or(NameError::Truncated)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    wire.push(0);
                    return Ok((Name { wire }, end.unwrap_or(pos + 1)));
                }
                0x00 => {
                    let label = msg
                        .get(pos + 1..pos + 1 + len as usize)
                        .ok_or(NameError::Truncated)?;
                    if wire.len() + 1 + label.len() + 1 > MAX_WIRE_LEN {
                        return Err(NameError::TooLong);
                    }
                    wire.push(len);
                    wire.extend_from_slice(label);
                    pos += 1 + len as usize;
                }
                0xC0 => {
                    let low = *msg.get(pos + 1).ok_or(NameError::Truncated)?;
                    let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                    if target >= limit {
                        return Err(NameError::BadPointer);
                    }
                    end.get_or_insert(pos + 2);
                    limit = target;
                    pos = target;
                }
                _ => return Err(NameError::BadLabelType),
            }
        }
    }

    /// The uncompressed wire form, case as received.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// RFC 4034 6.2 canonical form (ASCII lower case), as TSIG digests it.
    pub fn canonical_wire(&self) -> Vec<u8> {
        self.wire.to_ascii_lowercase()
    }

    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// The labels from the leftmost, without the root.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            wire: &self.wire,
            pos: 0,
        }
    }

    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// True when `self` equals `zone` or lies below it (RFC 2136 3.4.1.3's
    /// "within the zone" test), ignoring case.
    pub fn is_at_or_below(&self, zone: &Name) -> bool {
        let (mine, theirs) = (self.label_count(), zone.label_count());
        mine >= theirs
            && self
                .labels()
                .skip(mine - theirs)
                .zip(zone.labels())
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// The text form without the trailing dot (`.` for the root), lower-cased:
    /// how the store writes names (`net::name::normalize`). `None` when a label
    /// holds a byte that has no place in a stored name (a dot, a space, a
    /// control or non-ASCII byte), so the caller refuses instead of guessing.
    pub fn to_store_form(&self) -> Option<String> {
        if self.is_root() {
            return Some(".".into());
        }
        let mut out = String::with_capacity(self.wire.len());
        for (i, label) in self.labels().enumerate() {
            if label.iter().any(|&b| b == b'.' || !b.is_ascii_graphic()) {
                return None;
            }
            if i > 0 {
                out.push('.');
            }
            out.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
        }
        Some(out)
    }
}

/// Iterator over a name's labels (see `Name::labels`).
pub struct Labels<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.wire.get(self.pos)?);
        if len == 0 {
            return None;
        }
        let label = self.wire.get(self.pos + 1..self.pos + 1 + len)?;
        self.pos += 1 + len;
        Some(label)
    }
}

/// RFC 1034 3.1: comparisons are case-insensitive for ASCII. Length octets are
/// at most 63, below `A`, so the whole wire form can be compared at once.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in &self.wire {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

/// Master-file text (RFC 1035 5.1), absolute with the trailing dot; special
/// and non-printable bytes escaped (`\.`, `\"`, `\DDD`), so a name from the
/// network can be logged or put in a quoted string as it is.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                        write!(f, "\\{}", b as char)?
                    }
                    0x21..=0x7E => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_text(s).unwrap()
    }

    #[test]
    fn text_round_trip_and_root() {
        assert_eq!(name("Host.Example").to_string(), "Host.Example.");
        assert_eq!(name("host.example.").as_wire(), b"\x04host\x07example\x00");
        assert_eq!(name(".").to_string(), ".");
        assert!(name("").is_root());
    }

    #[test]
    fn comparison_ignores_ascii_case_only() {
        assert_eq!(name("HOST.example"), name("host.EXAMPLE."));
        assert_ne!(name("host.example"), name("host.example.org"));
        let mut wire = b"\x01\xC4\x00".to_vec();
        let upper = Name::read(&wire, 0).unwrap().0;
        wire[1] = 0xE4;
        assert_ne!(upper, Name::read(&wire, 0).unwrap().0);
    }

    #[test]
    fn limits_of_rfc_1035() {
        assert_eq!(
            Name::from_text(&"a".repeat(64)).unwrap_err(),
            NameError::BadLabel
        );
        assert!(Name::from_text(&"a".repeat(63)).is_ok());
        // 4 labels of 63 = 256 octets with the root.
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(Name::from_text(&long).unwrap_err(), NameError::TooLong);
        let fits = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert_eq!(Name::from_text(&fits).unwrap().as_wire().len(), 255);
        assert_eq!(Name::from_text("a..b").unwrap_err(), NameError::BadLabel);
    }

    #[test]
    fn compression_pointer_is_followed_backwards() {
        // "example." at 0, then "host" + pointer to 0 at 9.
        let msg = b"\x07example\x00\x04host\xC0\x00rest";
        let (n, end) = Name::read(msg, 9).unwrap();
        assert_eq!(n, name("host.example"));
        assert_eq!(end, 16);
    }

    #[test]
    fn pointer_forward_to_itself_or_in_a_loop_is_refused() {
        assert_eq!(
            Name::read(b"\xC0\x00", 0).unwrap_err(),
            NameError::BadPointer
        );
        assert_eq!(
            Name::read(b"\x00\xC0\x03\x00", 1).unwrap_err(),
            NameError::BadPointer
        );
        // label at 0, pointer at 2 back to 0: a loop.
        assert_eq!(
            Name::read(b"\x01a\xC0\x00", 2).unwrap_err(),
            NameError::BadPointer
        );
    }

    #[test]
    fn truncated_and_odd_label_types_are_refused() {
        assert_eq!(Name::read(b"\x05ab", 0).unwrap_err(), NameError::Truncated);
        assert_eq!(Name::read(b"\xC0", 1).unwrap_err(), NameError::Truncated);
        assert_eq!(Name::read(b"\x41", 0).unwrap_err(), NameError::BadLabelType);
    }

    #[test]
    fn decompressed_name_over_255_octets_is_refused() {
        // 5 labels of 63 octets chained by pointers: each alone fine, together too long.
        let mut msg = vec![63];
        msg.extend([b'a'; 63]);
        msg.push(0);
        let mut prev = 0usize;
        for _ in 0..4 {
            let here = msg.len();
            msg.push(63);
            msg.extend([b'a'; 63]);
            msg.extend([0xC0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        }
        assert_eq!(Name::read(&msg, 65 + 66).unwrap().0.as_wire().len(), 193);
        assert_eq!(Name::read(&msg, prev).unwrap_err(), NameError::TooLong);
    }

    #[test]
    fn at_or_below_is_label_wise() {
        assert!(name("a.Host.example").is_at_or_below(&name("host.EXAMPLE")));
        assert!(name("host.example").is_at_or_below(&name("host.example")));
        assert!(!name("xhost.example").is_at_or_below(&name("host.example")));
        assert!(!name("example").is_at_or_below(&name("host.example")));
        assert!(name("example").is_at_or_below(&Name::root()));
    }

    #[test]
    fn display_escapes_what_the_network_may_send() {
        let n = Name::read(b"\x04a.\"\n\x00", 0).unwrap().0;
        assert_eq!(n.to_string(), "a\\.\\\"\\010.");
        assert_eq!(n.to_store_form(), None);
        assert_eq!(
            name("_acme-challenge.Host.example.")
                .to_store_form()
                .unwrap(),
            "_acme-challenge.host.example"
        );
    }
}
