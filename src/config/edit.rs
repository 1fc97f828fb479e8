//! `config set`: keys of the config file's table sections (`[server]`, `[dns]`, …)
//! changed in its text, every other line (comments included) kept as it was. Pure:
//! text in, text out; the caller validates the result and writes it.
//!
//! The edit is line-based: the key's line in its section is replaced, a missing key
//! goes right under the section's header, a missing section at the end. A key
//! whose value spans lines (a multi-line array or string) leaves its other lines
//! behind; the type check below then refuses the result, so nothing is written.

use super::raw::RawConfig;
use super::ConfigError;

/// The sections `config set` addresses: the tables of the file. `[[zone]]` entries
/// are an array and are edited by hand.
pub const SECTIONS: &[&str] = &["server", "database", "dns", "rate_limit", "limits"];

/// `SECTION.KEY` from the command line.
fn split_name(name: &str) -> Result<(&str, &str), ConfigError> {
    let (section, key) = name.split_once('.').ok_or_else(|| {
        ConfigError(format!(
            "'{}': name a key as SECTION.KEY, e.g. dns.reload_command",
            name.escape_debug()
        ))
    })?;
    if !SECTIONS.contains(&section) {
        return Err(ConfigError(format!(
            "'{}': no section [{}] to set keys in (one of: {}; [[zone]] entries are edited by hand)",
            name.escape_debug(),
            section.escape_debug(),
            SECTIONS.join(", ")
        )));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ConfigError(format!(
            "'{}': '{}' is not a key name (lower-case letters and _)",
            name.escape_debug(),
            key.escape_debug()
        )));
    }
    Ok((section, key))
}

/// `value` as a TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Whether `value` is one TOML value on one line (`8`, `true`, `["a", "b"]`, `"x"`).
fn is_toml_value(value: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct One {
        #[allow(dead_code)]
        v: serde::de::IgnoredAny,
    }
    !value.contains(['\n', '\r']) && basic_toml::from_str::<One>(&format!("v = {value}")).is_ok()
}

/// The ways `value` can be written, in the order they are tried: as the TOML value
/// it is, if it is one, else (or when the key wants a string) as a string.
fn spellings(value: &str) -> Vec<String> {
    let quoted = toml_string(value);
    if is_toml_value(value) && value != quoted {
        vec![value.to_string(), quoted]
    } else {
        vec![quoted]
    }
}

/// The table a line opens, if it is a table header: `Some(Some("dns"))` for
/// `[dns]`, `Some(None)` for an array-of-tables header such as `[[zone]]`.
fn header(line: &str) -> Option<Option<&str>> {
    let t = line.trim_start();
    if t.starts_with("[[") {
        return Some(None);
    }
    let rest = t.strip_prefix('[')?;
    Some(rest.split_once(']').map(|(name, _)| name.trim()))
}

/// Whether `line` assigns `key` (`key = …`, any spaces around `=`).
fn assigns(line: &str, key: &str) -> bool {
    line.trim_start()
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// `text` with `section.key = value` (TOML text): the key's line replaced, or the
/// line added after the section's last line that is not blank or a comment, or the
/// section added at the end.
fn set_line(text: &str, section: &str, key: &str, value: &str) -> String {
    let assignment = format!("{key} = {value}");
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut current: Option<String> = None; // the table the line is in (None: top level or [[…]])
    let mut insert_at = None; // after the section's last line of content
    for (i, line) in lines.iter_mut().enumerate() {
        if let Some(h) = header(line) {
            current = h.map(str::to_string);
            if current.as_deref() == Some(section) && insert_at.is_none() {
                insert_at = Some(i);
            }
            continue;
        }
        if current.as_deref() != Some(section) {
            continue;
        }
        if assigns(line, key) {
            let indent = &line[..line.len() - line.trim_start().len()];
            let eol = if line.ends_with('\n') { "\n" } else { "" };
            *line = format!("{indent}{assignment}{eol}");
            return lines.concat();
        }
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') {
            insert_at = Some(i);
        }
    }
    match insert_at {
        Some(i) => {
            if !lines[i].ends_with('\n') {
                lines[i].push('\n');
            }
            lines.insert(i + 1, format!("{assignment}\n"));
            lines.concat()
        }
        None => {
            let mut out = lines.concat();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n{assignment}\n"));
            out
        }
    }
}

