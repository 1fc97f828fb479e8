//! The acme-dns update call (SPEC 10) as pure steps: the tiny JSON body, the TXT
//! value and name checks, token scope, and `plan` running the checks in order
//! (its refusals, `AcmeRefusal`, are in the one refusal table, `refusal.rs`).
//!
//! No SQL and no sockets here. Why no JSON crate: the body is at most 1 KiB and one
//! flat object of two strings; a ~150-line reader that follows RFC 8259 for what it
//! accepts (and skips any other member, as acme-dns's Go decoder does) is smaller
//! than a dependency and its audit.
//!
//! The values are stored by `store::acme` (schema migration 2), whose `CHECK`
//! repeats [`check_value`] so that not even a hand-edited database can put a quote
//! or a newline into a zone file; the renderer checks once more ([`zone_line`]).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::auth::{self, AuthMethod, Credentials};
use super::directory::{Directory, Domain, ZonePolicy};
use super::hostname;
use super::refusal::Refusal;
use super::refusal::{AcmeRefusal, MAX_BODY};
use crate::net::name::{quoted, Hostname};

/// Values kept per name: a wildcard and its base name are validated at the same
/// TXT name within one order (SPEC 10).
pub const VALUES_PER_NAME: usize = 2;
/// A value is removed this long after it was written, with no call.
pub const LIFETIME: Duration = Duration::from_secs(3600);
/// The label ACME's DNS-01 puts in front of the validated name (RFC 8555 8.4).
pub const CHALLENGE_LABEL: &str = "_acme-challenge";
/// The longest TXT value: one character-string of a TXT record.
pub const MAX_VALUE_LEN: usize = 255;

/// The `200` body: the value written, as acme-dns answers it.
pub fn ok_body(value: &str) -> String {
    // `value` passed `check_value`: nothing in it needs escaping.
    format!("{{\"txt\": \"{value}\"}}")
}

/// The two members of an update call, as sent (not yet checked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateBody {
    pub subdomain: Option<String>,
    pub txt: Option<String>,
}

/// Parse the body of `POST /update`, whatever its `Content-Type` (acme-dns's own
/// curl example sends JSON as a form). Like acme-dns's Go decoder: member names
/// match case-insensitively, the last of a repeated member wins, other members
/// are skipped, `null` counts as absent. Anything that is not one JSON object is
/// `bad_subdomain` (SPEC 10: malformed JSON); a non-string `txt` is `bad_txt`.
pub fn parse_body(body: &[u8]) -> Result<UpdateBody, AcmeRefusal> {
    if body.len() > MAX_BODY {
        return Err(AcmeRefusal::TooLarge);
    }
    let malformed = |e: JsonError| AcmeRefusal::BadSubdomain(format!("malformed JSON body: {e}"));
    let mut r = Reader { b: body, i: 0 };
    let mut out = UpdateBody::default();
    r.ws();
    r.expect(b'{').map_err(malformed)?;
    r.ws();
    if r.peek() == Some(b'}') {
        r.i += 1;
    } else {
        loop {
            r.ws();
            let key = r.string().map_err(malformed)?;
            r.ws();
            r.expect(b':').map_err(malformed)?;
            r.ws();
            let field = if key.eq_ignore_ascii_case("subdomain") {
                Some(&mut out.subdomain)
            } else if key.eq_ignore_ascii_case("txt") {
                Some(&mut out.txt)
            } else {
                None
            };
            match (field, r.peek()) {
                (Some(f), Some(b'"')) => *f = Some(r.string().map_err(malformed)?),
                (Some(f), Some(b'n')) => {
                    r.literal("null").map_err(malformed)?;
                    *f = None;
                }
                (Some(_), _) if key.eq_ignore_ascii_case("txt") => {
                    r.skip_value(0).map_err(malformed)?;
                    return Err(AcmeRefusal::BadTxt("\"txt\" is not a string".into()));
                }
                (Some(_), _) => {
                    return Err(malformed(JsonError::SubdomainNotString));
                }
                (None, _) => r.skip_value(0).map_err(malformed)?,
            }
            r.ws();
            match r.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(malformed(JsonError::ExpectedCommaOrClose { at: r.i })),
            }
        }
    }
    r.ws();
    if r.i != body.len() {
        return Err(malformed(JsonError::TrailingData { at: r.i }));
    }
    Ok(out)
}

