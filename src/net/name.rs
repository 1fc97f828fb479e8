//! Host names as the protocol knows them (SPEC 4.2): the stored form, the syntax,
//! and the "at or below" relation between a name and a registered domain.

use std::fmt;

/// Lower-case, trimmed, without trailing dot: the form names are stored in.
pub fn normalize(name: &str) -> String {
    let n = name.trim();
    n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase()
}

/// DNS's limit on a name as text, without the trailing dot (255 octets on the
/// wire, RFC 1035 2.3.4); nameservers refuse a zone with a longer owner name.
pub const MAX_NAME_LEN: usize = 253;
/// DNS's limit on one label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name is not one DNS can hold (SPEC 4.2), phrased for the client or
/// operator who sent it; the bad name is shown quoted (`quoted`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// Longer than `MAX_NAME_LEN`: its first 40 characters.
    TooLong {
        start: String,
    },
    /// A label is empty, too long, or holds a character outside `[A-Za-z0-9_-]`.
    Invalid {
        name: String,
    },
    /// `label.name` (`Hostname::prefixed`) would be `len` characters.
    PrefixedTooLong {
        label: String,
        name: String,
        len: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty hostname"),
            NameError::TooLong { start } => {
                write!(f, "hostname is longer than 253 characters: {}...", quoted(start))
            }
            NameError::Invalid { name } => write!(f, "invalid hostname {}", quoted(name)),
            NameError::PrefixedTooLong { label, name, len } => write!(
                f,
                "{label}.{} would be {len} characters, longer than DNS allows ({MAX_NAME_LEN}): use a shorter name",
                quoted(name)
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// SPEC 4.2: at most 253 characters of labels of 1–63 letters, digits, `-` or `_`,
/// optionally starting with a `*` label. Expects a normalized name.
pub fn check_syntax(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            start: name.chars().take(40).collect(),
        });
    }
    for (i, label) in name.split('.').enumerate() {
        let ok = if i == 0 && label == "*" {
            true
        } else {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !ok {
            return Err(NameError::Invalid { name: name.into() });
        }
    }
    Ok(())
}

/// A request-supplied value as it may appear in an error body or a log line:
/// at most 80 characters, with `\\`, `'` and every character that could end,
/// fake or reorder a line (control characters, Unicode line and paragraph
/// separators, direction and other format controls such as U+2028 and U+202E)
/// written as escapes (SPEC 13). Shown inside quotes: see `quoted`.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(80));
    for c in s.chars().take(80) {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A request-supplied value in single quotes, escaped as `printable` does: the
/// one form every such value takes in bodies and logs.
pub fn quoted(s: &str) -> String {
    format!("'{}'", printable(s))
}

/// Characters that must not reach a log line raw: C0/C1 controls, the Unicode
/// line and paragraph separators, and every format character (general category
/// Cf as of Unicode 15: direction controls, invisible joiners, tag characters,
/// Arabic number signs, musical format controls…; SPEC 17). `std` has no
/// category table, so the Cf ranges are listed here.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}')
}

