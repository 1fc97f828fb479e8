//! TSIG (RFC 8945): checking a request's signature in the RFC's order (5.2:
//! key, MAC, time) and signing the answer (5.3), including the unsigned and
//! BADTIME answers of 5.3.2 and 5.2.3. Pure: the clock and the keys come in as
//! arguments, so every rule is a unit test.

use super::key::{Algorithm, Key};
use super::name::Name;
use super::wire::{Class, Message, RType, HEADER_LEN};
use ring::hmac;
use std::fmt;

/// RFC 8945 5.2.3: the fudge a request may ask for is honoured up to this
/// (SPEC 14: a replay window of at most five minutes).
pub const MAX_FUDGE: u16 = 300;
/// The fudge this server writes into its own TSIG records.
pub const FUDGE: u16 = 300;

/// The TSIG RDATA (RFC 8945 4.2). The algorithm name is never compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigRdata {
    pub algorithm: Name,
    /// Seconds since the epoch, 48 bits.
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

impl TsigRdata {
    pub fn parse(rdata: &[u8]) -> Option<TsigRdata> {
        let (algorithm, mut pos) = Name::read(rdata, 0).ok()?;
        let mut take = |n: usize| {
            let bytes = rdata.get(pos..pos + n)?;
            pos += n;
            Some(bytes)
        };
        let time = take(6)?;
        let time_signed = time.iter().fold(0u64, |t, &b| t << 8 | u64::from(b));
        let fudge = be16(take(2)?);
        let mac_len = usize::from(be16(take(2)?));
        let mac = take(mac_len)?.to_vec();
        let original_id = be16(take(2)?);
        let error = be16(take(2)?);
        let other_len = usize::from(be16(take(2)?));
        let other = take(other_len)?.to_vec();
        (pos == rdata.len()).then_some(TsigRdata {
            algorithm,
            time_signed,
            fudge,
            mac,
            original_id,
            error,
            other,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.algorithm.as_wire());
        out.extend_from_slice(&self.time_signed.to_be_bytes()[2..]);
        out.extend_from_slice(&self.fudge.to_be_bytes());
        out.extend_from_slice(&len16(self.mac.len()).to_be_bytes());
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.original_id.to_be_bytes());
        out.extend_from_slice(&self.error.to_be_bytes());
        out.extend_from_slice(&len16(self.other.len()).to_be_bytes());
        out.extend_from_slice(&self.other);
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([
        b.first().copied().unwrap_or(0),
        b.get(1).copied().unwrap_or(0),
    ])
}

fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The TSIG error field (RFC 8945 3); the answer's rcode is NOTAUTH with each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigError {
    BadSig,
    BadKey,
    BadTime,
    /// A MAC truncated below local policy (5.2.4). This server's policy is the
    /// RFC's minimum, below which the message is FORMERR, so it is not produced.
    BadTrunc,
}

impl TsigError {
    pub fn code(self) -> u16 {
        match self {
            TsigError::BadSig => 16,
            TsigError::BadKey => 17,
            TsigError::BadTime => 18,
            TsigError::BadTrunc => 22,
        }
    }

    pub fn from_code(code: u16) -> Option<TsigError> {
        [
            TsigError::BadSig,
            TsigError::BadKey,
            TsigError::BadTime,
            TsigError::BadTrunc,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            TsigError::BadSig => "BADSIG",
            TsigError::BadKey => "BADKEY",
            TsigError::BadTime => "BADTIME",
            TsigError::BadTrunc => "BADTRUNC",
        }
    }
}

/// Why a TSIG record could not be read: the answer is FORMERR, unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigMalformed {
    /// Class not ANY, TTL not 0, or RDATA that does not parse (RFC 8945 4.2).
    BadRecord,
    /// RFC 8945 5.2.2.1: a MAC longer than the hash, or shorter than the
    /// larger of 10 octets and half the hash.
    BadMacSize,
}

impl fmt::Display for TsigMalformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsigMalformed::BadRecord => "malformed TSIG record",
            TsigMalformed::BadMacSize => "TSIG MAC size outside what RFC 8945 allows",
        })
    }
}

