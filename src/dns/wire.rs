//! DNS messages on the wire (RFC 1035 4, RFC 2136 2, RFC 6891 6): parsing a
//! request into sections of typed records, and writing an answer back.
//!
//! Parsing never panics and builds at most what the bytes can hold: every
//! record costs at least 11 octets, a question 5, and a decompressed name is at
//! most 255. TSIG's contents are `tsig.rs`'s business; this file only finds it.

use super::name::{Name, NameError};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 12;
/// Fewest octets of a record on the wire: root name, type, class, TTL, RDLENGTH.
pub const MIN_RECORD_LEN: usize = 11;
/// Fewest octets of a question: root name, type, class.
pub const MIN_QUESTION_LEN: usize = 5;

/// The OPCODE field (RFC 1035 4.1.1, RFC 2136 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Query,
    Update,
    Other(u8),
}

impl Opcode {
    fn from_bits(v: u8) -> Opcode {
        match v {
            0 => Opcode::Query,
            5 => Opcode::Update,
            v => Opcode::Other(v),
        }
    }
    fn bits(self) -> u8 {
        match self {
            Opcode::Query => 0,
            Opcode::Update => 5,
            Opcode::Other(v) => v & 0x0F,
        }
    }
}

/// The response code, with EDNS's extension (RFC 6891 6.1.3: 12 bits, the
/// high 8 in the OPT record). RFC 2136 2.2 adds YXDOMAIN to NOTZONE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrset,
    NxRrset,
    NotAuth,
    NotZone,
    /// RFC 6891: an OPT version this server does not speak (needs an OPT).
    BadVers,
    Other(u16),
}

impl Rcode {
    pub fn from_u16(v: u16) -> Rcode {
        match v {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            6 => Rcode::YxDomain,
            7 => Rcode::YxRrset,
            8 => Rcode::NxRrset,
            9 => Rcode::NotAuth,
            10 => Rcode::NotZone,
            16 => Rcode::BadVers,
            v => Rcode::Other(v & 0x0FFF),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::YxDomain => 6,
            Rcode::YxRrset => 7,
            Rcode::NxRrset => 8,
            Rcode::NotAuth => 9,
            Rcode::NotZone => 10,
            Rcode::BadVers => 16,
            Rcode::Other(v) => v & 0x0FFF,
        }
    }

    /// The mnemonic, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::YxDomain => "YXDOMAIN",
            Rcode::YxRrset => "YXRRSET",
            Rcode::NxRrset => "NXRRSET",
            Rcode::NotAuth => "NOTAUTH",
            Rcode::NotZone => "NOTZONE",
            Rcode::BadVers => "BADVERS",
            Rcode::Other(_) => "OTHER",
        }
    }
}

/// Record types this server reads; everything else keeps its number and
/// opaque RDATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RType {
    A,
    Ns,
    Soa,
    Txt,
    Aaaa,
    Opt,
    Tsig,
    /// 255, "*" / ANY: a query type and RFC 2136's "all RRsets".
    Any,
    Other(u16),
}

impl RType {
    pub fn from_u16(v: u16) -> RType {
        match v {
            1 => RType::A,
            2 => RType::Ns,
            6 => RType::Soa,
            16 => RType::Txt,
            28 => RType::Aaaa,
            41 => RType::Opt,
            250 => RType::Tsig,
            255 => RType::Any,
            v => RType::Other(v),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            RType::A => 1,
            RType::Ns => 2,
            RType::Soa => 6,
            RType::Txt => 16,
            RType::Aaaa => 28,
            RType::Opt => 41,
            RType::Tsig => 250,
            RType::Any => 255,
            RType::Other(v) => v,
        }
    }
}

/// CLASS: IN for data, ANY and NONE for RFC 2136's prerequisites and deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    In,
    /// 254 (RFC 2136 1).
    None,
    /// 255.
    Any,
    Other(u16),
}