/// `text` with each `(SECTION.KEY, value)` set, in order. A value that is a TOML
/// value of the key's type is written as it is (`8`, `true`, `["0.0.0.0:80"]`),
/// anything else as a string. Checks that the result parses and every key has its
/// type; what the keys mean (`validate`) is the caller's to check, with the file's path.
/// Returns the new text and each assignment as written (`SECTION.KEY = VALUE`).
pub fn set(
    text: &str,
    assignments: &[(String, String)],
) -> Result<(String, Vec<String>), ConfigError> {
    let mut text = text.to_string();
    let mut written = Vec::new();
    for (name, value) in assignments {
        let (section, key) = split_name(name)?;
        let mut last_error = None;
        let mut chosen = None;
        for spelling in spellings(value) {
            let candidate = set_line(&text, section, key, &spelling);
            match basic_toml::from_str::<RawConfig>(&candidate) {
                Ok(_) => {
                    written.push(format!("{name} = {spelling}"));
                    chosen = Some(candidate);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        text = match (chosen, last_error) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(ConfigError(format!("{name}: {e}"))),
            (None, None) => unreachable!("spellings() gives at least one"),
        };
    }
    Ok((text, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set1(text: &str, name: &str, value: &str) -> Result<String, String> {
        set(text, &[(name.into(), value.into())])
            .map(|(text, _)| text)
            .map_err(|e| e.0)
    }

    const PACKAGED: &str = "# comment\n[server]\nhttp_listen = [\"127.0.0.1:8080\"]   # here\n\n\
                            [dns]\nreload_command = \"\"          # empty: only write\n\n\
                            [[zone]]\nname = \"dedyn.example\"\n";

    #[test]
    fn replaces_the_keys_line_and_keeps_every_other_line() {
        let out = set1(PACKAGED, "dns.reload_command", "rndc reload {zone}").unwrap();
        assert_eq!(
            out,
            PACKAGED.replace(
                "reload_command = \"\"          # empty: only write",
                "reload_command = \"rndc reload {zone}\""
            )
        );
    }

    #[test]
    fn a_missing_key_goes_after_its_sections_last_key() {
        let out = set1(PACKAGED, "dns.verify_server", "127.0.0.1:53").unwrap();
        assert!(
            out.contains("only write\nverify_server = \"127.0.0.1:53\"\n\n[[zone]]"),
            "{out}"
        );
        let out = set1("[dns]\n# a comment\n\n[limits]\n", "dns.ttl", "30").unwrap();
        assert_eq!(out, "[dns]\nttl = 30\n# a comment\n\n[limits]\n");
    }

    #[test]
    fn a_missing_section_is_added_at_the_end_after_array_tables() {
        let out = set1(PACKAGED, "limits.domains_per_user", "5").unwrap();
        assert!(out.ends_with("name = \"dedyn.example\"\n\n[limits]\ndomains_per_user = 5\n"));
        // and the key stays in its section, not in the [[zone]] entry above it
        let empty = set1("", "dns.verify_server", "127.0.0.1:53").unwrap();
        assert_eq!(empty, "[dns]\nverify_server = \"127.0.0.1:53\"\n");
    }

    #[test]
    fn a_key_of_the_same_name_in_another_section_or_a_comment_is_left_alone() {
        let text = "[limits]\nnames_per_domain = 1\n[dns]\n# names_per_domain = 5\n";
        let out = set1(text, "limits.records_per_name", "30").unwrap();
        assert_eq!(out, text.replace("= 1\n", "= 1\nrecords_per_name = 30\n"));
        let text = "[limits]\nrecords_per_name = 1\n[dns]\n# ttl = 5\n";
        let out = set1(text, "dns.ttl", "30").unwrap();
        assert_eq!(
            out,
            "[limits]\nrecords_per_name = 1\n[dns]\nttl = 30\n# ttl = 5\n"
        );
    }

    #[test]
    fn values_are_toml_when_the_key_takes_them_else_strings() {
        let out = set1("", "server.workers", "8").unwrap();
        assert!(out.contains("workers = 8\n"), "{out}");
        let out = set1("", "server.http_listen", "[\"0.0.0.0:80\", \"[::]:80\"]").unwrap();
        assert!(
            out.contains("http_listen = [\"0.0.0.0:80\", \"[::]:80\"]\n"),
            "{out}"
        );
        // `true` is a TOML value, but reload_command takes a string
        let out = set1("", "dns.reload_command", "true").unwrap();
        assert!(out.contains("reload_command = \"true\"\n"), "{out}");
        let out = set1("", "dns.reload_command", "a \"quoted\" \\ \u{7}").unwrap();
        assert!(
            out.contains(r#"reload_command = "a \"quoted\" \\ \u0007""#),
            "{out}"
        );
        let out = set1("", "dns.verify_server", "").unwrap();
        assert!(out.contains("verify_server = \"\"\n"), "{out}");
    }

    #[test]
    fn refusals_name_the_key_and_the_problem() {
        let e = set1(PACKAGED, "server.workers", "many").unwrap_err();
        assert!(e.starts_with("server.workers: invalid type: string"), "{e}");
        let e = set1(PACKAGED, "dns.no_such_key", "x").unwrap_err();
        assert!(e.contains("unknown field `no_such_key`"), "{e}");
        let e = set1(PACKAGED, "zone.name", "x").unwrap_err();
        assert!(e.contains("no section [zone]"), "{e}");
        let e = set1(PACKAGED, "reload_command", "x").unwrap_err();
        assert!(e.contains("SECTION.KEY"), "{e}");
        let e = set1(PACKAGED, "dns.Reload", "x").unwrap_err();
        assert!(e.contains("not a key name"), "{e}");
    }

    #[test]
    fn a_multi_line_value_is_refused_not_half_replaced() {
        let text = "[server]\nhttp_listen = [\n  \"127.0.0.1:8080\",\n]\n";
        let e = set1(text, "server.http_listen", "[\"0.0.0.0:80\"]").unwrap_err();
        assert!(e.starts_with("server.http_listen: "), "{e}");
    }

    #[test]
    fn several_keys_in_one_call() {
        let (out, written) = set(
            PACKAGED,
            &[
                (
                    "dns.reload_command".into(),
                    "nsd-control reload {zone}".into(),
                ),
                ("dns.verify_server".into(), "127.0.0.1:53".into()),
                ("server.workers".into(), "4".into()),
            ],
        )
        .unwrap();
        assert!(out.contains(
            "[dns]\nreload_command = \"nsd-control reload {zone}\"\nverify_server = \"127.0.0.1:53\"\n"
        ));
        assert_eq!(
            written,
            [
                "dns.reload_command = \"nsd-control reload {zone}\"",
                "dns.verify_server = \"127.0.0.1:53\"",
                "server.workers = 4"
            ]
        );
    }
}