/// SPEC 10: 1–255 characters of `A–Z a–z 0–9 - _` (an ACME key authorisation
/// digest is 43 of them). This is also all that keeps a value from breaking the
/// zone file, so the renderer checks it again.
pub fn check_value(value: &str) -> Result<(), AcmeRefusal> {
    if value.is_empty() {
        return Err(AcmeRefusal::BadTxt("empty txt value".into()));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(AcmeRefusal::BadTxt(format!(
            "txt value longer than {MAX_VALUE_LEN} characters"
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(AcmeRefusal::BadTxt(format!(
            "txt value has {}; allowed: A-Z a-z 0-9 - _",
            quoted(&c.to_string())
        )));
    }
    Ok(())
}

/// The body's `subdomain` as a stored name: normalized (lower case, no trailing
/// dot), SPEC 4.2 syntax, not a wildcard (a wildcard's challenge is at its base name),
/// and short enough that `_acme-challenge.NAME` fits DNS's limits (SPEC 17: a
/// longer owner name makes nameservers refuse the whole zone, everyone's records).
/// Whether the owner holds it is the caller's question (also `bad_subdomain`).
pub fn check_subdomain(raw: Option<&str>) -> Result<String, AcmeRefusal> {
    let raw = raw.ok_or_else(|| AcmeRefusal::BadSubdomain("no \"subdomain\" in body".into()))?;
    let name = Hostname::parse(raw).map_err(|e| AcmeRefusal::BadSubdomain(e.to_string()))?;
    if name.as_str().starts_with("*.") {
        return Err(AcmeRefusal::BadSubdomain(format!(
            "{} is a wildcard: send its base name",
            quoted(name.as_str())
        )));
    }
    name.prefixed(CHALLENGE_LABEL)
        .map_err(|e| AcmeRefusal::BadSubdomain(e.to_string()))?;
    Ok(name.into_string())
}

/// Both members checked: the name to write under, and the value.
pub fn check_body(body: &UpdateBody) -> Result<(String, String), AcmeRefusal> {
    let name = check_subdomain(body.subdomain.as_deref())?;
    let value = body
        .txt
        .as_deref()
        .ok_or_else(|| AcmeRefusal::BadTxt("no \"txt\" in body".into()))?;
    check_value(value)?;
    Ok((name, value.to_string()))
}

/// One acme-dns update call as the service hands it over (no sockets).
#[derive(Clone, Debug)]
pub struct Call<'a> {
    /// `X-Api-User`
    pub user: Option<&'a str>,
    /// `X-Api-Key`
    pub key: Option<&'a str>,
    pub body: &'a [u8],
    pub client: IpAddr,
}

/// What the store is to write, once every check passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub token_id: i64,
    pub owner: i64,
    pub name: String,
    pub value: String,
    pub domain: Domain,
}

/// An update pipeline refusal in this API's words (the checks are shared with SPEC 4).
pub(crate) fn from_update(r: Refusal) -> AcmeRefusal {
    match r {
        Refusal::BadAuth { counted, reason } => AcmeRefusal::Unauthorized { counted, reason },
        Refusal::NotYours(m) => AcmeRefusal::Forbidden(m),
        Refusal::NoHost(m) => AcmeRefusal::BadSubdomain(m),
        Refusal::Database(m) => AcmeRefusal::Database(m),
        other => AcmeRefusal::BadSubdomain(other.to_string()),
    }
}

/// SPEC 10, in order: the token (`X-Api-Key`: known, not expired, from an allowed
/// subnet) and `X-Api-User` (the owner's email or a name they hold) — else `401`;
/// the token's scope — else `403`; the body (`bad_subdomain`/`bad_txt`); the name
/// held — else `bad_subdomain`; the zone dynamic and the token's `--domain` —
/// else `403`. Scope comes before the body so that a router's token learns
/// nothing about names from this API.
pub fn plan(
    call: &Call,
    dir: &mut dyn Directory,
    zones: &dyn ZonePolicy,
    now_unix: i64,
) -> Result<Write, AcmeRefusal> {
    let key = call
        .key
        .filter(|k| !k.is_empty())
        .ok_or(AcmeRefusal::Unauthorized {
            counted: false,
            reason: "no X-Api-Key".into(),
        })?;
    let creds = Credentials {
        method: AuthMethod::Basic,
        username: call.user.unwrap_or_default().trim().to_string(),
        secret: key.to_string(),
    };
    let token = auth::find_token(dir, &creds).map_err(from_update)?;
    auth::check_expiry(&token, now_unix).map_err(from_update)?;
    auth::check_subnet(&token, call.client).map_err(from_update)?;
    if creds.username.is_empty() {
        return Err(AcmeRefusal::Unauthorized {
            counted: true,
            reason: "no X-Api-User".into(),
        });
    }
    auth::check_username(&creds, &token, dir).map_err(from_update)?;
    if !token.scope.allows_acme() {
        return Err(AcmeRefusal::Forbidden(format!(
            "token {} has scope {}, not acme",
            token.id,
            token.scope.as_str()
        )));
    }
    let (name, value) = check_body(&parse_body(call.body)?)?;
    let held =
        hostname::check_held(std::slice::from_ref(&name), dir, &token).map_err(from_update)?;
    hostname::check_updatable(&held, zones, &token, dir).map_err(from_update)?;
    let domain = held
        .into_iter()
        .next()
        .map(|(_, d)| d)
        .ok_or_else(|| AcmeRefusal::BadSubdomain(format!("{name} is not held")))?;
    Ok(Write {
        token_id: token.id,
        owner: token.owner,
        name,
        value,
        domain,
    })
}

/// The owner name of the TXT record for `name` (stored form, no trailing dot).
pub fn challenge_name(name: &str) -> String {
    format!("{CHALLENGE_LABEL}.{name}")
}

/// The zone-file line for one value, or `None` when the value fails
/// [`check_value`] (then it is left out, never written half-quoted).
pub fn zone_line(name: &str, ttl: u32, value: &str) -> Option<String> {
    check_value(value).ok()?;
    Some(format!(
        "{}. {ttl} IN TXT \"{value}\"",
        challenge_name(name)
    ))
}

/// Values written at or before this unix time have expired at `now` (SPEC 10:
/// removed an hour after they were written).
pub fn expiry_cutoff(now: i64) -> i64 {
    now.saturating_sub(LIFETIME.as_secs() as i64)
}

/// Why a body is not the one JSON object `parse_body` reads; shown after
/// "malformed JSON body: " in the `bad_subdomain` answer. Byte offsets count
/// from the body's start.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JsonError {
    Expected { want: u8, at: usize, found: u8 },
    ExpectedAtEnd { want: u8 },
    ExpectedCommaOrClose { at: usize },
    UnexpectedValue { at: usize },
    BadNumber { at: usize },
    BadEscape { at: usize },
    BadUnicodeEscape { at: usize },
    UnpairedSurrogate { before: usize },
    ControlCharacter { at: usize },
    UnterminatedString,
    UnterminatedEscape,
    UnterminatedContainer { at: usize },
    NotUtf8,
    TooDeep,
    TrailingData { at: usize },
    SubdomainNotString,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Expected { want, at, found } => write!(
                f,
                "expected '{}' at byte {at}, found '{}'",
                *want as char,
                (*found as char).escape_default()
            ),
            JsonError::ExpectedAtEnd { want } => {
                write!(f, "expected '{}', found the end", *want as char)
            }
            JsonError::ExpectedCommaOrClose { at } => {
                write!(f, "expected ',' or '}}' at byte {at}")
            }
            JsonError::UnexpectedValue { at } => write!(f, "unexpected value at byte {at}"),
            JsonError::BadNumber { at } => write!(f, "bad number at byte {at}"),
            JsonError::BadEscape { at } => write!(f, "bad escape at byte {at}"),
            JsonError::BadUnicodeEscape { at } => write!(f, "bad \\u escape at byte {at}"),
            JsonError::UnpairedSurrogate { before } => {
                write!(f, "unpaired surrogate before byte {before}")
            }
            JsonError::ControlCharacter { at } => {
                write!(f, "control character in string at byte {at}")
            }
            JsonError::UnterminatedString => f.write_str("unterminated string"),
            JsonError::UnterminatedEscape => f.write_str("unterminated escape"),
            JsonError::UnterminatedContainer { at } => {
                write!(f, "unterminated array or object at byte {at}")
            }
            JsonError::NotUtf8 => f.write_str("string is not UTF-8"),
            JsonError::TooDeep => f.write_str("nested too deeply"),
            JsonError::TrailingData { at } => write!(f, "trailing data at byte {at}"),
            JsonError::SubdomainNotString => f.write_str("\"subdomain\" is not a string"),
        }
    }
}