impl Class {
    pub fn from_u16(v: u16) -> Class {
        match v {
            1 => Class::In,
            254 => Class::None,
            255 => Class::Any,
            v => Class::Other(v),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            Class::In => 1,
            Class::None => 254,
            Class::Any => 255,
            Class::Other(v) => v,
        }
    }
}

/// The header's fields; section counts are the vectors' lengths, and `rcode`
/// already includes the OPT record's upper bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR: this is a response.
    pub response: bool,
    pub opcode: Opcode,
    pub authoritative: bool,
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    pub authentic_data: bool,
    pub checking_disabled: bool,
    pub rcode: Rcode,
}

impl Header {
    /// A request's header as a client sends it: `id`, `opcode`, no flag set.
    pub fn request(id: u16, opcode: Opcode) -> Header {
        Header {
            id,
            response: false,
            opcode,
            authoritative: false,
            truncated: false,
            recursion_desired: false,
            recursion_available: false,
            authentic_data: false,
            checking_disabled: false,
            rcode: Rcode::NoError,
        }
    }

    /// The fixed 12 octets, or `None` when the message is shorter: then there is
    /// nobody to answer (SPEC 14: dropped).
    pub fn parse(msg: &[u8]) -> Option<Header> {
        let h = msg.get(..HEADER_LEN)?;
        let (b2, b3) = (h[2], h[3]);
        Some(Header {
            id: u16::from_be_bytes([h[0], h[1]]),
            response: b2 & 0x80 != 0,
            opcode: Opcode::from_bits((b2 >> 3) & 0x0F),
            authoritative: b2 & 0x04 != 0,
            truncated: b2 & 0x02 != 0,
            recursion_desired: b2 & 0x01 != 0,
            recursion_available: b3 & 0x80 != 0,
            authentic_data: b3 & 0x20 != 0,
            checking_disabled: b3 & 0x10 != 0,
            rcode: Rcode::from_u16(u16::from(b3 & 0x0F)),
        })
    }

    /// The header of an answer to this one (RFC 1035 4.1.1): same ID, opcode
    /// and RD; QR set; everything else clear.
    pub fn answer(&self, rcode: Rcode) -> Header {
        Header {
            id: self.id,
            response: true,
            opcode: self.opcode,
            authoritative: false,
            truncated: false,
            recursion_desired: self.recursion_desired,
            recursion_available: false,
            authentic_data: false,
            checking_disabled: self.checking_disabled,
            rcode,
        }
    }

    fn flags(&self) -> [u8; 2] {
        let b2 = u8::from(self.response) << 7
            | self.opcode.bits() << 3
            | u8::from(self.authoritative) << 2
            | u8::from(self.truncated) << 1
            | u8::from(self.recursion_desired);
        let b3 = u8::from(self.recursion_available) << 7
            | u8::from(self.authentic_data) << 5
            | u8::from(self.checking_disabled) << 4
            | (self.rcode.to_u16() & 0x0F) as u8;
        [b2, b3]
    }
}

/// One question; in an UPDATE, the zone section's one entry (type SOA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub rtype: RType,
    pub class: Class,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// RDATA, typed for what this server reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    /// RDLENGTH 0: RFC 2136's prerequisites and deletes carry no data.
    Empty,
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// The character-strings, each at most 255 octets.
    Txt(Vec<Vec<u8>>),
    Ns(Name),
    Soa(Soa),
    /// Any other type, as received. Names inside it are not decompressed
    /// (RFC 3597 forbids compression in types defined after RFC 1035; older
    /// ones such as MX or CNAME may hold pointers that mean nothing here).
    Opaque(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: RType,
    pub class: Class,
    pub ttl: u32,
    pub rdata: RData,
}

/// The EDNS OPT pseudo-record (RFC 6891 6.1.2), tolerated on input; its
/// options are kept opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_payload_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub options: Vec<u8>,
}

