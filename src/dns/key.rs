//! TSIG keys (RFC 8945 6): the two algorithms offered, a key's secret, and the
//! BIND key file `token add --tsig` prints for `nsupdate -k` (the secret itself
//! is drawn by the CLI, `cli/add.rs`).
//!
//! hmac-md5 and hmac-sha1 are not offered (SPEC 14): a request naming them gets BADKEY.

use super::name::Name;
use base64::Engine;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::HmacSha256, Algorithm::HmacSha512];

    /// The name in configuration and key files (`hmac-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    pub fn from_str_name(s: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim_end_matches('.')))
    }

    /// The algorithm named in a TSIG record (RFC 8945 6: `hmac-sha256.`).
    pub fn from_name(name: &Name) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| Name::from_text(a.as_str()).is_ok_and(|n| n == *name))
    }

    /// The TSIG algorithm name, as written in records this server sends.
    pub fn name(self) -> Name {
        Name::from_text(self.as_str()).unwrap_or_else(|_| Name::root())
    }

    pub(super) fn ring(self) -> ring::hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => ring::hmac::HMAC_SHA256,
            Algorithm::HmacSha512 => ring::hmac::HMAC_SHA512,
        }
    }

    /// The full MAC length in octets.
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha512 => 64,
        }
    }

    /// RFC 8945 5.2.2.1: a MAC shorter than the larger of 10 octets and half the
    /// hash output is malformed (FORMERR).
    pub fn min_mac_len(self) -> usize {
        (self.output_len() / 2).max(10)
    }

    /// Secret length for new keys: the hash's output (RFC 2104 2's
    /// recommendation; longer adds nothing, shorter weakens it).
    pub fn secret_len(self) -> usize {
        self.output_len()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as TSIG needs it. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub name: Name,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} {}, secret hidden)", self.name, self.algorithm)
    }
}

impl Key {
    /// A key from its base64 secret, as stored and as printed in key files.
    pub fn from_base64(name: Name, algorithm: Algorithm, secret: &str) -> Option<Key> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .ok()?;
        Some(Key {
            name,
            algorithm,
            secret,
        })
    }

    pub fn secret_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.secret)
    }
}

/// BIND's key-file text for `nsupdate -k FILE` (SPEC 14), the key name
/// without its trailing dot as `tsig-keygen` writes it.
pub fn bind_key_file(name: &Name, algorithm: Algorithm, secret_base64: &str) -> String {
    let text = name.to_string();
    let text = text
        .strip_suffix('.')
        .filter(|t| !t.is_empty())
        .unwrap_or(&text);
    format!("key \"{text}\" {{\n\talgorithm {algorithm};\n\tsecret \"{secret_base64}\";\n}};\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_the_rfc_8945_ones() {
        let n = Name::from_text("HMAC-SHA512.").unwrap();
        assert_eq!(Algorithm::from_name(&n), Some(Algorithm::HmacSha512));
        let md5 = Name::from_text("hmac-md5.sig-alg.reg.int").unwrap();
        assert_eq!(Algorithm::from_name(&md5), None);
        assert_eq!(Algorithm::HmacSha256.name().to_string(), "hmac-sha256.");
        assert_eq!(
            Algorithm::from_str_name("hmac-sha256"),
            Some(Algorithm::HmacSha256)
        );
        assert_eq!(Algorithm::from_str_name("hmac-sha1"), None);
    }

    #[test]
    fn truncation_minimum_is_half_the_hash_and_at_least_10() {
        assert_eq!(Algorithm::HmacSha256.min_mac_len(), 16);
        assert_eq!(Algorithm::HmacSha512.min_mac_len(), 32);
    }

    #[test]
    fn key_file_is_what_nsupdate_reads() {
        let name = Name::from_text("home.dyn.example.").unwrap();
        assert_eq!(
            bind_key_file(&name, Algorithm::HmacSha256, "c2VjcmV0"),
            "key \"home.dyn.example\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = Key::from_base64(Name::root(), Algorithm::HmacSha256, "c2VjcmV0").unwrap();
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        assert!(!format!("{key:?}").contains("secret\""));
    }
}