/// What signing and checking need from a key; the store's key type can carry
/// its token alongside and come back out of `check_request`.
pub trait KeyMaterial {
    fn algorithm(&self) -> Algorithm;
    fn secret(&self) -> &[u8];
}

impl KeyMaterial for Key {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// The request's TSIG, kept to answer it (its MAC prefixes the answer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTsig {
    /// As received (case kept), echoed in the answer's TSIG.
    pub key_name: Name,
    pub rdata: TsigRdata,
}

/// The outcome of checking a request's TSIG.
#[derive(Debug)]
pub enum Checked<K> {
    /// No TSIG (SPEC 14: an UPDATE gets REFUSED, a query may be answered).
    Unsigned,
    /// Key known, MAC right, time within the fudge: answer signed with `key`.
    Valid { key: K, request: RequestTsig },
    /// NOTAUTH with this TSIG error. `key` is there when the MAC was right
    /// (BADTIME), so the answer is signed; BADKEY and BADSIG answers are not.
    Failed {
        error: TsigError,
        request: RequestTsig,
        key: Option<K>,
    },
}

impl<K> Checked<K> {
    /// The key the message named, signed or not (for the log line).
    pub fn key_name(&self) -> Option<&Name> {
        match self {
            Checked::Unsigned => None,
            Checked::Valid { request, .. } | Checked::Failed { request, .. } => {
                Some(&request.key_name)
            }
        }
    }
}