/// A TSIG record found last in the additional section (RFC 8945 5.2: it must
/// be the last record). `offset` is where it starts, so the MAC can be
/// computed over the octets before it; `rdata` is parsed by `tsig.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailingTsig {
    pub offset: usize,
    pub name: Name,
    pub class: Class,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// A parsed message. RFC 1035's section names; RFC 2136 calls them zone,
/// prerequisite, update and additional (see the accessors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    /// Without the OPT and TSIG records, which have their own fields.
    pub additionals: Vec<Record>,
    pub edns: Option<Edns>,
    pub tsig: Option<TrailingTsig>,
}

/// What was wrong with a message, and the header when it could be read (then
/// the answer is FORMERR; without it the message is dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub header: Option<Header>,
    pub offset: usize,
    pub what: Malformed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    ShortHeader,
    Name(NameError),
    /// The message ends inside a question or record.
    Truncated,
    /// RDATA of a known type that does not fit its RDLENGTH.
    BadRdata,
    /// An OPT outside the additional section, a second one, or one not at the root.
    MisplacedOpt,
    /// A TSIG anywhere but last in the additional section (RFC 8945 5.2).
    MisplacedTsig,
    /// Octets after the last record.
    TrailingBytes,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.what {
            Malformed::ShortHeader => "shorter than a DNS header".to_string(),
            Malformed::Name(e) => e.to_string(),
            Malformed::Truncated => "message ends inside a record".into(),
            Malformed::BadRdata => "record data does not match its type".into(),
            Malformed::MisplacedOpt => "OPT record misplaced or repeated".into(),
            Malformed::MisplacedTsig => "TSIG record is not the last one".into(),
            Malformed::TrailingBytes => "bytes after the last record".into(),
        };
        write!(f, "malformed DNS message at octet {}: {what}", self.offset)
    }
}

impl Message {
    /// RFC 2136 2.3: the zone section.
    pub fn zone(&self) -> &[Question] {
        &self.questions
    }
    /// RFC 2136 2.4: the prerequisite section.
    pub fn prerequisites(&self) -> &[Record] {
        &self.answers
    }
    /// RFC 2136 2.5: the update section.
    pub fn updates(&self) -> &[Record] {
        &self.authorities
    }

    /// An answer to `request`: its header echoed (`Header::answer`), its
    /// questions repeated, no records, no EDNS (the caller adds what it wants).
    pub fn answer_to(request: &Message, rcode: Rcode) -> Message {
        Message {
            header: request.header.answer(rcode),
            questions: request.questions.clone(),
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            edns: None,
            tsig: None,
        }
    }

    /// A header-only answer (no question): for a message whose sections could
    /// not be read (FORMERR) or whose opcode is not served (NOTIMP). Never
    /// larger than the message it answers, so it amplifies nothing.
    pub fn bare_answer(request: &Header, rcode: Rcode) -> Message {
        Message {
            header: request.answer(rcode),
            questions: Vec::new(),
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            edns: None,
            tsig: None,
        }
    }