/// `name` equals `domain` or lies below it.
pub fn is_at_or_below(name: &str, domain: &str) -> bool {
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// A host name in its stored form: normalized and syntax-checked (SPEC 4.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// Normalizes `raw` and checks its syntax; the error names the bad name.
    pub fn parse(raw: &str) -> Result<Hostname, NameError> {
        let n = normalize(raw);
        check_syntax(&n)?;
        Ok(Hostname(n))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self` equals `domain` or lies below it.
    pub fn is_at_or_below(&self, domain: &str) -> bool {
        is_at_or_below(&self.0, domain)
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// `label.self`, the name the service derives to write under (such as
    /// `_acme-challenge.NAME`), if it still fits DNS's limits. SPEC 17: every name
    /// the service writes does, whatever the intake (acme-dns API, CLI, DNS UPDATE):
    /// each asks here and refuses the request, writing nothing, on an error.
    pub fn prefixed(&self, label: &str) -> Result<Hostname, NameError> {
        let derived = format!("{label}.{}", self.0);
        if derived.len() > MAX_NAME_LEN {
            return Err(NameError::PrefixedTooLong {
                label: label.into(),
                name: self.0.clone(),
                len: derived.len(),
            });
        }
        check_syntax(&derived)?;
        Ok(Hostname(derived))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_syntax_limits() {
        if let Err(e) = check_syntax(&format!("{}.example", "a".repeat(63))) {
            panic!("{e:?}");
        }
        assert_eq!(
            check_syntax(&format!("{}.example", "a".repeat(64))).map_err(|e| e.to_string()),
            Err(format!("invalid hostname '{}.example'", "a".repeat(64)))
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(long.len() > 253);
        assert!(check_syntax(&long)
            .unwrap_err()
            .to_string()
            .starts_with("hostname is longer than 253 characters"));
        if let Err(e) = check_syntax("_dmarc.x.example") {
            panic!("{e:?}");
        }
        assert_eq!(
            check_syntax("a..b").map_err(|e| e.to_string()),
            Err("invalid hostname 'a..b'".into())
        );
    }

    #[test]
    fn long_name_with_multibyte_character_is_refused_without_panic() {
        let name = format!("{}\u{e9}{}", "a".repeat(39), "a".repeat(300));
        assert!(check_syntax(&name)
            .unwrap_err()
            .to_string()
            .starts_with("hostname is longer than 253 characters"));
    }

    /// SPEC 17 (issue 18 E1): `subdomain` may be 253 characters, and
    /// `_acme-challenge.` in front made 269, which broke the whole zone.
    #[test]
    fn a_derived_name_must_fit_dns_limits_too() {
        let labels = format!("{}.", "a".repeat(63)).repeat(3);
        let at_limit = format!("{}.{labels}alice.dedyn.example", "b".repeat(41));
        assert_eq!(at_limit.len(), 253);
        let h = Hostname::parse(&at_limit).expect("253 characters is a valid name");
        let e = h.prefixed("_acme-challenge").unwrap_err().to_string();
        assert!(
            e.starts_with("_acme-challenge.'bbbb") && e.contains("would be 269 characters"),
            "{e}"
        );
        // 237 + 16 = 253 still fits; one more does not.
        let fits = Hostname::parse(&at_limit[16..]).expect("name");
        assert_eq!(
            fits.prefixed("_acme-challenge").map(|d| d.as_str().len()),
            Ok(253)
        );
        let over = Hostname::parse(&at_limit[15..]).expect("name");
        assert_eq!(over.prefixed("_acme-challenge").unwrap_err().to_string(), format!("_acme-challenge.{} would be 254 characters, longer than DNS allows (253): use a shorter name", quoted(over.as_str())));
        assert_eq!(
            Hostname::parse("a.example")
                .expect("name")
                .prefixed("_acme-challenge")
                .map(Hostname::into_string),
            Ok("_acme-challenge.a.example".into())
        );
    }

    #[test]
    fn held_means_equal_or_below() {
        assert!(is_at_or_below("alice.dedyn.example", "alice.dedyn.example"));
        assert!(is_at_or_below(
            "*.alice.dedyn.example",
            "alice.dedyn.example"
        ));
        assert!(!is_at_or_below(
            "malice.dedyn.example",
            "alice.dedyn.example"
        ));
        assert!(!is_at_or_below("dedyn.example", "alice.dedyn.example"));
    }

    #[test]
    fn request_values_are_escaped_so_no_line_can_be_forged() {
        assert_eq!(quoted("alice"), "'alice'");
        assert_eq!(quoted("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quoted("x\ny"), "'x\\u{a}y'");
        assert_eq!(quoted("x\u{2028}y\u{202e}z"), "'x\\u{2028}y\\u{202e}z'");
        // Every format character (Cf), not only line and direction controls:
        // tag characters, a musical format control, Arabic number signs.
        assert_eq!(
            quoted("a\u{e0041}\u{1d173}\u{0600}\u{06dd}\u{e007f}b"),
            "'a\\u{e0041}\\u{1d173}\\u{600}\\u{6dd}\\u{e007f}b'"
        );
        // Letters of other scripts stay as they are.
        assert_eq!(quoted("bücher-ä"), "'bücher-ä'");
        assert_eq!(printable(&"a".repeat(100)).len(), 80);
    }

    #[test]
    fn hostname_is_stored_lower_case_without_trailing_dot() {
        let h = Hostname::parse(" Alice.Dedyn.Example. ").expect("valid");
        assert_eq!(h.as_str(), "alice.dedyn.example");
        assert!(h.is_at_or_below("dedyn.example"));
        assert_eq!(
            Hostname::parse("bad name").map_err(|e| e.to_string()),
            Err("invalid hostname 'bad name'".into())
        );
    }
}