/// RFC 8945 4.3.3's TSIG variables, in canonical form.
fn variables(
    ctx: &mut hmac::Context,
    key_name: &Name,
    algorithm: &Name,
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) {
    ctx.update(&key_name.canonical_wire());
    ctx.update(&Class::Any.to_u16().to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(&algorithm.canonical_wire());
    ctx.update(&time.to_be_bytes()[2..]);
    ctx.update(&fudge.to_be_bytes());
    ctx.update(&error.to_be_bytes());
    ctx.update(&len16(other.len()).to_be_bytes());
    ctx.update(other);
}

/// The MAC over a message whose TSIG starts at `tsig_offset`: the header with
/// the original ID and ARCOUNT less one (4.3.2), the rest up to the TSIG, the
/// variables. `prior_mac` is the request's MAC when this is an answer (4.3.1).
fn message_mac(
    key: &hmac::Key,
    prior_mac: Option<&[u8]>,
    wire: &[u8],
    tsig_offset: usize,
    key_name: &Name,
    t: &TsigRdata,
) -> Option<hmac::Tag> {
    let mut header: [u8; HEADER_LEN] = wire.get(..HEADER_LEN)?.try_into().ok()?;
    header[..2].copy_from_slice(&t.original_id.to_be_bytes());
    let arcount = u16::from_be_bytes([header[10], header[11]]).checked_sub(1)?;
    header[10..12].copy_from_slice(&arcount.to_be_bytes());
    let mut ctx = hmac::Context::with_key(key);
    if let Some(mac) = prior_mac {
        ctx.update(&len16(mac.len()).to_be_bytes());
        ctx.update(mac);
    }
    ctx.update(&header);
    ctx.update(wire.get(HEADER_LEN..tsig_offset)?);
    variables(
        &mut ctx,
        key_name,
        &t.algorithm,
        t.time_signed,
        t.fudge,
        t.error,
        &t.other,
    );
    Some(ctx.sign())
}

/// Constant-time comparison of a received MAC with the first octets of the
/// computed one: both are run through HMAC again and `hmac::verify` compares
/// (ring's public constant-time compare of arbitrary slices is deprecated).
fn mac_matches(key: &hmac::Key, computed: &hmac::Tag, received: &[u8]) -> bool {
    let Some(prefix) = computed.as_ref().get(..received.len()) else {
        return false;
    };
    hmac::verify(key, prefix, hmac::sign(key, received).as_ref()).is_ok()
}

/// RFC 8945 5.2 on a parsed request: `wire` is the message `msg` was parsed
/// from, `now` the server's clock in seconds since the epoch. `lookup` finds
/// a key by name (names compare case-insensitively); a key whose algorithm
/// differs from the request's is BADKEY, like an unknown one.
pub fn check_request<K: KeyMaterial>(
    wire: &[u8],
    msg: &Message,
    now: u64,
    lookup: impl FnOnce(&Name) -> Option<K>,
) -> Result<Checked<K>, TsigMalformed> {
    let Some(tsig) = &msg.tsig else {
        return Ok(Checked::Unsigned);
    };
    if tsig.class != Class::Any || tsig.ttl != 0 {
        return Err(TsigMalformed::BadRecord);
    }
    let rdata = TsigRdata::parse(&tsig.rdata).ok_or(TsigMalformed::BadRecord)?;
    let request = RequestTsig {
        key_name: tsig.name.clone(),
        rdata,
    };
    let failed = |error, request, key| {
        Ok(Checked::Failed {
            error,
            request,
            key,
        })
    };
    // 5.2.1: the key, and the algorithm it was made for.
    let algorithm = Algorithm::from_name(&request.rdata.algorithm);
    let key = match (algorithm, lookup(&request.key_name)) {
        (Some(a), Some(k)) if k.algorithm() == a => k,
        _ => return failed(TsigError::BadKey, request, None),
    };
    let algorithm = key.algorithm();
    // 5.2.2.1: truncation outside the RFC's bounds is malformed.
    let mac_len = request.rdata.mac.len();
    if mac_len > algorithm.output_len() || mac_len < algorithm.min_mac_len() {
        return Err(TsigMalformed::BadMacSize);
    }
    // 5.2.2: the MAC.
    let hkey = hmac::Key::new(algorithm.ring(), key.secret());
    let computed = message_mac(
        &hkey,
        None,
        wire,
        tsig.offset,
        &request.key_name,
        &request.rdata,
    );
    if !computed.is_some_and(|c| mac_matches(&hkey, &c, &request.rdata.mac)) {
        return failed(TsigError::BadSig, request, None);
    }
    // 5.2.3: the time, checked only once the MAC is right.
    let fudge = u64::from(request.rdata.fudge.min(MAX_FUDGE));
    if now.abs_diff(request.rdata.time_signed) > fudge {
        return failed(TsigError::BadTime, request, Some(key));
    }
    Ok(Checked::Valid { key, request })
}

/// Append a TSIG record to `wire` and count it in ARCOUNT.
fn append_tsig(mut wire: Vec<u8>, key_name: &Name, rdata: &TsigRdata) -> Vec<u8> {
    if let Some(ar) = wire.get_mut(10..12) {
        let n = u16::from_be_bytes([ar[0], ar[1]]).saturating_add(1);
        ar.copy_from_slice(&n.to_be_bytes());
    }
    wire.extend_from_slice(key_name.as_wire());
    wire.extend_from_slice(&RType::Tsig.to_u16().to_be_bytes());
    wire.extend_from_slice(&Class::Any.to_u16().to_be_bytes());
    wire.extend_from_slice(&0u32.to_be_bytes());
    let len_at = wire.len();
    wire.extend_from_slice(&[0, 0]);
    rdata.write(&mut wire);
    let len = len16(wire.len() - len_at - 2);
    wire[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    wire
}

/// Sign `wire` (a whole message without TSIG) with `key`, filling in
/// `rdata`'s MAC and original ID; `prior_mac` is the request's MAC when
/// `wire` answers it (RFC 8945 4.3.1).
fn sign(
    wire: Vec<u8>,
    key: &impl KeyMaterial,
    key_name: &Name,
    prior_mac: Option<&[u8]>,
    mut rdata: TsigRdata,
) -> Vec<u8> {
    rdata.original_id = be16(&wire);
    let hkey = hmac::Key::new(key.algorithm().ring(), key.secret());
    let mut ctx = hmac::Context::with_key(&hkey);
    if let Some(mac) = prior_mac {
        ctx.update(&len16(mac.len()).to_be_bytes());
        ctx.update(mac);
    }
    ctx.update(&wire);
    variables(
        &mut ctx,
        key_name,
        &rdata.algorithm,
        rdata.time_signed,
        rdata.fudge,
        rdata.error,
        &rdata.other,
    );
    rdata.mac = ctx.sign().as_ref().to_vec();
    append_tsig(wire, key_name, &rdata)
}

/// A TSIG RDATA of this server's, before its MAC is computed.
fn unsigned_rdata(algorithm: &Name, time_signed: u64, error: u16, other: Vec<u8>) -> TsigRdata {
    TsigRdata {
        algorithm: algorithm.clone(),
        time_signed,
        fudge: FUDGE,
        mac: Vec::new(),
        original_id: 0,
        error,
        other,
    }
}

/// The answer's TSIG as SPEC 14 and RFC 8945 5.3 want it, appended to `wire`
/// (the answer without TSIG): nothing for an unsigned request; signed with the
/// request's MAC for a valid one; for BADTIME signed, with the request's time
/// and the server's in Other Data (5.2.3); for BADKEY and BADSIG a TSIG with
/// an empty MAC (5.3.2). The caller sets the rcode (NOTAUTH for `Failed`).
pub fn sign_answer<K: KeyMaterial>(wire: Vec<u8>, checked: &Checked<K>, now: u64) -> Vec<u8> {
    match checked {
        Checked::Unsigned => wire,
        Checked::Valid { key, request } => {
            let rdata = unsigned_rdata(&request.rdata.algorithm, now, 0, Vec::new());
            sign(
                wire,
                key,
                &request.key_name,
                Some(&request.rdata.mac),
                rdata,
            )
        }
        Checked::Failed {
            error,
            request,
            key: Some(key),
        } => {
            let alg = &request.rdata.algorithm;
            let rdata = if *error == TsigError::BadTime {
                let server_time = now.to_be_bytes()[2..].to_vec();
                unsigned_rdata(alg, request.rdata.time_signed, error.code(), server_time)
            } else {
                unsigned_rdata(alg, now, error.code(), Vec::new())
            };
            sign(
                wire,
                key,
                &request.key_name,
                Some(&request.rdata.mac),
                rdata,
            )
        }
        Checked::Failed {
            error,
            request,
            key: None,
        } => {
            let mut rdata = unsigned_rdata(&request.rdata.algorithm, now, error.code(), Vec::new());
            rdata.original_id = be16(&wire);
            append_tsig(wire, &request.key_name, &rdata)
        }
    }
}

/// Sign a request as a client does (tests, and the benchmark's load
/// generator). Returns the signed message and its MAC, to check the answer.
pub fn sign_request(wire: Vec<u8>, key: &Key, now: u64) -> (Vec<u8>, Vec<u8>) {
    let rdata = unsigned_rdata(&key.algorithm.name(), now, 0, Vec::new());
    let signed = sign(wire, key, &key.name, None, rdata);
    let mac = Message::parse(&signed)
        .ok()
        .and_then(|m| m.tsig)
        .and_then(|t| TsigRdata::parse(&t.rdata))
        .map(|t| t.mac)
        .unwrap_or_default();
    (signed, mac)
}

/// A client's check of an answer to a request whose MAC was `request_mac`:
/// the TSIG error it carries, or `Err` when it is unsigned, malformed or its
/// MAC is wrong. Time is not checked (a client's business).
pub fn check_answer(
    wire: &[u8],
    key: &Key,
    request_mac: &[u8],
) -> Result<Option<TsigError>, &'static str> {
    let msg = Message::parse(wire).map_err(|_| "malformed answer")?;
    let tsig = msg.tsig.as_ref().ok_or("unsigned answer")?;
    let rdata = TsigRdata::parse(&tsig.rdata).ok_or("malformed TSIG")?;
    let error = TsigError::from_code(rdata.error);
    if rdata.mac.is_empty() && matches!(error, Some(TsigError::BadKey | TsigError::BadSig)) {
        return Ok(error);
    }
    let hkey = hmac::Key::new(key.algorithm.ring(), &key.secret);
    let computed = message_mac(
        &hkey,
        Some(request_mac),
        wire,
        tsig.offset,
        &tsig.name,
        &rdata,
    )
    .ok_or("malformed answer")?;
    if rdata.mac.len() < key.algorithm.min_mac_len() || !mac_matches(&hkey, &computed, &rdata.mac) {
        return Err("wrong MAC");
    }
    Ok(error)
}

#[cfg(test)]
mod tests {
    use super::super::captured::{self, bytes};
    use super::super::wire::{Question, Rcode};
    use super::*;

    fn key(name: &str, algorithm: Algorithm, secret: &[u8]) -> Key {
        Key {
            name: Name::from_text(name).unwrap(),
            algorithm,
            secret: secret.to_vec(),
        }
    }

    fn key_for(secret: &[u8]) -> Key {
        match secret.len() {
            32 => key("test-key", Algorithm::HmacSha256, secret),
            _ => key("Test-Key512", Algorithm::HmacSha512, secret),
        }
    }

    /// The captured message's key, looked up by name as the store will.
    fn lookup(k: &Key) -> impl FnOnce(&Name) -> Option<Key> + '_ {
        move |name: &Name| (*name == k.name).then(|| k.clone())
    }

    fn check(wire: &[u8], k: &Key, now: u64) -> Result<Checked<Key>, TsigMalformed> {
        check_request(wire, &Message::parse(wire).unwrap(), now, lookup(k))
    }

    fn error_of(c: &Result<Checked<Key>, TsigMalformed>) -> Option<TsigError> {
        match c {
            Ok(Checked::Failed { error, .. }) => Some(*error),
            _ => None,
        }
    }

    #[test]
    fn requests_signed_by_bind_and_knot_verify() {
        for (hex, secret, signed_at) in captured::ALL {
            let wire = bytes(hex);
            let k = key_for(secret);
            for now in [signed_at, signed_at - 300, signed_at + 300] {
                assert!(
                    matches!(check(&wire, &k, now), Ok(Checked::Valid { .. })),
                    "{hex} at {now}"
                );
            }
        }
    }

    #[test]
    fn unknown_key_name_or_other_algorithm_is_badkey() {
        for (hex, secret, at) in captured::ALL {
            let wire = bytes(hex);
            let mut k = key_for(secret);
            k.name = Name::from_text("other-key").unwrap();
            assert_eq!(error_of(&check(&wire, &k, at)), Some(TsigError::BadKey));
            let mut k = key_for(secret);
            k.algorithm = match k.algorithm {
                Algorithm::HmacSha256 => Algorithm::HmacSha512,
                Algorithm::HmacSha512 => Algorithm::HmacSha256,
            };
            assert_eq!(error_of(&check(&wire, &k, at)), Some(TsigError::BadKey));
        }
    }

    #[test]
    fn wrong_secret_or_changed_byte_is_badsig() {
        for (hex, secret, at) in captured::ALL {
            let wire = bytes(hex);
            let mut k = key_for(secret);
            k.secret[0] ^= 1;
            assert_eq!(error_of(&check(&wire, &k, at)), Some(TsigError::BadSig));
            let k = key_for(secret);
            let tsig_at = Message::parse(&wire).unwrap().tsig.unwrap().offset;
            // Any octet of the signed part: the ID is replaced by the original ID.
            for i in 2..tsig_at {
                let mut bad = wire.clone();
                bad[i] ^= 0x20;
                if let Ok(m) = Message::parse(&bad) {
                    let c = check_request(&bad, &m, at, lookup(&k));
                    assert!(
                        matches!(
                            c,
                            Ok(Checked::Failed {
                                error: TsigError::BadSig,
                                ..
                            })
                        ),
                        "octet {i} of {hex}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_forwarder_changing_the_id_keeps_the_mac_valid() {
        let wire = bytes(captured::NSUPDATE_SHA256);
        let k = key_for(&captured::SECRET_256);
        let mut forwarded = wire.clone();
        forwarded[0] ^= 0xFF;
        assert!(matches!(
            check(&forwarded, &k, 0x6b16bddd),
            Ok(Checked::Valid { .. })
        ));
    }

    #[test]
    fn time_outside_the_fudge_is_badtime_after_the_mac() {
        for (hex, secret, at) in captured::ALL {
            let wire = bytes(hex);
            let k = key_for(secret);
            let late = check(&wire, &k, at + 301);
            assert_eq!(error_of(&late), Some(TsigError::BadTime));
            assert!(matches!(late, Ok(Checked::Failed { key: Some(_), .. })));
            assert_eq!(
                error_of(&check(&wire, &k, at - 301)),
                Some(TsigError::BadTime)
            );
        }
    }

    /// A request asking for a day of fudge gets at most 300 s (SPEC 14).
    #[test]
    fn fudge_above_300_seconds_is_not_honoured() {
        let k = key("k", Algorithm::HmacSha256, &[7; 32]);
        let mut rdata = unsigned_rdata(&k.algorithm.name(), 1_000_000, 0, Vec::new());
        rdata.fudge = 65535;
        let signed = sign(query().to_wire(), &k, &k.name, None, rdata);
        let c = check(&signed, &k, 1_000_301);
        assert_eq!(error_of(&c), Some(TsigError::BadTime));
        assert!(matches!(
            check(&signed, &k, 1_000_300),
            Ok(Checked::Valid { .. })
        ));
    }

    fn query() -> Message {
        let mut m = Message::parse(&bytes(captured::NSUPDATE_SHA256)).unwrap();
        m.tsig = None;
        m.answers.clear();
        m.authorities.clear();
        m.questions = vec![Question {
            name: Name::from_text("dyn.example").unwrap(),
            rtype: RType::Soa,
            class: Class::In,
        }];
        m
    }

    /// Rewrite the request's MAC to `len` octets (re-signed and truncated).
    fn truncated(k: &Key, len: usize) -> Vec<u8> {
        let (signed, _) = sign_request(query().to_wire(), k, 500);
        let m = Message::parse(&signed).unwrap();
        let t = m.tsig.unwrap();
        let mut rdata = TsigRdata::parse(&t.rdata).unwrap();
        rdata.mac.truncate(len);
        append_tsig(signed[..t.offset].to_vec(), &t.name, &rdata).tap_arcount_fix()
    }

    trait ArcountFix {
        fn tap_arcount_fix(self) -> Vec<u8>;
    }
    impl ArcountFix for Vec<u8> {
        /// `append_tsig` counted the TSIG again: the cut-off one was already counted.
        fn tap_arcount_fix(mut self) -> Vec<u8> {
            self[11] -= 1;
            self
        }
    }

    #[test]
    fn truncated_mac_is_accepted_down_to_the_rfc_minimum() {
        for alg in Algorithm::ALL {
            let k = key("k", alg, &[9; 64][..alg.secret_len()]);
            let min = alg.min_mac_len();
            assert!(matches!(
                check(&truncated(&k, min), &k, 500),
                Ok(Checked::Valid { .. })
            ));
            assert_eq!(
                check(&truncated(&k, min - 1), &k, 500).unwrap_err(),
                TsigMalformed::BadMacSize
            );
            assert_eq!(
                check(&truncated(&k, 0), &k, 500).unwrap_err(),
                TsigMalformed::BadMacSize
            );
        }
    }

    #[test]
    fn tsig_with_class_in_is_malformed() {
        let k = key_for(&captured::SECRET_256);
        let mut m = Message::parse(&bytes(captured::NSUPDATE_SHA256)).unwrap();
        m.tsig.as_mut().unwrap().class = Class::In;
        let wire = bytes(captured::NSUPDATE_SHA256);
        assert_eq!(
            check_request(&wire, &m, 0x6b16bddd, lookup(&k)).unwrap_err(),
            TsigMalformed::BadRecord
        );
    }

    #[test]
    fn unsigned_message_is_unsigned() {
        let k = key_for(&captured::SECRET_256);
        assert!(matches!(
            check(&query().to_wire(), &k, 0),
            Ok(Checked::Unsigned)
        ));
    }

    /// A signed answer to the captured request, as a client would check it.
    fn answer(hex: &str, k: &Key, now: u64) -> (Vec<u8>, Vec<u8>) {
        let wire = bytes(hex);
        let req = Message::parse(&wire).unwrap();
        let checked = check_request(&wire, &req, now, lookup(k)).unwrap();
        let rcode = match checked {
            Checked::Failed { .. } => Rcode::NotAuth,
            _ => Rcode::NoError,
        };
        let answer = sign_answer(Message::answer_to(&req, rcode).to_wire(), &checked, now + 1);
        let mac = TsigRdata::parse(&req.tsig.unwrap().rdata).unwrap().mac;
        (answer, mac)
    }

    #[test]
    fn answer_is_signed_with_the_request_mac() {
        for (hex, secret, at) in captured::ALL {
            let k = key_for(secret);
            let (ans, mac) = answer(hex, &k, at);
            assert_eq!(check_answer(&ans, &k, &mac), Ok(None));
            let mut other_mac = mac.clone();
            other_mac[0] ^= 1;
            assert_eq!(check_answer(&ans, &k, &other_mac), Err("wrong MAC"));
            let m = Message::parse(&ans).unwrap();
            assert_eq!(m.header.id, Message::parse(&bytes(hex)).unwrap().header.id);
            let t = m.tsig.unwrap();
            assert_eq!(t.name, k.name);
            let rdata = TsigRdata::parse(&t.rdata).unwrap();
            assert_eq!(
                (rdata.time_signed, rdata.fudge, rdata.error),
                (at + 1, 300, 0)
            );
            assert_eq!(rdata.mac.len(), k.algorithm.output_len());
        }
    }

    #[test]
    fn badtime_answer_is_signed_and_carries_the_server_time() {
        let k = key_for(&captured::SECRET_256);
        let at = 0x6b16bddd;
        let (ans, mac) = answer(captured::NSUPDATE_SHA256, &k, at + 1000);
        assert_eq!(check_answer(&ans, &k, &mac), Ok(Some(TsigError::BadTime)));
        let m = Message::parse(&ans).unwrap();
        assert_eq!(m.header.rcode, Rcode::NotAuth);
        let rdata = TsigRdata::parse(&m.tsig.unwrap().rdata).unwrap();
        assert_eq!(rdata.time_signed, at);
        assert_eq!(rdata.other, (at + 1001).to_be_bytes()[2..].to_vec());
    }

    #[test]
    fn badkey_and_badsig_answers_carry_an_empty_mac() {
        let mut k = key_for(&captured::SECRET_256);
        k.secret[5] ^= 1;
        let (ans, mac) = answer(captured::NSUPDATE_SHA256, &k, 0x6b16bddd);
        assert_eq!(check_answer(&ans, &k, &mac), Ok(Some(TsigError::BadSig)));
        let t = Message::parse(&ans).unwrap().tsig.unwrap();
        let rdata = TsigRdata::parse(&t.rdata).unwrap();
        assert!(rdata.mac.is_empty());
        assert_eq!(rdata.algorithm, Algorithm::HmacSha256.name());
        // An unsigned answer to a failed request is smaller than the request.
        assert!(ans.len() < bytes(captured::NSUPDATE_SHA256).len());
    }

    #[test]
    fn own_request_round_trips() {
        for alg in Algorithm::ALL {
            let k = key("Home.Dyn.Example", alg, &[3; 64][..alg.secret_len()]);
            let (signed, mac) = sign_request(query().to_wire(), &k, 42);
            let m = Message::parse(&signed).unwrap();
            let checked = check_request(&signed, &m, 42, lookup(&k)).unwrap();
            assert!(matches!(checked, Checked::Valid { .. }));
            assert_eq!(checked.key_name(), Some(&k.name));
            let ans = sign_answer(
                Message::answer_to(&m, Rcode::Refused).to_wire(),
                &checked,
                43,
            );
            assert_eq!(check_answer(&ans, &k, &mac), Ok(None));
        }
    }

    #[test]
    fn tsig_rdata_round_trips_and_rejects_junk() {
        let r = TsigRdata {
            algorithm: Algorithm::HmacSha512.name(),
            time_signed: 0xFFFF_FFFF_FFFF,
            fudge: 300,
            mac: vec![1; 64],
            original_id: 7,
            error: 18,
            other: vec![0, 1, 2, 3, 4, 5],
        };
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(TsigRdata::parse(&out), Some(r));
        out.push(0);
        assert_eq!(TsigRdata::parse(&out), None);
        assert_eq!(TsigRdata::parse(&out[..20]), None);
        // A compressed algorithm name is refused (RFC 8945 4.2).
        assert_eq!(TsigRdata::parse(b"\xC0\x00"), None);
    }
}