    /// Parse a whole message (see the module doc for the bounds). A message
    /// with QR set parses too: the intake drops responses, so that two
    /// servers cannot be made to answer each other.
    pub fn parse(msg: &[u8]) -> Result<Message, ParseError> {
        let header = Header::parse(msg).ok_or(ParseError {
            header: None,
            offset: 0,
            what: Malformed::ShortHeader,
        })?;
        let mut r = Reader {
            msg,
            pos: HEADER_LEN,
        };
        let fail = |r: &Reader, what| ParseError {
            header: Some(header),
            offset: r.pos,
            what,
        };
        // QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT: trusted only as far as the octets go.
        let count = |i: usize| match msg.get(4 + 2 * i..6 + 2 * i) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => 0,
        };
        let qd = count(0);
        let mut questions = Vec::with_capacity(qd.min(r.remaining() / MIN_QUESTION_LEN));
        for _ in 0..qd {
            let q = r.question().map_err(|w| fail(&r, w))?;
            questions.push(q);
        }
        let mut sections: [Vec<Record>; 3] = Default::default();
        let mut edns = None;
        let mut tsig = None;
        let mut rcode_high = 0u16;
        for (i, section) in sections.iter_mut().enumerate() {
            let n = count(i + 1);
            section.reserve_exact(n.min(r.remaining() / MIN_RECORD_LEN));
            for k in 0..n {
                let start = r.pos;
                let raw = r.raw_record().map_err(|w| fail(&r, w))?;
                match raw.rtype {
                    RType::Opt => {
                        if i != 2 || edns.is_some() || !raw.name.is_root() {
                            return Err(fail(&r, Malformed::MisplacedOpt));
                        }
                        edns = Some(Edns {
                            udp_payload_size: raw.class,
                            version: (raw.ttl >> 16) as u8,
                            dnssec_ok: raw.ttl & 0x8000 != 0,
                            options: msg[raw.rdata.0..raw.rdata.1].to_vec(),
                        });
                        // RFC 6891 6.1.3: the upper 8 bits of the 12-bit rcode.
                        rcode_high = (raw.ttl >> 24) as u16;
                    }
                    RType::Tsig => {
                        // Last of the last section, so nothing follows it.
                        if i != 2 || k + 1 != n {
                            return Err(fail(&r, Malformed::MisplacedTsig));
                        }
                        tsig = Some(TrailingTsig {
                            offset: start,
                            name: raw.name,
                            class: Class::from_u16(raw.class),
                            ttl: raw.ttl,
                            rdata: msg[raw.rdata.0..raw.rdata.1].to_vec(),
                        });
                    }
                    _ => {
                        let rdata = r.rdata(raw.rtype, raw.rdata).map_err(|w| fail(&r, w))?;
                        section.push(Record {
                            name: raw.name,
                            rtype: raw.rtype,
                            class: Class::from_u16(raw.class),
                            ttl: raw.ttl,
                            rdata,
                        });
                    }
                }
            }
        }
        if r.remaining() != 0 {
            return Err(fail(&r, Malformed::TrailingBytes));
        }
        let [answers, authorities, additionals] = sections;
        let mut header = header;
        header.rcode = Rcode::from_u16(rcode_high << 4 | header.rcode.to_u16());
        Ok(Message {
            header,
            questions,
            answers,
            authorities,
            additionals,
            edns,
            tsig,
        })
    }
}

/// A record's fixed part, with its RDATA's place in the message.
struct RawRecord {
    name: Name,
    rtype: RType,
    /// Raw, since OPT uses it for the UDP payload size.
    class: u16,
    ttl: u32,
    rdata: (usize, usize),
}