impl std::error::Error for JsonError {}

/// A cursor over the body bytes.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

/// Nesting depth at which skipping a member gives up (the body is 1 KiB anyway).
const MAX_DEPTH: usize = 16;

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        match self.next() {
            Some(x) if x == c => Ok(()),
            Some(x) => Err(JsonError::Expected {
                want: c,
                at: self.i - 1,
                found: x,
            }),
            None => Err(JsonError::ExpectedAtEnd { want: c }),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(JsonError::UnexpectedValue { at: self.i })
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or(JsonError::BadUnicodeEscape { at: self.i })?;
        let v = u32::from_str_radix(digits, 16)
            .map_err(|_| JsonError::BadUnicodeEscape { at: self.i })?;
        self.i += 4;
        Ok(v)
    }

    /// A JSON string, unescaped; the reader stands on its opening quote.
    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.next().ok_or(JsonError::UnterminatedString)?;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.next().ok_or(JsonError::UnterminatedEscape)?;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(JsonError::BadEscape { at: self.i - 1 }),
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let mut cp = self.hex4()?;
                    if (0xD800..0xDC00).contains(&cp) {
                        // A high surrogate must be followed by an escaped low one.
                        self.literal("\\u")?;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(JsonError::UnpairedSurrogate { before: self.i });
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    let ch = char::from_u32(cp)
                        .ok_or(JsonError::UnpairedSurrogate { before: self.i })?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(JsonError::ControlCharacter { at: self.i - 1 }),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| JsonError::NotUtf8)
    }

    /// Skip one JSON value of a member we do not use.
    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|n| n.parse::<f64>().ok())
                    .map(drop)
                    .ok_or(JsonError::BadNumber { at: start })
            }
            Some(open @ (b'[' | b'{')) => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(JsonError::UnterminatedContainer { at: self.i }),
                    }
                }
            }
            _ => Err(JsonError::UnexpectedValue { at: self.i }),
        }
    }
}

