//! Host names as the protocol knows them (SPEC 4.2): the stored form, the syntax,
//! and the "at or below" relation between a name and a registered domain.

use std::fmt;

/// Lower-case, trimmed, without trailing dot: the form names are stored in.
pub fn normalize(name: &str) -> String {
    let n = name.trim();
    n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase()
}

/// SPEC 4.2: at most 253 characters of labels of 1–63 letters, digits, `-` or `_`,
/// optionally starting with a `*` label. Expects a normalized name.
pub fn check_syntax(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty hostname".into());
    }
    if name.len() > 253 {
        return Err(format!(
            "hostname is longer than 253 characters: {}...",
            printable(&name.chars().take(40).collect::<String>())
        ));
    }
    for (i, label) in name.split('.').enumerate() {
        let ok = if i == 0 && label == "*" {
            true
        } else {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !ok {
            return Err(format!("invalid hostname '{}'", printable(name)));
        }
    }
    Ok(())
}

/// A name as it may appear in an error body: no control characters, bounded length.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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
    pub fn parse(raw: &str) -> Result<Hostname, String> {
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
        assert!(check_syntax(&format!("{}.example", "a".repeat(63))).is_ok());
        assert_eq!(
            check_syntax(&format!("{}.example", "a".repeat(64))),
            Err(format!("invalid hostname '{}.example'", "a".repeat(64)))
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(long.len() > 253);
        assert!(check_syntax(&long)
            .unwrap_err()
            .starts_with("hostname is longer than 253 characters"));
        assert!(check_syntax("_dmarc.x.example").is_ok());
        assert_eq!(check_syntax("a..b"), Err("invalid hostname 'a..b'".into()));
    }

    #[test]
    fn long_name_with_multibyte_character_is_refused_without_panic() {
        let name = format!("{}\u{e9}{}", "a".repeat(39), "a".repeat(300));
        assert!(check_syntax(&name)
            .unwrap_err()
            .starts_with("hostname is longer than 253 characters"));
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
    fn hostname_is_stored_lower_case_without_trailing_dot() {
        let h = Hostname::parse(" Alice.Dedyn.Example. ").expect("valid");
        assert_eq!(h.as_str(), "alice.dedyn.example");
        assert!(h.is_at_or_below("dedyn.example"));
        assert_eq!(
            Hostname::parse("bad name"),
            Err("invalid hostname 'bad name'".into())
        );
    }
}