/// A cursor over the message; every read is checked.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.msg.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        let bytes = self
            .msg
            .get(self.pos..self.pos + n)
            .ok_or(Malformed::Truncated)?;
        self.pos += n;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<Name, Malformed> {
        let (name, end) = Name::read(self.msg, self.pos).map_err(Malformed::Name)?;
        self.pos = end;
        Ok(name)
    }

    fn question(&mut self) -> Result<Question, Malformed> {
        Ok(Question {
            name: self.name()?,
            rtype: RType::from_u16(self.u16()?),
            class: Class::from_u16(self.u16()?),
        })
    }

    fn raw_record(&mut self) -> Result<RawRecord, Malformed> {
        let name = self.name()?;
        let rtype = RType::from_u16(self.u16()?);
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = usize::from(self.u16()?);
        let start = self.pos;
        self.take(len)?;
        Ok(RawRecord {
            name,
            rtype,
            class,
            ttl,
            rdata: (start, start + len),
        })
    }

    /// The typed RDATA between `start` and `end`. Names in NS and SOA may be
    /// compressed (RFC 1035 types), but must end inside the RDATA.
    fn rdata(&self, rtype: RType, (start, end): (usize, usize)) -> Result<RData, Malformed> {
        let bytes = self.msg.get(start..end).ok_or(Malformed::Truncated)?;
        if bytes.is_empty() {
            return Ok(RData::Empty);
        }
        let mut sub = Reader {
            msg: self.msg,
            pos: start,
        };
        let data = match rtype {
            RType::A => RData::A(Ipv4Addr::from(
                <[u8; 4]>::try_from(bytes).map_err(|_| Malformed::BadRdata)?,
            )),
            RType::Aaaa => RData::Aaaa(Ipv6Addr::from(
                <[u8; 16]>::try_from(bytes).map_err(|_| Malformed::BadRdata)?,
            )),
            RType::Txt => {
                let mut strings = Vec::new();
                while sub.pos < end {
                    let len = usize::from(sub.take(1)?[0]);
                    if sub.pos + len > end {
                        return Err(Malformed::BadRdata);
                    }
                    strings.push(sub.take(len)?.to_vec());
                }
                RData::Txt(strings)
            }
            RType::Ns => RData::Ns(sub.name()?),
            RType::Soa => RData::Soa(Soa {
                mname: sub.name()?,
                rname: sub.name()?,
                serial: sub.u32()?,
                refresh: sub.u32()?,
                retry: sub.u32()?,
                expire: sub.u32()?,
                minimum: sub.u32()?,
            }),
            _ => return Ok(RData::Opaque(bytes.to_vec())),
        };
        if sub.pos != end && !matches!(rtype, RType::A | RType::Aaaa) {
            return Err(Malformed::BadRdata);
        }
        Ok(data)
    }
}

/// Writes an answer, compressing owner names and NS/SOA RDATA names against
/// the names already written (RFC 1035 4.1.4; answers are small, so a list).
struct Writer {
    out: Vec<u8>,
    /// Lower-cased name suffixes already in `out`, with their offset.
    suffixes: Vec<(Vec<u8>, u16)>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &Name) {
        let wire = name.as_wire();
        let mut pos = 0;
        for label in name.labels() {
            let suffix = wire.get(pos..).unwrap_or_default();
            if let Some(&(_, at)) = self
                .suffixes
                .iter()
                .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
            {
                self.u16(0xC000 | at);
                return;
            }
            if let Ok(here) = u16::try_from(self.out.len()) {
                if here < 0x4000 {
                    self.suffixes.push((suffix.to_ascii_lowercase(), here));
                }
            }
            self.out.push(label.len() as u8);
            self.out.extend_from_slice(label);
            pos += 1 + label.len();
        }
        self.out.push(0);
    }

    fn record(&mut self, r: &Record) {
        self.name(&r.name);
        self.u16(r.rtype.to_u16());
        self.u16(r.class.to_u16());
        self.u32(r.ttl);
        let len_at = self.out.len();
        self.u16(0);
        match &r.rdata {
            RData::Empty => {}
            RData::A(a) => self.out.extend_from_slice(&a.octets()),
            RData::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
            RData::Txt(strings) => {
                for s in strings {
                    let s = &s[..s.len().min(255)];
                    self.out.push(s.len() as u8);
                    self.out.extend_from_slice(s);
                }
            }
            RData::Ns(n) => self.name(n),
            RData::Soa(soa) => {
                self.name(&soa.mname);
                self.name(&soa.rname);
                for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    self.u32(v);
                }
            }
            RData::Opaque(bytes) => self.out.extend_from_slice(bytes),
        }
        let len = u16::try_from(self.out.len() - len_at - 2).unwrap_or(u16::MAX);
        self.out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// A section's count; answers this server builds hold a handful of records.
fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl Message {
    /// The message on the wire. An rcode above 15 needs EDNS (RFC 6891
    /// 6.1.3): an OPT record is added when the message has none. A TSIG is
    /// appended afterwards by `tsig.rs`, which signs these octets.
    pub fn to_wire(&self) -> Vec<u8> {
        let rcode = self.header.rcode.to_u16();
        let edns = match (&self.edns, rcode > 15) {
            (Some(e), _) => Some(e.clone()),
            (None, true) => Some(Edns {
                udp_payload_size: 1232,
                version: 0,
                dnssec_ok: false,
                options: Vec::new(),
            }),
            (None, false) => None,
        };
        let mut w = Writer {
            out: Vec::with_capacity(512),
            suffixes: Vec::new(),
        };
        w.u16(self.header.id);
        w.out.extend_from_slice(&self.header.flags());
        w.u16(count(self.questions.len()));
        w.u16(count(self.answers.len()));
        w.u16(count(self.authorities.len()));
        w.u16(count(self.additionals.len() + usize::from(edns.is_some())));
        for q in &self.questions {
            w.name(&q.name);
            w.u16(q.rtype.to_u16());
            w.u16(q.class.to_u16());
        }
        for r in self
            .answers
            .iter()
            .chain(&self.authorities)
            .chain(&self.additionals)
        {
            w.record(r);
        }
        if let Some(e) = edns {
            w.out.push(0);
            w.u16(RType::Opt.to_u16());
            w.u16(e.udp_payload_size);
            w.u32(
                u32::from(rcode >> 4) << 24
                    | u32::from(e.version) << 16
                    | u32::from(e.dnssec_ok) << 15,
            );
            w.u16(count(e.options.len()));
            w.out.extend_from_slice(&e.options);
        }
        w.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_text(s).unwrap()
    }

    fn rr(owner: &str, rtype: RType, class: Class, ttl: u32, rdata: RData) -> Record {
        Record {
            name: name(owner),
            rtype,
            class,
            ttl,
            rdata,
        }
    }

    /// An UPDATE with every RFC 2136 form this server reads.
    fn update() -> Message {
        let host = "host.dyn.example";
        Message {
            header: Header::request(0xBEEF, Opcode::Update),
            questions: vec![Question {
                name: name("dyn.example"),
                rtype: RType::Soa,
                class: Class::In,
            }],
            answers: vec![
                rr(host, RType::Any, Class::Any, 0, RData::Empty),
                rr(host, RType::Aaaa, Class::None, 0, RData::Empty),
                rr(
                    host,
                    RType::A,
                    Class::In,
                    0,
                    RData::A([192, 0, 2, 1].into()),
                ),
            ],
            authorities: vec![
                rr(host, RType::A, Class::Any, 0, RData::Empty),
                rr(host, RType::Any, Class::Any, 0, RData::Empty),
                rr(
                    host,
                    RType::Aaaa,
                    Class::None,
                    0,
                    RData::Aaaa("2001:db8::1".parse().unwrap()),
                ),
                rr(
                    "_acme-challenge.host.dyn.example",
                    RType::Txt,
                    Class::In,
                    60,
                    RData::Txt(vec![b"abc".to_vec(), Vec::new()]),
                ),
                rr(
                    "Dyn.Example",
                    RType::Other(99),
                    Class::In,
                    60,
                    RData::Opaque(vec![1, 2, 3]),
                ),
            ],
            additionals: vec![],
            edns: Some(Edns {
                udp_payload_size: 1232,
                version: 0,
                dnssec_ok: true,
                options: vec![0, 10, 0, 2, 0xAB, 0xCD],
            }),
            tsig: None,
        }
    }

    #[test]
    fn update_round_trips_through_the_wire() {
        let m = update();
        let wire = m.to_wire();
        assert_eq!(Message::parse(&wire).unwrap(), m);
        assert_eq!(m.zone()[0].name, name("dyn.example"));
        assert_eq!(m.prerequisites().len(), 3);
        assert_eq!(m.updates().len(), 5);
    }

    #[test]
    fn answer_compresses_names_against_the_question() {
        let mut a = Message::answer_to(&update(), Rcode::NoError);
        a.header.authoritative = true;
        a.answers.push(rr(
            "dyn.example",
            RType::Soa,
            Class::In,
            3600,
            RData::Soa(Soa {
                mname: name("ns1.dyn.example"),
                rname: name("hostmaster.DYN.example"),
                serial: 2026120701,
                refresh: 3600,
                retry: 600,
                expire: 604800,
                minimum: 60,
            }),
        ));
        let wire = a.to_wire();
        // header 12 + question 17 + owner pointer 2 + fixed 10 + mname 6 + rname 13 + 20.
        assert_eq!(wire.len(), 12 + 17 + 2 + 10 + 6 + 13 + 20);
        let back = Message::parse(&wire).unwrap();
        assert_eq!(back, a);
        assert!(back.header.response && back.header.authoritative);
        assert_eq!(back.header.id, 0xBEEF);
        assert_eq!(back.header.opcode, Opcode::Update);
    }

    #[test]
    fn extended_rcode_travels_in_the_opt_record() {
        let mut a = Message::answer_to(&update(), Rcode::BadVers);
        let wire = a.to_wire();
        let back = Message::parse(&wire).unwrap();
        assert_eq!(back.header.rcode, Rcode::BadVers);
        assert_eq!(back.edns.unwrap().udp_payload_size, 1232);
        a.header.rcode = Rcode::Refused;
        assert_eq!(Message::parse(&a.to_wire()).unwrap().edns, None);
    }

    #[test]
    fn short_header_is_dropped_and_a_bad_body_is_formerr() {
        let e = Message::parse(&[0; 11]).unwrap_err();
        assert_eq!((e.header, e.what), (None, Malformed::ShortHeader));
        let mut wire = update().to_wire();
        wire.truncate(wire.len() - 1);
        let e = Message::parse(&wire).unwrap_err();
        assert_eq!(e.header.unwrap().id, 0xBEEF);
    }

    #[test]
    fn bare_answer_is_the_header_alone() {
        let h = Header::parse(&update().to_wire()).unwrap();
        let wire = Message::bare_answer(&h, Rcode::FormErr).to_wire();
        assert_eq!(wire.len(), HEADER_LEN);
        let back = Message::parse(&wire).unwrap();
        assert_eq!(
            (back.header.id, back.header.rcode),
            (0xBEEF, Rcode::FormErr)
        );
        assert!(back.header.response);
    }

    #[test]
    fn trailing_octets_are_refused() {
        let mut wire = update().to_wire();
        wire.push(0);
        assert_eq!(
            Message::parse(&wire).unwrap_err().what,
            Malformed::TrailingBytes
        );
    }

    #[test]
    fn counts_beyond_the_message_do_not_allocate_or_panic() {
        let mut wire = vec![0u8; 12];
        wire[4..12].copy_from_slice(&[0xFF; 8]);
        assert_eq!(
            Message::parse(&wire).unwrap_err().what,
            Malformed::Name(NameError::Truncated)
        );
    }

    #[test]
    fn rdata_must_fill_its_length_exactly() {
        let mut m = update();
        m.authorities = vec![rr(
            "a.dyn.example",
            RType::A,
            Class::In,
            0,
            RData::Opaque(vec![1, 2, 3]),
        )];
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::BadRdata
        );
        m.authorities[0].rtype = RType::Txt;
        m.authorities[0].rdata = RData::Opaque(vec![5, b'a']);
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::BadRdata
        );
        m.authorities[0].rtype = RType::Ns;
        m.authorities[0].rdata = RData::Opaque(b"\x01a\x00junk".to_vec());
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::BadRdata
        );
    }

    #[test]
    fn opt_must_be_one_at_the_root_in_additional() {
        let mut m = update();
        m.answers
            .push(rr(".", RType::Opt, Class::In, 0, RData::Empty));
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::MisplacedOpt
        );
        let mut m = update();
        m.additionals
            .push(rr(".", RType::Opt, Class::In, 0, RData::Empty));
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::MisplacedOpt
        );
    }

    #[test]
    fn tsig_must_be_last_in_additional() {
        let mut m = update();
        m.edns = None;
        m.additionals = vec![
            rr("key", RType::Tsig, Class::Any, 0, RData::Opaque(vec![0])),
            rr("x", RType::A, Class::In, 0, RData::A([1, 2, 3, 4].into())),
        ];
        assert_eq!(
            Message::parse(&m.to_wire()).unwrap_err().what,
            Malformed::MisplacedTsig
        );
        m.additionals.reverse();
        let wire = m.to_wire();
        let back = Message::parse(&wire).unwrap();
        let t = back.tsig.unwrap();
        assert_eq!((t.name, t.rdata), (name("key"), vec![0]));
        assert_eq!(&wire[t.offset..t.offset + 4], b"\x03key");
        assert_eq!(back.additionals.len(), 1);
    }

    /// What nsupdate and knsupdate actually send, read as RFC 2136 2.4/2.5 forms.
    #[test]
    fn captured_updates_parse_into_rfc_2136_forms() {
        use super::super::captured::{bytes, KNSUPDATE_SHA256, KNSUPDATE_SHA512, NSUPDATE_SHA256};
        let host = "host.dyn.example";
        let m = Message::parse(&bytes(NSUPDATE_SHA256)).unwrap();
        assert_eq!(m.header.opcode, Opcode::Update);
        let zone = &m.zone()[0];
        assert_eq!((zone.rtype, zone.class), (RType::Soa, Class::In));
        assert_eq!(zone.name, name("dyn.example"));
        // prereq yxdomain Host.dyn.example: the name as typed, case kept.
        let p = &m.prerequisites()[0];
        assert_eq!(p, &rr(host, RType::Any, Class::Any, 0, RData::Empty));
        assert_eq!(p.name.to_string(), "Host.dyn.example.");
        assert_eq!(
            m.updates(),
            [
                rr(host, RType::A, Class::Any, 0, RData::Empty),
                rr(
                    host,
                    RType::A,
                    Class::In,
                    60,
                    RData::A([192, 0, 2, 1].into())
                ),
                rr(
                    host,
                    RType::Aaaa,
                    Class::In,
                    60,
                    RData::Aaaa("2001:db8::1".parse().unwrap())
                ),
            ]
        );
        assert!(m.tsig.is_some() && m.additionals.is_empty() && m.edns.is_none());

        let m = Message::parse(&bytes(KNSUPDATE_SHA256)).unwrap();
        assert_eq!(
            m.prerequisites(),
            [rr(host, RType::Aaaa, Class::None, 0, RData::Empty)]
        );
        assert_eq!(
            m.updates(),
            [
                rr(
                    host,
                    RType::A,
                    Class::In,
                    60,
                    RData::A([192, 0, 2, 7].into())
                ),
                rr(
                    host,
                    RType::A,
                    Class::None,
                    0,
                    RData::A([192, 0, 2, 1].into())
                ),
            ]
        );
        let m = Message::parse(&bytes(KNSUPDATE_SHA512)).unwrap();
        assert_eq!(
            m.updates(),
            [rr(host, RType::Any, Class::Any, 0, RData::Empty)]
        );
    }

    #[test]
    fn names_hash_as_they_compare() {
        let set: std::collections::HashSet<Name> = [name("Host.Example"), name("host.example.")]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn header_flags_round_trip() {
        let mut h = update().header;
        h.response = true;
        h.truncated = true;
        h.recursion_desired = true;
        h.authentic_data = true;
        h.rcode = Rcode::NotZone;
        h.opcode = Opcode::Other(4);
        let mut wire = h.id.to_be_bytes().to_vec();
        wire.extend(h.flags());
        wire.extend([0; 8]);
        assert_eq!(Header::parse(&wire), Some(h));
    }
}