/// The acme-dns paths, answered only to `POST`; any other request is the
/// address update API's (SPEC 4: any path).
pub fn is_acme_call(method: &str, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    method == "POST" && matches!(path, "/update" | "/register")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::directory::Scope;
    use crate::update::DirectoryError;

    const DIGEST: &str = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg";

    fn body(s: &str) -> Result<UpdateBody, AcmeRefusal> {
        parse_body(s.as_bytes())
    }

    fn both(sub: &str, txt: &str) -> UpdateBody {
        UpdateBody {
            subdomain: Some(sub.into()),
            txt: Some(txt.into()),
        }
    }

    #[test]
    fn what_the_clients_send_parses() {
        // certbot-dns-acmedns (pyacmedns: json.dumps), lego/acme.sh (compact).
        let a = format!(r#"{{"subdomain": "alice.dedyn.example", "txt": "{DIGEST}"}}"#);
        let b = format!(r#"{{"subdomain":"alice.dedyn.example","txt":"{DIGEST}"}}"#);
        for s in [a, b] {
            assert_eq!(body(&s), Ok(both("alice.dedyn.example", DIGEST)), "{s}");
        }
    }

    #[test]
    fn whitespace_unknown_members_case_and_repeats_follow_go_decoding() {
        let s = "\r\n { \"Subdomain\" : \"x.example\" ,\t\"extra\": {\"a\": [1, 2.5e3, true, null, \"s\"]},\n\"TXT\": \"a\", \"txt\": \"b\" } \n";
        assert_eq!(body(s), Ok(both("x.example", "b")));
        assert_eq!(body("{}"), Ok(UpdateBody::default()));
        assert_eq!(
            body(r#"{"subdomain": null, "txt": "v"}"#),
            Ok(UpdateBody {
                subdomain: None,
                txt: Some("v".into())
            })
        );
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            body(r#"{"subdomain": "a\u002eb\/c", "txt": "\"\\\n\ud83d\ude00"}"#),
            Ok(both("a.b/c", "\"\\\n\u{1F600}"))
        );
    }

    #[test]
    fn malformed_json_is_bad_subdomain() {
        for s in [
            "",
            "subdomain=a&txt=b",
            "[]",
            "{",
            r#"{"subdomain": "a""#,
            r#"{"subdomain" "a"}"#,
            r#"{"subdomain": "a",}"#,
            r#"{"subdomain": "a"} x"#,
            r#"{"subdomain": 'a'}"#,
            r#"{"subdomain": "a\x"}"#,
            r#"{"subdomain": "\ud800"}"#,
            r#"{"subdomain": "\ud800\u0041"}"#,
            "{\"subdomain\": \"a\nb\"}",
            r#"{"subdomain": 5, "txt": "v"}"#,
            r#"{"other": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}"#,
            r#"{"other": tru}"#,
            r#"{"other": 1-}"#,
        ] {
            match body(s) {
                Err(AcmeRefusal::BadSubdomain(m)) => {
                    assert!(m.contains("malformed JSON"), "{s}: {m}")
                }
                other => panic!("{s:?} gave {other:?}"),
            }
        }
        let invalid_utf8: &[u8] = b"{\"subdomain\": \"\xff\"}";
        assert!(matches!(
            parse_body(invalid_utf8),
            Err(AcmeRefusal::BadSubdomain(_))
        ));
    }

    /// The `bad_subdomain` message names what is wrong and where, word for word.
    #[test]
    fn a_malformed_body_is_named_with_its_byte() {
        for (s, why) in [
            ("", "expected '{', found the end"),
            ("[]", "expected '{' at byte 0, found '['"),
            (
                r#"{"subdomain" "a"}"#,
                "expected ':' at byte 13, found '\\\"'",
            ),
            (r#"{"subdomain": "a"} x"#, "trailing data at byte 19"),
            (r#"{"subdomain": "a\x"}"#, "bad escape at byte 17"),
            (r#"{"subdomain": "\uzz12"}"#, "bad \\u escape at byte 17"),
            (
                r#"{"subdomain": "\ud800\u0041"}"#,
                "unpaired surrogate before byte 27",
            ),
            (r#"{"a": [1 2]}"#, "unterminated array or object at byte 10"),
            (r#"{"other": 1-}"#, "bad number at byte 10"),
            (r#"{"subdomain": 5}"#, "\"subdomain\" is not a string"),
        ] {
            assert_eq!(
                body(s),
                Err(AcmeRefusal::BadSubdomain(format!(
                    "malformed JSON body: {why}"
                ))),
                "{s}"
            );
        }
    }

    #[test]
    fn a_txt_that_is_not_a_string_is_bad_txt() {
        for s in [r#"{"txt": 5}"#, r#"{"txt": ["a"]}"#, r#"{"txt": true}"#] {
            assert!(matches!(body(s), Err(AcmeRefusal::BadTxt(_))), "{s}");
        }
    }

    #[test]
    fn bodies_over_1_kib_are_refused_before_parsing() {
        let pad = " ".repeat(MAX_BODY);
        let s = format!(r#"{{"subdomain": "a.example", "txt": "v"}}{pad}"#);
        assert_eq!(body(&s), Err(AcmeRefusal::TooLarge));
        let head = r#"{"txt": "v"}"#;
        let fits = format!("{head}{}", " ".repeat(MAX_BODY - head.len()));
        assert_eq!(fits.len(), MAX_BODY);
        if let Err(e) = body(&fits) {
            panic!("{e:?}");
        }
    }

    #[test]
    fn values_are_1_to_255_of_the_digest_alphabet() {
        assert_eq!(check_value(DIGEST), Ok(()));
        assert_eq!(check_value("a"), Ok(()));
        assert_eq!(check_value(&"-_".repeat(127)), Ok(()));
        assert_eq!(check_value(&"x".repeat(255)), Ok(()));
        for bad in [
            String::new(),
            "x".repeat(256),
            "a\"b".into(),
            "a b".into(),
            "a\nb".into(),
            "a;b".into(),
            "a\\b".into(),
            "a.b".into(),
            "é".into(),
            "a=".into(),
            "a)".into(),
        ] {
            match check_value(&bad) {
                Err(AcmeRefusal::BadTxt(_)) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn subdomains_are_normalized_and_must_be_plain_names() {
        assert_eq!(
            check_subdomain(Some("Alice.Dedyn.Example.")),
            Ok("alice.dedyn.example".into())
        );
        let too_long = format!(
            "{}.{}alice.dedyn.example",
            "b".repeat(41),
            format!("{}.", "a".repeat(63)).repeat(3)
        );
        for bad in [
            Some(too_long.as_str()),
            None,
            Some(""),
            Some("*.alice.dedyn.example"),
            Some("a..b"),
            Some("a b.c"),
            Some("a\"b"),
        ] {
            assert!(
                matches!(check_subdomain(bad), Err(AcmeRefusal::BadSubdomain(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn check_body_checks_the_name_first_then_the_value() {
        assert_eq!(
            check_body(&both("A.example", DIGEST)),
            Ok(("a.example".into(), DIGEST.into()))
        );
        assert!(matches!(
            check_body(&both("*.a", "x y")),
            Err(AcmeRefusal::BadSubdomain(_))
        ));
        assert!(matches!(
            check_body(&both("a.example", "x y")),
            Err(AcmeRefusal::BadTxt(_))
        ));
        let no_txt = UpdateBody {
            subdomain: Some("a.example".into()),
            txt: None,
        };
        assert!(matches!(check_body(&no_txt), Err(AcmeRefusal::BadTxt(_))));
    }

    #[test]
    fn answers_are_spec_10_json() {
        let cases = [
            (
                AcmeRefusal::Unauthorized {
                    counted: true,
                    reason: "x".into(),
                },
                401,
                r#"{"error": "forbidden"}"#,
            ),
            (
                AcmeRefusal::Forbidden("x".into()),
                403,
                r#"{"error": "forbidden"}"#,
            ),
            (
                AcmeRefusal::BadSubdomain("x".into()),
                400,
                r#"{"error": "bad_subdomain"}"#,
            ),
            (
                AcmeRefusal::BadTxt("x".into()),
                400,
                r#"{"error": "bad_txt"}"#,
            ),
            (
                AcmeRefusal::NamesPerDomain("x".into()),
                400,
                r#"{"error": "names_per_domain"}"#,
            ),
            (
                AcmeRefusal::RateLimited(Duration::from_secs(3)),
                429,
                r#"{"error": "rate_limited"}"#,
            ),
        ];
        for (r, status, body) in cases {
            assert_eq!((r.status(), r.body().as_str()), (status, body), "{r:?}");
        }
        assert_eq!(ok_body(DIGEST), format!("{{\"txt\": \"{DIGEST}\"}}"));
    }

    #[test]
    fn scope_words_and_permissions() {
        assert_eq!(Scope::default(), Scope::Update);
        for s in [Scope::Update, Scope::Acme, Scope::Both] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("ACME"), None);
        assert_eq!(Scope::parse(""), None);
        assert!(Scope::Update.allows_update() && !Scope::Update.allows_acme());
        assert!(!Scope::Acme.allows_update() && Scope::Acme.allows_acme());
        assert!(Scope::Both.allows_update() && Scope::Both.allows_acme());
    }

    #[test]
    fn zone_lines_are_quoted_and_refuse_unsafe_values() {
        assert_eq!(
            zone_line("alice.dedyn.example", 60, DIGEST),
            Some(format!(
                "_acme-challenge.alice.dedyn.example. 60 IN TXT \"{DIGEST}\""
            ))
        );
        assert_eq!(zone_line("a.example", 60, "x\" IN A 1.2.3.4"), None);
        assert_eq!(zone_line("a.example", 60, "x\n@ NS evil."), None);
        assert_eq!(zone_line("a.example", 60, ""), None);
    }

    #[test]
    fn values_expire_an_hour_after_writing() {
        // Written at 1000: live until 4599, gone at 4600.
        assert_eq!(expiry_cutoff(4599), 999);
        assert_eq!(expiry_cutoff(4600), 1000);
        assert_eq!(expiry_cutoff(i64::MIN), i64::MIN);
        assert_eq!(challenge_name("a.example"), "_acme-challenge.a.example");
    }

    struct Fake {
        token: crate::update::directory::Token,
    }

    impl Directory for Fake {
        fn token_by_hash(
            &mut self,
            hash: &[u8; 32],
        ) -> Result<Option<crate::update::directory::Token>, DirectoryError> {
            Ok((*hash == crate::update::directory::token_hash("key")).then(|| self.token.clone()))
        }
        fn tsig_key(
            &mut self,
            _name: &str,
        ) -> Result<
            Option<(
                crate::update::directory::Token,
                crate::update::directory::TsigKey,
            )>,
            DirectoryError,
        > {
            Ok(None)
        }
        fn domain_holding(&mut self, name: &str) -> Result<Option<Domain>, DirectoryError> {
            let d = Domain {
                id: 7,
                name: "a.example".into(),
                zone: "example".into(),
                owner: 1,
            };
            Ok(crate::net::name::is_at_or_below(name, &d.name).then_some(d))
        }
        fn two_domains_of(&mut self, owner: i64) -> Result<Vec<Domain>, DirectoryError> {
            Ok(self
                .domain_holding("a.example")?
                .into_iter()
                .filter(|d| d.owner == owner)
                .collect())
        }
        fn token_covers(&mut self, _token: i64, _name: &str) -> Result<bool, DirectoryError> {
            Ok(false)
        }
    }

    struct Zones;
    impl ZonePolicy for Zones {
        fn is_dynamic(&self, _zone: &str) -> bool {
            true
        }
        fn guard_fallback(&self) -> &[crate::net::cidr::Cidr] {
            &[]
        }
    }

    fn fake(scope: Scope) -> Fake {
        Fake {
            token: crate::update::directory::Token {
                id: 1,
                owner: 1,
                owner_email: "a@x.org".into(),
                expires: None,
                allowed_subnets: vec![],
                scoped: false,
                family: crate::update::directory::FamilyPolicy::V4,
                scope,
            },
        }
    }

    fn run(
        scope: Scope,
        user: Option<&str>,
        key: Option<&str>,
        body: &str,
    ) -> Result<Write, AcmeRefusal> {
        let call = Call {
            user,
            key,
            body: body.as_bytes(),
            client: "127.0.0.1".parse().expect("ip"),
        };
        plan(&call, &mut fake(scope), &Zones, 0)
    }

    #[test]
    fn plan_checks_credentials_then_scope_then_body_then_name() {
        let good = format!(r#"{{"subdomain": "www.a.example", "txt": "{DIGEST}"}}"#);
        let w = run(Scope::Acme, Some("a.example"), Some("key"), &good).expect("plan");
        assert_eq!(
            (w.name.as_str(), w.value.as_str(), w.domain.id),
            ("www.a.example", DIGEST, 7)
        );
        if let Err(e) = run(Scope::Both, Some("A@X.org"), Some("key"), &good) {
            panic!("{e:?}");
        }
        // No key: 401 that does not count; a wrong key or user: counted.
        assert!(matches!(
            run(Scope::Acme, Some("a.example"), None, &good),
            Err(AcmeRefusal::Unauthorized { counted: false, .. })
        ));
        for (user, key) in [
            (Some("a.example"), "nope"),
            (Some("b.example"), "key"),
            (None, "key"),
        ] {
            assert!(
                matches!(
                    run(Scope::Acme, user, Some(key), &good),
                    Err(AcmeRefusal::Unauthorized { counted: true, .. })
                ),
                "{user:?} {key}"
            );
        }
        // A router's token learns nothing from the body: 403 before it is read.
        assert!(matches!(
            run(Scope::Update, Some("a.example"), Some("key"), "not json"),
            Err(AcmeRefusal::Forbidden(_))
        ));
        assert!(matches!(
            run(Scope::Acme, Some("a.example"), Some("key"), "not json"),
            Err(AcmeRefusal::BadSubdomain(_))
        ));
        let elsewhere = format!(r#"{{"subdomain": "b.example", "txt": "{DIGEST}"}}"#);
        assert!(matches!(
            run(Scope::Acme, Some("a.example"), Some("key"), &elsewhere),
            Err(AcmeRefusal::BadSubdomain(_))
        ));
    }

    #[test]
    fn only_post_to_the_two_paths_is_an_acme_call() {
        assert!(is_acme_call("POST", "/update"));
        assert!(is_acme_call("POST", "/register"));
        assert!(is_acme_call("POST", "/update?x=1"));
        assert!(!is_acme_call("GET", "/update"));
        assert!(!is_acme_call("POST", "/"));
        assert!(!is_acme_call("POST", "/update/"));
        assert!(!is_acme_call("HEAD", "/register"));
    }
}
